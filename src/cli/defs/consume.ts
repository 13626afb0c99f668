import {DEFAULT_QUEUE_SETTINGS} from '../../core/broker.js'
import type {ReceiveFn} from '../../core/consumer.js'
import {InvalidInputError, NotFoundError} from '../../core/errors.js'
import {validateName} from '../../core/names.js'
import type {Context} from '../context.js'
import {CONSUMER_FLAGS, consumerSettings, runConsumer, waitsOutLocks} from '../consumer.js'
import {defineCommand} from '../definition.js'
import {askName} from '../prompts.js'
import {closest} from '../suggest.js'
import {canTriage, triage, triageTarget, type TriageSummary} from '../triage.js'

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
    "<%= config.bin %> consume jobs -f --exec './handle.sh' --parallel 4 --prefetch 16",
    '<%= config.bin %> consume jobs -f --rate 50/s --json',
    '<%= config.bin %> consume jobs.dlq --interactive',
  ],
  args: [{name: 'queue', summary: 'Queue to consume from.'}],
  flags: {
    ...CONSUMER_FLAGS,
    interactive: {
      kind: 'boolean',
      summary:
        'Triage at a terminal: see each message, then a key acks, retries, dead-letters or skips it (in a dead-letter queue: sends it back).',
    },
  },
  fast: true,
  async run({args, flags}, ctx): Promise<TriageSummary | undefined> {
    const settings = consumerSettings(flags) // bad flags fail before the broker folder is touched
    if (flags.interactive) canTriage(ctx)
    const queue = validateName(
      args.queue ??
        (await askName(
          ctx,
          'queue',
          (await ctx.broker().listQueues()).map((q) => q.name),
          'give it as an argument: mq consume QUEUE',
        )),
      'queue name',
    )
    const broker = ctx.broker()
    // A follower or worker waits out outages from its first request on (a cluster still electing).
    if (!flags.interactive && waitsOutLocks(settings)) ctx.waitOutLocks()
    const existing = await broker.getQueue(queue)
    if (!existing) await missingQueue(ctx, queue, settings.loop.follow || settings.loop.waitMs > 0)
    const lease =
      flags['visibility-timeout'] ??
      existing?.settings.visibilityTimeoutMs ??
      DEFAULT_QUEUE_SETTINGS.visibilityTimeoutMs
    // Receipts printed for other processes are held where they can be settled (on amqp://, the daemon).
    const holder =
      !settings.autoAck && settings.exec === undefined && !flags.interactive ? await ctx.receiptHolder() : broker
    const receive: ReceiveFn = (options) => holder.receive(queue, options)
    if (flags.interactive) {
      if (settings.exec !== undefined || ctx.json)
        throw new InvalidInputError('--interactive cannot be combined with --exec or --json')
      const target = await triageTarget(broker, queue, existing?.settings.deadLetterQueue ?? null)
      const summary = await triage(ctx, receive, target, {
        leaseMs: lease,
        waitMs: settings.loop.waitMs,
        follow: settings.loop.follow,
      })
      return summary
    }
    await runConsumer(ctx, receive, settings, {label: queue, leaseMs: lease})
    return undefined
  },
  render: (s) =>
    `acked ${s.acked}, retried ${s.retried}, sent back ${s.sentBack}, dead-lettered ${s.deadLettered}, skipped ${s.skipped} (released)`,
})

/**
 * A queue that does not exist: a one-shot consume says so (exit 2), naming close names; a
 * follower or a long poll says so once on stderr and waits for it to be created (a consumer may
 * well start before its producer). A topic of that name is left to the broker (wrong_kind).
 */
async function missingQueue(ctx: Context, queue: string, waits: boolean): Promise<void> {
  const broker = ctx.broker()
  if ((await broker.listTopics()).some((t) => t.name === queue)) return
  const near = closest(
    queue,
    (await broker.listQueues()).map((q) => q.name),
  )
  const suggestion = near.length > 0 ? `did you mean ${near.join(', ')}?` : undefined
  if (waits) {
    ctx.warn(`queue ${queue} does not exist yet; waiting for it${suggestion ? ` (${suggestion})` : ''}`)
    return
  }
  throw new NotFoundError('queue', queue, {
    hint: suggestion ? `${suggestion} See \`mq queue list\`` : 'see `mq queue list`; wait for it with --wait 30s or -f',
  })
}
