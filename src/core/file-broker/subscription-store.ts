import {
  DEFAULT_QUEUE_SETTINGS,
  defaultDeadLetterQueue,
  type QueueSettings,
  type SubscriptionSettings,
} from '../broker.js'
import {compileTopicPattern, type TopicPattern} from '../names.js'
import {isSameProcessAlive, processStartTime} from '../process-alive.js'
import type {Destinations} from './destinations.js'
import {resolveQueueSettings} from './destinations.js'
import type {Sql} from './sql.js'

/** Subscriptions keep their pointer rows in a destination of their own, named so no queue can clash. */
export const subscriptionDestName = (name: string) => `@${name}`
export const subscriptionName = (destName: string) => destName.replace(/^@/, '')
/** Dead letters of ephemeral subscriptions (they have no name of their own to derive one from). */
export const EPHEMERAL_DEAD_LETTER_QUEUE = 'ephemeral.dlq'

export interface SubscriptionRow {
  destId: number
  name: string
  pattern: string
  durable: boolean
  cursor: number
  ownerPid: number | null
  ownerStarted: string | null
  createdAt: number
}

interface RawRow {
  dest_id: number
  name: string
  pattern: string
  durable: number
  cursor: number
  owner_pid: number | null
  owner_started: string | null
  created_at: number
}

/** The registry of subscriptions, durable and ephemeral, and the cleanup of dead ephemeral ones. */
export class SubscriptionStore {
  constructor(
    private readonly sql: Sql,
    private readonly destinations: Destinations,
  ) {}

  get(name: string): SubscriptionRow | undefined {
    return toRow(this.sql.q('SELECT * FROM subscriptions WHERE name = ?').get(name) as RawRow | undefined)
  }

  getByDest(destId: number): SubscriptionRow | undefined {
    return toRow(this.sql.q('SELECT * FROM subscriptions WHERE dest_id = ?').get(destId) as RawRow | undefined)
  }

  list(): SubscriptionRow[] {
    return (this.sql.q('SELECT * FROM subscriptions ORDER BY name').all() as RawRow[]).map((row) => toRow(row)!)
  }

  /** Creates a subscription and its delivery destination; call inside a write transaction. */
  create(
    name: string,
    pattern: string,
    durable: boolean,
    cursor: number,
    settings: Partial<SubscriptionSettings>,
  ): SubscriptionRow {
    const base: QueueSettings = {
      ...DEFAULT_QUEUE_SETTINGS,
      deadLetterQueue: durable ? defaultDeadLetterQueue(name) : EPHEMERAL_DEAD_LETTER_QUEUE,
    }
    const resolved = resolveQueueSettings(name, settings, base)
    this.destinations.checkDeadLetterTarget(resolved)
    const dest = this.destinations.insert(subscriptionDestName(name), 'subscription', resolved)
    const owner = durable ? {pid: null, started: null} : {pid: process.pid, started: processStartTime(process.pid)}
    this.sql
      .q(
        'INSERT INTO subscriptions (dest_id, name, pattern, durable, cursor, owner_pid, owner_started, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(dest.id, name, pattern, durable ? 1 : 0, cursor, owner.pid, owner.started, dest.createdAt)
    return this.getByDest(dest.id)!
  }

  setCursor(destId: number, cursor: number): void {
    this.sql.q('UPDATE subscriptions SET cursor = ? WHERE dest_id = ?').run(cursor, destId)
  }

  /** Deletes a subscription with its pending deliveries; call inside a write transaction. */
  delete(row: SubscriptionRow): void {
    this.sql.q('DELETE FROM messages WHERE dest_id = ? AND state = 0').run(row.destId)
    this.sql.q('DELETE FROM messages WHERE dest_id = ? AND state = 1').run(row.destId)
    this.sql.q('DELETE FROM subscriptions WHERE dest_id = ?').run(row.destId)
    this.destinations.delete(row.destId)
  }

  /** Removes ephemeral subscriptions whose process is gone (killed without cleaning up). */
  sweepDead(): number {
    const dead = this.list().filter((row) => !row.durable && !isSameProcessAlive(row.ownerPid!, row.ownerStarted))
    for (const row of dead) this.delete(row)
    return dead.length
  }

  /** Compiled patterns of the live subscriptions (to route a publish to a new name). */
  livePatterns(): TopicPattern[] {
    this.sweepDead()
    return this.list().map((row) => compileTopicPattern(row.pattern))
  }
}

function toRow(row: RawRow | undefined): SubscriptionRow | undefined {
  if (!row) return undefined
  return {
    destId: row.dest_id,
    name: row.name,
    pattern: row.pattern,
    durable: row.durable === 1,
    cursor: row.cursor,
    ownerPid: row.owner_pid,
    ownerStarted: row.owner_started,
    createdAt: row.created_at,
  }
}
