import {lstatSync, rmSync} from 'node:fs'

import {monotonicNow} from './clock.js'
import {isMqError, StoreError} from './errors.js'
import {linkRefused, readNoFollow, writeNoFollow} from './no-follow.js'
import {isProcessAlive} from './process-alive.js'
import {sleep} from './rate-limiter.js'

/** A lock older than this whose owner cannot be checked is taken to be left by a crash. */
const STALE_LOCK_MS = 30_000

/**
 * Runs `fn` holding `<path>.lock` (created exclusively, holding our pid), so read-modify-write
 * edits of a small file by several processes cannot lose each other's changes. A lock left by a
 * process that died is taken over.
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const lock = `${path}.lock`
  const deadline = monotonicNow() + timeoutMs
  for (;;) {
    try {
      writeNoFollow(lock, String(process.pid), {exclusive: true})
      break
    } catch (error) {
      if (isMqError(error)) throw error
      // A link in the lock's place would never go away by itself (nor must it be read through).
      if (lstatSync(lock, {throwIfNoEntry: false})?.isSymbolicLink()) throw linkRefused(lock)
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new StoreError(`cannot lock ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`, {
          cause: error,
          hint: 'check the folder permissions',
        })
      }
      if (isStale(lock)) {
        rmSync(lock, {force: true})
        continue
      }
      if (monotonicNow() > deadline)
        throw new StoreError(`${path} stayed locked by another process`, {
          hint: `if no mqctl is editing it, remove ${lock}`,
        })
      await sleep(20)
    }
  }
  try {
    return await fn()
  } finally {
    rmSync(lock, {force: true})
  }
}

function isStale(lock: string): boolean {
  try {
    const text = readNoFollow(lock)
    if (text === undefined) return false
    const pid = Number(text)
    if (Number.isInteger(pid) && pid > 0) return !isProcessAlive(pid)
    return Date.now() - lstatSync(lock).mtimeMs > STALE_LOCK_MS
  } catch {
    return false // it went away: try again
  }
}
