import Database from 'better-sqlite3'
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
} from 'node:fs'
import {dirname, join, resolve} from 'node:path'

import {StoreError} from '../errors.js'
import {requireLazily} from '../lazy-require.js'
import {BUSY_TIMEOUT_MS} from '../lock-wait.js'
import {MIGRATIONS} from './migrations.js'

export type Db = Database.Database

/** Marks a SQLite file as an mqctl broker ("MQCL"), so a foreign database is refused, not altered. */
const APPLICATION_ID = 0x4d51434c
export const DB_FILE = 'broker.db'
export {BUSY_TIMEOUT_MS} from '../lock-wait.js'

/** A WAL grown by a large write is truncated to this at its next checkpoint. */
const WAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024

/**
 * Page cache per connection, in KiB (SQLite's own default; better-sqlite3 raises it to 16 MiB).
 * mqctl's statements touch the two ends of a few B-trees, and another process's commit empties
 * the cache anyway: a bigger one only grows the memory of a long `publish --lines`, which fills it
 * with pages it wrote and never reads again.
 */
const CACHE_KIB = 2_000

let closeAtRelease = true

// Set by scripts/bundle.ts to the version of the better-sqlite3 it put into the fast launcher's
// bundle; elsewhere (dist/, the tests) it does not exist and the import above is the installed package.
declare const __BUNDLED_BETTER_SQLITE3__: string | undefined

let sqlite: {Database: typeof Database; nativeBinding?: string} | undefined

/**
 * better-sqlite3's Database, and where its native addon is: named by path when it sits where npm
 * builds it, which skips the `bindings` package's search of a dozen places (elsewhere
 * better-sqlite3 searches as usual). The addon loads with the first database, so a command on a
 * nats:// or amqp:// broker never loads it. The fast launcher's bundle carries better-sqlite3's
 * JavaScript; it is used only with the addon of the same version, else the installed package is.
 */
function loadSqlite(): {Database: typeof Database; nativeBinding?: string} {
  if (!sqlite) {
    const root = join(dirname(requireLazily.resolve('better-sqlite3')), '..')
    const addon = join(root, 'build', 'Release', 'better_sqlite3.node')
    const nativeBinding = existsSync(addon) ? addon : undefined
    const bundled = typeof __BUNDLED_BETTER_SQLITE3__ === 'string' ? __BUNDLED_BETTER_SQLITE3__ : undefined
    sqlite =
      bundled === undefined || (nativeBinding !== undefined && installedVersion(root) === bundled)
        ? {Database, nativeBinding}
        : {Database: requireLazily('better-sqlite3') as typeof Database}
  }
  return sqlite
}

function installedVersion(root: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {version?: string}).version
  } catch {
    return undefined
  }
}

/**
 * For a process that exits as soon as its command is done (the fast launcher then calls
 * process.exit, which skips better-sqlite3's close-at-exit hook): leave the connection open.
 *
 * Closing the last connection checkpoints the WAL into broker.db and deletes it, and the next
 * process re-creates it: 4 fsyncs on top of the commit's own. Left open, the WAL and its index stay
 * on disk as after a crash, which SQLite is built for; the next process appends to the WAL, and
 * checkpoints happen only when the WAL reaches wal_autocheckpoint pages (1,000), inside some commit.
 * Durability does not change: each write still fsyncs the WAL before it returns (Sql.write; see
 * ARCHITECTURE.md, "Durability"), and a checkpoint fsyncs broker.db before the WAL is reused.
 */
export function leaveOpenAtExit(): void {
  closeAtRelease = false
}

/** Closes the connection, unless the process is about to exit (see {@link leaveOpenAtExit}). */
export function closeDatabase(db: Db): void {
  if (closeAtRelease) db.close()
}

export interface OpenOptions {
  /** Create the folder and database when missing (default true). */
  create?: boolean
}

/**
 * Opens (creating if needed) the broker database in `home`: WAL, synchronous=FULL (Sql.write
 * commits with NORMAL and syncs itself), busy timeout,
 * migrations. Every failure becomes a StoreError that names the folder and what to do.
 */
export function openDatabase(home: string, options: OpenOptions = {}): Db {
  const file = join(home, DB_FILE)
  checkFolder(home, options.create ?? true)
  const isNew = !existsSync(file)
  if (!isNew) checkHeader(file)
  let db: Db
  try {
    const sqlite = loadSqlite()
    db = new sqlite.Database(file, {fileMustExist: !(options.create ?? true), nativeBinding: sqlite.nativeBinding})
  } catch (error) {
    throw storeError(error, home)
  }
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`)
    // Identify the file before changing anything: a foreign database is refused as it was found.
    const version = checkIdentity(db, home)
    // SQLite creates -wal and -shm with the main file's permissions, so this keeps them private too
    // (also for an empty file someone else created: it becomes a broker now).
    if (isNew || version === 0) chmodSync(file, 0o600)
    if (db.pragma('journal_mode', {simple: true}) !== 'wal') db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    // The WAL outlives one-shot processes (see closeDatabase): once checkpointed, cut it back to this.
    db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`)
    db.pragma(`cache_size = -${CACHE_KIB}`)
    migrate(db, version)
    return db
  } catch (error) {
    db.close()
    throw storeError(error, home)
  }
}

function checkFolder(home: string, create: boolean): void {
  let stats
  try {
    stats = statSync(home)
  } catch {
    if (!create)
      throw new StoreError(`no broker at ${home}`, {
        code: 'no_broker',
        hint: 'publish a message or run `mq queue create` to make one',
      })
    try {
      makeFolders(home)
    } catch (error) {
      throw new StoreError(
        `cannot create the broker folder ${home}: ${(error as NodeJS.ErrnoException).code ?? error}`,
        {
          cause: error,
          hint: 'choose a writable folder with --home or MQ_HOME',
        },
      )
    }
    return
  }
  if (!stats.isDirectory()) {
    throw new StoreError(`${home} is not a folder`, {
      code: 'not_a_broker',
      hint: 'point --home or MQ_HOME at a broker folder',
    })
  }
}

/**
 * `mkdir -p`, one level at a time. Node's recursive mkdir never returns on a pseudo-filesystem
 * such as /proc, where creating an entry fails with ENOENT while its parent exists.
 */
function makeFolders(path: string): void {
  const missing: string[] = []
  for (let dir = resolve(path); !existsSync(dir) && dirname(dir) !== dir; dir = dirname(dir)) missing.push(dir)
  for (const dir of missing.reverse()) mkdirSync(dir, {mode: 0o700})
}

/** Refuses a file that is not SQLite before SQLite gets a chance to treat it as empty. */
function checkHeader(file: string): void {
  let fd: number | undefined
  try {
    fd = openSync(file, constants.O_RDONLY)
    const header = Buffer.alloc(16)
    const read = readSync(fd, header, 0, 16, 0)
    if (read > 0 && header.toString('latin1', 0, 15) !== 'SQLite format 3') {
      throw new StoreError(`${file} is not a broker database (corrupted or foreign file)`, {
        code: 'corrupt',
        hint: 'move it away or restore it from a backup; mqctl will not overwrite it',
      })
    }
  } catch (error) {
    if (error instanceof StoreError) throw error
    throw storeError(error, file)
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/** Refuses (reading only) a database that is not an mqctl broker or is too new; returns its schema version. */
function checkIdentity(db: Db, home: string): number {
  // One read transaction, so the three reads see one state: read apart, another process creating
  // the broker could commit between them (no id yet, then tables) and a new broker would look foreign.
  const {appId, version, tables} = db.transaction(() => ({
    appId: db.pragma('application_id', {simple: true}) as number,
    version: db.pragma('user_version', {simple: true}) as number,
    tables: (db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'").get() as {n: number}).n,
  }))()
  if (appId !== APPLICATION_ID) {
    if (appId !== 0 || tables > 0) {
      throw new StoreError(`${join(home, DB_FILE)} is an SQLite database but not an mqctl broker`, {
        code: 'not_a_broker',
        hint: 'use another --home folder',
      })
    }
  }
  if (version > MIGRATIONS.length) {
    throw new StoreError(`the broker in ${home} was written by a newer mqctl (schema ${version})`, {
      code: 'too_new',
      hint: 'upgrade mqctl',
    })
  }
  return version
}

function migrate(db: Db, version: number): void {
  if (version === MIGRATIONS.length) return
  db.transaction(() => {
    // Re-read inside the write lock: another process may have migrated meanwhile.
    const current = db.pragma('user_version', {simple: true}) as number
    for (let v = current; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v])
    db.pragma(`application_id = ${APPLICATION_ID}`)
    db.pragma(`user_version = ${MIGRATIONS.length}`)
  }).immediate()
}

/**
 * Maps a SQLite or file-system failure to a StoreError with a next step. `waitedMs`: how long the
 * failed operation ran, so a lock error says how long it really waited.
 */
export function storeError(error: unknown, where: string, waitedMs = BUSY_TIMEOUT_MS): unknown {
  if (error instanceof StoreError) return error
  const code = (error as {code?: string}).code ?? ''
  // Programming errors (TypeError and the like) must surface as themselves, not as a store problem.
  if (!code.startsWith('SQLITE_') && !/^E[A-Z]+$/.test(code)) return error
  const message = (error as Error).message ?? String(error)
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) {
    return new StoreError(`the broker database in ${where} is corrupted (${message})`, {
      cause: error,
      code: 'corrupt',
      hint: 'restore broker.db from a backup or move it away to start afresh',
    })
  }
  if (
    code.startsWith('SQLITE_READONLY') ||
    code.startsWith('SQLITE_CANTOPEN') ||
    ['SQLITE_PERM', 'SQLITE_AUTH', 'EACCES', 'EPERM', 'EROFS'].includes(code)
  ) {
    return new StoreError(`the broker folder ${where} is not writable (${message})`, {
      cause: error,
      code: 'read_only',
      hint: 'fix its permissions or choose another folder with --home',
    })
  }
  if (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY')) {
    return lockedError(where, waitedMs, error)
  }
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') {
    return new StoreError(`the disk holding ${where} is full`, {
      cause: error,
      code: 'disk_full',
      hint: 'free some space and retry',
    })
  }
  if (code.startsWith('SQLITE_IOERR') || /^E[A-Z]+$/.test(code)) {
    return new StoreError(`I/O error on the broker in ${where} (${message})`, {
      cause: error,
      code: 'io',
      hint: 'check the disk and the folder',
    })
  }
  return new StoreError(`broker error in ${where}: ${message}`, {cause: error})
}

/** Another process held the write lock past the busy timeout; `waitedMs`: how long we waited in all. */
export function lockedError(where: string, waitedMs: number, cause?: unknown): StoreError {
  const locked =
    waitedMs >= 1_000
      ? `stayed locked by another process for ${Math.round(waitedMs / 1000)}s`
      : 'is locked by another process'
  return new StoreError(`the broker in ${where} ${locked}`, {
    cause,
    code: 'busy',
    hint: 'retry, or look for the process holding it (a backup, a sqlite3 shell, a stuck mqctl)',
  })
}
