import type {OutgoingMessage, PublishResult, QueueSettings, TopicSettings} from '../broker.js'
import {InvalidInputError, QueueFullError} from '../errors.js'
import {formatSize} from '../units.js'
import type {DestinationRow, Destinations} from './destinations.js'
import {idText} from './message-ids.js'
import type {QueueStore} from './queue-store.js'
import type {TopicStore} from './topic-store.js'
import type {Waiters} from './waiters.js'
import {LIMIT, type Sql} from './sql.js'

/** What one publish step did: results so far, and messages still waiting for room (block policy). */
export interface PublishStep {
  results: PublishResult[]
  rest: OutgoingMessage[]
  /** Why `rest` did not fit, for the error if the wait runs out. */
  full?: string
}

/**
 * One publish transaction: dedup ids, the queue's length and size limits under its overflow
 * policy, then the inserts. The caller loops on `rest` to block until consumers make room.
 */
export class Publisher {
  constructor(
    private readonly sql: Sql,
    private readonly destinations: Destinations,
    private readonly queues: QueueStore,
    private readonly topics: TopicStore,
    private readonly waiters: Waiters,
  ) {}

  /** `sizes`: each message's size (messageSize), as checkBodySizes measured it. */
  step(
    destination: DestinationRow<QueueSettings | TopicSettings>,
    messages: OutgoingMessage[],
    now: number,
    sizes: number[],
  ): PublishStep {
    const kind = destination.kind === 'topic' ? ('topic' as const) : ('queue' as const)
    const window = destination.settings.dedupWindowMs
    const results = new Array<PublishResult | undefined>(messages.length)
    // The messages to store, their sizes and places in `messages`: sized for all, cut to `stored`.
    const fresh = new Array<OutgoingMessage>(messages.length)
    const freshSizes = new Array<number>(messages.length)
    const freshSlots = new Array<number>(messages.length)
    let stored = 0
    /** Dedup id → index of the message of this batch that will be stored for it. */
    const firstInBatch = new Map<string, number>()
    const repeatsInBatch: [index: number, first: number][] = []
    let duplicates = 0
    let rest: OutgoingMessage[] = []
    let full: string | undefined
    const room = kind === 'queue' ? roomIn(destination as DestinationRow) : undefined

    for (let index = 0; index < messages.length; index++) {
      const message = messages[index]
      const size = sizes[index]
      if (message.dedupId !== undefined) {
        const first = firstInBatch.get(message.dedupId)
        if (first !== undefined) {
          repeatsInBatch.push([index, first])
          duplicates++
          continue
        }
        const original = this.dedupLookup(destination.id, message.dedupId, now)
        if (original !== undefined) {
          results[index] = {id: idText(original), destination: destination.name, kind, duplicate: true}
          duplicates++
          continue
        }
      }
      if (room) {
        if (room.count < 1 || room.bytes < size) {
          const policy = (destination.settings as QueueSettings).overflow
          full = describeFull(destination as DestinationRow)
          if (policy === 'reject') throw queueFull(destination as DestinationRow, full)
          if (policy === 'block') {
            if (size > ((destination.settings as QueueSettings).maxBytes ?? Number.POSITIVE_INFINITY)) {
              throw new InvalidInputError(
                `a ${size}-byte message can never fit in ${destination.name} (max bytes ${(destination.settings as QueueSettings).maxBytes})`,
                {
                  hint: 'raise --max-bytes with `mq queue update`',
                },
              )
            }
            rest = messages.slice(index)
            break
          }
          // drop-oldest: accept now, discard from the head below.
        }
        room.count--
        room.bytes -= size
      }
      freshSlots[stored] = index
      fresh[stored] = message
      freshSizes[stored] = size
      stored++
      if (message.dedupId !== undefined) firstInBatch.set(message.dedupId, index)
    }
    fresh.length = freshSizes.length = freshSlots.length = stored

    const ids =
      fresh.length === 0
        ? []
        : kind === 'topic'
          ? this.topics.insert(destination as DestinationRow<TopicSettings>, fresh, now, freshSizes)
          : this.storeInQueue(destination as DestinationRow, fresh, now, freshSizes)
    for (let i = 0; i < fresh.length; i++) {
      results[freshSlots[i]] = {id: idText(ids[i]), destination: destination.name, kind}
      const dedupId = fresh[i].dedupId
      if (dedupId !== undefined) this.dedupRemember(destination.id, dedupId, ids[i], now + window)
    }
    for (const [index, first] of repeatsInBatch) results[index] = {...results[first]!, duplicate: true}
    this.destinations.bump(destination.id, 'deduplicated_total', duplicates)
    if (kind === 'queue' && (destination.settings as QueueSettings).overflow === 'drop-oldest')
      this.dropFromHead(destination.id)
    const done = rest.length === 0 ? results : results.slice(0, messages.length - rest.length)
    return {results: done as PublishResult[], rest, full}
  }

  /**
   * Hands the messages to a waiting consumer, or stores them and hands the head of the queue to
   * the consumers waiting (ARCHITECTURE.md, "Hand-off to waiting consumers").
   */
  private storeInQueue(queue: DestinationRow, messages: OutgoingMessage[], now: number, sizes: number[]): number[] {
    const handed = this.waiters.accept(queue, messages, now, sizes)
    if (handed) return handed
    const ids = this.queues.insert(queue, messages, now, sizes)
    this.waiters.handOff(queue, now)
    return ids
  }

  /** Discards ready messages from the head of the queue until it is within its limits. */
  private dropFromHead(queueId: number): void {
    const queue = this.destinations.getById(queueId)!
    const {maxLength, maxBytes} = queue.settings
    let excessCount = maxLength === null ? 0 : queue.depth - maxLength
    let excessBytes = maxBytes === null ? 0 : queue.bytes - maxBytes
    if (excessCount <= 0 && excessBytes <= 0) return
    const head = this.sql.q(
      `SELECT id, size FROM messages WHERE dest_id = ? AND state = 0 ORDER BY priority DESC, id ${LIMIT}`,
    )
    const remove = this.sql.q('DELETE FROM messages WHERE id = ?')
    let dropped = 0
    while (excessCount > 0 || excessBytes > 0) {
      const rows = head.all(queueId, Math.max(excessCount, 100)) as {id: number; size: number}[]
      if (rows.length === 0) {
        // Everything left is in flight or delayed: nothing may be dropped, so the publish fails.
        throw queueFull(queue, `${describeFull(queue)}, and nothing ready is left to drop`)
      }
      for (const row of rows) {
        if (excessCount <= 0 && excessBytes <= 0) break
        remove.run(row.id)
        excessCount--
        excessBytes -= row.size
        dropped++
      }
    }
    this.destinations.bump(queueId, 'dropped_total', dropped)
  }

  private dedupLookup(destId: number, dedupId: string, now: number): number | undefined {
    const row = this.sql
      .q('SELECT message_id, expires_at FROM dedup WHERE dest_id = ? AND dedup_id = ?')
      .get(destId, dedupId) as {message_id: number; expires_at: number} | undefined
    return row && row.expires_at > now ? row.message_id : undefined
  }

  private dedupRemember(destId: number, dedupId: string, messageId: number, expiresAt: number): void {
    this.sql
      .q(
        'INSERT INTO dedup (dest_id, dedup_id, message_id, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET message_id = excluded.message_id, expires_at = excluded.expires_at',
      )
      .run(destId, dedupId, messageId, expiresAt)
    // Forget a few expired ids each time, so the table stays the size of the window.
    this.sql
      .q(
        'DELETE FROM dedup WHERE (dest_id, dedup_id) IN (SELECT dest_id, dedup_id FROM dedup WHERE expires_at <= ? LIMIT 64)',
      )
      .run(Date.now())
  }
}

function roomIn(queue: DestinationRow): {count: number; bytes: number} | undefined {
  const {maxLength, maxBytes} = queue.settings
  if (maxLength === null && maxBytes === null) return undefined
  return {
    count: maxLength === null ? Number.POSITIVE_INFINITY : maxLength - queue.depth,
    bytes: maxBytes === null ? Number.POSITIVE_INFINITY : maxBytes - queue.bytes,
  }
}

function describeFull(queue: DestinationRow): string {
  const {maxLength, maxBytes} = queue.settings
  const parts: string[] = []
  if (maxLength !== null) parts.push(`${queue.depth} of ${maxLength} messages`)
  if (maxBytes !== null) parts.push(`${formatSize(queue.bytes)} of ${formatSize(maxBytes)}`)
  return `queue ${queue.name} is full (${parts.join(', ')})`
}

function queueFull(queue: DestinationRow, description: string): QueueFullError {
  return new QueueFullError(description, {
    hint: `let consumers catch up, raise the limit with \`mq queue update ${queue.name} --max-length N\`, or choose --overflow block or drop-oldest`,
  })
}
