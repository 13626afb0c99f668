import {DEFAULT_QUEUE_SETTINGS} from '../../core/broker.js'
import {validateName} from '../../core/names.js'
import {CONSUMER_FLAGS, consumerSettings, runConsumer} from '../consumer.js'
import {defineCommand} from '../definition.js'
import {askName} from '../prompts.js'

export default defineCommand({
  id: 'consume',
  summary: 'Receive messages from a queue.',
  description: `Prints each message (the body when piped, JSON lines with --json) or runs --exec once
per message. Without --exec messages are acked as they are delivered (--ack auto); with --ack manual
each keeps a lease and its receipt is shown, for \`mq ack\`. Exit 3 when nothing arrived.`,
  examples: [
    '<%= config.bin %> consume jobs',
    '<%= config.bin %> consume jobs -n 10 --wait 30s --json',
    '<%= config.bin %> consume jobs --ack manual --json | jq -r .receipt | <%= config.bin %> ack',
    '<%= config.bin %> consume jobs -f --exec \'./handle.sh\' --parallel 4',
  ],
  args: [{name: 'queue', summary: 'Queue to consume from.'}],
  flags: CONSUMER_FLAGS,
  fast: true,
  async run({args, flags}, ctx): Promise<undefined> {
    const broker = ctx.broker()
    const queue = validateName(
      args.queue ?? (await askName(ctx, 'queue', (await broker.listQueues()).map((q) => q.name), 'give it as an argument: mq consume QUEUE')),
      'queue name',
    )
    const lease = flags['visibility-timeout'] ?? (await broker.getQueue(queue))?.settings.visibilityTimeoutMs ?? DEFAULT_QUEUE_SETTINGS.visibilityTimeoutMs
    await runConsumer(ctx, (options) => broker.receive(queue, options), consumerSettings(flags), {label: queue, leaseMs: lease})
    return undefined
  },
})
