import {isSameProcessAlive, isSignalable, pidSpace, pidSpaceOf, processStartTime} from '../process-alive.js'
import type {OutgoingMessage} from '../broker.js'
import {encodeHeaders} from '../headers.js'
import type {DestinationRow, Destinations} from './destinations.js'
import type {MinuteCount} from '../rates.js'
import {foldHandedIds, handOffIds, reserveIdRange, reserveIdsFor} from './message-ids.js'
import {type QueueStore, type TakenRow, type TakenTuple, takenRow} from './queue-store.js'
import {LIMIT, type Sql} from './sql.js'

/** The messages handed to a waiter, as `waiters.handed` stores them (JSON): taken rows as RETURNING lists them. */
type HandedTuple = TakenTuple

interface WaiterRow {
  id: number
  pid: number
  started: string | null
  pid_space: string
}

/** A registration as WAITING reads it (raw: no property names to intern on a publish's path). */
type WaiterTuple = [id: number, pid: number, pidSpace: string, max: number, aliveUntil: number, waitingSince: number]
const [ID, PID, PID_SPACE, MAX, ALIVE_UNTIL, WAITING_SINCE] = [0, 1, 2, 3, 4, 5] as const

const WAITER_COLUMNS = 'id, pid, pid_space, max, alive_until, waiting_since'

/** What a registration owes when it goes (see Waiters.unregister), with what it was handed. */
type OwedRow = [
  destId: number,
  handed: string | null,
  uncounted: number,
  handedAt: number | null,
  lastId: number | null,
]

/**
 * A queue's registrations still waiting (in no order: see waitingFirst; an ORDER BY on a column of
 * no index would sort in a temporary B-tree, and an index on it would be one more page for every
 * re-arm to write).
 */
const WAITING = `SELECT ${WAITER_COLUMNS} FROM waiters WHERE dest_id = ? AND handed IS NULL`

/**
 * As WAITING, but none when something in the queue is ready or due (as QueueStore.hasDeliverable):
 * a publish hands its batch over only with nothing ahead of it. One statement for both looks.
 * Binds the queue's id three times, then now.
 */
const WAITING_WITH_NOTHING_AHEAD = `SELECT ${WAITER_COLUMNS} FROM waiters
  WHERE dest_id = ? AND handed IS NULL
    AND NOT EXISTS (SELECT 1 FROM messages WHERE dest_id = ? AND state = 0)
    AND NOT EXISTS (SELECT 1 FROM messages WHERE dest_id = ? AND state = 1 AND visible_at <= ?)`

/**
 * How long a registration is trusted after it was made or refreshed: a publish hands messages to
 * a waiter whose registration is this fresh and whose pid still exists, without reading /proc
 * (about a tenth of a millisecond on a cold path). A waiting consumer refreshes it when it wakes,
 * at the latest on its fallback poll (FALLBACK_POLL_MS), once less than REFRESH_MS is left.
 */
export const TRUSTED_MS = 10_000
export const REFRESH_MS = 5_000

/**
 * Most bytes (bodies and stored headers, see messageSize) one hand-off carries: what is handed is
 * one JSON text in one row, and a text of several large messages would outgrow what V8 and SQLite
 * take (a message may have up to 256 MiB). A larger head is left for the waiter's own receive.
 */
export const HAND_OFF_BYTES = 16 * 1024 * 1024

/**
 * Auto-ack consumers waiting on a queue, and the publishes that hand them messages
 * (ARCHITECTURE.md, "Hand-off to waiting consumers"). A waiter registers before it sleeps; a
 * publish takes the head of the queue for it inside the publish's own transaction (as the waiter's
 * receive would: the messages leave the queue there), and the waiter, woken, reads them from its
 * registration without a write of its own. So the publisher's sync is the only one before the
 * message is printed, and the consumer's commit no longer lands in the middle of it.
 */
export class Waiters {
  constructor(
    private readonly sql: Sql,
    private readonly destinations: Destinations,
    private readonly queues: QueueStore,
  ) {}

  /**
   * Registers this process as waiting for up to `max` messages of `queueId` (inside a write), after
   * removing the registrations of the queue's waiters that died; returns the registration's id.
   */
  register(queueId: number, max: number, now: number): number {
    this.sweep(queueId)
    const {lastInsertRowid} = this.sql
      .q(
        'INSERT INTO waiters (dest_id, pid, started, pid_space, max, alive_until, waiting_since) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(queueId, process.pid, processStartTime(process.pid), pidSpace(), max, now + TRUSTED_MS, now)
    return Number(lastInsertRowid)
  }

  /**
   * Inside a write: makes a registration whose handed messages its waiter read wait again, for up
   * to `max` messages, trusted for TRUSTED_MS: one row updated, where deleting it and inserting
   * another wrote five pages (the waiter does this after every delivery, and every page it writes
   * without a sync is written by the next publisher's sync). What it owes (see unregister) adds up
   * on it meanwhile: `settle` settles it now, and sweeps the queue's dead registrations as a new
   * registration does. It waits from now, behind the queue's other waiters (see waitingFirst).
   * False when the registration is gone (its queue was deleted).
   */
  rearm(id: number, queueId: number, max: number, now: number, settle: boolean): boolean {
    if (settle) {
      this.settle(id)
      this.sweep(queueId)
    }
    return (
      this.sql
        .q('UPDATE waiters SET handed = NULL, max = ?, alive_until = ?, waiting_since = ? WHERE id = ?')
        .run(max, now + TRUSTED_MS, now, id).changes === 1
    )
  }

  /**
   * Inside a write: trusts a registration that still waits for another TRUSTED_MS; `settle`: and
   * settles what it owes (see rearm).
   */
  refresh(id: number, now: number, settle = false): void {
    if (settle) this.settle(id)
    this.sql.q('UPDATE waiters SET alive_until = ? WHERE id = ? AND handed IS NULL').run(now + TRUSTED_MS, id)
  }

  /** Removes the registrations of a queue's waiters that died (see register). */
  private sweep(queueId: number): void {
    const rows = this.sql
      .q('SELECT id, pid, started, pid_space FROM waiters WHERE dest_id = ?')
      .all(queueId) as WaiterRow[]
    for (const row of rows) {
      const space = pidSpaceOf(row.pid_space)
      if (space === 'earlier-boot' || (space === 'same' && !isSameProcessAlive(row.pid, row.started)))
        this.retire(row.id)
    }
  }

  /**
   * Inside a publish's write, instead of its inserts: gives the whole batch to the first waiter
   * that can take it (see trusted), when every message is ready now, the batch is within the
   * waiter's `max` and nothing in the queue is ready or due ahead of it. The messages never enter
   * the table: their ids are reserved, and they are counted as published and delivered (as if
   * inserted and taken at once) when the registration is removed or settled (see unregister), not by the
   * publish: fewer pages to write before its sync. Returns their ids, or undefined when the batch
   * is to be inserted.
   */
  accept(queue: DestinationRow, messages: OutgoingMessage[], now: number, sizes: number[]): number[] | undefined {
    const defaultTtl = queue.settings.defaultTtlMs
    const priority = messages[0].priority ?? 0
    let samePriority = true
    let bytes = 0
    for (let index = 0; index < messages.length; index++) {
      const message = messages[index]
      // A delayed message waits in the queue; one that expires at once is the queue's to discard.
      if (message.deliverAt !== undefined && message.deliverAt > now) return undefined
      if ((message.ttlMs ?? defaultTtl ?? 1) <= 0) return undefined
      if ((message.priority ?? 0) !== priority) samePriority = false
      bytes += sizes[index]
    }
    if (bytes > HAND_OFF_BYTES) return undefined
    // An empty queue (its count is kept by triggers) has nothing ahead: no index of messages to look at.
    const rows = (
      queue.depth === 0
        ? this.sql.raw(WAITING).all(queue.id)
        : this.sql.raw(WAITING_WITH_NOTHING_AHEAD).all(queue.id, queue.id, queue.id, now)
    ) as WaiterTuple[]
    const waiter = waitingFirst(rows).find((row) => this.trusted(row, now))
    if (!waiter || messages.length > waiter[MAX]) return undefined
    // Band 0 (no priorities): ids after the band's last without moving its counter (see handOffIds).
    const unfolded = samePriority && priority === 0
    const ids = unfolded
      ? handOffIds(this.sql, messages.length)
      : samePriority
        ? reserveIdRange(this.sql, priority, messages.length)
        : reserveIdsFor(
            this.sql,
            messages.map((m) => m.priority ?? 0),
          )
    // Delivery order, as a receive takes them: higher priority first, then publish order.
    const order = messages.map((_, index) => index)
    if (!samePriority) order.sort((a, b) => (messages[b].priority ?? 0) - (messages[a].priority ?? 0) || a - b)
    const handed = new Array<HandedTuple>(messages.length)
    for (let slot = 0; slot < order.length; slot++) {
      const index = order[slot]
      const message = messages[index]
      const ttl = message.ttlMs ?? defaultTtl
      handed[slot] = [
        ids[index],
        message.body,
        encodeHeaders(message.headers),
        1,
        now,
        message.priority ?? 0,
        ttl == null ? null : now + ttl,
        null,
      ]
    }
    this.give(waiter[ID], handed, messages.length, now, unfolded ? ids[ids.length - 1] : null)
    return ids
  }

  /**
   * Inside a publish's write, after its inserts: gives the head of `queue` to its waiters (see
   * trusted), longest waiting first, each up to its `max`, as an auto-ack receive takes them.
   */
  handOff(queue: DestinationRow, now: number): void {
    for (const waiter of waitingFirst(this.sql.raw(WAITING).all(queue.id) as WaiterTuple[])) {
      if (!this.trusted(waiter, now)) continue
      const taken = this.queues.take(queue, this.headWithin(queue.id, waiter[MAX]), true, 0, now)
      if (taken.length === 0) return
      // Counted as published when inserted, and as delivered when taken.
      this.give(
        waiter[ID],
        taken.map((row): HandedTuple => [
          row.id,
          row.body,
          row.headers,
          row.attempts,
          row.published_at,
          row.priority,
          row.expires_at,
          null,
        ]),
        0,
        now,
        null,
      )
      if (taken.length < waiter[MAX]) return
    }
  }

  /**
   * Whether a publish may hand messages to this registration: one that is fresh (TRUSTED_MS) and
   * whose pid exists. A registration whose pid is gone is removed on the way; a stale one, or one
   * made in another pid space (another container), is left for its waiter (or the next
   * registration's sweep) to deal with.
   */
  private trusted(waiter: WaiterTuple, now: number): boolean {
    if (waiter[PID_SPACE] !== pidSpace() || waiter[ALIVE_UNTIL] <= now) return false
    if (isSignalable(waiter[PID])) return true
    this.retire(waiter[ID])
    return false
  }

  /** How many of the next `max` messages of the queue's head fit in HAND_OFF_BYTES (0: not even the first). */
  private headWithin(queueId: number, max: number): number {
    const sizes = this.sql
      .q(`SELECT size FROM messages WHERE dest_id = ? AND state = 0 ORDER BY priority DESC, id ${LIMIT}`)
      .pluck()
      .all(queueId, max) as number[]
    let bytes = 0
    for (let count = 0; count < sizes.length; count++) {
      bytes += sizes[count]
      if (bytes > HAND_OFF_BYTES) return count
    }
    return sizes.length
  }

  /**
   * `uncounted`: how many of `handed` are still to be counted as published and delivered (handed
   * at `now`); `lastId`: the last band-0 id given to them without moving the counter (see unregister).
   */
  private give(id: number, handed: HandedTuple[], uncounted: number, now: number, lastId: number | null): void {
    this.sql
      .q(
        'UPDATE waiters SET handed = ?, uncounted = uncounted + ?, handed_at = ?, last_id = coalesce(?, last_id) WHERE id = ?',
      )
      .run(JSON.stringify(handed), uncounted, now, lastId, id)
  }

  /**
   * What was handed to registration `id`, in delivery order: undefined while it still waits, null
   * when the registration is gone (its queue was deleted).
   */
  handed(id: number): TakenRow[] | undefined | null {
    const handed = this.sql.q('SELECT handed FROM waiters WHERE id = ?').pluck().get(id) as string | null | undefined
    if (handed === undefined) return null
    return handed === null ? undefined : decode(handed)
  }

  /** Inside a write: removes a registration; returns what was handed to it and not read (to put back). */
  remove(id: number): TakenRow[] {
    const handed = this.unregister(id)
    return handed ? decode(handed) : []
  }

  /**
   * Inside a write: removes a registration whose handed messages were read, or whose waiter is
   * gone (what was handed to it went with it).
   */
  retire(id: number): void {
    this.unregister(id)
  }

  /**
   * Messages of a queue handed over and not counted yet (see unregister): what its published and
   * delivered totals do not show yet (`total`), and per minute they were handed, for its rates.
   * Read in the same snapshot as the totals (Sql.snapshot), or a settlement in between would
   * leave them out of both.
   */
  uncounted(queueId: number): {total: number; minutes: MinuteCount[]} {
    const rows = this.sql
      .raw('SELECT uncounted, handed_at FROM waiters WHERE dest_id = ? AND uncounted > 0')
      .all(queueId) as [uncounted: number, handedAt: number | null][]
    let total = 0
    const minutes: MinuteCount[] = []
    for (const [count, handedAt] of rows) {
      total += count
      minutes.push({minute: Math.floor((handedAt ?? Date.now()) / 60_000), published: count, acked: count})
    }
    return {total, minutes}
  }

  /**
   * Inside a write: forgets every registration on a queue (it is being deleted). The trigger of
   * migration 7 folds their last ids into band 0's counter.
   */
  removeAll(queueId: number): void {
    this.sql.q('DELETE FROM waiters WHERE dest_id = ?').run(queueId)
  }

  /**
   * Deletes a registration, settling what it owes: the messages a publish handed to it without
   * counting them (see accept) are counted as published and delivered now, in the rates of the
   * minute they were last handed in; the ids given to them without moving band 0's counter are
   * folded into it by the trigger of migration 7 (whoever deletes the row). Returns what was
   * handed to it (JSON), or null.
   */
  private unregister(id: number): string | null {
    // Read, then deleted: a DELETE … RETURNING gathers its rows in a temporary table first.
    const row = this.owed(id)
    if (!row) return null
    this.sql.q('DELETE FROM waiters WHERE id = ?').run(id)
    this.count(row)
    return row[1] // handed
  }

  /** Inside a write: settles what a registration owes (see unregister) and keeps it. */
  private settle(id: number): void {
    const row = this.owed(id)
    if (!row) return
    const [, , uncounted, , lastId] = row
    if (uncounted === 0 && lastId === null) return
    this.count(row)
    if (lastId !== null) foldHandedIds(this.sql, lastId)
    this.sql.q('UPDATE waiters SET uncounted = 0, last_id = NULL WHERE id = ?').run(id)
  }

  private owed(id: number): OwedRow | undefined {
    return this.sql.raw('SELECT dest_id, handed, uncounted, handed_at, last_id FROM waiters WHERE id = ?').get(id) as
      OwedRow | undefined
  }

  /** Counts a registration's uncounted messages as published and delivered. */
  private count([destId, , uncounted, handedAt]: OwedRow): void {
    if (uncounted > 0) this.destinations.bumpPublishedAndAcked(destId, uncounted, handedAt ?? Date.now())
  }
}

/**
 * Registrations in the order publishes serve them: longest waiting first (a waiter that was just
 * handed messages waits again behind the others), then oldest.
 */
function waitingFirst(rows: WaiterTuple[]): WaiterTuple[] {
  if (rows.length > 1) rows.sort((a, b) => a[WAITING_SINCE] - b[WAITING_SINCE] || a[ID] - b[ID])
  return rows
}

function decode(handed: string): TakenRow[] {
  return (JSON.parse(handed) as HandedTuple[]).map((row) => takenRow(row))
}
