import {sleep} from '../rate-limiter.js'
import type {EventFilter, EventJournal, EventRecord} from './journal.js'

/** How often the follower looks for new events (fixed polling: the journal has no push). */
export const FOLLOW_POLL_MS = 250
/** How long a new event may stay pending before it is printed anyway (so a stuck one shows). */
export const FOLLOW_SETTLE_MS = 2_000

export interface FollowOptions {
  /** What to show (`--type`, `--rule`, `--status`); `since` and `limit` apply to the backlog only. */
  filter: Omit<EventFilter, 'afterSeq' | 'ascending' | 'limit'>
  /** Events already in the journal printed first, the newest `backlog` of them, oldest first. */
  backlog: number
  signal: AbortSignal
  pollMs?: number
  settleMs?: number
}

/**
 * Follows the journal like `tail -f` (`mq events list -f`): yields the recent backlog, then every
 * new event in sequence order. A new event is held back while it is pending (being run), for up
 * to `settleMs`, so it is shown with its outcome; one pending longer is shown as pending. Ends
 * when `signal` aborts.
 */
export async function* followEvents(journal: EventJournal, options: FollowOptions): AsyncGenerator<EventRecord> {
  const {filter, signal} = options
  const pollMs = options.pollMs ?? FOLLOW_POLL_MS
  const settleMs = options.settleMs ?? FOLLOW_SETTLE_MS
  // The cursor first, so an event journalled meanwhile is followed, not also in the backlog.
  const [newest] = await journal.list({limit: 1})
  let cursor = newest?.seq ?? 0
  if (options.backlog > 0) {
    const backlog = await journal.list({...filter, limit: options.backlog})
    for (const record of backlog.filter((r) => r.seq <= cursor).reverse()) yield record
  }
  // Status and rule are known once an event has settled: filter on them here, not in the query.
  const {status, rule, type} = filter
  while (!signal.aborted) {
    const records = await journal.list({type, afterSeq: cursor, ascending: true, limit: 500})
    for (const record of records) {
      if (record.status === 'pending' && Date.now() - record.receivedAt < settleMs) break // wait for its outcome
      cursor = record.seq
      if ((status === undefined || record.status === status) && (rule === undefined || record.rules.includes(rule)))
        yield record
      if (signal.aborted) return
    }
    if (records.length < 500 || records.at(-1)!.seq !== cursor) await sleep(pollMs, signal)
  }
}
