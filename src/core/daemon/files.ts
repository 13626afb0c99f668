import {randomBytes} from 'node:crypto'
import {chmodSync, existsSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {isSameProcessAlive, processStartTime} from '../process-alive.js'

/** The daemon's files in the broker folder, all private to the user. */
export function daemonPaths(home: string) {
  return {
    pid: join(home, 'daemon.pid'),
    socket: join(home, 'daemon.sock'),
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
  let record: PidRecord
  try {
    record = JSON.parse(readFileSync(paths.pid, 'utf8')) as PidRecord
  } catch {
    return undefined
  }
  if (isAlive(record)) return record
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

/** The HTTP bearer token, created on first use (64 hex characters, user-only permissions). */
export function daemonToken(home: string): string {
  const path = daemonPaths(home).token
  if (!existsSync(path)) writeFileSync(path, `${randomBytes(32).toString('hex')}\n`, {flag: 'wx', mode: 0o600})
  chmodSync(path, 0o600)
  return readFileSync(path, 'utf8').trim()
}
