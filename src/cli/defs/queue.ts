import type {PeekedMessage, QueueInfo, QueueSettings, QueueStats} from '../../core/broker.js'
import {InterruptedError, InvalidInputError} from '../../core/errors.js'
import {validateName} from '../../core/names.js'
import {formatDuration, formatSize} from '../../core/units.js'
import type {Context} from '../context.js'
import {defineCommand} from '../definition.js'
import {keyValues, listing, toJson} from '../output.js'
import {askName, askNewName, confirm} from '../prompts.js'
import {placementFromFlags, PRIORITIES_FLAG, REPLICAS_FLAG, TRANSIENT_FLAG} from '../placement.js'
import type {FlagSpecs, FlagValues} from '../spec.js'

/** Settings flags shared by `queue create` and `queue update`. */
const SETTINGS_FLAGS = {
  'visibility-timeout': {
    kind: 'duration',
    positive: true,
    summary: 'Lease length of a delivery (default 30s).',
    helpValue: 'DUR',
  },
  'max-deliveries': {kind: 'integer', summary: 'Deliveries before a message is dead-lettered (default 5).', min: 1},
  'dead-letter-queue': {
    kind: 'string',
    summary: 'Where dead letters go (default QUEUE.dlq; "none" keeps them).',
    helpValue: 'NAME',
  },
  'max-body-size': {
    kind: 'size',
    summary: 'Largest accepted message: body plus headers (default 1MiB).',
    helpValue: 'SIZE',
  },
  'retry-backoff': {
    kind: 'duration',
    summary: 'First retry delay after a failed --exec run; doubles each attempt (default 1s).',
    helpValue: 'DUR',
  },
  'retry-backoff-max': {kind: 'duration', summary: 'Longest retry delay (default 1m).', helpValue: 'DUR'},
  'max-length': {kind: 'integer', summary: 'Hold at most N messages (ready, delayed and in flight).', min: 1},
  'max-bytes': {kind: 'size', summary: 'Hold at most SIZE of messages (bodies plus headers).', helpValue: 'SIZE'},
  overflow: {
    kind: 'string',
    summary: 'When full: reject (exit 4), drop-oldest (from the head), or block the publisher.',
    options: ['reject', 'drop-oldest', 'block'],
  },
  'default-ttl': {
    kind: 'duration',
    positive: true,
    summary: 'Messages expire DUR after publishing unless they set --ttl.',
    helpValue: 'DUR',
  },
  'dead-letter-expired': {
    kind: 'boolean',
    summary: 'Send expired messages to the dead-letter queue (reason expired) instead of discarding them.',
  },
  'discard-expired': {
    kind: 'boolean',
    summary: 'Discard expired messages (the default; undoes --dead-letter-expired).',
  },
  'dedup-window': {
    kind: 'duration',
    summary: 'How long a publish --dedup-id is remembered (default 5m).',
    helpValue: 'DUR',
  },
  unbounded: {kind: 'boolean', summary: 'With update: remove --max-length, --max-bytes and --default-ttl.'},
} as const satisfies FlagSpecs

function settingsFromFlags(flags: FlagValues<typeof SETTINGS_FLAGS>): Partial<QueueSettings> {
  const dlq = flags['dead-letter-queue']
  if (
    flags.unbounded &&
    (flags['max-length'] !== undefined || flags['max-bytes'] !== undefined || flags['default-ttl'] !== undefined)
  ) {
    throw new InvalidInputError(
      '--unbounded removes the limits: it cannot be combined with --max-length, --max-bytes or --default-ttl',
    )
  }
  if (flags['dead-letter-expired'] && flags['discard-expired'])
    throw new InvalidInputError('--dead-letter-expired and --discard-expired cannot be combined')
  return {
    visibilityTimeoutMs: flags['visibility-timeout'],
    maxDeliveries: flags['max-deliveries'],
    deadLetterQueue:
      dlq === undefined ? undefined : dlq === 'none' ? null : validateName(dlq, 'dead-letter queue name'),
    maxBodyBytes: flags['max-body-size'],
    retryBackoffMs: flags['retry-backoff'],
    retryBackoffMaxMs: flags['retry-backoff-max'],
    maxLength: flags.unbounded ? null : flags['max-length'],
    maxBytes: flags.unbounded ? null : flags['max-bytes'],
    overflow: flags.overflow as QueueSettings['overflow'] | undefined,
    defaultTtlMs: flags.unbounded ? null : flags['default-ttl'],
    deadLetterExpired: flags['dead-letter-expired'] ? true : flags['discard-expired'] ? false : undefined,
    dedupWindowMs: flags['dedup-window'],
  }
}

const queueArg = [{name: 'queue', summary: 'Queue name.'}]

async function queueName(ctx: Context, given: string | undefined, command: string): Promise<string> {
  if (given !== undefined) return validateName(given, 'queue name')
  if (command === 'create')
    return askNewName(ctx, 'queue name', 'give it as an argument: mq queue create QUEUE', (name) =>
      validateName(name, 'queue name'),
    )
  const names = (await ctx.broker().listQueues()).map((q) => q.name)
  return askName(ctx, 'queue', names, `give it as an argument: mq queue ${command} QUEUE`)
}

function describeSettings(s: QueueSettings): string {
  const parts = [
    `visibility timeout ${formatDuration(s.visibilityTimeoutMs)}`,
    `max deliveries ${s.maxDeliveries}`,
    `dead letters → ${s.deadLetterQueue ?? 'kept in place'}`,
    `max body ${formatSize(s.maxBodyBytes)}`,
  ]
  if (s.maxLength !== null || s.maxBytes !== null) {
    const limits = [
      s.maxLength !== null && `${s.maxLength} messages`,
      s.maxBytes !== null && formatSize(s.maxBytes),
    ].filter(Boolean)
    parts.push(`holds ${limits.join(' / ')}, overflow ${s.overflow}`)
  }
  if (s.defaultTtlMs !== null)
    parts.push(`TTL ${formatDuration(s.defaultTtlMs)}${s.deadLetterExpired ? ' (expired → dead letters)' : ''}`)
  return parts.join(', ')
}

export const queueList = defineCommand({
  id: 'queue:list',
  summary: 'List queues with their depth.',
  examples: [
    '<%= config.bin %> queue list',
    '<%= config.bin %> queue list | cut -f1',
    '<%= config.bin %> queue list --json | jq -r .name',
  ],
  flags: {},
  jsonLines: true,
  run: (_input, ctx): Promise<QueueInfo[]> => ctx.broker().listQueues(),
  render: (queues, ctx) =>
    listing(
      ctx,
      ['QUEUE', 'MESSAGES', 'SIZE', 'VISIBILITY', 'MAX-DELIVERIES', 'DEAD-LETTERS'],
      queues.map((q) => [
        q.name,
        q.depth,
        formatSize(q.bytes),
        formatDuration(q.settings.visibilityTimeoutMs),
        q.settings.maxDeliveries,
        q.settings.deadLetterQueue ?? '-',
      ]),
      'no queues yet: `mq publish NAME BODY` creates one',
    ),
})

export const queueCreate = defineCommand({
  id: 'queue:create',
  summary: 'Declare a queue (idempotent: an existing queue with the same settings is fine).',
  examples: [
    '<%= config.bin %> queue create hello',
    '<%= config.bin %> queue create jobs --visibility-timeout 5m --max-deliveries 3 --dead-letter-queue jobs.failed',
    '<%= config.bin %> queue create hello --transient --broker amqp://guest:guest@localhost:5672/',
  ],
  args: queueArg,
  flags: {...SETTINGS_FLAGS, ...REPLICAS_FLAG, ...TRANSIENT_FLAG, ...PRIORITIES_FLAG},
  async run({args, flags}, ctx): Promise<QueueInfo> {
    const {replicas, transient, priorities, ...settings} = flags
    const placement = await placementFromFlags(ctx, replicas, transient, priorities)
    return ctx.broker().declareQueue(await queueName(ctx, args.queue, 'create'), settingsFromFlags(settings), placement)
  },
  render: (queue, ctx) => (ctx.stdoutIsTTY ? `queue ${queue.name}: ${describeSettings(queue.settings)}` : undefined),
})

export const queueUpdate = defineCommand({
  id: 'queue:update',
  summary: 'Change the settings of a queue.',
  examples: ['<%= config.bin %> queue update jobs --visibility-timeout 2m'],
  args: queueArg,
  flags: SETTINGS_FLAGS,
  async run({args, flags}, ctx): Promise<QueueInfo> {
    return ctx.broker().updateQueue(await queueName(ctx, args.queue, 'update'), settingsFromFlags(flags))
  },
  render: (queue, ctx) => (ctx.stdoutIsTTY ? `queue ${queue.name}: ${describeSettings(queue.settings)}` : undefined),
})

export const queueDelete = defineCommand({
  id: 'queue:delete',
  summary: 'Delete a queue and every message in it.',
  examples: ['<%= config.bin %> queue delete scratch --yes'],
  args: queueArg,
  flags: {yes: {kind: 'boolean', char: 'y', summary: 'Do not ask for confirmation.'}},
  async run({args, flags}, ctx): Promise<{queue: string; deleted: number}> {
    const queue = await queueName(ctx, args.queue, 'delete')
    await confirm(ctx, flags.yes, `Delete queue ${queue} and its messages?`)
    return {queue, ...(await ctx.broker().deleteQueue(queue))}
  },
  render: (r, ctx) => (ctx.stdoutIsTTY ? `deleted queue ${r.queue} (${r.deleted} messages)` : undefined),
})

export const queuePurge = defineCommand({
  id: 'queue:purge',
  summary: 'Remove every message from a queue, in flight or not.',
  examples: ['<%= config.bin %> queue purge jobs --yes'],
  args: queueArg,
  flags: {yes: {kind: 'boolean', char: 'y', summary: 'Do not ask for confirmation.'}},
  async run({args, flags}, ctx): Promise<{queue: string; purged: number}> {
    const queue = await queueName(ctx, args.queue, 'purge')
    await confirm(ctx, flags.yes, `Remove every message from ${queue}?`)
    const progress = ctx.progress(`purging ${queue}`)
    const signal = ctx.handleInterrupts().drain
    const result = await ctx.broker().purgeQueue(queue, {onProgress: (p) => progress.update(p.done, p.total), signal})
    progress.stop()
    if (signal.aborted) {
      ctx.warn(`interrupted: purged ${result.purged} messages from ${queue}; the others stay`)
      throw new InterruptedError()
    }
    return {queue, ...result}
  },
  render: (r, ctx) => (ctx.stdoutIsTTY ? `purged ${r.purged} messages from ${r.queue}` : undefined),
})

export const queueStats = defineCommand({
  id: 'queue:stats',
  summary: 'Show ready, in-flight, delayed and dead-lettered counts and the oldest age.',
  examples: ['<%= config.bin %> queue stats jobs', '<%= config.bin %> queue stats jobs --json | jq .ready'],
  args: queueArg,
  flags: {},
  async run({args}, ctx): Promise<QueueStats> {
    return ctx.broker().queueStats(await queueName(ctx, args.queue, 'stats'))
  },
  render(stats) {
    const rows: [string, string | number][] = [
      ['ready', stats.ready],
      ['in flight', stats.inFlight],
      ['delayed', stats.delayed],
      [
        `dead-lettered${stats.settings.deadLetterQueue ? ` (${stats.settings.deadLetterQueue})` : ''}`,
        stats.deadLettered,
      ],
      ['oldest', stats.oldestAgeMs === null ? '-' : formatDuration(stats.oldestAgeMs)],
      ['size', formatSize(stats.bytes)],
      [
        'published',
        `${stats.totals.published} (${stats.rates.publishedPerSecond.last1m}/s last minute, ${stats.rates.publishedPerSecond.last5m}/s last 5)`,
      ],
      [
        'acked',
        `${stats.totals.acked} (${stats.rates.ackedPerSecond.last1m}/s last minute, ${stats.rates.ackedPerSecond.last5m}/s last 5)`,
      ],
      ['dead-lettered (total)', stats.totals.deadLettered],
      ['expired (total)', stats.totals.expired],
      ['dropped by overflow', stats.totals.dropped],
      ['deduplicated', stats.totals.deduplicated],
    ]
    if (stats.queueType !== undefined) rows.unshift(['type', stats.queueType])
    return keyValues(`queue ${stats.name}`, rows)
  },
})

export const queuePeek = defineCommand({
  id: 'queue:peek',
  summary: 'Show messages without delivering them (no lease, no attempt counted).',
  examples: ['<%= config.bin %> queue peek jobs -n 5', '<%= config.bin %> queue peek jobs --json'],
  args: queueArg,
  flags: {limit: {kind: 'integer', char: 'n', summary: 'Messages to show.', default: 10, min: 1, max: 10_000}},
  async run({args, flags}, ctx): Promise<undefined> {
    const queue = await queueName(ctx, args.queue, 'peek')
    printPeeked(ctx, queue, await ctx.broker().peek(queue, flags.limit))
    return undefined
  },
})

/** Peeked messages: JSON lines, bare bodies in a pipe, or a line each with headers for a person. */
export function printPeeked(ctx: Context, queue: string, messages: PeekedMessage[]): void {
  for (const m of messages) ctx.out.line(ctx.json ? toJson(peeked(queue, m)) : ctx.stdoutIsTTY ? human(m) : m.body)
}

function peeked(queue: string, m: PeekedMessage): Record<string, unknown> {
  return {
    id: m.id,
    queue,
    body: m.body,
    headers: m.headers,
    state: m.state,
    deliveries: m.attempts,
    priority: m.priority,
    publishedAt: m.publishedAt,
  }
}

function human(m: PeekedMessage): string {
  const headers = Object.entries(m.headers)
    .map(([k, v]) => `\n  ${k}: ${v}`)
    .join('')
  return `#${m.id} [${m.state}, ${m.attempts} deliveries] ${m.body}${headers}`
}
