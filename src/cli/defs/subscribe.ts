import type {StartPosition} from '../../core/broker.js'
import type {ReceiveFn} from '../../core/consumer.js'
import {isDaemonReceiptHolder} from '../../core/daemon/client.js'
import {InvalidInputError} from '../../core/errors.js'
import {parseTimeOrAgo} from '../../core/units.js'
import {CONSUMER_FLAGS, consumerSettings, runConsumer, waitsOutLocks} from '../consumer.js'
import {defineCommand} from '../definition.js'
import {askText} from '../prompts.js'

const flags = {
  ...CONSUMER_FLAGS,
  durable: {
    kind: 'string',
    summary: 'Name of a durable subscription: resumes where it left off, across runs and processes.',
    helpValue: 'NAME',
  },
  new: {kind: 'boolean', summary: 'Start with messages published from now on (the default).'},
  all: {kind: 'boolean', summary: 'Start with the oldest retained message.'},
  since: {
    kind: 'string',
    summary: 'Start with messages published since DUR ago or TIME (ISO-8601).',
    helpValue: 'DUR|TIME',
  },
  'from-id': {kind: 'string', summary: 'Start with the message of this id.', helpValue: 'ID'},
  'max-deliveries': {
    kind: 'integer',
    summary: 'New durable subscription: deliveries before dead-lettering (default 5).',
    min: 1,
  },
  'dead-letter-queue': {
    kind: 'string',
    summary: 'New subscription: where dead letters go (default NAME.dlq, or ephemeral.dlq).',
    helpValue: 'QUEUE',
  },
} as const

export default defineCommand({
  id: 'subscribe',
  summary: 'Receive copies of the messages published to topics matching a pattern.',
  description: `Every subscription gets its own copy of each message. In PATTERN, * matches one segment and
# matches zero or more (orders.*, logs.#). Ephemeral by default: starts at new messages and leaves
nothing behind. With --durable NAME the subscription keeps its place, acks, leases, redelivery and
dead letters like a queue, and processes using the same NAME share its messages.`,
  examples: [
    '<%= config.bin %> subscribe orders.created -f',
    "<%= config.bin %> subscribe 'orders.*' --durable billing -f --exec ./bill.sh",
    "<%= config.bin %> subscribe 'logs.#' --all --json -n 100",
    '<%= config.bin %> subscribe audit --durable audit --since 1h --ack manual --json',
  ],
  args: [{name: 'pattern', summary: 'Topic or pattern (* one segment, # any number).'}],
  flags,
  fast: true,
  async run({args, flags}, ctx): Promise<undefined> {
    const broker = ctx.broker()
    const pattern =
      args.pattern ?? (await askText(ctx, 'topic or pattern', 'give it as an argument: mq subscribe PATTERN'))
    const settings = consumerSettings(flags)
    const start = startPosition(flags)
    if (waitsOutLocks(settings)) ctx.waitOutLocks() // from the start: subscribing writes too
    // Receipts printed for other processes are held where they can be settled (on amqp://, the daemon).
    const holder = !settings.autoAck && settings.exec === undefined ? await ctx.receiptHolder() : undefined
    const viaDaemon = holder !== undefined && isDaemonReceiptHolder(holder) ? holder : undefined
    if (viaDaemon && flags.durable === undefined) {
      throw new InvalidInputError(
        `--ack manual needs a durable subscription on ${ctx.brokerName}: an ephemeral one lives in this process, so no other process could settle its receipts`,
        {
          code: 'unsupported',
          hint: 'add --durable NAME (the daemon then holds its leases), or use --exec',
        },
      )
    }
    const subscription = await broker.subscribe(pattern, {
      durable: flags.durable,
      start,
      settings: {maxDeliveries: flags['max-deliveries'], deadLetterQueue: flags['dead-letter-queue']},
    })
    ctx.release(() => subscription.close())
    if (
      subscription.resumed &&
      (start || flags['max-deliveries'] !== undefined || flags['dead-letter-queue'] !== undefined)
    ) {
      ctx.warn(
        `note: resuming durable subscription ${subscription.name} where it left off; start and settings flags apply only when it is created`,
      )
    }
    const receive: ReceiveFn = viaDaemon
      ? (options) => viaDaemon.receiveDurable({pattern: subscription.pattern, durable: subscription.name}, options)
      : subscription.receive.bind(subscription)
    await runConsumer(ctx, receive, settings, {
      label: pattern,
      leaseMs: settings.loop.visibilityTimeoutMs ?? subscription.settings.visibilityTimeoutMs,
      emptyHint:
        start || subscription.resumed
          ? undefined
          : 'a new subscription sees messages published from now on: use --all or --since to read retained ones, --wait or -f to wait',
    })
    return undefined
  },
})

function startPosition(flags: {
  new: boolean
  all: boolean
  since?: string
  'from-id'?: string
}): StartPosition | undefined {
  const chosen = [
    flags.new && '--new',
    flags.all && '--all',
    flags.since !== undefined && '--since',
    flags['from-id'] !== undefined && '--from-id',
  ].filter(Boolean)
  if (chosen.length > 1)
    throw new InvalidInputError(`${chosen.join(' and ')} cannot be combined`, {hint: 'choose one start position'})
  if (flags.all) return {kind: 'all'}
  if (flags.since !== undefined) return {kind: 'since', time: parseTimeOrAgo(flags.since, '--since')}
  if (flags['from-id'] !== undefined) return {kind: 'from-id', id: flags['from-id']}
  if (flags.new) return {kind: 'new'}
  return undefined
}
