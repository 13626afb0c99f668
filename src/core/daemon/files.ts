import {createHash, randomBytes} from 'node:crypto'
import {chmodSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {isSameProcessAlive, processStartTime} from '../process-alive.js'

/** Unix socket paths longer than this are cut by the kernel (108 bytes on Linux, 104 on macOS). */
const MAX_SOCKET_PATH = 100

/** The daemon's files in the broker folder, all private to the user. */
export function daemonPaths(home: string) {
  const inHome = join(home, 'daemon.sock')
  // A deep broker folder gets its socket in the temp folder, named after the folder.
  const socket =
    inHome.length <= MAX_SOCKET_PATH
      ? inHome
      : join(tmpdir(), `mqctl-${process.getuid?.() ?? 'u'}-${createHash('sha256').update(home).digest('hex').slice(0, 16)}.sock`)
  return {
    pid: join(home, 'daemon.pid'),
    socket,
    log: join(home, 'daemon.log'),
    token: join(home, 'daemon.token'),
    state: join(home, 'daemon.json'),
  }
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
    record = JSON.parse(readFileSync(paths.pid, 'utf8')) as PidRecord
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
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
  writeFileSync(daemonPaths(home).pid, JSON.stringify(record), {flag: 'wx', mode: 0o600})
}

export function releasePidFile(home: string): void {
  const paths = daemonPaths(home)
  try {
    const record = JSON.parse(readFileSync(paths.pid, 'utf8')) as PidRecord
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
  const current = existsSync(path) ? readFileSync(path, 'utf8').trim() : ''
  if (current.length >= MIN_TOKEN_LENGTH) {
    chmodSync(path, 0o600)
    return current
  }
  // Written whole under another name, then renamed: a crash never leaves a short token behind.
  const token = randomBytes(32).toString('hex')
  const temporary = `${path}.${process.pid}`
  writeFileSync(temporary, `${token}\n`, {mode: 0o600})
  renameSync(temporary, path)
  return token
}
