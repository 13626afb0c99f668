import {DEFAULT_QUEUE_SETTINGS} from '../../core/broker.js'
import {deliveryBatches} from '../../core/consumer.js'
import {formatDuration} from '../../core/units.js'
import {InterruptedError, NothingArrivedError} from '../../core/errors.js'
import {runExecWorker} from '../../core/exec-worker.js'
import {validateName} from '../../core/names.js'
import {DeliveryPrinter, execReporter} from '../deliveries.js'
import {defineCommand} from '../definition.js'
import {askName} from '../prompts.js'
import {CONSUMER_FLAGS, consumerSettings} from './consumer-flags.js'

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
    const settings = consumerSettings(flags)
    const {drain, force} = ctx.handleInterrupts()
    const receive = (options: Parameters<typeof broker.receive>[1]) => broker.receive(queue, options)
    const lease = flags['visibility-timeout'] ?? (await broker.getQueue(queue))?.settings.visibilityTimeoutMs ?? DEFAULT_QUEUE_SETTINGS.visibilityTimeoutMs

    let received = 0
    if (settings.exec !== undefined) {
      const summary = await runExecWorker(broker, receive, {
        ...settings.loop,
        command: settings.exec,
        parallel: settings.parallel,
        execTimeoutMs: settings.execTimeoutMs,
        visibilityTimeoutMs: lease,
        env: {...process.env, MQ_HOME: ctx.home},
        drain,
        force,
        onEvent: await execReporter(ctx),
      })
      received = summary.received
    } else {
      const printer = await DeliveryPrinter.create(ctx, settings.autoAck ? undefined : lease)
      const spinner = await ctx.spinner(`waiting for messages on ${queue}`)
      for await (const batch of deliveryBatches(receive, {...settings.loop, autoAck: settings.autoAck, signal: drain})) {
        spinner.stop()
        received += batch.length
        printer.print(batch)
        await ctx.out.flush()
      }
      spinner.stop()
    }
    if (drain.aborted && !ctx.out.isBroken) throw new InterruptedError()
    if (received === 0) {
      const waited = settings.loop.waitMs > 0 ? ` within ${formatDuration(settings.loop.waitMs)}` : ''
      throw new NothingArrivedError(`no message arrived on ${queue}${waited}`, {
        hint: settings.loop.waitMs > 0 ? 'wait longer, or follow with -f' : 'wait for one with --wait 30s, or follow with -f',
      })
    }
    return undefined
  },
})
