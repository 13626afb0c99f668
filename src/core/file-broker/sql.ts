import type {Statement, Transaction} from 'better-sqlite3'

import {closeSync, constants, fdatasyncSync, statfsSync, statSync, writeSync} from 'node:fs'

import {BUSY_TIMEOUT_MS, type Db, storeError} from '../store/database.js'
import {StoreError} from '../errors.js'
import {openNoFollow} from '../no-follow.js'
import {openSignalFile} from './change-notifier.js'

const SIGNAL_BYTE = Buffer.from('.')

/** How often a connection looks at the disk's free space before a write (see relieveDiskPressure). */
const DISK_CHECK_MS = 1_000
/** Below this much free space the disk is looked at before every write. */
const LOW_SPACE_BYTES = 64 * 1024 * 1024
/** A WAL smaller than this is not worth a checkpoint of its own. */
const MIN_RECLAIM_BYTES = 64 * 1024

/** Rows per multi-row INSERT; chunks of other sizes (the tail of a batch) get their own statement. */
const MULTI_ROW = 64

/**
 * A row limit bound at run time: `… ORDER BY id ${LIMIT}`. SQLite reads the value of a bare
 * `LIMIT ?` while planning, so binding it expires the statement and every run prepares it again
 * (tens of µs: about a third of a one-message receive). The cast keeps the value out of planning,
 * which changes no plan here (test/core/query-plans.test.ts checks both).
 */
export const LIMIT = 'LIMIT CAST(? AS INTEGER)'

/** Shortest and longest pause between two tries for another process's write lock (see beginWrite). */
const MIN_LOCK_PAUSE_MS = 0.05
const MAX_LOCK_PAUSE_MS = 2
/** A word to sleep on with Atomics.wait: a synchronous pause shorter than a millisecond. */
const PAUSE = new Int32Array(new SharedArrayBuffer(4))

/** What `Sql.writeIfFree` met instead of a free write lock. */
const LOCKED: unique symbol = Symbol('locked')

/**
 * Sleeps before the next try for another process's write lock, having waited `waitedMs` of at most
 * `waitMs`: a tenth of the time waited so far, from 50 µs to 2 ms (see Sql.beginWrite).
 */
export function pauseForLock(waitedMs: number, waitMs = BUSY_TIMEOUT_MS): void {
  const pause = Math.min(MAX_LOCK_PAUSE_MS, Math.max(MIN_LOCK_PAUSE_MS, waitedMs / 10))
  Atomics.wait(PAUSE, 0, 0, Math.max(0, Math.min(pause, waitMs - waitedMs)))
}

/** Whether a commit must be on disk when `Sql.write` returns; see there. */
export type Durability = 'durable' | 'lease'

/**
 * A connection with a statement cache and write transactions that always start with
 * `BEGIN IMMEDIATE`, so concurrent processes queue on the write lock instead of failing with
 * SQLITE_BUSY half-way through a read-then-write.
 */
export class Sql {
  private readonly statements = new Map<string, Statement>()
  private readonly rawStatements = new Map<string, Statement>()
  /**
   * Runs a function in a transaction (`.immediate`) or, inside one, in a savepoint. Made once:
   * better-sqlite3 builds four wrappers for every `db.transaction(fn)`, a cost on each small write.
   */
  private readonly inTransaction: Transaction<(fn: () => unknown) => unknown>
  private signalFd?: number | false
  /** The WAL, opened at the first durable write and synced after each (see syncWal). */
  private walFd?: number
  /** Whether the database is in WAL mode, where commits release the lock before their sync. */
  private readonly earlyRelease: boolean
  private nextDiskCheck = 0
  /** Whether the transaction under way must be synced when it commits (see write). */
  private syncOwed = true
  /** SQLite's count of rows this connection changed, as of its last commit (see commit). */
  private changesSeen: number

  constructor(
    readonly db: Db,
    private readonly where: string,
    /** Touched after every commit that changed something, to wake waiting consumers. */
    private readonly signalFile?: string,
  ) {
    this.inTransaction = db.transaction((fn: () => unknown) => fn())
    this.earlyRelease = db.pragma('journal_mode', {simple: true}) === 'wal'
    // Every commit from here on goes through write(), which syncs it itself (see commit). Set once:
    // a pragma is compiled anew each time it is run, two of them per write were a cost of their own.
    if (this.earlyRelease) db.pragma('synchronous = NORMAL')
    // Writes wait for the lock themselves (beginWrite); a read that meets a lock is run again with
    // SQLite's own wait (see read). Set once, for the same reason: a pragma compiled before and
    // after every write cost a one-message publish about a tenth of a millisecond (measured).
    db.pragma('busy_timeout = 0')
    this.changesSeen = this.totalChanges()
  }

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
   * Inserts one row into `messages` per id, 64 per statement (about twice as fast as one by one).
   * `row` is one row's VALUES tuple for `columns`, with a `?` for each value `fill` pushes for that
   * row and constants for what every row shares (`(?, 0, 0, ?, ?, NULL, ?, ?, NULL)`): fewer values
   * to bind. The ids go in as an `id` column before the others, unless `assigned`: then SQLite gives
   * the rows these ids itself (see reserveAppended in message-ids.ts), which spares it checking
   * that each given id is free.
   */
  insertMessages(
    columns: readonly string[],
    row: string,
    ids: readonly number[],
    fill: (index: number, values: unknown[]) => void,
    assigned = false,
  ): void {
    const count = ids.length
    const names = assigned ? columns.join(', ') : `id, ${columns.join(', ')}`
    const tuple = assigned ? row : `(?, ${row.slice(1)}`
    const statement = (rows: number) =>
      this.q(`INSERT INTO messages (${names}) VALUES ${Array(rows).fill(tuple).join(', ')}`)
    const full = statement(MULTI_ROW)
    // The values straight into one array, reused for each statement: no array per row.
    const values: unknown[] = []
    for (let start = 0; start < count; start += MULTI_ROW) {
      const rows = Math.min(MULTI_ROW, count - start)
      values.length = 0
      for (let index = start; index < start + rows; index++) {
        if (!assigned) values.push(ids[index])
        fill(index, values)
      }
      const last = Number((rows === MULTI_ROW ? full : statement(rows)).run(values).lastInsertRowid)
      if (assigned && last !== ids[start + rows - 1]) {
        throw new Error(`messages got ids up to ${last} where ${ids[start + rows - 1]} was reserved`)
      }
    }
  }

  /** As `q`, returning rows as arrays of column values (no property names to intern per row). */
  raw(source: string): Statement {
    let statement = this.rawStatements.get(source)
    if (!statement) {
      statement = this.db.prepare(source).raw()
      this.rawStatements.set(source, statement)
    }
    return statement
  }

  /** Every statement compiled so far (the query-plan test checks each one). */
  sources(): string[] {
    return [...this.statements.keys(), ...this.rawStatements.keys()]
  }

  /**
   * Runs `fn` in one `BEGIN IMMEDIATE` transaction (nested calls join the outer one). On a full
   * disk `fn` may run a second time after the first attempt was rolled back: keep its effects
   * inside the database.
   *
   * `durability`: `'durable'` (the default): the commit is on disk when `write` returns (see
   * commit). `'lease'`: it is not synced of its own — only for a transaction whose loss in a power
   * cut is harmless, as that of a manual-ack receive (ARCHITECTURE.md, "Leases are not synced"). It
   * reaches the disk with the next sync of the WAL by any connection, since WAL frames are synced
   * in order. A durable write that joins a lease transaction makes the whole transaction durable.
   *
   * `wakes`: false for a write that gives nobody anything to wait for (a consumer registering
   * itself as waiting): waiting consumers are not woken by its commit (see commit).
   */
  write<T>(fn: () => T, durability: Durability = 'durable', wakes = true): T {
    return this.writing(fn, durability, BUSY_TIMEOUT_MS, wakes) as T
  }

  /**
   * As `write`, but only if no other process holds the write lock now: undefined, having done
   * nothing, if one does. For a caller that has something better to do than wait (see
   * `FileBroker.ack`).
   */
  writeIfFree<T>(fn: () => T, durability: Durability = 'durable'): {value: T} | undefined {
    const result = this.writing(fn, durability, 0, true)
    return result === LOCKED ? undefined : {value: result as T}
  }

  /** `write` waiting up to `waitMs` for the lock (0: not at all, LOCKED when it is held). */
  private writing<T>(fn: () => T, durability: Durability, waitMs: number, wakes: boolean): T | typeof LOCKED {
    const started = Date.now()
    try {
      if (this.db.inTransaction) {
        if (durability === 'durable') this.syncOwed = true
        return fn()
      }
      this.relieveDiskPressure()
      let result: T | typeof LOCKED
      this.syncOwed = durability === 'durable'
      try {
        result = this.commit(fn, waitMs, wakes)
      } catch (error) {
        if (!isDiskFull(error) || this.db.inTransaction || !this.reclaimWal()) throw error
        result = this.commit(fn, waitMs, wakes)
      }
      // After the retry above, never inside it: a failed sync must not run `fn` again.
      if (result !== LOCKED && this.earlyRelease && this.syncOwed) this.syncWal()
      return result
    } catch (error) {
      throw storeError(error, this.where, Date.now() - started)
    }
  }

  /**
   * Commits `fn`'s transaction and signals; `write` then makes it durable. The commit itself is
   * written with `synchronous = NORMAL` (frames appended to the WAL, no sync), so the write lock
   * is released at once; then waiting consumers are signalled, and the WAL is synced
   * (`fdatasync`) before `write` returns. A caller is told of its write only once it is on disk,
   * as with `synchronous = FULL`, but other processes take their turn on the lock, and a woken
   * consumer starts its own transaction, while this sync runs. Every durable write ends with such
   * a sync, also one that changed nothing (a publish that found its dedup id already stored
   * answers from what it read): the WAL is one sequence, so a sync makes every earlier commit
   * durable too, and nobody reports what they read or wrote before the commits it depends on are
   * on disk. See ARCHITECTURE.md, "Durability".
   */
  private commit<T>(fn: () => T, waitMs: number, wakes: boolean): T | typeof LOCKED {
    const result = this.beginWrite(fn, waitMs)
    if (result === LOCKED) return result
    // Only this connection's statements move its count, so the count after the last write is the
    // count before this one (a write that failed may leave it higher: one signal too many, harmless).
    const changes = this.totalChanges()
    if (changes !== this.changesSeen) {
      this.changesSeen = changes
      if (wakes) this.signal()
    }
    return result
  }

  /**
   * Makes every commit written so far, by any process, durable: for a reader about to report what
   * another process committed and may not have synced yet (a handed message, see waiters.ts).
   * Without WAL, commits are synced inside themselves.
   */
  syncNow(): void {
    try {
      if (this.earlyRelease) this.syncWal()
    } catch (error) {
      throw storeError(error, this.where)
    }
  }

  /**
   * Syncs the WAL: every commit written to it so far, by any process, is on disk after this. A
   * failure is reported as the write's (it may be visible to others but not on disk: like a
   * publish whose answer was lost, doing it again may make a duplicate).
   */
  private syncWal(): void {
    try {
      // The WAL stays the same file while this connection is open (SQLite deletes it only when the
      // last connection closes), so one descriptor serves the connection's life.
      this.walFd ??= openNoFollow(`${this.db.name}-wal`, constants.O_RDONLY)
      fdatasyncSync(this.walFd)
    } catch (error) {
      if (error instanceof StoreError) throw error // a link in the WAL's place
      const {code, message} = error as NodeJS.ErrnoException
      throw new StoreError(`the last write to ${this.where} may not be on disk: syncing its WAL failed (${message})`, {
        cause: error,
        code: code === 'ENOSPC' ? 'disk_full' : 'io',
        hint: 'check the disk; what the command did may or may not have been kept',
      })
    }
  }

  /**
   * Runs `fn` in a `BEGIN IMMEDIATE` transaction, waiting for another process's write lock
   * itself. SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 … 100 ms between tries, so
   * two processes taking turns (`consume --ack manual | … | mq ack`) spent half their time asleep
   * on locks held for a few milliseconds. Here the lock is tried with the busy handler off and tried
   * again after a pause of a tenth of the time waited so far (50 µs to 2 ms): at most about a
   * tenth late, in a few dozen tries per wait. After `waitMs` (BUSY_TIMEOUT_MS for `write`) the
   * lock error goes up as before; with `waitMs` 0, LOCKED comes back at once instead. Only the BEGIN
   * is retried: once `fn` ran, its failure is final.
   */
  private beginWrite<T>(fn: () => T, waitMs: number): T | typeof LOCKED {
    let entered = false
    const body = () => {
      entered = true
      return fn()
    }
    const started = performance.now()
    for (;;) {
      try {
        return this.inTransaction.immediate(body) as T
      } catch (error) {
        const waited = performance.now() - started
        if (entered || !isBusy(error)) throw error
        if (waitMs === 0) return LOCKED
        if (waited >= waitMs) throw error
        pauseForLock(waited, waitMs)
      }
    }
  }

  /**
   * Runs `fn` with SQLite's busy handler on (BUSY_TIMEOUT_MS): for the few operations that wait
   * for a lock without beginWrite's loop, a read that met one (see read) and a checkpoint.
   */
  private withSqliteWait<T>(fn: () => T): T {
    // Not a statement kept prepared: SQLite applies this pragma when it is prepared.
    this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`)
    try {
      return fn()
    } finally {
      this.db.pragma('busy_timeout = 0')
    }
  }

  /**
   * Before a write (once a second; every time while space is low): when the WAL outgrows an
   * eighth of the free space, empty it into the database while there is still room to (see
   * reclaimWal). A checkpoint needs room for the pages it copies; kept small this way, the WAL can
   * be emptied with a little freed space after the disk filled up, and consumers work again.
   */
  private relieveDiskPressure(): void {
    const now = Date.now()
    if (now < this.nextDiskCheck) return
    this.nextDiskCheck = now + DISK_CHECK_MS
    try {
      const disk = statfsSync(this.db.name)
      const free = disk.bavail * disk.bsize
      if (free >= LOW_SPACE_BYTES) return
      this.nextDiskCheck = 0
      const walBytes = statSync(`${this.db.name}-wal`, {throwIfNoEntry: false})?.size ?? 0
      if (walBytes >= MIN_RECLAIM_BYTES && walBytes > free / 8) this.reclaimWal()
    } catch {
      // Only an optimisation: the write goes ahead and reports a full disk itself.
    }
  }

  /**
   * On a full disk: copies the WAL into the database and truncates it to nothing. While some
   * connection stays open (the daemon, a follower) SQLite never deletes the WAL, and it is only
   * checkpointed every 1000 pages, so on a small disk it fills the space with superseded pages;
   * even a delete (an ack) needs room in it. The database itself grows only by the pages the WAL
   * changed, so a little freed space gives a lot back. True when the WAL was emptied.
   */
  private reclaimWal(): boolean {
    try {
      const [result] = this.withSqliteWait(() => this.db.pragma('wal_checkpoint(TRUNCATE)')) as {
        busy: number
        log: number
      }[]
      return result.busy === 0
    } catch {
      return false
    }
  }

  private totalChanges(): number {
    return this.q('SELECT total_changes()').pluck().get() as number
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
    if (this.walFd !== undefined) closeSync(this.walFd)
    this.walFd = undefined
  }

  /**
   * As `read`, for reads that must all see one state of the broker: in one read transaction
   * (BEGIN … COMMIT), which in WAL mode holds up no writer; each statement of a plain `read` sees
   * the commits made before it.
   */
  snapshot<T>(fn: () => T): T {
    return this.read(() => this.inTransaction.deferred(fn) as T)
  }

  /** Inside a write: runs `fn` in a SAVEPOINT, so its failure undoes only its own changes. */
  savepoint<T>(fn: () => T): T {
    return this.inTransaction(fn) as T
  }

  /**
   * Runs a read outside any write lock. In WAL mode an open connection's read rarely meets a lock
   * (while another connection recovers the WAL after a crash); without WAL, during any commit.
   * Then `fn` is run again with SQLite's busy handler on, which waits up to BUSY_TIMEOUT_MS: `fn`
   * must only read.
   */
  read<T>(fn: () => T): T {
    try {
      try {
        return fn()
      } catch (error) {
        if (!isBusy(error) || this.db.inTransaction) throw error
        return this.withSqliteWait(fn)
      }
    } catch (error) {
      throw storeError(error, this.where)
    }
  }
}

function isBusy(error: unknown): boolean {
  const code = (error as {code?: unknown}).code
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY')
}

function isDiskFull(error: unknown): boolean {
  const code = (error as {code?: unknown}).code
  return code === 'SQLITE_FULL' || code === 'ENOSPC'
}
