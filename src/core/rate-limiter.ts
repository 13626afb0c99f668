import {type MonotonicClock, monotonicNow} from './clock.js'
import {InvalidInputError} from './errors.js'

/**
 * A token bucket: `take` hands out up to the tokens accumulated at `perSecond`, waiting when none
 * are left. The bucket holds a tenth of a second's worth (at least one), so a consumer asking for
 * 50/s gets 50/s, not a burst followed by silence.
 */
export class RateLimiter {
  private tokens = 1
  private last: number
  private readonly capacity: number

  /**
   * @param now elapsed time in ms (default: the monotonic clock, so a step of the system clock
   *   neither stalls the limiter for the step's length nor lets a burst through)
   */
  constructor(
    readonly perSecond: number,
    private readonly now: MonotonicClock = monotonicNow,
  ) {
    this.capacity = Math.max(1, perSecond / 10)
    this.last = now()
  }

  /** Waits for at least one token and takes up to `max`; 0 if aborted first. */
  async take(max: number, signal?: AbortSignal): Promise<number> {
    for (;;) {
      this.refill()
      if (this.tokens >= 1) {
        const granted = Math.min(max, Math.floor(this.tokens))
        this.tokens -= granted
        return granted
      }
      if (signal?.aborted) return 0
      await sleep(((1 - this.tokens) / this.perSecond) * 1000, signal)
    }
  }

  /** Returns tokens taken but not used (fewer messages arrived than asked for). */
  giveBack(count: number): void {
    this.tokens = Math.min(this.capacity, this.tokens + count)
  }

  private refill(): void {
    const now = this.now()
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.perSecond)
    this.last = now
  }
}

/** Parses `50/s`, `300/m`, `1000/h` or a bare number per second. */
export function parseRate(text: string, flag = '--rate'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*(s|m|h))?\s*$/.exec(text)
  const perSecond = match ? Number(match[1]) / {s: 1, m: 60, h: 3600}[(match[2] ?? 's') as 's' | 'm' | 'h'] : Number.NaN
  if (!(perSecond > 0) || !Number.isFinite(perSecond)) {
    throw new InvalidInputError(`invalid ${flag} "${text}"`, {hint: 'use a rate such as 50/s, 300/m or 1000/h'})
  }
  return perSecond
}

export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 || signal?.aborted) return
  await new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, {once: true})
  })
}
