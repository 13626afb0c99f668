import type {Delivery, ReceiveOptions} from './broker.js'

/** Receives from one source (a queue, or a subscription); the consumer loops do not care which. */
export type ReceiveFn = (options: ReceiveOptions) => Promise<Delivery[]>

/** Stand-in for "wait forever" in follow mode; the receive loop wakes on changes anyway. */
export const FOREVER_MS = 24 * 3_600_000

export interface ConsumeLoopOptions {
  /** Messages to take before stopping (ignored with `follow`). */
  count: number
  /** Keep consuming until interrupted. */
  follow: boolean
  /** Long poll for the first message (0 = do not wait). */
  waitMs: number
  pollIntervalMs?: number
  autoAck: boolean
  visibilityTimeoutMs?: number
  /** Largest batch per receive (default 500). */
  batchSize?: number
  signal?: AbortSignal
}

/** How long the next receive may wait: until the deadline, or forever when following. */
export function waitBudget(options: Pick<ConsumeLoopOptions, 'follow'>, deadline: number): number {
  return options.follow ? FOREVER_MS : Math.max(0, deadline - Date.now())
}

/**
 * Yields batches of deliveries until `count` is reached, the wait runs out, or the signal aborts.
 * `waitMs` is a deadline for the whole count: each receive returns as soon as messages arrive, and
 * the loop stops once `count` arrived or the deadline passed. With `follow`, it never stops.
 */
export async function* deliveryBatches(receive: ReceiveFn, options: ConsumeLoopOptions): AsyncGenerator<Delivery[]> {
  let remaining = options.follow ? Number.POSITIVE_INFINITY : options.count
  const deadline = Date.now() + options.waitMs
  while (remaining > 0 && !options.signal?.aborted) {
    const batch = await receive({
      max: Math.min(remaining, options.batchSize ?? 500),
      autoAck: options.autoAck,
      visibilityTimeoutMs: options.visibilityTimeoutMs,
      waitMs: waitBudget(options, deadline),
      pollIntervalMs: options.pollIntervalMs,
      signal: options.signal,
    })
    if (batch.length === 0) {
      if (options.follow) continue
      return
    }
    remaining -= batch.length
    yield batch
  }
}
