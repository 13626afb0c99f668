import {backoffDelayMs} from './backoff.js'
import {isMqError} from './errors.js'
import {sleep} from './rate-limiter.js'

/** How long a writer waits for another process's write lock before giving up (at least 5 s; ARCHITECTURE.md, "The file broker"). */
export const BUSY_TIMEOUT_MS = 10_000

/** First pause after a failed attempt; doubles (with jitter) up to the maximum. */
const FIRST_PAUSE_MS = 100
const MAX_PAUSE_MS = 2_000

/**
 * True for "another process held the broker's write lock past the busy timeout", raised by the
 * folder (StoreError) or relayed by the daemon (its error code). Nothing was written by the
 * attempt that failed this way, so it is always safe to try it again.
 */
export function isLockedError(error: unknown): boolean {
  return isMqError(error) && error.code === 'busy'
}

export interface LockWaiterOptions {
  /** Stop waiting once this aborts (a second Ctrl-C): the lock error is thrown. */
  signal?: AbortSignal
  /**
   * Called when a wait begins after the broker was last usable (once per episode, not per retry),
   * with the error that started it: a held write lock, or a networked broker that stopped answering.
   */
  onWait?: (error: unknown) => void
}

/** What a waiter retries: by default, a write lock held by another process. */
export type Retryable = (error: unknown) => boolean

/**
 * How a long-running command (a follower, an `--exec` worker, a `--lines` stream) rides out an
 * outage: a write lock held by another process past the busy timeout (a backup, a `sqlite3`
 * shell, a long checkpoint), or a networked broker that stops answering (a cluster electing a
 * leader, a server restarting). It retries with backoff instead of exiting. One-shot commands do
 * not use it; they fail after their timeout.
 */
export class LockWaiter {
  private waiting = false

  constructor(private readonly options: LockWaiterOptions = {}) {}

  /**
   * Runs `operation`, and again after a pause each time it fails in a way `retryable` accepts (by
   * default the lock), until it succeeds, fails otherwise, or the waiter's signal (or `signal`,
   * for this call only) aborts.
   */
  async run<T>(
    operation: () => T | Promise<T>,
    signal?: AbortSignal,
    retryable: Retryable = isLockedError,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await operation()
        this.waiting = false
        return result
      } catch (error) {
        if (!retryable(error) || this.options.signal?.aborted || signal?.aborted) throw error
        if (!this.waiting) {
          this.waiting = true
          this.options.onWait?.(error)
        }
        const stop =
          signal && this.options.signal
            ? AbortSignal.any([signal, this.options.signal])
            : (signal ?? this.options.signal)
        await sleep(backoffDelayMs(FIRST_PAUSE_MS, MAX_PAUSE_MS, attempt), stop)
        if (this.options.signal?.aborted || signal?.aborted) throw error
      }
    }
  }
}
