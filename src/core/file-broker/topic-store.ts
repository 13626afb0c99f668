import type {OutgoingMessage, TopicSettings} from '../broker.js'
import type {TopicPattern} from '../names.js'
import type {DestinationRow, Destinations} from './destinations.js'
import {encodeHeaders} from '../headers.js'
import {lastIds, reserveAppended} from './message-ids.js'
import {LOGGED, MESSAGE_COLUMNS} from './queue-store.js'
import {LIMIT, type Sql} from './sql.js'

/** A message in a topic's log. */
export interface LogRow {
  id: number
  dest_id: number
  body: string
  headers: string | null
  published_at: number
}

/** Most rows one retention pass deletes, so a publish never holds the write lock for long. */
const RETENTION_BATCH = 10_000

/**
 * Topic logs: each message is stored once, however many subscriptions read it; subscriptions keep
 * cursors into the logs. Retention discards the oldest messages past the topic's limits.
 */
export class TopicStore {
  constructor(
    private readonly sql: Sql,
    private readonly destinations: Destinations,
  ) {}

  /**
   * Appends to the log (call inside a write transaction); returns the new ids. Log rows have no
   * priority: their ids are in band 0, in global publish order (message-ids.ts). `sizes`: each
   * message's size (messageSize), as the caller measured it for the limits.
   */
  insert(topic: DestinationRow<TopicSettings>, messages: OutgoingMessage[], now: number, sizes: number[]): number[] {
    const {ids, assigned} = reserveAppended(this.sql, messages.length)
    this.sql.insertMessages(
      MESSAGE_COLUMNS,
      `(?, ${LOGGED}, 0, ?, ?, NULL, ?, ?, ?)`,
      ids,
      (index, values) =>
        values.push(topic.id, now, now, sizes[index], messages[index].body, encodeHeaders(messages[index].headers)),
      assigned,
    )
    this.destinations.bump(topic.id, 'published_total', ids.length)
    this.enforceRetention(topic.id, now)
    return ids
  }

  /** Discards the oldest messages past the count, size and age limits; returns how many. */
  enforceRetention(topicId: number, now: number): number {
    const topic = this.destinations.getById<TopicSettings>(topicId)
    if (!topic) return 0
    const {maxMessages, maxBytes, maxAgeMs} = topic.settings
    let discarded = 0
    if (maxMessages !== null && topic.depth > maxMessages)
      discarded += this.discardOldest(topicId, topic.depth - maxMessages)
    if (maxBytes !== null) {
      let bytes = topic.bytes
      while (bytes > maxBytes) {
        const oldest = this.sql
          .q(`SELECT id, size FROM messages WHERE dest_id = ? AND state = ${LOGGED} ORDER BY id LIMIT 1`)
          .get(topicId) as {id: number; size: number} | undefined
        if (!oldest) break
        this.sql.q('DELETE FROM messages WHERE id = ?').run(oldest.id)
        bytes -= oldest.size
        discarded++
      }
    }
    const cutoff = now - maxAgeMs
    const old = this.sql
      .q(
        `SELECT id FROM messages WHERE dest_id = ? AND state = ${LOGGED} AND published_at < ? ORDER BY published_at LIMIT ${RETENTION_BATCH}`,
      )
      .all(topicId, cutoff) as {id: number}[]
    if (old.length > 0) {
      const remove = this.sql.q('DELETE FROM messages WHERE id = ?')
      for (const row of old) remove.run(row.id)
      discarded += old.length
    }
    this.destinations.bump(topicId, 'dropped_total', discarded)
    return discarded
  }

  private discardOldest(topicId: number, count: number): number {
    return this.sql
      .q(
        `DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE dest_id = ? AND state = ${LOGGED} ORDER BY id ${LIMIT})`,
      )
      .run(topicId, Math.min(count, RETENTION_BATCH)).changes
  }

  /** The topics a pattern covers now (topics created later are picked up on the next call). */
  matching(pattern: TopicPattern): DestinationRow<TopicSettings>[] {
    if (pattern.literal) {
      const topic = this.destinations.get<TopicSettings>(pattern.source)
      return topic?.kind === 'topic' ? [topic] : []
    }
    return this.destinations.list<TopicSettings>('topic').filter((topic) => pattern.matches(topic.name))
  }

  /** The next `limit` messages after `cursor` across topics, in global publish order (a k-way merge). */
  readAfter(topicIds: number[], cursor: number, limit: number): LogRow[] {
    const read = this.sql.q(
      `SELECT id, dest_id, body, headers, published_at FROM messages WHERE dest_id = ? AND state = ${LOGGED} AND id > ? ORDER BY id ${LIMIT}`,
    )
    if (topicIds.length === 1) return read.all(topicIds[0], cursor, limit) as LogRow[]
    const rows = topicIds.flatMap((id) => read.all(id, cursor, limit) as LogRow[])
    return rows.sort((a, b) => a.id - b.id).slice(0, limit)
  }

  hasAfter(topicIds: number[], cursor: number): boolean {
    const probe = this.sql.q(`SELECT 1 FROM messages WHERE dest_id = ? AND state = ${LOGGED} AND id > ? LIMIT 1`)
    return topicIds.some((id) => probe.get(id, cursor) !== undefined)
  }

  /** Messages after `cursor` in these topics (a subscription's lag). */
  countAfter(topicIds: number[], cursor: number): number {
    const count = this.sql.q(`SELECT count(*) AS n FROM messages WHERE dest_id = ? AND state = ${LOGGED} AND id > ?`)
    return topicIds.reduce((sum, id) => sum + (count.get(id, cursor) as {n: number}).n, 0)
  }

  /** The highest id given out in band 0, that of log rows (0 when none): where a `--new` cursor starts. */
  lastId(): number {
    return lastIds(this.sql)[0]
  }

  /** The first id at or after `time` across topics, if any. */
  firstIdSince(topicIds: number[], time: number): number | undefined {
    const first = this.sql.q(
      `SELECT id FROM messages WHERE dest_id = ? AND state = ${LOGGED} AND published_at >= ? ORDER BY published_at, id LIMIT 1`,
    )
    const ids = topicIds
      .map((id) => (first.get(id, time) as {id: number} | undefined)?.id)
      .filter((id) => id !== undefined)
    return ids.length === 0 ? undefined : Math.min(...ids)
  }

  oldestPublishedAt(topicId: number): number | null {
    const row = this.sql
      .q(`SELECT published_at FROM messages WHERE dest_id = ? AND state = ${LOGGED} ORDER BY id LIMIT 1`)
      .get(topicId) as {published_at: number} | undefined
    return row?.published_at ?? null
  }

  /** Log rows by id (for a subscription's pointer rows). */
  byIds(ids: number[]): Map<number, LogRow> {
    const get = this.sql.q(
      `SELECT id, dest_id, body, headers, published_at FROM messages WHERE id = ? AND state = ${LOGGED}`,
    )
    const rows = new Map<number, LogRow>()
    for (const id of ids) {
      const row = get.get(id) as LogRow | undefined
      if (row) rows.set(id, row)
    }
    return rows
  }

  purge(topicId: number): number {
    return this.sql.q(`DELETE FROM messages WHERE dest_id = ? AND state = ${LOGGED}`).run(topicId).changes
  }
}
