import type {Statement} from 'better-sqlite3'

import {closeSync, writeSync} from 'node:fs'

import {type Db, storeError} from '../store/database.js'
import {openSignalFile} from './change-notifier.js'

const SIGNAL_BYTE = Buffer.from('.')

/** Rows per multi-row INSERT; chunks of other sizes (the tail of a batch) get their own statement. */
const MULTI_ROW = 64

/**
 * A connection with a statement cache and write transactions that always start with
 * `BEGIN IMMEDIATE`, so concurrent processes queue on the write lock instead of failing with
 * SQLITE_BUSY half-way through a read-then-write.
 */
export class Sql {
  private readonly statements = new Map<string, Statement>()
  private signalFd?: number | false

  constructor(
    readonly db: Db,
    private readonly where: string,
    /** Touched after every commit that changed something, to wake waiting consumers. */
    private readonly signalFile?: string,
  ) {}

  /** A prepared statement, compiled once per connection. */
  q(source: string): Statement {
    let statement = this.statements.get(source)
    if (!statement) {
      statement = this.db.prepare(source)
      this.statements.set(source, statement)
    }
    return statement
  }

  /**
   * Inserts many rows into `messages`, 64 per statement (about twice as fast as one by one), and
   * returns their ids. Inside the write transaction nobody else inserts, so the ids of one
   * multi-row INSERT are consecutive and end at `lastInsertRowid`.
   */
  insertMessages(columns: readonly string[], rows: unknown[][]): number[] {
    const ids: number[] = []
    const placeholders = `(${columns.map(() => '?').join(', ')})`
    for (let start = 0; start < rows.length; start += MULTI_ROW) {
      const chunk = rows.slice(start, start + MULTI_ROW)
      const statement = this.q(`INSERT INTO messages (${columns.join(', ')}) VALUES ${Array(chunk.length).fill(placeholders).join(', ')}`)
      const last = Number(statement.run(chunk.flat()).lastInsertRowid)
      for (let id = last - chunk.length + 1; id <= last; id++) ids.push(id)
    }
    return ids
  }

  /** Every statement compiled so far (the query-plan test checks each one). */
  sources(): string[] {
    return [...this.statements.keys()]
  }

  /** Runs `fn` in one `BEGIN IMMEDIATE` transaction (nested calls join the outer one). */
  write<T>(fn: () => T): T {
    const started = Date.now()
    try {
      if (this.db.inTransaction) return fn()
      const before = this.totalChanges()
      const result = this.db.transaction(fn).immediate()
      if (this.totalChanges() !== before) this.signal()
      return result
    } catch (error) {
      throw storeError(error, this.where, Date.now() - started)
    }
  }

  private totalChanges(): number {
    return (this.q('SELECT total_changes() AS n').get() as {n: number}).n
  }

  /**
   * Writes a byte to the signal file once a commit is visible. Watching the WAL instead would wake
   * consumers too early: its frames are written before the commit's fsync, and the step that makes
   * the commit visible (the wal-index in shared memory) gives no file notification.
   */
  private signal(): void {
    if (this.signalFd === false || !this.signalFile) return
    try {
      this.signalFd ??= openSignalFile(this.signalFile)
      writeSync(this.signalFd, SIGNAL_BYTE, 0, 1, 0)
    } catch {
      this.signalFd = false // consumers fall back to their slow poll
    }
  }

  close(): void {
    if (typeof this.signalFd === 'number') closeSync(this.signalFd)
    this.signalFd = false
  }

  /** Inside a write: runs `fn` in a SAVEPOINT, so its failure undoes only its own changes. */
  savepoint<T>(fn: () => T): T {
    return this.db.transaction(fn)()
  }

  /** Runs a read outside any write lock. */
  read<T>(fn: () => T): T {
    try {
      return fn()
    } catch (error) {
      throw storeError(error, this.where)
    }
  }
}
