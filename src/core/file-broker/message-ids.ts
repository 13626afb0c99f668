import {StoreError} from '../errors.js'
import type {Sql} from './sql.js'

/**
 * Message ids (ARCHITECTURE.md, "Message ids and priority bands"). A message of priority p gets
 * its id from band p: `p · BAND + n`, with n from the band's own counter in `message_seq`, which
 * never goes back, so an id is never reused. The table stores rows in id order, so one priority's
 * messages sit together and are taken (deleted) page after page, with consecutive ids as in a
 * queue without priorities. Band 0 is priority 0 and every topic log row: there the id is n
 * itself, global publish order, which cursors rely on. 9 · BAND + n stays below 2^53: ids are exact
 * JavaScript numbers.
 */
export const BAND = 2 ** 49
const BAND_BITS = 49
export const BANDS = 10

/**
 * The ids of band 0 handed to waiting consumers without moving the band's counter (see
 * handOffIds), as SQL: band 0's last id is the larger of its counter and this.
 */
const HANDED_LAST_ID = 'coalesce((SELECT max(last_id) FROM waiters), 0)'

/**
 * Reserves `count` consecutive ids in `band` (call inside a write transaction) and returns the
 * first. One statement per band and batch, however many rows it inserts. The counter also steps
 * over any row of the band it does not know of — one an mqctl from before the bands stored while
 * still running during an upgrade (AUTOINCREMENT) — so such a row never makes a publish fail on
 * its id: a look at the band's highest id, one step down the table's id order. In band 0 it also
 * steps over the ids handed to waiting consumers (see handOffIds).
 */
export function reserveIds(sql: Sql, band: number, count: number): number {
  sql
    .q(
      `UPDATE message_seq SET seq = max(seq, coalesce((SELECT max(id) FROM messages WHERE id BETWEEN ? AND ?), 0) - ?${band === 0 ? `, ${HANDED_LAST_ID}` : ''}) + ?
       WHERE band = ?`,
    )
    .run(band * BAND, band * BAND + BAND - 1, band * BAND, count, band)
  // Read back, rather than with RETURNING: that gathers the updated rows in a temporary table first,
  // which made this about a tenth of a one-message publish (measured).
  const seq = sql.q('SELECT seq FROM message_seq WHERE band = ?').pluck().get(band) as number
  return band * BAND + checkedSeq(seq) - count + 1
}

/**
 * The next `count` ids of band 0 for messages handed to a waiting consumer (Waiters.accept),
 * without moving the band's counter: the caller writes the last of them into the registration's
 * `last_id` in the same transaction, a page that publish writes anyway, and every later band-0
 * reservation starts after it (reserveIds, lastIds) until its last id is folded into the counter:
 * when the registration settles what it owes (Waiters.settle), or by the trigger of migration 7
 * when the row is deleted. So a one-message hand-off commits one page, where moving the counter
 * made it two.
 */
export function handOffIds(sql: Sql, count: number): number[] {
  const last = sql
    .q(
      `SELECT max(seq, coalesce((SELECT max(id) FROM messages WHERE id BETWEEN 0 AND ?), 0), ${HANDED_LAST_ID})
       FROM message_seq WHERE band = 0`,
    )
    .pluck()
    .get(BAND - 1) as number
  checkedSeq(last + count)
  const ids = new Array<number>(count)
  for (let i = 0; i < count; i++) ids[i] = last + 1 + i
  return ids
}

/** Inside a write: band 0's counter is at least `lastId` (a registration's handed ids, see handOffIds). */
export function foldHandedIds(sql: Sql, lastId: number): void {
  sql.q('UPDATE message_seq SET seq = max(seq, ?) WHERE band = 0').run(lastId)
}

function checkedSeq(seq: number): number {
  if (seq >= BAND) {
    // 2^49 messages in one band: decades at a million a second. Refused rather than run into the next band.
    throw new StoreError('this broker has used up its message ids', {hint: 'move its messages to a new broker folder'})
  }
  return seq
}

/**
 * A message id as text. Ids of bands 1–9 are not small integers to V8, and String() of such a
 * number goes through the general floating-point formatting: in two halves of small integers it
 * costs half as much (a consume of prioritised messages turns every id into text).
 */
export function idText(id: number): string {
  if (id < 2 ** 31) return String(id)
  const low = id % 1e8
  return String((id - low) / 1e8) + String(low).padStart(8, '0')
}

/** `count` consecutive ids in `band`, reserved as by reserveIds. */
export function reserveIdRange(sql: Sql, band: number, count: number): number[] {
  const first = reserveIds(sql, band, count)
  // A loop, not Array.from({length}): that reads each index of its argument the slow, generic way.
  const ids = new Array<number>(count)
  for (let i = 0; i < count; i++) ids[i] = first + i
  return ids
}

/** Batches from this size on let SQLite assign their ids (see reserveAppended). */
const ASSIGNED_FROM = 16

/**
 * `count` consecutive ids in band 0, as reserveIdRange, and whether SQLite will give new rows
 * exactly these ids itself (`assigned`): inserting without an id column spares it a search of the
 * table per row (about 3 % of a `publish --lines`). It gives a new row the next id after the larger
 * of the table's highest id and sqlite_sequence (AUTOINCREMENT), so it can while no row of bands
 * 1–9 is stored, once sqlite_sequence is set to the id before the first (inserts with a given id
 * leave it at the highest id ever stored). Sql.insertMessages checks the ids it got. Not for a
 * few rows (fewer than ASSIGNED_FROM): there the two statements that arrange it cost more than the
 * searches they spare, and a one-message publish would write one table page more (sqlite_sequence).
 */
export function reserveAppended(sql: Sql, count: number): {ids: number[]; assigned: boolean} {
  const ids = reserveIdRange(sql, 0, count)
  if (count < ASSIGNED_FROM) return {ids, assigned: false}
  const {top} = sql.q('SELECT max(id) AS top FROM messages').get() as {top: number | null}
  if ((top ?? 0) >= ids[0]) return {ids, assigned: false}
  if (sql.q("UPDATE sqlite_sequence SET seq = ? WHERE name = 'messages'").run(ids[0] - 1).changes === 0)
    sql.q("INSERT INTO sqlite_sequence (name, seq) VALUES ('messages', ?)").run(ids[0] - 1)
  return {ids, assigned: true}
}

/** Ids for messages of these priorities, in their order: each in its band, consecutive within a band. */
export function reserveIdsFor(sql: Sql, priorities: readonly number[]): number[] {
  const counts = new Array<number>(BANDS).fill(0)
  for (const priority of priorities) counts[priority]++
  const next = counts.map((count, band) => (count === 0 ? 0 : reserveIds(sql, band, count)))
  return priorities.map((priority) => next[priority]++)
}

/** The highest id ever given out in each band (band · BAND when none). */
export function lastIds(sql: Sql): number[] {
  const rows = sql
    .q(`SELECT band, CASE band WHEN 0 THEN max(seq, ${HANDED_LAST_ID}) ELSE seq END AS seq FROM message_seq`)
    .all() as {band: number; seq: number}[]
  const last = Array.from({length: BANDS}, (_, band) => band * BAND)
  for (const row of rows) last[row.band] = row.band * BAND + row.seq
  return last
}

/**
 * SQL true for an id given out by the time `lastIds` was read: `id <= ` the last id of its band.
 * Binds the BANDS values of `lastIds`.
 */
export const ID_NOT_AFTER = `id <= CASE id >> ${BAND_BITS} ${Array.from({length: BANDS}, (_, band) => `WHEN ${band} THEN ?`).join(' ')} END`
