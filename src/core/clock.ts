/**
 * Milliseconds since an arbitrary origin that only moves forward, at the rate of real time, whatever
 * happens to the system clock (NTP steps, a user setting the date, a VM resuming). Use it for
 * elapsed time and deadlines inside one process: `--wait`, back-off, rate limits, durations.
 *
 * Times shared with other processes (leases, delays, TTLs, publish times in the database) must be
 * wall-clock (`Date.now()`), since a monotonic origin means nothing outside its process; README.md
 * ("Clocks") says what a step of the system clock does to those.
 */
export type MonotonicClock = () => number

// process.hrtime, not performance.now(): the same clock, without loading node:perf_hooks (a few
// milliseconds of every one-shot command's start-up).
export const monotonicNow: MonotonicClock = () => {
  const [seconds, nanoseconds] = process.hrtime()
  return seconds * 1_000 + nanoseconds / 1e6
}
