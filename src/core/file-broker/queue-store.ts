import {backoffDelayMs} from '../backoff.js'
import type {Headers, NackOutcome, OutgoingMessage, PeekedMessage} from '../broker.js'
import {encodeHeaders, messageSize} from '../headers.js'
import type {DestinationRow, Destinations} from './destinations.js'
import {ID_NOT_AFTER, idText, reserveAppended, reserveIds, reserveIdsFor} from './message-ids.js'
import {formatReceipt, newLeaseToken} from './receipts.js'
import {subscriptionName} from './subscription-store.js'
import {LIMIT, type Sql} from './sql.js'

/** Message states in the `messages` table. */
export const READY = 0
export const WAITING = 1
export const LOGGED = 2

export type DeadLetterReason = 'max-deliveries' | 'rejected' | 'expired'

/** A row handed out by `take`: for a subscription it is a pointer (`ref_id`) to the topic's log row. */
export interface TakenRow {
  id: number
  body: string
  headers: string | null
  attempts: number
  published_at: number
  priority: number
  expires_at: number | null
  ref_id: number | null
  /** Set when the row was leased (not auto-acked). */
  receipt?: string
}

/** A taken row as RETURNING lists its columns: id, body, headers, attempts, published_at, priority, expires_at, ref_id. */
export type TakenTuple = [number, string, string | null, number, number, number, number | null, number | null]

export function takenRow(row: TakenTuple, receipt?: string): TakenRow {
  return {
    id: row[0],
    body: row[1],
    headers: row[2],
    attempts: row[3],
    published_at: row[4],
    priority: row[5],
    expires_at: row[6],
    ref_id: row[7],
    receipt,
  }
}

interface LeasedRow {
  id: number
  dest_id: number
  attempts: number
  headers: string | null
  last_error: string | null
  expires_at: number | null
  ref_id: number | null
}

const LEASED_COLUMNS = 'id, dest_id, attempts, headers, last_error, expires_at, ref_id'
/** The columns a publish writes (besides the id), in the order of `insert`'s rows. */
export const MESSAGE_COLUMNS = [
  'dest_id',
  'state',
  'priority',
  'visible_at',
  'published_at',
  'expires_at',
  'size',
  'body',
  'headers',
] as const

/** A row of MESSAGE_COLUMNS with every value bound. */
export const ALL_VALUES = `(${MESSAGE_COLUMNS.map(() => '?').join(', ')})`

/** Thrown to undo `ackAll`'s savepoint when not every receipt was current. */
const NOT_ALL = new Error('not every receipt is current')

/** Upper bound of rows one receive transaction moves, to keep write locks short. */
const MAX_BATCH = 1000

/** Queue messages: FIFO among ready rows (higher priority first), leases, redelivery, dead letters. */
export class QueueStore {
  constructor(
    private readonly sql: Sql,
    private readonly destinations: Destinations,
  ) {}

  /**
   * Inserts validated messages; call inside a write transaction. Returns the new ids, each in its
   * priority's band (message-ids.ts). `sizes`: each message's size (messageSize), as the caller
   * measured it for the limits.
   */
  insert(queue: DestinationRow, messages: OutgoingMessage[], now: number, sizes: number[]): number[] {
    const defaultTtl = queue.settings.defaultTtlMs
    // The common batch (lines of a file): ready now, no priority, TTL or headers. Its rows bind
    // only what differs (and their ids), as the bare-SQLite floor does (bench/floor-storage.js).
    const plain =
      defaultTtl == null &&
      messages.every(
        (m) => m.deliverAt === undefined && m.ttlMs === undefined && !m.priority && encodeHeaders(m.headers) === null,
      )
    let ids: number[]
    if (plain) {
      const reserved = reserveAppended(this.sql, messages.length)
      ids = reserved.ids
      this.sql.insertMessages(
        MESSAGE_COLUMNS,
        `(?, ${READY}, 0, ?, ?, NULL, ?, ?, NULL)`,
        ids,
        (index, values) => values.push(queue.id, now, now, sizes[index], messages[index].body),
        reserved.assigned,
      )
    } else {
      ids = reserveIdsFor(
        this.sql,
        messages.map((m) => m.priority ?? 0),
      )
      // Rows go in in id order, one priority band after the other: each band's rows are then
      // appended where that band ends, page after page, instead of alternating between bands.
      const order = messages.map((_, index) => index).sort((a, b) => ids[a] - ids[b])
      const sorted = order.map((index) => ids[index])
      this.sql.insertMessages(MESSAGE_COLUMNS, ALL_VALUES, sorted, (position, values) => {
        const index = order[position]
        const message = messages[index]
        const delayed = message.deliverAt !== undefined && message.deliverAt > now
        const ttl = message.ttlMs ?? defaultTtl
        values.push(
          queue.id,
          delayed ? WAITING : READY,
          message.priority ?? 0,
          delayed ? message.deliverAt : now,
          now,
          ttl == null ? null : now + ttl,
          sizes[index],
          message.body,
          encodeHeaders(message.headers),
        )
      })
    }
    this.destinations.bump(queue.id, 'published_total', ids.length)
    return ids
  }

  /** A cheap read, outside the write lock: could a receive deliver anything now? */
  hasDeliverable(queueId: number, now: number): boolean {
    const ready = this.sql.q('SELECT 1 FROM messages WHERE dest_id = ? AND state = 0 LIMIT 1').get(queueId)
    return ready !== undefined || this.nextDueAt(queueId) <= now
  }

  /** When the next delayed or leased message becomes ready (Infinity when none). */
  nextDueAt(queueId: number): number {
    const row = this.sql
      .q('SELECT visible_at FROM messages WHERE dest_id = ? AND state = 1 ORDER BY visible_at LIMIT 1')
      .get(queueId) as {visible_at: number} | undefined
    return row?.visible_at ?? Number.POSITIVE_INFINITY
  }

  /**
   * Takes up to `max` messages in the current write transaction: first makes due messages ready
   * (or dead-letters those out of deliveries, or expired), then leases or deletes the head.
   */
  take(queue: DestinationRow, max: number, autoAck: boolean, visibilityTimeoutMs: number, now: number): TakenRow[] {
    this.promoteDue(queue, now)
    this.expire(queue, now)
    const limit = Math.min(max, MAX_BATCH)
    // Rows come back as arrays (raw) and become objects of one shape here: several times cheaper
    // than better-sqlite3 building an object a property at a time for each row of a big batch.
    if (autoAck) {
      const taken = this.sql
        .q(
          `DELETE FROM messages WHERE id IN (
             SELECT id FROM messages WHERE dest_id = ? AND state = 0 ORDER BY priority DESC, id ${LIMIT})
           RETURNING id, body, headers, attempts + 1, published_at, priority, expires_at, ref_id`,
        )
        .raw(true)
        .all(queue.id, limit) as TakenTuple[]
      const rows = taken.map((row) => takenRow(row))
      this.destinations.bump(queue.id, 'acked_total', rows.length)
      // RETURNING order is unspecified: restore delivery order.
      return rows.sort((a, b) => b.priority - a.priority || a.id - b.id)
    }
    // The head is read in delivery order, then leased by an UPDATE that picks the same rows again
    // (same subquery and limit, same transaction) and returns nothing: a RETURNING buffers every
    // changed row before handing out the first, which costs more than walking the head of the
    // ready index twice.
    const token = newLeaseToken()
    const taken = this.sql
      .q(
        `SELECT id, body, headers, attempts + 1, published_at, priority, expires_at, ref_id
         FROM messages WHERE dest_id = ? AND state = 0 ORDER BY priority DESC, id ${LIMIT}`,
      )
      .raw(true)
      .all(queue.id, limit) as TakenTuple[]
    if (taken.length === 0) return []
    const leased = this.sql
      .q(
        `UPDATE messages SET state = 1, visible_at = ?, attempts = attempts + 1, lease_token = ?
         WHERE id IN (SELECT id FROM messages WHERE dest_id = ? AND state = 0 ORDER BY priority DESC, id ${LIMIT})`,
      )
      .run(now + visibilityTimeoutMs, token, queue.id, taken.length).changes
    if (leased !== taken.length) throw new Error(`leased ${leased} messages where ${taken.length} were read`)
    return taken.map((row) => takenRow(row, formatReceipt(row[0], token)))
  }

  /** Adds leased pointer rows for log messages a subscription claims; returns their receipts. */
  insertLeased(
    owner: DestinationRow,
    refs: {id: number; published_at: number}[],
    visibilityTimeoutMs: number,
    now: number,
  ): string[] {
    const token = newLeaseToken()
    const insert = this.sql.q(
      `INSERT INTO messages (id, dest_id, state, visible_at, published_at, attempts, lease_token, size, body, ref_id)
       VALUES (?, ?, 1, ?, ?, 1, ?, 0, '', ?)`,
    )
    const first = reserveIds(this.sql, 0, refs.length)
    return refs.map((ref, index) => {
      const id = first + index
      insert.run(id, owner.id, now + visibilityTimeoutMs, ref.published_at, token, ref.id)
      return formatReceipt(id, token)
    })
  }

  /** Moves a message to the back of `owner` as a new message (redrive): new id, ready now. */
  requeue(
    owner: DestinationRow,
    id: number,
    message: {body: string; headers: Headers; priority: number},
    now: number,
  ): number {
    this.sql.q('DELETE FROM messages WHERE id = ?').run(id)
    const newId = reserveIds(this.sql, message.priority, 1)
    this.sql
      .q(
        `INSERT INTO messages (id, dest_id, state, priority, visible_at, published_at, size, body, headers) VALUES (?, ?, ${READY}, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        newId,
        owner.id,
        message.priority,
        now,
        now,
        messageSize(message),
        message.body,
        encodeHeaders(message.headers),
      )
    return newId
  }

  /**
   * Re-inserts auto-acked rows exactly as they were (same id, so same place), minus the delivery.
   * A subscription's pointer row (`refId`) was never seen by its reader: it gets a new id.
   */
  restore(
    owner: DestinationRow,
    rows: {
      id: number
      body: string
      headers: Headers
      attempt: number
      publishedAt: number
      priority: number
      expiresAt?: number
      refId?: number
    }[],
    now: number,
  ): void {
    const insert = this.sql.q(
      `INSERT OR IGNORE INTO messages (id, dest_id, state, priority, visible_at, published_at, expires_at, attempts, size, body, headers, ref_id)
       VALUES (?, ?, ${READY}, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    const pointerIds = reserveIdsFor(
      this.sql,
      rows.filter((row) => row.refId !== undefined).map((row) => row.priority),
    )
    let pointers = 0
    for (const row of rows) {
      const pointer = row.refId !== undefined
      insert.run(
        pointer ? pointerIds[pointers++] : row.id,
        owner.id,
        row.priority,
        now,
        row.publishedAt,
        row.expiresAt ?? null,
        row.attempt - 1,
        pointer ? 0 : messageSize(row),
        pointer ? '' : row.body,
        pointer ? null : encodeHeaders(row.headers),
        row.refId ?? null,
      )
    }
    if (!rows[0]?.refId) this.destinations.bump(owner.id, 'acked_total', -rows.length)
  }

  /** Removes a row whose log message is gone (discarded by retention). */
  drop(id: number): void {
    this.sql.q('DELETE FROM messages WHERE id = ?').run(id)
  }

  /**
   * Deletes each delivery's message if its receipt is current; call inside a write transaction.
   * The acked totals are counted once per queue for the whole batch. Per receipt: acked, or stale.
   */
  ack(receipts: readonly {messageId: number; token: string}[]): ('ok' | 'stale')[] {
    // One statement per lease token, not one per receipt: the receipts of one receive share its
    // token, so a batch of them is usually one DELETE (several times cheaper than a DELETE a row).
    const idsByToken = new Map<string, Set<number>>()
    for (const {messageId, token} of receipts) {
      const ids = idsByToken.get(token)
      if (ids) ids.add(messageId)
      else idsByToken.set(token, new Set([messageId]))
    }
    /** The token that deleted each deleted row. */
    const removed = new Map<number, string>()
    /** Rows deleted per queue (or subscription). */
    const acked = new Map<number, number>()
    for (const [token, ids] of idsByToken) {
      const list = [...ids]
      const destId = this.ackAll(list, token)
      if (destId !== undefined) {
        for (const id of list) removed.set(id, token)
        acked.set(destId, (acked.get(destId) ?? 0) + list.length)
        continue
      }
      for (const [id, dest] of this.sql
        .q(
          'DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?)) AND lease_token = ? AND state < 2 RETURNING id, dest_id',
        )
        .raw(true)
        .all(JSON.stringify(list), token) as [number, number][]) {
        removed.set(id, token)
        acked.set(dest, (acked.get(dest) ?? 0) + 1)
      }
    }
    for (const [destId, count] of acked) this.destinations.bump(destId, 'acked_total', count)
    // A row is acked by the first receipt that names it with its token; any other is stale (an
    // older delivery's receipt, or the same receipt given twice).
    return receipts.map(({messageId, token}) => {
      if (removed.get(messageId) !== token) return 'stale' as const
      removed.delete(messageId)
      return 'ok' as const
    })
  }

  /**
   * The common case of `ack`: every one of `ids` (distinct) is leased with `token`, in one queue
   * (the rows of one receive). Deletes them all and returns that queue's id; or, when any is not,
   * changes nothing and returns undefined (`ack` then finds out which rows are). A DELETE that only
   * counts its rows is cheaper than one RETURNING each.
   */
  private ackAll(ids: number[], token: string): number | undefined {
    const first = this.leased(ids[0], token)?.dest_id
    if (first === undefined) return undefined
    try {
      return this.sql.savepoint(() => {
        // The ids of one receive are usually one run of ids: then a range is cheaper than a list.
        let low = ids[0]
        let high = ids[0]
        for (const id of ids) {
          if (id < low) low = id
          else if (id > high) high = id
        }
        const deleted =
          high - low + 1 === ids.length
            ? this.sql
                .q('DELETE FROM messages WHERE id BETWEEN ? AND ? AND lease_token = ? AND state < 2 AND dest_id = ?')
                .run(low, high, token, first).changes
            : this.sql
                .q(
                  'DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?)) AND lease_token = ? AND state < 2 AND dest_id = ?',
                )
                .run(JSON.stringify(ids), token, first).changes
        if (deleted !== ids.length) throw NOT_ALL
        return first
      })
    } catch (error) {
      if (error === NOT_ALL) return undefined
      throw error
    }
  }

  /** Releases a delivery for redelivery (after a delay), or dead-letters it. */
  nack(
    messageId: number,
    token: string,
    options: {delayMs: number; deadLetter: boolean; error?: string; backoff: boolean; uncounted?: boolean},
    now: number,
  ): NackOutcome {
    const row = this.leased(messageId, token)
    if (!row) return 'stale'
    if (options.uncounted) {
      // As if it had never been delivered: ready now, the attempt taken back, its last error kept.
      this.sql
        .q(
          'UPDATE messages SET state = ?, visible_at = ?, lease_token = NULL, attempts = max(attempts - 1, 0) WHERE id = ?',
        )
        .run(READY, now, messageId)
      return 'released'
    }
    const queue = this.destinations.getById(row.dest_id)!
    const {settings} = queue
    if (options.deadLetter || row.attempts >= settings.maxDeliveries) {
      // Without a dead-letter queue (a dead-letter queue itself, say) the message stays, released.
      if (settings.deadLetterQueue !== null) {
        this.deadLetter(
          queue,
          row,
          options.deadLetter ? 'rejected' : 'max-deliveries',
          options.error ?? row.last_error,
          now,
        )
        return 'dead-lettered'
      }
    }
    const delayMs = options.backoff
      ? backoffDelayMs(settings.retryBackoffMs, settings.retryBackoffMaxMs, row.attempts)
      : options.delayMs
    this.sql
      .q(
        'UPDATE messages SET state = ?, visible_at = ?, lease_token = NULL, last_error = coalesce(?, last_error) WHERE id = ?',
      )
      .run(delayMs > 0 ? WAITING : READY, now + delayMs, options.error ?? null, messageId)
    return 'released'
  }

  /** Whether this delivery still holds its lease (not settled, not expired, not redelivered). */
  isLeased(messageId: number, token: string, now: number): boolean {
    return (
      this.sql
        .q('SELECT 1 FROM messages WHERE id = ? AND lease_token = ? AND state = 1 AND visible_at > ?')
        .get(messageId, token, now) !== undefined
    )
  }

  /** Moves the lease end to `now + byMs`. False when stale. */
  extend(messageId: number, token: string, byMs: number, now: number): boolean {
    const info = this.sql
      .q('UPDATE messages SET state = 1, visible_at = ? WHERE id = ? AND lease_token = ? AND state < 2')
      .run(now + byMs, messageId, token)
    return info.changes === 1
  }

  peek(queueId: number, limit: number, now: number): PeekedMessage[] {
    const columns = 'id, body, headers, state, attempts, published_at, visible_at, priority, lease_token'
    const ready = this.sql
      .q(`SELECT ${columns} FROM messages WHERE dest_id = ? AND state = 0 ORDER BY priority DESC, id ${LIMIT}`)
      .all(queueId, limit) as PeekRow[]
    const waiting =
      ready.length < limit
        ? (this.sql
            .q(`SELECT ${columns} FROM messages WHERE dest_id = ? AND state = 1 ORDER BY visible_at ${LIMIT}`)
            .all(queueId, limit - ready.length) as PeekRow[])
        : []
    return [...ready, ...waiting].map((row) => ({
      id: idText(row.id),
      body: row.body,
      headers: decodeHeaders(row.headers),
      state:
        row.state === READY ? 'ready' : row.visible_at <= now ? 'ready' : row.lease_token ? 'in-flight' : 'delayed',
      attempts: row.attempts,
      publishedAt: row.published_at,
      visibleAt: row.visible_at,
      priority: row.priority,
    }))
  }

  counts(
    queueId: number,
    now: number,
  ): {ready: number; inFlight: number; delayed: number; oldestPublishedAt: number | null} {
    const ready = (
      this.sql.q('SELECT count(*) AS n FROM messages WHERE dest_id = ? AND state = 0').get(queueId) as {n: number}
    ).n
    const waiting = this.sql
      .q(
        `SELECT sum(visible_at > ? AND lease_token IS NOT NULL) AS inflight, sum(visible_at > ? AND lease_token IS NULL) AS delayed,
                sum(visible_at <= ?) AS due
         FROM messages WHERE dest_id = ? AND state = 1`,
      )
      .get(now, now, now, queueId) as {inflight: number | null; delayed: number | null; due: number | null}
    const oldest = this.sql
      .q(
        `SELECT min(published_at) AS t FROM (
           SELECT published_at FROM messages WHERE dest_id = ? AND state = 0
           UNION ALL SELECT published_at FROM messages WHERE dest_id = ? AND state = 1)`,
      )
      .get(queueId, queueId) as {t: number | null}
    return {
      ready: ready + (waiting.due ?? 0),
      inFlight: waiting.inflight ?? 0,
      delayed: waiting.delayed ?? 0,
      oldestPublishedAt: oldest.t,
    }
  }

  /** Leased deliveries whose lease has not run out. */
  inFlightCount(queueId: number, now: number): number {
    return (
      this.sql
        .q(
          'SELECT count(*) AS n FROM messages WHERE dest_id = ? AND state = 1 AND visible_at > ? AND lease_token IS NOT NULL',
        )
        .get(queueId, now) as {n: number}
    ).n
  }

  /** Deletes every message of a queue, one state at a time so each delete uses its index. */
  purge(queueId: number): number {
    // Literal states: a partial index is only usable when the planner sees the state at prepare time.
    return (
      this.sql.q('DELETE FROM messages WHERE dest_id = ? AND state = 0').run(queueId).changes +
      this.sql.q('DELETE FROM messages WHERE dest_id = ? AND state = 1').run(queueId).changes
    )
  }

  /**
   * Deletes up to `limit` messages of a queue that have ids given out by the time `lastIds` were
   * read (those it held when a purge started: see message-ids.ts); returns how many. Ready ones
   * first, then in flight and delayed.
   */
  purgeBatch(queueId: number, lastIds: readonly number[], limit: number): number {
    const ready = this.sql
      .q(
        `DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE dest_id = ? AND state = 0 AND ${ID_NOT_AFTER} ${LIMIT})`,
      )
      .run(queueId, ...lastIds, limit).changes
    if (ready >= limit) return ready
    return (
      ready +
      this.sql
        .q(
          `DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE dest_id = ? AND state = 1 AND ${ID_NOT_AFTER} ${LIMIT})`,
        )
        .run(queueId, ...lastIds, limit - ready).changes
    )
  }

  /** Makes due waiting messages ready; those whose lease ran out on their last delivery are dead-lettered. */
  private promoteDue(queue: DestinationRow, now: number): void {
    const {maxDeliveries, deadLetterQueue} = queue.settings
    // The lease token stays until the next delivery, so a slow consumer can still ack a message
    // that became ready again but has not been redelivered.
    this.sql
      .q(
        `UPDATE messages SET state = 0 WHERE dest_id = ? AND state = 1 AND visible_at <= ?
         AND (lease_token IS NULL OR attempts < ? OR ?)`,
      )
      .run(queue.id, now, maxDeliveries, deadLetterQueue === null ? 1 : 0)
    if (deadLetterQueue === null) return
    const exhausted = this.sql
      .q(
        `SELECT ${LEASED_COLUMNS} FROM messages WHERE dest_id = ? AND state = 1 AND visible_at <= ? LIMIT ${MAX_BATCH}`,
      )
      .all(queue.id, now) as LeasedRow[]
    for (const row of exhausted) {
      this.deadLetter(queue, row, 'max-deliveries', row.last_error ?? `lease expired on delivery ${row.attempts}`, now)
    }
  }

  /** Discards (or dead-letters, if the queue asks) expired messages that are not leased. */
  private expire(queue: DestinationRow, now: number): void {
    const expired = this.sql
      .q(
        `SELECT ${LEASED_COLUMNS} FROM messages
         WHERE dest_id = ? AND expires_at IS NOT NULL AND state < 2 AND expires_at <= ?
         AND (state = 0 OR lease_token IS NULL) LIMIT ${MAX_BATCH}`,
      )
      .all(queue.id, now) as LeasedRow[]
    if (expired.length === 0) return
    const toDeadLetter = queue.settings.deadLetterExpired && queue.settings.deadLetterQueue !== null
    for (const row of expired) {
      if (toDeadLetter)
        this.deadLetter(queue, row, 'expired', `expired at ${new Date(row.expires_at!).toISOString()}`, now)
      else this.sql.q('DELETE FROM messages WHERE id = ?').run(row.id)
    }
    this.destinations.bump(queue.id, 'expired_total', expired.length)
  }

  /**
   * Moves a message to the owner's dead-letter queue with headers recording why. A subscription's
   * pointer row takes the body and headers of its log row, which other subscriptions still share.
   */
  deadLetter(owner: DestinationRow, row: LeasedRow, reason: DeadLetterReason, error: string | null, now: number): void {
    let origin: Headers
    let body: {body: string; size: number} | undefined
    if (row.ref_id === null) {
      origin = {...decodeHeaders(row.headers), 'x-original-queue': owner.name}
    } else {
      const log = this.sql
        .q('SELECT dest_id, body, size, headers FROM messages WHERE id = ? AND state = 2')
        .get(row.ref_id) as {dest_id: number; body: string; size: number; headers: string | null} | undefined
      if (!log) {
        this.drop(row.id) // its topic discarded the message: nothing left to dead-letter
        return
      }
      body = {body: log.body, size: log.size}
      origin = {
        ...decodeHeaders(log.headers),
        'x-original-topic': this.destinations.getById(log.dest_id)?.name ?? '',
        'x-original-subscription': subscriptionName(owner.name),
      }
    }
    const dlqName = owner.settings.deadLetterQueue!
    const target = this.destinations.get(dlqName) ?? this.destinations.createQueue(dlqName, {deadLetterQueue: null})
    if (target.kind !== 'queue') {
      // Refused when configured; a topic created under that name later leaves the message in place.
      this.sql
        .q('UPDATE messages SET state = 0, lease_token = NULL, last_error = ? WHERE id = ?')
        .run(`cannot dead-letter: ${dlqName} is a ${target.kind}, not a queue`, row.id)
      return
    }
    const headers: Headers = {
      ...origin,
      'x-dead-letter-reason': reason,
      'x-dead-letter-attempts': String(row.attempts),
      'x-dead-lettered-at': new Date(now).toISOString(),
    }
    if (error) headers['x-last-error'] = error.slice(0, 1000)
    const encoded = JSON.stringify(headers)
    this.sql
      .q(
        `UPDATE messages SET dest_id = ?, state = ?, visible_at = ?, attempts = 0, lease_token = NULL, last_error = NULL,
         expires_at = NULL, headers = ?, body = coalesce(?, body), size = ? + length(CAST(coalesce(?, body) AS BLOB)), ref_id = NULL WHERE id = ?`,
      )
      // size: what is stored, the body and the headers as they are now (see messageSize)
      .run(target.id, READY, now, encoded, body?.body ?? null, Buffer.byteLength(encoded), body?.body ?? null, row.id)
    this.destinations.bump(owner.id, 'dead_lettered_total')
  }

  private leased(messageId: number, token: string): LeasedRow | undefined {
    return this.sql
      .q(`SELECT ${LEASED_COLUMNS} FROM messages WHERE id = ? AND lease_token = ? AND state < 2`)
      .get(messageId, token) as LeasedRow | undefined
  }
}

interface PeekRow {
  id: number
  body: string
  headers: string | null
  state: number
  attempts: number
  published_at: number
  visible_at: number
  priority: number
  lease_token: string | null
}

export function decodeHeaders(text: string | null): Headers {
  return text ? (JSON.parse(text) as Headers) : {}
}
