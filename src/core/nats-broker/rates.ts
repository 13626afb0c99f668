import {type MinuteCount, type Rates, ratesFromMinutes} from '../rates.js'
import type {JsClient} from './client.js'

/** Minutes of counts kept (the longest rate is over 5 minutes). */
const KEEP_MINUTES = 6

/**
 * Publish and ack rates on JetStream, which keeps no counts over time (and a work queue forgets
 * acked messages). Each process counts what it published and acked per queue and minute, and
 * writes its counts to a subject of its own (`<root>.r.<stream>.<process>`) in a small stream that
 * keeps one record per subject for a few minutes: no process ever waits for another, and nothing
 * is read back on the hot path. `queue stats` reads the latest record of every process (a
 * last-per-subject consumer) and sums them. A write is in flight at most once per process; counts
 * made meanwhile go with the next one, and `flush()` (on close) writes what is left.
 */
export class RateCounters {
  private readonly counts = new Map<string, Map<number, {published: number; acked: number}>>()
  private readonly dirty = new Set<string>()
  private writing: Promise<void> | undefined
  private readonly process = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`

  constructor(
    private readonly client: JsClient,
    private readonly subjectRoot: string,
    private readonly stream: string,
    private readonly ensureStream: () => Promise<void>,
  ) {}

  /** Counts `n` messages published to (or acked from) the queue stored in `queueStream`. */
  count(queueStream: string, what: 'published' | 'acked', n: number): void {
    if (n <= 0) return
    const minute = Math.floor(Date.now() / 60_000)
    let minutes = this.counts.get(queueStream)
    if (!minutes) this.counts.set(queueStream, (minutes = new Map()))
    const entry = minutes.get(minute) ?? {published: 0, acked: 0}
    entry[what] += n
    minutes.set(minute, entry)
    for (const old of minutes.keys()) if (old < minute - KEEP_MINUTES) minutes.delete(old)
    this.dirty.add(queueStream)
    this.writing ??= this.write().finally(() => (this.writing = undefined))
  }

  /**
   * Writes the counts of every queue counted since the last write. Rates are best effort: a write
   * that fails (the server away) never fails the command; its counts go with the next write.
   */
  private async write(): Promise<void> {
    try {
      await this.ensureStream()
    } catch {
      return
    }
    while (this.dirty.size > 0) {
      const streams = [...this.dirty]
      this.dirty.clear()
      await Promise.allSettled(
        streams.map((queueStream) => {
          const rows: MinuteCount[] = [...(this.counts.get(queueStream) ?? new Map())].map(([minute, c]) => ({
            minute,
            ...c,
          }))
          return this.client.publish(`${this.subjectRoot}.${queueStream}.${this.process}`, JSON.stringify(rows))
        }),
      )
    }
  }

  /** Writes what is not written yet. */
  async flush(): Promise<void> {
    // Counts made while a write was in flight are written by that same write's loop.
    await this.writing?.catch(() => {})
  }

  /** The queue's rates from every process's counts. */
  async read(queueStream: string, now: number): Promise<Rates> {
    await this.flush()
    const rows: MinuteCount[] = []
    try {
      const created = await this.client.api<{name: string; num_pending: number}>(`CONSUMER.CREATE.${this.stream}`, {
        stream_name: this.stream,
        config: {
          ack_policy: 'none',
          deliver_policy: 'last_per_subject',
          filter_subject: `${this.subjectRoot}.${queueStream}.*`,
          inactive_threshold: 30_000 * 1_000_000,
        },
      })
      try {
        for (let left = created.num_pending; left > 0;) {
          const pulled = await this.client.pull(this.stream, created.name, Math.min(left, 1_000), 0)
          if (pulled.length === 0) break
          left -= pulled.length
          for (const msg of pulled) rows.push(...(JSON.parse(new TextDecoder().decode(msg.data)) as MinuteCount[]))
        }
      } finally {
        await this.client.api(`CONSUMER.DELETE.${this.stream}.${created.name}`).catch(() => {})
      }
    } catch (error) {
      // No counts written yet anywhere: no stream.
      if (!(error instanceof Error && /stream not found/i.test(error.message))) throw error
    }
    return ratesFromMinutes(rows, now)
  }
}
