import {
  DEFAULT_QUEUE_SETTINGS,
  DEFAULT_TOPIC_SETTINGS,
  type DestinationKind,
  type QueueSettings,
  type TopicSettings,
  defaultDeadLetterQueue,
  type QueueTotals,
} from '../broker.js'
import {InvalidInputError, WrongKindError} from '../errors.js'
import {validateName} from '../names.js'
import {type MinuteCount, type Rates, ratesFromMinutes} from '../rates.js'
import type {Sql} from './sql.js'

/** Subscriptions keep their deliveries in a destination of their own. */
export type StoredKind = DestinationKind | 'subscription'

export interface DestinationRow<S = QueueSettings> {
  id: number
  name: string
  kind: StoredKind
  createdAt: number
  settings: S
  depth: number
  bytes: number
  totals: QueueTotals
}

/** The columns a destination row is read with, in the order of RawRow. */
const COLUMNS =
  'id, name, kind, created_at, settings, msg_count, msg_bytes, published_total, acked_total, dead_lettered_total, dropped_total, expired_total, deduplicated_total'

/**
 * A destination row as SQLite returns it in raw mode (an array in COLUMNS order): a row object
 * costs better-sqlite3 one interned key per column on every read, and a publish reads its
 * destination every time.
 */
type RawRow = [
  id: number,
  name: string,
  kind: StoredKind,
  createdAt: number,
  settings: string,
  depth: number,
  bytes: number,
  published: number,
  acked: number,
  deadLettered: number,
  dropped: number,
  expired: number,
  deduplicated: number,
]

export type TotalColumn =
  'published_total' | 'acked_total' | 'dead_lettered_total' | 'dropped_total' | 'expired_total' | 'deduplicated_total'

export type {Rates} from '../rates.js'

/** Most settings texts kept parsed (a broker with more destinations parses the others again). */
const SETTINGS_CACHED = 1_000

/** Per-minute rate rows kept for each destination. */
const RATE_MINUTES = 60

/** The catalogue of queues and topics: lookups, creation with validated settings, counters. */
export class Destinations {
  /** The minute whose rate row this process last wrote, per destination (to prune old rows once a minute). */
  private readonly rateMinutes = new Map<number, number>()
  /** Parsed settings by their stored text (see parsedSettings). */
  private readonly settings = new Map<string, unknown>()

  constructor(private readonly sql: Sql) {}

  get<S = QueueSettings>(name: string): DestinationRow<S> | undefined {
    const row = this.sql.raw(`SELECT ${COLUMNS} FROM destinations WHERE name = ?`).get(name) as RawRow | undefined
    return row && this.toRow<S>(row)
  }

  getById<S = QueueSettings>(id: number): DestinationRow<S> | undefined {
    const row = this.sql.raw(`SELECT ${COLUMNS} FROM destinations WHERE id = ?`).get(id) as RawRow | undefined
    return row && this.toRow<S>(row)
  }

  list<S>(kind: StoredKind): DestinationRow<S>[] {
    const rows = this.sql.raw(`SELECT ${COLUMNS} FROM destinations WHERE kind = ? ORDER BY name`).all(kind) as RawRow[]
    return rows.map((row) => this.toRow<S>(row))
  }

  /** The queue `name`, which must not be a topic. */
  queue(name: string): DestinationRow | undefined {
    const row = this.get(name)
    if (row && row.kind !== 'queue') throw new WrongKindError(name, 'topic', {hint: `use \`mq subscribe ${name}\``})
    return row
  }

  insert<S>(name: string, kind: StoredKind, settings: S): DestinationRow<S> {
    const now = Date.now()
    const info = this.sql
      .q('INSERT INTO destinations (name, kind, created_at, settings) VALUES (?, ?, ?, ?)')
      .run(name, kind, now, JSON.stringify(settings))
    return this.getById<S>(Number(info.lastInsertRowid))!
  }

  /** Creates a queue with defaults filled in; call inside a write transaction. */
  createQueue(name: string, settings: Partial<QueueSettings> = {}): DestinationRow {
    const full = resolveQueueSettings(name, settings)
    return this.insert(name, 'queue', full)
  }

  /** Refuses a dead-letter queue that exists as a topic (a queue and a topic never stand for each other). */
  checkDeadLetterTarget(settings: {deadLetterQueue: string | null}): void {
    if (settings.deadLetterQueue === null) return
    const target = this.get(settings.deadLetterQueue)
    if (target && target.kind !== 'queue') {
      throw new WrongKindError(settings.deadLetterQueue, 'topic', {
        hint: 'a dead-letter queue must be a queue: choose another name',
      })
    }
  }

  saveSettings<S>(id: number, settings: S): void {
    this.sql.q('UPDATE destinations SET settings = ? WHERE id = ?').run(JSON.stringify(settings), id)
  }

  /** Adds to a total; published and acked counts also feed the per-minute rates. */
  bump(id: number, column: TotalColumn, by = 1): void {
    if (by === 0) return
    this.sql.q(`UPDATE destinations SET ${column} = ${column} + ? WHERE id = ?`).run(by, id)
    if (column === 'published_total') this.countRates(id, by, 0)
    else if (column === 'acked_total') this.countRates(id, 0, by)
  }

  /**
   * Messages published and delivered together (handed to a waiting consumer): both totals at once,
   * in the rates of the minute of `at` (when they were handed).
   */
  bumpPublishedAndAcked(id: number, by: number, at: number): void {
    this.sql
      .q('UPDATE destinations SET published_total = published_total + ?, acked_total = acked_total + ? WHERE id = ?')
      .run(by, by, id)
    this.countRates(id, by, by, at)
  }

  private countRates(id: number, published: number, acked: number, at = Date.now()): void {
    this.sql
      .q(
        `INSERT INTO rates (dest_id, minute, published, acked) VALUES (?, ?, ?, ?)
         ON CONFLICT (dest_id, minute) DO UPDATE SET published = published + excluded.published, acked = acked + excluded.acked`,
      )
      .run(id, Math.floor(at / 60_000), published, acked)
    const minute = Math.floor(Date.now() / 60_000)
    if (this.rateMinutes.get(id) !== minute) {
      this.rateMinutes.set(id, minute)
      this.sql.q('DELETE FROM rates WHERE dest_id = ? AND minute < ?').run(id, minute - RATE_MINUTES)
    }
  }

  /**
   * Publish and ack rates from the per-minute counters (the current minute counts for what has
   * passed of it). `uncounted`: counts of messages published and delivered that are not in the
   * counters yet (see Waiters.uncounted).
   */
  rates(id: number, now: number, uncounted: readonly MinuteCount[] = []): Rates {
    const minute = Math.floor(now / 60_000)
    const rows = this.sql
      .q('SELECT minute, published, acked FROM rates WHERE dest_id = ? AND minute >= ?')
      .all(id, minute - 5) as MinuteCount[]
    for (const count of uncounted) rows.push(count)
    return ratesFromMinutes(rows, now)
  }

  delete(id: number): void {
    this.sql.q('DELETE FROM destinations WHERE id = ?').run(id)
  }

  private toRow<S>(row: RawRow): DestinationRow<S> {
    return {
      id: row[0],
      name: row[1],
      kind: row[2],
      createdAt: row[3],
      settings: this.parsedSettings(row[4]) as S,
      depth: row[5],
      bytes: row[6],
      totals: {
        published: row[7],
        acked: row[8],
        deadLettered: row[9],
        dropped: row[10],
        expired: row[11],
        deduplicated: row[12],
      },
    }
  }

  /**
   * A destination's settings from their stored text, parsed once per text (a publish reads its
   * destination every time; settings change rarely). Frozen, since every reader of that text
   * shares the object: a change is made on a copy and saved (saveSettings).
   */
  private parsedSettings(text: string): unknown {
    let settings = this.settings.get(text)
    if (settings === undefined) {
      if (this.settings.size >= SETTINGS_CACHED) this.settings.clear()
      settings = Object.freeze(JSON.parse(text) as object)
      this.settings.set(text, settings)
    }
    return settings
  }
}

const MAX_VISIBILITY_MS = 12 * 3_600_000
const MAX_BODY_LIMIT = 256 * 1024 * 1024

/** Defaults < stored < given, validated. Throws InvalidInputError naming the bad setting. */
export function resolveQueueSettings(
  name: string,
  given: Partial<QueueSettings>,
  base: QueueSettings = {...DEFAULT_QUEUE_SETTINGS, deadLetterQueue: defaultDeadLetterQueue(name)},
): QueueSettings {
  const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) as Partial<QueueSettings>
  const s: QueueSettings = {...base, ...defined}
  const bad = (setting: string, why: string): never => {
    throw new InvalidInputError(`invalid ${setting} for queue ${name}: ${why}`)
  }
  if (!(s.visibilityTimeoutMs >= 1 && s.visibilityTimeoutMs <= MAX_VISIBILITY_MS))
    bad('visibility timeout', 'use 1ms to 12h')
  if (!Number.isInteger(s.maxDeliveries) || s.maxDeliveries < 1) bad('max deliveries', 'use a whole number ≥ 1')
  if (!Number.isInteger(s.maxBodyBytes) || s.maxBodyBytes < 1 || s.maxBodyBytes > MAX_BODY_LIMIT)
    bad('max body size', 'use 1 byte to 256 MiB')
  if (s.deadLetterQueue === name) bad('dead-letter queue', 'a queue cannot be its own dead-letter queue')
  if (s.deadLetterQueue !== null) {
    try {
      validateName(s.deadLetterQueue, 'dead-letter queue name')
    } catch (error) {
      bad('dead-letter queue', (error as Error).message)
    }
  }
  if (!(s.retryBackoffMs >= 0) || !(s.retryBackoffMaxMs >= s.retryBackoffMs))
    bad('retry backoff', 'the maximum must be ≥ the base')
  if (s.maxLength !== null && (!Number.isInteger(s.maxLength) || s.maxLength < 1))
    bad('max length', 'use a whole number ≥ 1')
  if (s.maxBytes !== null && (!Number.isInteger(s.maxBytes) || s.maxBytes < 1))
    bad('max bytes', 'use a whole number ≥ 1')
  if (!['reject', 'drop-oldest', 'block'].includes(s.overflow))
    bad('overflow policy', 'use reject, drop-oldest or block')
  if (s.defaultTtlMs !== null && !(s.defaultTtlMs >= 1)) bad('default TTL', 'use a positive duration')
  if (!(s.dedupWindowMs >= 0)) bad('dedup window', 'use a duration ≥ 0')
  return s
}

/** Defaults < stored < given, validated. Throws InvalidInputError naming the bad setting. */
export function resolveTopicSettings(
  name: string,
  given: Partial<TopicSettings>,
  base: TopicSettings = DEFAULT_TOPIC_SETTINGS,
): TopicSettings {
  const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) as Partial<TopicSettings>
  const s: TopicSettings = {...base, ...defined}
  const bad = (setting: string, why: string): never => {
    throw new InvalidInputError(`invalid ${setting} for topic ${name}: ${why}`)
  }
  if (!(s.maxAgeMs >= 1)) bad('max age', 'use a positive duration')
  if (s.maxMessages !== null && (!Number.isInteger(s.maxMessages) || s.maxMessages < 1))
    bad('max messages', 'use a whole number ≥ 1')
  if (s.maxBytes !== null && (!Number.isInteger(s.maxBytes) || s.maxBytes < 1))
    bad('max bytes', 'use a whole number ≥ 1')
  if (!Number.isInteger(s.maxBodyBytes) || s.maxBodyBytes < 1 || s.maxBodyBytes > 256 * 1024 * 1024)
    bad('max body size', 'use 1 byte to 256 MiB')
  if (!(s.dedupWindowMs >= 0)) bad('dedup window', 'use a duration ≥ 0')
  return s
}
