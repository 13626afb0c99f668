import {closeSync, constants, fchmodSync, lstatSync, mkdirSync, readFileSync, rmSync, type Stats} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'

import {isMqError, StoreError} from '../errors.js'
import {lazyCrypto} from '../lazy-require.js'
import {openNoFollow, readNoFollow, refuseLinks, writeNoFollow} from '../no-follow.js'
import {isSameProcessAlive, processStartTime} from '../process-alive.js'

/** Unix socket paths longer than this are cut by the kernel (108 bytes on Linux, 104 on macOS). */
const MAX_SOCKET_PATH = 100

/**
 * Where the sockets of deep broker folders go: a folder in the temp folder that only this user
 * can enter. The temp folder is shared, so the socket never sits in it directly (anyone could
 * bind a look-alike there first); the folder is checked before each use (see privateFolderProblem).
 */
export function socketFolder(): string {
  return join(tmpdir(), `mqctl-${process.getuid?.() ?? 'u'}`)
}

/** The daemon's files in the broker folder, all private to the user. */
export function daemonPaths(home: string) {
  const inHome = join(home, 'daemon.sock')
  // A deep broker folder gets its socket in the user's private socket folder, named after the broker folder.
  const socket =
    inHome.length <= MAX_SOCKET_PATH
      ? inHome
      : join(socketFolder(), `${lazyCrypto().createHash('sha256').update(home).digest('hex').slice(0, 16)}.sock`)
  return {
    pid: join(home, 'daemon.pid'),
    socket,
    log: join(home, 'daemon.log'),
    token: join(home, 'daemon.token'),
    state: join(home, 'daemon.json'),
  }
}

/** Why `stats` (from lstat) is not a folder only this user controls; undefined if it is. */
function privateFolderProblem(path: string, stats: Stats, writableOnly: boolean): string | undefined {
  const uid = process.getuid?.()
  if (uid === undefined) return undefined // no Unix users (Windows): nothing to check against
  if (stats.isSymbolicLink()) return `${path} is a symbolic link`
  if (!stats.isDirectory()) return `${path} is not a folder`
  if (stats.uid !== uid) return `${path} belongs to another user (uid ${stats.uid})`
  const open = stats.mode & (writableOnly ? 0o022 : 0o077)
  if (open !== 0) return `${path} is open to other users (mode ${(stats.mode & 0o777).toString(8)})`
  return undefined
}

/**
 * Before the daemon listens: makes sure the socket's folder is private to this user, creating
 * the shared-temp one (0700) if needed. Throws, naming the problem, rather than use a folder
 * another user made or can write to, where a look-alike socket could be planted.
 */
export function prepareSocketFolder(socket: string): void {
  const folder = dirname(socket)
  const inTemp = folder === socketFolder()
  if (inTemp) {
    try {
      mkdirSync(folder, {mode: 0o700})
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new StoreError(
          `cannot create ${folder} for the daemon's socket: ${(error as NodeJS.ErrnoException).code ?? error}`,
          {cause: error},
        )
    }
  }
  const problem = privateFolderProblem(folder, lstatSync(folder), !inTemp)
  if (problem) {
    throw new StoreError(`refusing to put the daemon's socket in ${folder}: ${problem}`, {
      hint: inTemp
        ? `remove ${folder} (another user may have made it), or use a broker folder with a shorter path`
        : 'make the broker folder private to you (chmod 700)',
    })
  }
}

/**
 * Why a client must not talk to this socket, or undefined when it may: the socket and its folder
 * must belong to this user and the folder must be closed to others, so nobody else can have
 * bound it or swapped it since. (Node cannot read the peer's credentials (SO_PEERCRED) of a
 * connection, so the file's owner stands in for them.)
 */
export function socketProblem(socket: string): string | undefined {
  const uid = process.getuid?.()
  if (uid === undefined) return undefined
  try {
    const folder = dirname(socket)
    const problem = privateFolderProblem(folder, lstatSync(folder), folder !== socketFolder())
    if (problem) return problem
    const stats = lstatSync(socket)
    if (!stats.isSocket()) return `${socket} is not a socket`
    if (stats.uid !== uid) return `${socket} belongs to another user (uid ${stats.uid})`
    return undefined
  } catch (error) {
    return `${socket}: ${(error as NodeJS.ErrnoException).code ?? error}`
  }
}

/**
 * Refuses a broker folder where a symbolic link stands in place of one of the daemon's files
 * (each is also opened without following one, see no-follow.ts).
 */
export function refuseDaemonFileLinks(home: string): void {
  const paths = daemonPaths(home)
  refuseLinks(paths.pid, paths.state, paths.token, paths.log)
}

export interface PidRecord {
  pid: number
  /** Kernel start time of the process, to tell it from a later process given the same pid. */
  started: string | null
}

/** The pid file's daemon if that process is still alive, else undefined (a stale file is removed). */
export function liveDaemon(home: string): PidRecord | undefined {
  const paths = daemonPaths(home)
  let record: PidRecord | undefined
  try {
    const text = readNoFollow(paths.pid)
    if (text === undefined) return undefined
    record = JSON.parse(text) as PidRecord
  } catch (error) {
    if (isMqError(error)) throw error // a link in its place
    record = undefined // unreadable or garbage: nobody can be named by it
  }
  if (record && Number.isInteger(record.pid) && isAlive(record)) return record
  // Left behind by a daemon that crashed: nobody owns these any more.
  rmSync(paths.pid, {force: true})
  rmSync(paths.socket, {force: true})
  return undefined
}

export function isAlive(record: PidRecord): boolean {
  return isSameProcessAlive(record.pid, record.started)
}

/**
 * Writes the pid file exclusively: fails with EEXIST when another daemon holds it, so two daemons
 * starting at once cannot both run.
 */
export function claimPidFile(home: string): void {
  const record: PidRecord = {pid: process.pid, started: processStartTime(process.pid)}
  writeNoFollow(daemonPaths(home).pid, JSON.stringify(record), {exclusive: true})
}

export function releasePidFile(home: string): void {
  const paths = daemonPaths(home)
  try {
    const record = JSON.parse(readNoFollow(paths.pid) ?? '{}') as PidRecord
    if (record.pid === process.pid) rmSync(paths.pid, {force: true})
  } catch {
    // already gone
  }
}

/** Shorter tokens (an empty file left by a crash, say) are replaced: never accept a guessable one. */
const MIN_TOKEN_LENGTH = 32

/** The HTTP bearer token, created on first use (64 hex characters, user-only permissions). */
export function daemonToken(home: string): string {
  const path = daemonPaths(home).token
  const fd = openNoFollow(path, constants.O_RDONLY | constants.O_CREAT)
  try {
    const current = readFileSync(fd, 'utf8').trim()
    if (current.length >= MIN_TOKEN_LENGTH) {
      fchmodSync(fd, 0o600) // through the descriptor: never a file a link points to
      return current
    }
  } finally {
    closeSync(fd)
  }
  // Written whole under another name, then renamed (writeNoFollow): a crash never leaves a short
  // token behind.
  const token = lazyCrypto().randomBytes(32).toString('hex')
  writeNoFollow(path, `${token}\n`)
  return token
}
