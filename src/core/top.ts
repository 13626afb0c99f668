import type {Broker, QueueStats, SubscriptionStats, TopicStats} from './broker.js'
import type {EventJournal, RuleActivity} from './engine/journal.js'
import {NotFoundError} from './errors.js'

/**
 * What `mq top` shows (README.md, "Watching it all: mq top"), sampled from a broker and the
 * event journal. The sampler keeps the last samples for the sparklines and measures rates from
 * the totals between two samples; the first sample uses the broker's own per-minute rates where
 * it keeps them (else rates are unknown: null).
 */

/** A queue, or a subscription (its own queue of what its topics got). */
export interface TopQueueRow {
  name: string
  kind: 'queue' | 'subscription'
  /** Waiting to be delivered: ready and delayed (a subscription: its lag plus redeliveries). */
  depth: number
  inFlight: number
  /** Not deliverable yet (`--delay`, retry backoff); null where the broker does not tell. */
  delayed: number | null
  /** Messages now in its dead-letter queue. */
  deadLettered: number
  /** Messages in per second (a subscription: what its topics got). */
  publishRate: number | null
  ackRate: number | null
  /** Oldest first, one per sample: depth and messages in per second. */
  depthHistory: number[]
  rateHistory: number[]
}

export interface TopTopicRow {
  name: string
  /** Retained messages. */
  messages: number
  bytes: number
  publishRate: number | null
  subscriptions: number
  /** The most any of its subscriptions has yet to take. */
  maxLag: number
  rateHistory: number[]
}

export interface TopRuleRow {
  name: string
  /** False for a disabled rule; null for one no longer in the rules document. */
  enabled: boolean | null
  matches: number
  /** Matches per second over the last interval. */
  matchRate: number | null
  failures: number
  deadLettered: number
  /** Mean and most time an action attempt took. */
  avgLatencyMs: number | null
  maxLatencyMs: number | null
  /** Epoch ms of the newest attempt. */
  lastRunAt: number | null
  matchHistory: number[]
}

export interface TopSnapshot {
  /** ISO-8601. */
  takenAt: string
  broker: string
  /** Samples kept for the histories, and the time between them. */
  intervalMs: number
  queues: TopQueueRow[]
  topics: TopTopicRow[]
  rules: TopRuleRow[]
}

export interface TopSamplerOptions {
  broker: Broker
  /** The event journal (the local folder's) for the rules' figures; none: no rules section. */
  journal?: EventJournal
  /** The rules of the rules document (to list those that have not run yet). */
  rules?: () => Promise<{name: string; enabled: boolean}[]>
  intervalMs: number
  /** Samples kept for sparklines (default 120: two minutes at 1 s). */
  historyLength?: number
  now?: () => number
}

interface Previous {
  at: number
  published: Map<string, number>
  acked: Map<string, number>
  matches: Map<string, number>
}

/** Samples a broker for `mq top`; each `sample()` is one frame's data. */
export class TopSampler {
  private previous?: Previous
  private readonly histories = new Map<string, number[]>()
  private readonly activity = new Map<string, RuleActivity>()
  private journalAfter = 0
  /** What the broker tells of itself: its address for the header, whether it keeps rates. */
  private described?: {url: string; rates: boolean}

  constructor(private readonly options: TopSamplerOptions) {}

  async sample(): Promise<TopSnapshot> {
    const {broker} = this.options
    const now = (this.options.now ?? Date.now)()
    if (!this.described) {
      const description = await broker.describe()
      this.described = {url: description.url, rates: description.capabilities.features.rates.support !== 'refused'}
    }
    const {url, rates} = this.described
    const [queues, topics, subscriptions] = await Promise.all([
      eachStat(await broker.listQueues(), (q) => broker.queueStats(q.name)),
      eachStat(await broker.listTopics(), (t) => broker.topicStats(t.name)),
      eachStat(await broker.listSubscriptions(), (s) => broker.subscriptionStats(s.name)),
    ])
    const next: Previous = {at: now, published: new Map(), acked: new Map(), matches: new Map()}
    const seconds = this.previous ? (now - this.previous.at) / 1000 : 0
    /** Per second since the last sample; the fallback (or null) on the first. */
    const perSecond = (
      kind: 'published' | 'acked' | 'matches',
      key: string,
      total: number,
      fallback: number | null,
    ): number | null => {
      next[kind].set(key, total)
      const before = this.previous?.[kind].get(key)
      if (before === undefined || seconds <= 0) return this.previous ? 0 : fallback
      return Math.max(0, total - before) / seconds
    }

    const depthOf = new Map(queues.map((q) => [q.name, q.depth]))
    const topicRows: TopTopicRow[] = topics.map((t: TopicStats) => {
      const publishRate = perSecond('published', `topic:${t.name}`, t.totals.published, null)
      const lags = subscriptions.filter((s) => s.topics.includes(t.name)).map((s) => s.lag)
      return {
        name: t.name,
        messages: t.messages,
        bytes: t.bytes,
        publishRate,
        subscriptions: t.subscriptions.length,
        maxLag: Math.max(0, ...lags),
        rateHistory: this.remember(`topic-rate:${t.name}`, publishRate ?? 0),
      }
    })
    const topicRate = new Map(topicRows.map((t) => [t.name, t.publishRate]))
    const rows: TopQueueRow[] = [
      ...queues.map((q: QueueStats) => {
        const brokerRate = (r: {last1m: number}) => (rates ? r.last1m : null)
        const publishRate = perSecond(
          'published',
          `queue:${q.name}`,
          q.totals.published,
          brokerRate(q.rates.publishedPerSecond),
        )
        const ackRate = perSecond('acked', `queue:${q.name}`, q.totals.acked, brokerRate(q.rates.ackedPerSecond))
        const depth = q.ready + q.delayed
        return {
          name: q.name,
          kind: 'queue' as const,
          depth,
          inFlight: q.inFlight,
          delayed: q.delayed,
          deadLettered: q.deadLettered,
          publishRate,
          ackRate,
          depthHistory: this.remember(`queue-depth:${q.name}`, depth),
          rateHistory: this.remember(`queue-rate:${q.name}`, publishRate ?? 0),
        }
      }),
      ...subscriptions.map((s: SubscriptionStats) => {
        const rates = s.topics.map((t) => topicRate.get(t))
        const publishRate = rates.some((r) => r === null || r === undefined)
          ? null
          : rates.reduce<number>((sum, r) => sum + (r ?? 0), 0)
        const ackRate = perSecond('acked', `subscription:${s.name}`, s.totals.acked, null)
        const depth = s.lag + s.pendingRedelivery
        const dlq = s.settings.deadLetterQueue
        return {
          name: s.name,
          kind: 'subscription' as const,
          depth,
          inFlight: s.inFlight,
          delayed: null,
          deadLettered: dlq === null ? 0 : (depthOf.get(dlq) ?? 0),
          publishRate,
          ackRate,
          depthHistory: this.remember(`subscription-depth:${s.name}`, depth),
          rateHistory: this.remember(`subscription-rate:${s.name}`, publishRate ?? 0),
        }
      }),
    ]
    const ruleRows = await this.ruleRows(perSecond)
    this.previous = next
    return {
      takenAt: new Date(now).toISOString(),
      broker: url,
      intervalMs: this.options.intervalMs,
      queues: rows,
      topics: topicRows,
      rules: ruleRows,
    }
  }

  private async ruleRows(
    perSecond: (kind: 'matches', key: string, total: number, fallback: null) => number | null,
  ): Promise<TopRuleRow[]> {
    const {journal} = this.options
    if (!journal) return []
    const read = await journal.ruleActivity(this.journalAfter)
    this.journalAfter = read.lastId
    for (const more of read.rules) this.activity.set(more.rule, add(this.activity.get(more.rule), more))
    const documented = (await this.options.rules?.()) ?? []
    const names = [...new Set([...documented.map((r) => r.name), ...this.activity.keys()])]
    return names.map((name) => {
      const a = this.activity.get(name)
      const rule = documented.find((r) => r.name === name)
      const matchRate = perSecond('matches', name, a?.matches ?? 0, null)
      return {
        name,
        enabled: rule ? rule.enabled : null,
        matches: a?.matches ?? 0,
        matchRate,
        failures: a?.failures ?? 0,
        deadLettered: a?.deadLettered ?? 0,
        avgLatencyMs: a && a.attempts > 0 ? a.durationMs / a.attempts : null,
        maxLatencyMs: a && a.attempts > 0 ? a.maxDurationMs : null,
        lastRunAt: a?.lastAt ?? null,
        matchHistory: this.remember(`rule-matches:${name}`, matchRate ?? 0),
      }
    })
  }

  /** Appends a value to a history and returns a copy (oldest first). */
  private remember(key: string, value: number): number[] {
    const history = this.histories.get(key) ?? []
    history.push(value)
    if (history.length > (this.options.historyLength ?? 120)) history.shift()
    this.histories.set(key, history)
    return [...history]
  }
}

/** Stats of each listed item; one deleted between the list and its stats is left out. */
async function eachStat<T, S>(items: T[], stat: (item: T) => Promise<S>): Promise<S[]> {
  const results = await Promise.allSettled(items.map(stat))
  const stats: S[] = []
  for (const result of results) {
    if (result.status === 'fulfilled') stats.push(result.value)
    else if (!isGone(result.reason)) throw result.reason
  }
  return stats
}

function isGone(error: unknown): boolean {
  return error instanceof NotFoundError
}

function add(a: RuleActivity | undefined, b: RuleActivity): RuleActivity {
  if (!a) return b
  return {
    rule: a.rule,
    matches: a.matches + b.matches,
    attempts: a.attempts + b.attempts,
    failures: a.failures + b.failures,
    deadLettered: a.deadLettered + b.deadLettered,
    durationMs: a.durationMs + b.durationMs,
    maxDurationMs: Math.max(a.maxDurationMs, b.maxDurationMs),
    lastAt: Math.max(a.lastAt, b.lastAt),
  }
}
