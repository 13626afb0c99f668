import {DEFAULT_QUEUE_SETTINGS} from '../../core/broker.js'
import type {ReceiveFn} from '../../core/consumer.js'
import {InvalidInputError} from '../../core/errors.js'
import {validateName} from '../../core/names.js'
import {CONSUMER_FLAGS, consumerSettings, runConsumer, waitsOutLocks} from '../consumer.js'
import {defineCommand} from '../definition.js'
import {askName} from '../prompts.js'
import {triage, type TriageSummary} from '../triage.js'

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
    '<%= config.bin %> consume jobs -f --exec \'./handle.sh\' --parallel 4 --prefetch 16',
    '<%= config.bin %> consume jobs -f --rate 50/s --json',
    '<%= config.bin %> consume jobs.dlq --interactive',
  ],
  args: [{name: 'queue', summary: 'Queue to consume from.'}],
  flags: {
    ...CONSUMER_FLAGS,
    interactive: {kind: 'boolean', summary: 'Triage at a terminal: see each message, then a key acks, retries, dead-letters or skips it.'},
  },
  fast: true,
  async run({args, flags}, ctx): Promise<TriageSummary | undefined> {
    const settings = consumerSettings(flags) // bad flags fail before the broker folder is touched
    const queue = validateName(
      args.queue ?? (await askName(ctx, 'queue', (await ctx.broker().listQueues()).map((q) => q.name), 'give it as an argument: mq consume QUEUE')),
      'queue name',
    )
    const broker = ctx.broker()
    // A follower or worker waits out outages from its first request on (a cluster still electing).
    if (!flags.interactive && waitsOutLocks(settings)) ctx.waitOutLocks()
    const lease = flags['visibility-timeout'] ?? (await broker.getQueue(queue))?.settings.visibilityTimeoutMs ?? DEFAULT_QUEUE_SETTINGS.visibilityTimeoutMs
    const receive: ReceiveFn = (options) => broker.receive(queue, options)
    if (flags.interactive) {
      if (settings.exec !== undefined || ctx.json) throw new InvalidInputError('--interactive cannot be combined with --exec or --json')
      const summary = await triage(ctx, receive, {leaseMs: lease, waitMs: settings.loop.waitMs, follow: settings.loop.follow})
      return summary
    }
    await runConsumer(ctx, receive, settings, {label: queue, leaseMs: lease})
    return undefined
  },
  render: (s) =>
    `acked ${s.acked}, retried ${s.retried}, dead-lettered ${s.deadLettered}, skipped ${s.skipped} (released)`,
})
