/**
 * Exponential backoff with "equal jitter": the delay for `attempt` (1-based) doubles from `baseMs`
 * up to `maxMs`; half of it is fixed and half random, so retries from many consumers spread out.
 */
export function backoffDelayMs(baseMs: number, maxMs: number, attempt: number): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1))
  return Math.round(exp / 2 + Math.random() * (exp / 2))
}
