import type {DeadLetterQueueInfo, Headers, QueueSettings, RedriveOptions, RedriveResult} from '../broker.js'
import {DeletedMeanwhileError, InvalidInputError, NotFoundError} from '../errors.js'
import {messageSize} from '../headers.js'
import {validateName} from '../names.js'
import {RateLimiter} from '../rate-limiter.js'
import type {DestinationRow, Destinations} from './destinations.js'
import {idText} from './message-ids.js'
import {decodeHeaders, type QueueStore} from './queue-store.js'
import type {Sql} from './sql.js'
import {subscriptionName, type SubscriptionStore} from './subscription-store.js'

/** Dead letters moved per transaction: each batch is atomic, and progress is reported after each. */
const REDRIVE_BATCH = 200

/** Dead-letter queues: which exist and what feeds them, and redriving their messages back. */
export class DeadLetters {
  constructor(
    private readonly sql: Sql,
    private readonly destinations: Destinations,
    private readonly queues: QueueStore,
    private readonly subscriptions: SubscriptionStore,
  ) {}

  async list(): Promise<DeadLetterQueueInfo[]> {
    return this.sql.read(() => {
      const sources = new Map<string, string[]>()
      const owners = [
        ...this.destinations.list<QueueSettings>('queue').map((q) => ({name: q.name, dlq: q.settings.deadLetterQueue})),
        ...this.destinations
          .list<QueueSettings>('subscription')
          .map((d) => ({name: subscriptionName(d.name), dlq: d.settings.deadLetterQueue})),
      ]
      for (const owner of owners) if (owner.dlq) sources.set(owner.dlq, [...(sources.get(owner.dlq) ?? []), owner.name])
      const now = Date.now()
      return [...sources.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([name, from]) => {
          const row = this.destinations.get(name)
          const oldest = row ? this.queues.counts(row.id, now).oldestPublishedAt : null
          return {name, messages: row?.depth ?? 0, oldestAgeMs: oldest === null ? null : now - oldest, sources: from}
        })
    })
  }

  async queueOf(name: string): Promise<string> {
    return this.sql.read(() => this.target(name).deadLetterQueue)
  }

  /** The queue or durable subscription `name` and its dead-letter queue. */
  private target(name: string): {owner: DestinationRow; deadLetterQueue: string} {
    validateName(name, 'queue or subscription name')
    const queue = this.destinations.get(name)
    const subscription = this.subscriptions.get(name)
    const owner =
      queue?.kind === 'queue' ? queue : subscription ? this.destinations.getById(subscription.destId) : undefined
    if (!owner) throw new NotFoundError('queue or subscription', name, {hint: 'see `mq dlq list`'})
    const dlq = owner.settings.deadLetterQueue
    if (!dlq) throw new InvalidInputError(`${name} has no dead-letter queue`, {hint: 'its dead letters stay in place'})
    return {owner, deadLetterQueue: dlq}
  }

  async redrive(name: string, options: RedriveOptions = {}): Promise<RedriveResult> {
    const {owner, deadLetterQueue, total} = this.sql.read(() => {
      const found = this.target(name)
      const held = this.destinations.get(found.deadLetterQueue)?.depth ?? 0
      return {...found, total: options.filter || options.limit === undefined ? held : Math.min(held, options.limit)}
    })
    const result: RedriveResult = {
      deadLetterQueue,
      target: name,
      examined: 0,
      moved: 0,
      dryRun: options.dryRun ?? false,
      ids: [],
    }
    const limit = options.limit ?? Number.POSITIVE_INFINITY
    const limiter = options.ratePerSecond === undefined ? undefined : new RateLimiter(options.ratePerSecond)
    const page = this.sql.q(
      `SELECT id, body, headers, priority FROM messages WHERE dest_id = ? AND state = 0 AND priority = ? AND id > ? ORDER BY id LIMIT ${REDRIVE_BATCH}`,
    )
    // Walk the dead-letter queue in delivery order, one priority level at a time, by id.
    for (let priority = 9; priority >= 0 && result.moved < limit; priority--) {
      let after = 0
      for (;;) {
        if (options.signal?.aborted || result.moved >= limit) return result
        const budget = limiter
          ? await limiter.take(Math.min(REDRIVE_BATCH, limit - result.moved), options.signal)
          : Math.min(REDRIVE_BATCH, limit - result.moved)
        if (budget === 0) return result
        const moved = this.sql.write(() => {
          const dlq = this.destinations.get(deadLetterQueue)
          if (!dlq) return {rows: 0, moved: 0, last: after}
          const rows = page.all(dlq.id, priority, after) as {
            id: number
            body: string
            headers: string | null
            priority: number
          }[]
          let count = 0
          let last = after
          for (const row of rows) {
            if (count >= budget) break
            const headers = decodeHeaders(row.headers)
            const matches = !options.filter || options.filter({body: row.body, headers})
            // Another process may have deleted the owner since the last batch (`queue delete`).
            const current = this.destinations.getById(owner.id)
            if (!current) throw ownerDeleted(name, owner, deadLetterQueue, result)
            if (matches && !result.dryRun && owner.kind === 'queue' && !hasRoom(current, {body: row.body, headers})) {
              result.stoppedFull = true // back-pressure applies to redrives too
              break
            }
            last = row.id
            result.examined++
            if (!matches) continue
            result.ids.push(idText(row.id))
            count++
            if (result.dryRun) continue
            headers['x-redrive-count'] = String(Number(headers['x-redrive-count'] ?? 0) + 1)
            this.queues.requeue(owner, row.id, {body: row.body, headers, priority: row.priority}, Date.now())
          }
          return {rows: rows.length, moved: count, last}
        })
        result.moved += moved.moved
        limiter?.giveBack(budget - moved.moved)
        options.onProgress?.({done: result.examined, total: Math.max(total, result.examined), moved: result.moved})
        // Let timers and signals run between batches (progress on screen, Ctrl-C).
        await new Promise((resolve) => setImmediate(resolve))
        if (result.stoppedFull) return result
        if (moved.rows === 0 || moved.last === after) break
        after = moved.last
      }
    }
    return result
  }
}

function ownerDeleted(
  name: string,
  owner: DestinationRow,
  deadLetterQueue: string,
  result: RedriveResult,
): DeletedMeanwhileError {
  const what = owner.kind === 'queue' ? 'queue' : 'subscription'
  const before =
    result.moved === 0 || result.dryRun
      ? 'nothing had been moved'
      : `the ${result.moved} message${result.moved === 1 ? '' : 's'} moved back before went with it`
  return new DeletedMeanwhileError(
    `${what} ${name} was deleted while its dead letters were being redriven (${before})`,
    {
      hint: `the other dead letters stay in ${deadLetterQueue}; recreate ${name} and redrive again if you still want them`,
    },
  )
}

/** Whether a queue can take one more such message under its length and size limits. */
function hasRoom(queue: DestinationRow, message: {body: string; headers: Headers}): boolean {
  const {maxLength, maxBytes} = queue.settings
  return (
    (maxLength === null || queue.depth < maxLength) &&
    (maxBytes === null || queue.bytes + messageSize(message) <= maxBytes)
  )
}
