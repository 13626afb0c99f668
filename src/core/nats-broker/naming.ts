import {compileTopicPattern, type TopicPattern} from '../names.js'

/**
 * Names on the server, all under one root (`mq`, or the --prefix) so several teams or test runs
 * share a cluster:
 * - queue NAME → stream `<ROOT>_Q_<escaped NAME>` on subject `<root>.q.NAME`, one shared durable
 *   pull consumer `mq`; priority L messages on `<root>.qp.L.NAME`, consumer `P<L>` (priorities.ts);
 * - topics → one stream `<ROOT>_T` on `<root>.t.>`, topic NAME on subject `<root>.t.NAME._` (the
 *   `_` sentinel lets mqctl's zero-or-more `#` map onto NATS's one-or-more `>`);
 * - subscriptions → consumers of `<ROOT>_T`, their details in the consumer's description;
 * - leases (stale-receipt detection) → stream `<ROOT>_L`, one record per message in flight;
 * - topic settings and counters → stream `<ROOT>_M`, one record per subject (a small KV).
 */
export class Naming {
  readonly root: string
  readonly streamRoot: string

  constructor(prefix: string) {
    this.root = prefix || 'mq'
    this.streamRoot = prefix ? `${prefix}` : 'MQ'
  }

  queueStream(name: string): string {
    return `${this.streamRoot}_Q_${escapeToken(name)}`
  }

  /** The subject of a queue's messages of one priority (0: the queue's own subject). */
  queueSubject(name: string, level = 0): string {
    return level === 0 ? `${this.root}.q.${name}` : `${this.root}.qp.${level}.${name}`
  }

  /** Every priority subject of a queue (levels 1–9, see priorities.ts). */
  queueLevelSubjects(name: string): string {
    return `${this.root}.qp.*.${name}`
  }

  /** The subject filter matching every queue's subject (lists queue streams). */
  get queueSubjects(): string {
    return `${this.root}.q.>`
  }

  get topicStream(): string {
    return `${this.streamRoot}_T`
  }

  topicSubject(name: string): string {
    return `${this.root}.t.${name}._`
  }

  /** The topic a topic-stream subject carries. */
  topicOf(subject: string): string {
    return subject.slice(this.root.length + 3, -2)
  }

  get leaseStream(): string {
    return `${this.streamRoot}_L`
  }

  leaseSubject(stream: string, consumer: string, streamSeq: number): string {
    return `${this.root}.l.${stream}.${consumer}.${streamSeq}`
  }

  leaseSubjects(stream: string, consumer: string): string {
    return `${this.root}.l.${stream}.${consumer}.*`
  }

  /** Publish and ack counts per process (rates.ts): `<root>.r.<queue stream>.<process>`. */
  get rateStream(): string {
    return `${this.streamRoot}_R`
  }

  get rateSubjectRoot(): string {
    return `${this.root}.r`
  }

  get metaStream(): string {
    return `${this.streamRoot}_M`
  }

  metaSubject(kind: 'topic' | 'count', name: string): string {
    return `${this.root}.m.${kind}.${kind === 'count' ? name : escapeToken(name)}`
  }

  metaSubjects(kind: 'topic' | 'count'): string {
    return `${this.root}.m.${kind}.*`
  }

  /** Consumer name of a durable subscription. */
  subscriptionConsumer(name: string): string {
    return `S_${escapeToken(name)}`
  }

  /**
   * The NATS filter for a pattern and whether the server's filter is exact. A `#` before the last
   * segment cannot be a NATS filter: the filter stops at the first `#` (`>`), and the driver matches
   * the rest itself.
   */
  filterFor(pattern: string): {filter: string; exact: boolean; matcher: TopicPattern} {
    const matcher = compileTopicPattern(pattern)
    const segments = pattern.split('.')
    const firstHash = segments.indexOf('#')
    if (firstHash === -1) return {filter: `${this.root}.t.${pattern}._`, exact: true, matcher}
    const head = segments.slice(0, firstHash)
    const exact = firstHash === segments.length - 1
    return {filter: [`${this.root}.t`, ...head, '>'].join('.'), exact, matcher}
  }
}

/** Names may contain `.` but stream and consumer names may not: `_` → `__`, `.` → `_d` (reversible). */
export function escapeToken(name: string): string {
  return name.replaceAll('_', '__').replaceAll('.', '_d')
}
