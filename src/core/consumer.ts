import type {Delivery, ReceiveOptions} from './broker.js'
import {type MonotonicClock, monotonicNow} from './clock.js'
import {type RateLimiter, sleep} from './rate-limiter.js'

/** Receives from one source (a queue, or a subscription); the consumer loops do not care which. */
export type ReceiveFn = (options: ReceiveOptions) => Promise<Delivery[]>

/** Stand-in for "wait forever" in follow mode; the receive loop wakes on changes anyway. */
export const FOREVER_MS = 24 * 3_600_000
/** How often a consumer whose window is full checks whether its deliveries were settled. */
const WINDOW_POLL_MS = 100

export interface ConsumeLoopOptions {
  /** Messages to take before stopping (`Infinity`: no limit, with `follow`). */
  count: number
  /** Keep consuming until interrupted. */
  follow: boolean
  /** Long poll: wait up to this long for the `count` messages (0 = take what is there). */
  waitMs: number
  pollIntervalMs?: number
  autoAck: boolean
  visibilityTimeoutMs?: number
  /** Largest batch per receive (default 500). */
  batchSize?: number
  /** Sliding window: at most this many unacked deliveries held at once. */
  prefetch?: number
  /** Paces deliveries. */
  rate?: RateLimiter
  signal?: AbortSignal
  /** Measures the `--wait` deadline (default: the monotonic clock; tests inject a fake one). */
  clock?: MonotonicClock
  /** See ReceiveOptions.onHandOff: the batch is yielded all the same, afterwards. */
  onHandOff?: (deliveries: Delivery[]) => void
}

/** How long the next receive may wait: until the deadline (on `clock`), or forever when following. */
export function waitBudget(options: Pick<ConsumeLoopOptions, 'follow' | 'clock'>, deadline: number): number {
  return options.follow ? FOREVER_MS : Math.max(0, deadline - (options.clock ?? monotonicNow)())
}

/**
 * Yields batches of deliveries until `count` is reached, the wait runs out, or the signal aborts.
 * `waitMs` is a deadline for the whole count: each receive returns as soon as messages arrive, and
 * the loop stops once `count` arrived or the deadline passed. With `follow` there is no deadline:
 * it stops after `count` (as `nats --count` and `kcat -c` do), or never when that is Infinity.
 * With `prefetch` and manual acks, no more than that many deliveries are held unacked: the loop
 * waits (asking `stillLeased`) until other processes settle some of them.
 */
export async function* deliveryBatches(
  receive: ReceiveFn,
  options: ConsumeLoopOptions,
  stillLeased?: (receipts: string[]) => Promise<boolean[]>,
): AsyncGenerator<Delivery[]> {
  let remaining = options.count
  const clock = options.clock ?? monotonicNow
  const deadline = clock() + options.waitMs
  let held: string[] = []
  // With --wait the whole run is bounded (also when messages keep coming, e.g. under --rate);
  // without it the loop takes what is there now.
  const pastDeadline = () => !options.follow && options.waitMs > 0 && clock() >= deadline
  while (remaining > 0 && !options.signal?.aborted && !pastDeadline()) {
    let max = Math.min(remaining, options.batchSize ?? 1000, options.prefetch ?? Number.POSITIVE_INFINITY)
    if (options.prefetch !== undefined && !options.autoAck && stillLeased) {
      held = await settleWindow(held, options.prefetch, stillLeased, options.signal)
      max = Math.min(max, options.prefetch - held.length)
      if (max <= 0) return // aborted while the window was full
    }
    const granted = options.rate ? await options.rate.take(max, options.signal) : max
    if (granted === 0 || pastDeadline()) {
      options.rate?.giveBack(granted)
      return
    }
    const batch = await receive({
      max: granted,
      autoAck: options.autoAck,
      visibilityTimeoutMs: options.visibilityTimeoutMs,
      waitMs: waitBudget(options, deadline),
      pollIntervalMs: options.pollIntervalMs,
      signal: options.signal,
      onHandOff: options.onHandOff,
    })
    options.rate?.giveBack(granted - batch.length)
    if (batch.length === 0) {
      if (options.follow) continue
      return
    }
    remaining -= batch.length
    for (const delivery of batch) if (delivery.receipt) held.push(delivery.receipt)
    yield batch
  }
}

/** Waits until fewer than `window` of the held receipts are still leased; returns those that are. */
async function settleWindow(
  held: string[],
  window: number,
  stillLeased: (receipts: string[]) => Promise<boolean[]>,
  signal?: AbortSignal,
): Promise<string[]> {
  let current = held
  while (current.length >= window && !signal?.aborted) {
    const leased = await stillLeased(current)
    current = current.filter((_, index) => leased[index])
    if (current.length >= window) await sleep(WINDOW_POLL_MS, signal)
  }
  return current
}
