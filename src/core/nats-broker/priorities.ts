import type {NatsConnection, Subscription} from '@nats-io/transport-node'

/**
 * Message priorities on JetStream, which has none (README "Running on a NATS cluster"): a queue's
 * priority-0 messages go to its subject, priority L (1–9) to a subject of its own in the same
 * stream, each level with its own durable pull consumer (`mq` for 0, `P<L>` for L). A receive
 * pulls the levels highest first. Levels get their consumer on their first publish, and the
 * queue's description lists them, so queues that never use priorities cost nothing more.
 */
export const BASE_CONSUMER = 'mq'

export function levelConsumer(level: number): string {
  return level === 0 ? BASE_CONSUMER : `P${level}`
}

/** The level of a queue consumer (`mq` → 0, `P7` → 7). */
export function levelOfConsumer(consumer: string): number {
  return /^P[1-9]$/.test(consumer) ? Number(consumer.slice(1)) : 0
}

/** Levels to pull from, highest first, always ending with 0. */
export function pullOrder(levels: readonly number[] | undefined): number[] {
  return [...new Set([...(levels ?? []).filter((level) => level > 0), 0])].sort((a, b) => b - a)
}

/**
 * Wakes a receive that waits on several consumers at once (one long pull cannot cover them): a
 * plain subscription on the queue's subjects sees every publish; redeliveries (expired leases,
 * delayed NAKs) are caught by re-looking every `pollMs`.
 */
export class Waker {
  private readonly subs: Subscription[]
  private wake: (() => void) | undefined
  private pending = false

  constructor(nc: NatsConnection, subjects: string[]) {
    this.subs = subjects.map((subject) =>
      nc.subscribe(subject, {
        callback: () => {
          this.pending = true
          this.wake?.()
        },
      }),
    )
  }

  /** Resolves on the next publish (or one seen since the last wait), after `ms`, or on abort. */
  async wait(ms: number, signal?: AbortSignal): Promise<void> {
    if (this.pending || signal?.aborted) {
      this.pending = false
      return
    }
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', done)
        this.wake = undefined
        this.pending = false
        resolve()
      }
      const timer = setTimeout(done, ms)
      signal?.addEventListener('abort', done, {once: true})
      this.wake = done
    })
  }

  close(): void {
    for (const sub of this.subs) sub.unsubscribe()
  }
}
