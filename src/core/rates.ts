/** Publish and ack rates of a queue (`queue stats`), from per-minute counts. */
export interface Rates {
  publishedPerSecond: {last1m: number; last5m: number}
  ackedPerSecond: {last1m: number; last5m: number}
}

export interface MinuteCount {
  /** Minutes since the epoch. */
  minute: number
  published: number
  acked: number
}

/**
 * Rates over the last 1 and 5 minutes from per-minute counts (every driver keeps those its own
 * way): the current minute counts for what has passed of it.
 */
export function ratesFromMinutes(rows: MinuteCount[], now: number): Rates {
  const minute = Math.floor(now / 60_000)
  const intoMinute = (now % 60_000) / 1000
  const over = (minutes: number, field: 'published' | 'acked') => {
    const sum = rows.filter((r) => r.minute >= minute - minutes).reduce((total, r) => total + r[field], 0)
    return Math.round((sum / (minutes * 60 + intoMinute)) * 100) / 100
  }
  return {
    publishedPerSecond: {last1m: over(1, 'published'), last5m: over(5, 'published')},
    ackedPerSecond: {last1m: over(1, 'acked'), last5m: over(5, 'acked')},
  }
}
