import type {Statement} from 'better-sqlite3'

import {type Db, storeError} from '../store/database.js'

/**
 * A connection with a statement cache and write transactions that always start with
 * `BEGIN IMMEDIATE`, so concurrent processes queue on the write lock instead of failing with
 * SQLITE_BUSY half-way through a read-then-write.
 */
export class Sql {
  private readonly statements = new Map<string, Statement>()

  constructor(
    readonly db: Db,
    private readonly where: string,
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

  /** Every statement compiled so far (the query-plan test checks each one). */
  sources(): string[] {
    return [...this.statements.keys()]
  }

  /** Runs `fn` in one `BEGIN IMMEDIATE` transaction (nested calls join the outer one). */
  write<T>(fn: () => T): T {
    try {
      if (this.db.inTransaction) return fn()
      return this.db.transaction(fn).immediate()
    } catch (error) {
      throw storeError(error, this.where)
    }
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
