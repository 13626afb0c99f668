import {randomBytes} from 'node:crypto'

import {
  type Broker,
  type BulkOptions,
  DEFAULT_QUEUE_SETTINGS,
  defaultDeadLetterQueue,
  type DeadLetterQueueInfo,
  type Delivery,
  type Headers,
  type NackOptions,
  type NackOutcome,
  type OutgoingMessage,
  type PeekedMessage,
  type PlacementOptions,
  type PublishOptions,
  type PublishResult,
  type QueueInfo,
  type QueueSettings,
  type QueueStats,
  type ReceiveOptions,
  type RedriveOptions,
  type RedriveResult,
  type SettleOutcome,
  type SubscribeOptions,
  type Subscription,
  type SubscriptionInfo,
  type SubscriptionSettings,
  type SubscriptionStats,
  type TopicInfo,
  type TopicSettings,
  type TopicStats,
} from '../broker.js'
import {backoffDelayMs} from '../backoff.js'
import {type BrokerCapabilities, type BrokerDescription, type Feature, requireFeature} from '../capabilities.js'
import {monotonicNow} from '../clock.js'
import {InterruptedError, InvalidInputError, NotFoundError, QueueFullError, WrongKindError} from '../errors.js'
import type {LockWaiter} from '../lock-wait.js'
import {resolveQueueSettings, resolveTopicSettings} from '../file-broker/destinations.js'
import {atMessage, checkBodySizes, differingSettings, validateMessages} from '../file-broker/validation.js'
import {printable, validateName} from '../names.js'
import type {NatsTarget} from '../open-broker.js'
import {sleep} from '../rate-limiter.js'
import {formatDuration} from '../units.js'
import {decodeText, encodeText, ERR, JsApiError, JsClient, type PulledMessage} from './client.js'
import {natsCapabilities} from './features.js'
import {parseHeaderBlock, userHeaders} from './headers.js'
import {Naming} from './naming.js'
import {RateCounters} from './rates.js'
import {topicBytes} from './topic-bytes.js'
import {type AckInfo, formatReceipt, parseAckSubject, parseReceipt} from './receipts.js'
import {BASE_CONSUMER, levelConsumer, levelOfConsumer, pullOrder, Waker} from './priorities.js'
import {hasSchedule, readSchedule, type Schedule, scheduleOf, verdict, writeSchedule} from './schedule.js'

/** The shared durable pull consumer of every queue stream (priority 0; see priorities.ts for the others). */
const QUEUE_CONSUMER = BASE_CONSUMER
/** How often a receive waiting on a queue with priorities looks again for redeliveries. */
const LEVEL_POLL_MS = 100
/** How long a receive trusts what it knows of a queue (its settings, its priority levels). */
const QUEUE_META_FRESH_MS = 1_000
/** Longest pull while long-polling a queue without priorities: then it looks whether one has appeared. */
const LEVEL_CHECK_MS = 5_000
/** Longest single pull request while long-polling; the loop re-asks until the wait is over. */
const PULL_CHUNK_MS = 30_000
/**
 * Ephemeral subscriptions vanish this long after their process stopped pulling (killed, say);
 * MQ_NATS_EPHEMERAL_INACTIVE_MS shortens it (the tests do).
 */
const EPHEMERAL_INACTIVE_MS = Number(process.env.MQ_NATS_EPHEMERAL_INACTIVE_MS) || 30_000
/** Lease records outlive any lease (12 h at most) and are then dropped by the server. */
const LEASE_RECORD_AGE_MS = 7 * 86_400_000
/** Rate counts are kept this long (the longest rate is over 5 minutes). */
const RATE_RECORD_AGE_MS = 6 * 60_000
/** In-flight requests at once when settling or publishing a large batch. */
const WINDOW = 512
const NS = 1_000_000
const EPHEMERAL_DEAD_LETTER_QUEUE = 'ephemeral.dlq'

interface QueueMeta {
  mq: 'queue'
  name: string
  createdAt: number
  settings: QueueSettings
  /** Priority levels above 0 that have a consumer (priorities.ts). */
  levels?: number[]
}

interface SubscriptionMeta {
  mq: 'subscription'
  name: string
  pattern: string
  durable: boolean
  createdAt: number
  settings: SubscriptionSettings
  pid?: number
}

interface TopicMeta {
  name: string
  createdAt: number
  settings: TopicSettings
}

/**
 * A delivery's lease: `d` the consumer delivery sequence it belongs to (0: a delayed message not
 * delivered yet), `s` leased / delayed / settled, `u` until, `c` the attempt, `e` the last error,
 * `z` deliveries that met the message before its --delay was over (not attempts: schedule.ts).
 */
interface LeaseRecord {
  d: number
  s: 'l' | 'd' | 'x'
  u: number
  c: number
  e?: string
  z?: number
}

/** Where deliveries come from: a queue's consumer or a subscription's. */
interface Source {
  stream: string
  consumer: string
  kind: 'queue' | 'subscription'
  name: string
  settings: SubscriptionSettings & {deadLetterExpired?: boolean}
  /** Subscriptions whose pattern the server cannot filter exactly are matched here. */
  matches?: (topic: string) => boolean
}

interface StreamInfo {
  config: {name: string; description?: string; subjects?: string[]; num_replicas?: number}
  created: string
  state: {
    messages: number
    bytes: number
    first_seq: number
    first_ts: string
    last_seq: number
    num_subjects?: number
    subjects?: Record<string, number>
  }
}

interface ConsumerInfo {
  name: string
  stream_name: string
  created: string
  config: {durable_name?: string; description?: string; filter_subject?: string; ack_wait?: number}
  delivered: {consumer_seq: number; stream_seq: number}
  ack_floor: {consumer_seq: number; stream_seq: number}
  num_ack_pending: number
  num_redelivered: number
  num_pending: number
}

interface StoredMessage {
  subject: string
  seq: number
  hdrs?: string
  data?: string
  time: string
}

/**
 * The Broker on NATS JetStream (README: "Running on a NATS cluster"). Receipts are the deliveries'
 * ack subjects, so any process on any host settles them; what JetStream does not check (stale
 * receipts) or does not have (dead-letter headers, drop-oldest among ready messages) is emulated
 * here, and what cannot be done safely on the server's version is refused via `capabilities`.
 */
export class JetStreamBroker implements Broker {
  private readonly naming: Naming
  private readonly capabilities: BrokerCapabilities
  private readonly queues = new Map<string, QueueMeta>()
  /** When each cached queue description was read (monotonic ms). */
  private readonly queuesSeenAt = new Map<string, number>()
  private readonly ready = new Map<string, Promise<void>>()
  private closed = false
  private readonly rates: RateCounters

  private constructor(
    private readonly client: JsClient,
    private readonly target: NatsTarget,
  ) {
    this.naming = new Naming(target.prefix)
    this.capabilities = natsCapabilities(client.version)
    this.rates = new RateCounters(client, this.naming.rateSubjectRoot, this.naming.rateStream, () =>
      this.infra(this.naming.rateStream, {
        subjects: [`${this.naming.rateSubjectRoot}.>`],
        storage: 'memory',
        max_msgs_per_subject: 1,
        max_age: RATE_RECORD_AGE_MS * NS,
      }),
    )
  }

  static async connect(target: NatsTarget, waiter?: LockWaiter): Promise<JetStreamBroker> {
    return new JetStreamBroker(await JsClient.connect(target, waiter), target)
  }

  waitOutOutages(waiter: LockWaiter): void {
    this.client.waitOutOutages(waiter)
  }

  private refuseUnless(feature: Feature): void {
    requireFeature(this.capabilities, feature, `nats-server ${this.client.version} (${this.target.display})`)
  }

  /** Servers in the cluster, as the server advertises them to clients. */
  private get clusterSize(): number {
    const urls = new Set(this.client.nc.info?.connect_urls ?? [])
    return Math.max(1, urls.size)
  }

  private replicasFor(asked: number | undefined): number {
    if (asked !== undefined) {
      if (!(Number.isInteger(asked) && asked >= 1 && asked <= 5))
        throw new InvalidInputError('--replicas must be from 1 to 5')
      return asked
    }
    return this.clusterSize >= 3 ? 3 : 1
  }

  async describe(): Promise<BrokerDescription> {
    const info = this.client.nc.info
    return {
      driver: 'nats',
      url: this.target.display,
      server: {
        name: info?.server_name,
        version: this.client.version,
        cluster: info?.cluster,
        servers: this.clusterSize,
        jetstream: true,
      },
      capabilities: this.capabilities,
    }
  }

  // ---- infrastructure streams, made once per connection when first needed

  private infra(name: string, config: Record<string, unknown>): Promise<void> {
    let made = this.ready.get(name)
    if (!made) {
      made = this.client
        .api(`STREAM.CREATE.${name}`, {name, storage: 'file', num_replicas: this.replicasFor(undefined), ...config})
        .then(
          () => undefined,
          (error) => {
            // Already there (made by another process, perhaps with other replicas): use it.
            if (error instanceof JsApiError && error.error.err_code === 10058) return
            this.ready.delete(name)
            throw error
          },
        )
      this.ready.set(name, made)
    }
    return made
  }

  private leases(): Promise<void> {
    return this.infra(this.naming.leaseStream, {
      subjects: [`${this.naming.root}.l.>`],
      max_msgs_per_subject: 1,
      max_age: LEASE_RECORD_AGE_MS * NS,
    })
  }

  private meta(): Promise<void> {
    return this.infra(this.naming.metaStream, {subjects: [`${this.naming.root}.m.>`], max_msgs_per_subject: 1})
  }

  private topicsStream(): Promise<void> {
    return this.infra(this.naming.topicStream, {
      subjects: [`${this.naming.root}.t.>`],
      retention: 'limits',
      duplicate_window: DEFAULT_QUEUE_SETTINGS.dedupWindowMs * NS,
    })
  }

  /** The last record on a subject of a one-per-subject stream, with its sequence (for compare-and-set). */
  private async lastRecord<T>(
    stream: string,
    subject: string,
  ): Promise<{seq: number; value: T; time: number} | undefined> {
    try {
      const {message} = await this.client.api<{message: StoredMessage}>(`STREAM.MSG.GET.${stream}`, {
        last_by_subj: subject,
      })
      return {
        seq: message.seq,
        value: JSON.parse(Buffer.from(message.data ?? '', 'base64').toString('utf8')) as T,
        time: Date.parse(message.time),
      }
    } catch (error) {
      if (isApiError(error, ERR.noMessage, ERR.streamNotFound)) return undefined
      throw error
    }
  }

  /** Writes a record if the subject's last sequence is still `expected` (0: none yet); false when another writer came first. */
  private async casWrite(subject: string, value: unknown, expected: number): Promise<boolean> {
    const headers = this.client.headers()
    headers.set('Nats-Expected-Last-Subject-Sequence', String(expected))
    try {
      await this.client.publish(subject, JSON.stringify(value), headers)
      return true
    } catch (error) {
      if (error instanceof JsApiError && error.error.err_code === ERR.wrongLastSequence) return false
      throw error
    }
  }

  /** Adds to counters kept in the meta stream (dead-lettered, dropped, …), retrying on a concurrent write. */
  private async bump(key: string, deltas: Record<string, number>): Promise<void> {
    await this.meta()
    const subject = this.naming.metaSubject('count', key)
    for (let attempt = 0; attempt < 50; attempt++) {
      const last = await this.lastRecord<Record<string, number>>(this.naming.metaStream, subject)
      const next = {...last?.value}
      for (const [name, by] of Object.entries(deltas)) next[name] = (next[name] ?? 0) + by
      if (await this.casWrite(subject, next, last?.seq ?? 0)) return
    }
  }

  private async counters(key: string): Promise<Record<string, number>> {
    if (!this.ready.has(this.naming.metaStream)) await this.meta()
    return (
      (await this.lastRecord<Record<string, number>>(this.naming.metaStream, this.naming.metaSubject('count', key)))
        ?.value ?? {}
    )
  }

  // ---- queues

  private async streamInfo(stream: string, subjectsFilter?: string): Promise<StreamInfo | undefined> {
    try {
      return await this.client.api<StreamInfo>(
        `STREAM.INFO.${stream}`,
        subjectsFilter ? {subjects_filter: subjectsFilter} : undefined,
      )
    } catch (error) {
      if (error instanceof JsApiError && error.error.err_code === ERR.streamNotFound) return undefined
      throw error
    }
  }

  private async queueMeta(name: string): Promise<{meta: QueueMeta; info: StreamInfo} | undefined> {
    const info = await this.streamInfo(this.naming.queueStream(name))
    if (!info) {
      this.queues.delete(name)
      return undefined
    }
    const meta = JSON.parse(info.config.description ?? '{}') as QueueMeta
    this.remember(meta)
    return {meta, info}
  }

  private remember(meta: QueueMeta): void {
    this.queues.set(meta.name, meta)
    this.queuesSeenAt.set(meta.name, monotonicNow())
  }

  private async topicMeta(name: string): Promise<{meta: TopicMeta; seq: number} | undefined> {
    await this.meta()
    const record = await this.lastRecord<TopicMeta>(this.naming.metaStream, this.naming.metaSubject('topic', name))
    return record && {meta: record.value, seq: record.seq}
  }

  private streamConfig(meta: QueueMeta, replicas: number | undefined): Record<string, unknown> {
    const s = meta.settings
    if (s.maxBytes !== null && s.overflow !== 'drop-oldest') this.refuseUnless('max-bytes')
    if (s.defaultTtlMs !== null) this.refuseUnless('ttl')
    const config: Record<string, unknown> = {
      name: this.naming.queueStream(meta.name),
      description: JSON.stringify(meta),
      subjects: [this.naming.queueSubject(meta.name), this.naming.queueLevelSubjects(meta.name)],
      retention: 'workqueue',
      storage: 'file',
      max_msgs: s.maxLength ?? -1,
      max_bytes: s.maxBytes ?? -1,
      // drop-oldest among ready messages is done by the driver (discard old would drop messages in flight).
      discard: s.maxBytes !== null && s.overflow === 'drop-oldest' && s.maxLength === null ? 'old' : 'new',
      duplicate_window: Math.max(s.dedupWindowMs, 1) * NS,
    }
    if (replicas !== undefined) config.num_replicas = replicas
    return config
  }

  private consumerConfig(
    durable: string,
    settings: Source['settings'],
    extra: Record<string, unknown> = {},
  ): Record<string, unknown> {
    return {
      durable_name: durable,
      ack_policy: 'explicit',
      ack_wait: settings.visibilityTimeoutMs * NS,
      // No server limit: the receive that meets a delivery past the queue's max dead-letters it with
      // mqctl's headers, and deliveries before a --delay is over do not count (schedule.ts).
      max_deliver: -1,
      max_ack_pending: -1,
      max_waiting: 4096,
      ...extra,
    }
  }

  async declareQueue(
    name: string,
    given: Partial<QueueSettings> = {},
    placement: PlacementOptions = {},
  ): Promise<QueueInfo> {
    validateName(name, 'queue name')
    const {replicas} = placement
    const existing = await this.queueMeta(name)
    if (existing) {
      const differing = differingSettings(
        given,
        resolveQueueSettings(name, given, existing.meta.settings),
        existing.meta.settings,
      )
      if (replicas !== undefined && (existing.info.config.num_replicas ?? 1) !== replicas) differing.push('replicas')
      if (differing.length > 0) {
        throw new InvalidInputError(`queue ${name} already exists with other settings (${differing.join(', ')})`, {
          code: 'settings_differ',
          hint: `change them with \`mq queue update ${name}\``,
        })
      }
      return queueInfo(existing.meta, existing.info)
    }
    if (await this.topicMeta(name)) throw new WrongKindError(name, 'topic', {hint: `use \`mq subscribe ${name}\``})
    const meta: QueueMeta = {mq: 'queue', name, createdAt: Date.now(), settings: resolveQueueSettings(name, given)}
    await this.checkDeadLetterTarget(meta.settings.deadLetterQueue)
    const stream = this.naming.queueStream(name)
    try {
      await this.client.api(`STREAM.CREATE.${stream}`, this.streamConfig(meta, this.replicasFor(replicas)))
    } catch (error) {
      // Another process made it at the same moment: theirs stands.
      if (error instanceof JsApiError && error.error.err_code === 10058)
        return this.declareQueue(name, given, placement)
      throw replicasError(error, replicas)
    }
    await this.levelConsumer(meta, 0)
    this.remember(meta)
    const info = await this.streamInfo(stream)
    return queueInfo(meta, info!)
  }

  /** Makes (or updates) the durable consumer of one priority level of a queue. */
  private async levelConsumer(meta: QueueMeta, level: number): Promise<void> {
    const stream = this.naming.queueStream(meta.name)
    const consumer = levelConsumer(level)
    await this.client.api(`CONSUMER.DURABLE.CREATE.${stream}.${consumer}`, {
      stream_name: stream,
      config: this.consumerConfig(consumer, meta.settings, {
        filter_subject: this.naming.queueSubject(meta.name, level),
      }),
    })
  }

  /**
   * Gives the priority levels about to be published their consumer, then lists them in the queue's
   * description (in that order, so a receiver that sees a level finds its consumer). Two publishers
   * adding levels at once: each re-reads and retries until its levels are listed.
   */
  private async ensureLevels(meta: QueueMeta, levels: Set<number>): Promise<QueueMeta> {
    let current = meta
    for (let attempt = 0; attempt < 20; attempt++) {
      const missing = [...levels].filter((level) => level > 0 && !current.levels?.includes(level))
      if (missing.length === 0) return current
      for (const level of missing) await this.levelConsumer(current, level)
      const next: QueueMeta = {...current, levels: pullOrder([...(current.levels ?? []), ...missing]).filter(Boolean)}
      await this.client.api(`STREAM.UPDATE.${this.naming.queueStream(meta.name)}`, this.streamConfig(next, undefined))
      current = (await this.queueMeta(meta.name))?.meta ?? next
    }
    return current
  }

  private async checkDeadLetterTarget(deadLetterQueue: string | null): Promise<void> {
    if (deadLetterQueue !== null && (await this.topicMeta(deadLetterQueue))) {
      throw new WrongKindError(deadLetterQueue, 'topic', {
        hint: 'a dead-letter queue must be a queue: choose another name',
      })
    }
  }

  private async requireQueue(name: string): Promise<{meta: QueueMeta; info: StreamInfo}> {
    validateName(name, 'queue name')
    const found = await this.queueMeta(name)
    if (found) return found
    if (await this.topicMeta(name)) throw new WrongKindError(name, 'topic', {hint: `use \`mq subscribe ${name}\``})
    throw new NotFoundError('queue', name, {hint: 'see `mq queue list`'})
  }

  async updateQueue(name: string, settings: Partial<QueueSettings>): Promise<QueueInfo> {
    const {meta} = await this.requireQueue(name)
    const next: QueueMeta = {...meta, settings: resolveQueueSettings(name, settings, meta.settings)}
    await this.checkDeadLetterTarget(next.settings.deadLetterQueue)
    const stream = this.naming.queueStream(name)
    await this.client.api(`STREAM.UPDATE.${stream}`, this.streamConfig(next, undefined))
    for (const level of pullOrder(next.levels)) await this.levelConsumer(next, level)
    this.remember(next)
    return queueInfo(next, (await this.streamInfo(stream))!)
  }

  async deleteQueue(name: string): Promise<{deleted: number}> {
    const {info} = await this.requireQueue(name)
    const stream = this.naming.queueStream(name)
    await this.client.api(`STREAM.DELETE.${stream}`)
    this.queues.delete(name)
    await this.forgetLeases(stream, '*')
    await this.purgeMeta(this.naming.metaSubject('count', `${stream}-${QUEUE_CONSUMER}`))
    if (await this.streamInfo(this.naming.rateStream))
      await this.client.api(`STREAM.PURGE.${this.naming.rateStream}`, {
        filter: `${this.naming.rateSubjectRoot}.${stream}.*`,
      })
    return {deleted: info.state.messages}
  }

  async purgeQueue(name: string, options: BulkOptions = {}): Promise<{purged: number}> {
    await this.requireQueue(name)
    const stream = this.naming.queueStream(name)
    // One server-side purge: atomic, and quick however many messages there are.
    const {purged} = await this.client.api<{purged: number}>(`STREAM.PURGE.${stream}`, {})
    await this.forgetLeases(stream, '*')
    if (purged > 0) await this.bump(`${stream}-${QUEUE_CONSUMER}`, {purged})
    options.onProgress?.({done: purged, total: purged})
    return {purged}
  }

  private async forgetLeases(stream: string, consumer: string): Promise<void> {
    if (!(await this.streamInfo(this.naming.leaseStream))) return
    await this.client.api(`STREAM.PURGE.${this.naming.leaseStream}`, {
      filter: this.naming.leaseSubjects(stream, consumer),
    })
  }

  private async purgeMeta(subject: string): Promise<void> {
    if (!(await this.streamInfo(this.naming.metaStream))) return
    await this.client.api(`STREAM.PURGE.${this.naming.metaStream}`, {filter: subject})
  }

  private async listStreams(subject: string): Promise<StreamInfo[]> {
    const all: StreamInfo[] = []
    for (let offset = 0; ;) {
      const page = await this.client.api<{streams: StreamInfo[] | null; total: number; limit: number}>('STREAM.LIST', {
        offset,
        subject,
      })
      const streams = page.streams ?? []
      all.push(...streams)
      offset += streams.length
      if (streams.length === 0 || offset >= page.total) return all
    }
  }

  async listQueues(): Promise<QueueInfo[]> {
    const streams = await this.listStreams(this.naming.queueSubjects)
    return streams
      .map((info) => queueInfo(JSON.parse(info.config.description ?? '{}') as QueueMeta, info))
      .filter((q) => q.name)
      .sort((a, b) => a.name.localeCompare(b.name))
  }

  async getQueue(name: string): Promise<QueueInfo | undefined> {
    validateName(name, 'queue name')
    const found = await this.queueMeta(name)
    if (found) return queueInfo(found.meta, found.info)
    if (await this.topicMeta(name)) throw new WrongKindError(name, 'topic', {hint: `use \`mq subscribe ${name}\``})
    return undefined
  }

  private async consumerInfo(stream: string, consumer: string): Promise<ConsumerInfo | undefined> {
    try {
      return await this.client.api<ConsumerInfo>(`CONSUMER.INFO.${stream}.${consumer}`)
    } catch (error) {
      if (isApiError(error, ERR.consumerNotFound, ERR.streamNotFound)) return undefined
      throw error
    }
  }

  /** The lease records of a consumer's deliveries still awaiting their ack (for stats and peek); `*`: every consumer's. */
  private async leaseRecords(stream: string, consumer: string): Promise<Map<number, LeaseRecord>> {
    const records = new Map<number, LeaseRecord>()
    const info = await this.streamInfo(this.naming.leaseStream, this.naming.leaseSubjects(stream, consumer))
    const subjects = Object.keys(info?.state.subjects ?? {})
    await inWindows(subjects, async (subject) => {
      const record = await this.lastRecord<LeaseRecord>(this.naming.leaseStream, subject)
      if (record) records.set(Number(subject.slice(subject.lastIndexOf('.') + 1)), record.value)
    })
    return records
  }

  async queueStats(name: string): Promise<QueueStats> {
    const {meta, info} = await this.requireQueue(name)
    const stream = this.naming.queueStream(name)
    const now = Date.now()
    const [consumers, counts, leases] = await Promise.all([
      Promise.all(pullOrder(meta.levels).map((level) => this.consumerInfo(stream, levelConsumer(level)))),
      this.counters(`${stream}-${QUEUE_CONSUMER}`),
      this.leaseRecords(stream, '*'),
    ])
    const ackPending = consumers.reduce((sum, c) => sum + (c?.num_ack_pending ?? 0), 0)
    const pending = consumers.reduce((sum, c) => sum + (c?.num_pending ?? 0), 0)
    // Delayed: nacked with a delay, or published with --delay (delivered early and given back, or not pulled yet).
    const waiting = [...leases.values()].filter((l) => l.s === 'd' && l.u > now)
    const delayedPulled = ackPending === 0 ? 0 : waiting.filter((l) => l.d > 0).length
    const delayedUnpulled = waiting.filter((l) => l.d === 0).length
    const delayed = delayedPulled + Math.min(delayedUnpulled, pending)
    const dlq = meta.settings.deadLetterQueue === null ? undefined : await this.queueMeta(meta.settings.deadLetterQueue)
    const totals = {
      published: info.state.last_seq,
      // A work queue removes a message only when it is acked, dead-lettered (acked after the copy),
      // dropped, purged or redriven out of a dead-letter queue: what left otherwise was acked.
      acked: Math.max(
        0,
        info.state.last_seq -
          info.state.messages -
          (counts.deadLettered ?? 0) -
          (counts.dropped ?? 0) -
          (counts.purged ?? 0) -
          (counts.redriven ?? 0) -
          (counts.expiredDropped ?? 0),
      ),
      deadLettered: counts.deadLettered ?? 0,
      dropped: counts.dropped ?? 0,
      expired: counts.expired ?? 0,
      deduplicated: counts.deduplicated ?? 0,
    }
    return {
      ...queueInfo(meta, info),
      ready: consumers.every((c) => c === undefined) ? info.state.messages : Math.max(0, pending - delayedUnpulled),
      inFlight: Math.max(0, ackPending - delayedPulled),
      delayed,
      deadLettered: dlq?.info.state.messages ?? 0,
      oldestAgeMs: info.state.messages > 0 ? Math.max(0, now - Date.parse(info.state.first_ts)) : null,
      totals,
      rates: await this.rates.read(stream, now),
    }
  }

  /** Stored messages of a stream from `fromSeq` on, matching `subject` (may contain wildcards). */
  private async storedFrom(stream: string, subject: string, fromSeq: number): Promise<StoredMessage | undefined> {
    try {
      const {message} = await this.client.api<{message: StoredMessage}>(`STREAM.MSG.GET.${stream}`, {
        seq: fromSeq,
        next_by_subj: subject,
      })
      return message
    } catch (error) {
      if (isApiError(error, ERR.noMessage, ERR.streamNotFound)) return undefined
      throw error
    }
  }

  async peek(queue: string, limit: number): Promise<PeekedMessage[]> {
    const {info, meta} = await this.requireQueue(queue)
    const stream = this.naming.queueStream(queue)
    const levels = pullOrder(meta.levels)
    const consumers = await Promise.all(levels.map((level) => this.consumerInfo(stream, levelConsumer(level))))
    const delivered = new Map(levels.map((level, i) => [level, consumers[i]?.delivered.stream_seq ?? 0]))
    const leases = await this.leaseRecords(stream, '*')
    const now = Date.now()
    const out: PeekedMessage[] = []
    let seq = info.state.first_seq
    // Looks at `limit` stored messages in stream order (all levels): enough for the first `limit` of
    // one level, an approximation of the delivery order across levels.
    while (out.length < limit) {
      const stored = await this.storedFrom(stream, '>', seq)
      if (!stored) break
      seq = stored.seq + 1
      const priority = this.levelOfSubject(queue, stored.subject)
      const publishedAt = Date.parse(stored.time)
      const lease = leases.get(stored.seq)
      const pulled = stored.seq <= (delivered.get(priority) ?? 0)
      const early = lease?.s === 'd' && lease.u > now
      out.push({
        id: String(stored.seq),
        body: Buffer.from(stored.data ?? '', 'base64').toString('utf8'),
        headers: parseHeaderBlock(stored.hdrs),
        state: early ? 'delayed' : pulled ? 'in-flight' : 'ready',
        attempts: pulled ? (lease?.c ?? 1) : 0,
        publishedAt,
        visibleAt: lease && (pulled || early) ? lease.u : publishedAt,
        priority,
      })
    }
    // Ready messages first, in the order they will be delivered; then those held back.
    const ready = out
      .filter((m) => m.state === 'ready')
      .sort((a, b) => b.priority - a.priority || Number(a.id) - Number(b.id))
    return [...ready, ...out.filter((m) => m.state !== 'ready')]
  }

  /** The priority level of a stored queue message, by its subject. */
  private levelOfSubject(queue: string, subject: string): number {
    if (subject === this.naming.queueSubject(queue)) return 0
    return Number(subject.split('.')[this.naming.root.split('.').length + 1]) || 0
  }

  // ---- publishing

  async publish(name: string, messages: OutgoingMessage[], options: PublishOptions = {}): Promise<PublishResult[]> {
    validateName(name, options.kind === 'topic' ? 'topic name' : 'destination name')
    if (messages.length === 0) return []
    validateMessages(messages)
    messages.forEach((message, index) => {
      if (message.deliverAt !== undefined) wrapAt(() => this.refuseUnless('delay'), index, messages.length)
      if (message.ttlMs !== undefined) wrapAt(() => this.refuseUnless('ttl'), index, messages.length)
      if (message.priority !== undefined && message.priority !== 0)
        wrapAt(() => this.refuseUnless('priority'), index, messages.length)
      for (const [key, value] of Object.entries(message.headers ?? {})) {
        if (/[\r\n]/.test(value)) {
          throw atMessage(
            new InvalidInputError(`header "${printable(key, 40)}" has a line break, which NATS headers cannot carry`),
            index,
            messages.length,
          )
        }
        if (/^nats-/i.test(key))
          throw atMessage(
            new InvalidInputError(`header names starting with "Nats-" belong to the NATS server`, {
              hint: 'rename the header',
            }),
            index,
            messages.length,
          )
      }
    })
    const kind = await this.kindForPublish(name, options)
    if (kind === 'topic') {
      if (messages.some((m) => m.deliverAt !== undefined || m.ttlMs !== undefined || m.priority)) {
        throw new InvalidInputError(`${name} is a topic: delays, TTLs and priorities apply to queues`, {
          hint: 'publish without --delay, --at, --ttl and --priority',
        })
      }
      return this.publishTopic(name, messages)
    }
    const meta = this.queues.get(name)!
    checkBodySizes(name, meta.settings.maxBodyBytes, messages)
    return this.publishQueue(meta, messages, options)
  }

  private async kindForPublish(name: string, options: PublishOptions): Promise<'queue' | 'topic'> {
    if (this.queues.has(name) && options.kind !== 'topic') return 'queue'
    const queue = await this.queueMeta(name)
    if (options.kind === 'topic') {
      if (queue) throw new WrongKindError(name, 'queue', {hint: `publish without --topic, or choose another name`})
      await this.declareTopic(name)
      return 'topic'
    }
    if (queue) return 'queue'
    if (await this.topicMeta(name)) return 'topic'
    // A name a subscription pattern covers becomes a topic, as on the file broker.
    const subscriptions = await this.subscriptionMetas()
    if (subscriptions.some((s) => this.naming.filterFor(s.meta.pattern).matcher.matches(name))) {
      await this.declareTopic(name)
      return 'topic'
    }
    await this.declareQueue(name)
    return 'queue'
  }

  private encodeMessage(message: OutgoingMessage, schedule: Schedule = {}) {
    const entries = Object.entries(message.headers ?? {})
    if (entries.length === 0 && message.dedupId === undefined && !hasSchedule(schedule))
      return {data: encodeText(message.body), headers: undefined}
    const headers = this.client.headers()
    for (const [key, value] of entries) headers.set(key, value)
    if (message.dedupId !== undefined) headers.set('Nats-Msg-Id', message.dedupId)
    writeSchedule(headers, schedule)
    return {data: encodeText(message.body), headers}
  }

  private async publishQueue(
    given: QueueMeta,
    messages: OutgoingMessage[],
    options: PublishOptions,
  ): Promise<PublishResult[]> {
    const levels = new Set(messages.map((m) => m.priority ?? 0))
    const meta = levels.size === 1 && levels.has(0) ? given : await this.ensureLevels(given, levels)
    const now = Date.now()
    const schedules = messages.map((m) => scheduleOf(m, meta.settings.defaultTtlMs, now))
    const stream = this.naming.queueStream(meta.name)
    if (schedules.some((s) => s.notBefore !== undefined)) await this.leases()
    const bounded = meta.settings.maxLength !== null || meta.settings.maxBytes !== null
    const results: PublishResult[] = []
    let duplicates = 0
    const record = async (ack: {seq: number; duplicate?: boolean}, index: number) => {
      if (ack.duplicate) duplicates++
      const notBefore = schedules[index].notBefore
      if (notBefore !== undefined && !ack.duplicate) {
        // Counted as delayed by stats until a receive meets it (schedule.ts). Written only if no
        // record is there yet: a waiting consumer may already have met the message early and
        // recorded that (its count of early meetings), which this record must not replace.
        const level = messages[index].priority ?? 0
        const waiting: LeaseRecord = {d: 0, s: 'd', u: notBefore, c: 0}
        await this.casWrite(this.naming.leaseSubject(stream, levelConsumer(level), ack.seq), waiting, 0)
      }
      return {
        id: String(ack.seq),
        destination: meta.name,
        kind: 'queue' as const,
        ...(ack.duplicate ? {duplicate: true} : {}),
      }
    }
    const send = (index: number) => {
      const message = messages[index]
      const {data, headers} = this.encodeMessage(message, schedules[index])
      return this.client.publish(this.naming.queueSubject(meta.name, message.priority ?? 0), data, headers)
    }
    try {
      if (!bounded) {
        // Pipelined: the connection keeps them in order, the server stores them in that order.
        await inWindows(messages, async (_message, index) => {
          results[index] = await record(await send(index), index)
        })
      } else {
        const deadline = monotonicNow() + (options.blockTimeoutMs ?? Number.POSITIVE_INFINITY)
        for (let index = 0; index < messages.length; index++) {
          for (;;) {
            try {
              results.push(await record(await send(index), index))
              break
            } catch (error) {
              if (
                !(error instanceof JsApiError) ||
                (error.error.err_code !== ERR.maxMessages && error.error.err_code !== ERR.maxBytes)
              )
                throw error
              await this.onFull(meta, results, messages.length, deadline, options)
            }
          }
        }
      }
    } finally {
      this.rates.count(stream, 'published', results.filter((r) => r && !r.duplicate).length)
      if (duplicates > 0)
        await this.bump(`${this.naming.queueStream(meta.name)}-${QUEUE_CONSUMER}`, {deduplicated: duplicates})
    }
    return results
  }

  /** A publish met a full queue: reject, make room by dropping the oldest ready message, or wait for room. */
  private async onFull(
    meta: QueueMeta,
    results: PublishResult[],
    total: number,
    deadline: number,
    options: PublishOptions,
  ): Promise<void> {
    const full = `queue ${meta.name} is full (${[meta.settings.maxLength !== null ? `max ${meta.settings.maxLength} messages` : '', meta.settings.maxBytes !== null ? `max ${meta.settings.maxBytes} bytes` : ''].filter(Boolean).join(', ')})`
    const fail = (extra: string) => {
      const error = new QueueFullError(`${full}${extra}`, {
        hint: `${results.length} of ${total} messages were published; let consumers catch up, raise the limit with \`mq queue update ${meta.name} --max-length N\`, or choose --overflow block or drop-oldest`,
      })
      error.published = [...results]
      return error
    }
    if (meta.settings.overflow === 'reject') throw fail('')
    if (meta.settings.overflow === 'drop-oldest') {
      if (await this.dropOldestReady(meta)) return
      throw fail(' and every message in it is in flight')
    }
    if (options.signal?.aborted) throw new InterruptedError()
    if (monotonicNow() >= deadline)
      throw fail(
        options.blockTimeoutMs === undefined ? '' : ` and stayed full for ${formatDuration(options.blockTimeoutMs)}`,
      )
    await sleep(Math.min(50, Math.max(1, deadline - monotonicNow())))
  }

  /**
   * Deletes the head of the queue among messages no consumer holds (JetStream's discard-old would
   * drop one in flight): the oldest of the highest priority level, as the file broker does.
   */
  private async dropOldestReady(meta: QueueMeta): Promise<boolean> {
    const stream = this.naming.queueStream(meta.name)
    for (const level of pullOrder((await this.queueMeta(meta.name))?.meta.levels)) {
      const consumer = await this.consumerInfo(stream, levelConsumer(level))
      let seq = (consumer?.delivered.stream_seq ?? 0) + 1
      for (let tries = 0; tries < 100; tries++) {
        const stored = await this.storedFrom(stream, this.naming.queueSubject(meta.name, level), seq)
        if (!stored) break
        try {
          await this.client.api(`STREAM.MSG.DELETE.${stream}`, {seq: stored.seq, no_erase: true})
          await this.bump(`${stream}-${QUEUE_CONSUMER}`, {dropped: 1})
          return true
        } catch (error) {
          if (!(error instanceof JsApiError)) throw error
          seq = stored.seq + 1 // taken meanwhile: the next one
        }
      }
    }
    return false
  }

  // ---- receiving

  async receive(queue: string, options: ReceiveOptions): Promise<Delivery[]> {
    validateName(queue, 'queue name')
    let meta = await this.freshQueueMeta(queue)
    const deadline = monotonicNow() + (options.waitMs ?? 0)
    for (;;) {
      const remaining = Math.max(0, deadline - monotonicNow())
      if (meta.levels?.length) return this.pullLevels(meta, {...options, waitMs: remaining})
      // One consumer: the server long-polls it, a chunk at a time so that a first publish with a
      // priority (a new consumer to pull from) is noticed within LEVEL_CHECK_MS.
      const out = await this.pullDeliveries(this.queueSource(meta, 0), {
        ...options,
        waitMs: Math.min(remaining, LEVEL_CHECK_MS),
      })
      if (out.length > 0 || options.signal?.aborted || monotonicNow() >= deadline) return out
      meta = await this.freshQueueMeta(queue)
    }
  }

  /** A queue's description, re-read when older than QUEUE_META_FRESH_MS; a missing queue is made. */
  private async freshQueueMeta(queue: string): Promise<QueueMeta> {
    const cached = this.queues.get(queue)
    if (cached && monotonicNow() - (this.queuesSeenAt.get(queue) ?? 0) < QUEUE_META_FRESH_MS) return cached
    const found = await this.queueMeta(queue)
    if (found) return found.meta
    // Deleted while this process receives from it: the pull says so.
    if (cached) return cached
    if (await this.topicMeta(queue)) throw new WrongKindError(queue, 'topic', {hint: `use \`mq subscribe ${queue}\``})
    await this.declareQueue(queue)
    return this.queues.get(queue)!
  }

  private queueSource(meta: QueueMeta, level: number): Source {
    return {
      stream: this.naming.queueStream(meta.name),
      consumer: levelConsumer(level),
      kind: 'queue',
      name: meta.name,
      settings: meta.settings,
    }
  }

  /** Receives from a queue with priorities: its levels highest first (priorities.ts). */
  private async pullLevels(meta: QueueMeta, options: ReceiveOptions): Promise<Delivery[]> {
    if (!options.autoAck) await this.leases()
    const deadline = monotonicNow() + (options.waitMs ?? 0)
    const waker =
      (options.waitMs ?? 0) > 0
        ? new Waker(this.client.nc, [this.naming.queueSubject(meta.name), this.naming.queueLevelSubjects(meta.name)])
        : undefined
    try {
      for (;;) {
        const out: Delivery[] = []
        for (const level of pullOrder(meta.levels)) {
          const source = this.queueSource(meta, level)
          while (out.length < options.max) {
            const pulled = await this.client.pull(source.stream, source.consumer, options.max - out.length, 0)
            const admitted = await this.admit(source, pulled, options)
            out.push(...admitted)
            // Empty, or all taken: the next level; some were dead-lettered or given back: look again.
            if (pulled.length === 0 || admitted.length === pulled.length) break
          }
          if (out.length >= options.max) break
        }
        const left = deadline - monotonicNow()
        if (out.length > 0 || options.signal?.aborted || left <= 0 || !waker) return out
        await waker.wait(Math.min(options.pollIntervalMs ?? LEVEL_POLL_MS, left), options.signal)
        meta = await this.freshQueueMeta(meta.name)
      }
    } finally {
      waker?.close()
    }
  }

  private async pullDeliveries(source: Source, options: ReceiveOptions): Promise<Delivery[]> {
    if (!options.autoAck) await this.leases()
    const deadline = monotonicNow() + (options.waitMs ?? 0)
    const out: Delivery[] = []
    for (;;) {
      if (options.signal?.aborted) break
      const want = options.max - out.length
      const remaining = deadline - monotonicNow()
      let pulled: PulledMessage[]
      if (out.length === 0 && remaining > 0 && options.pollIntervalMs === undefined) {
        // Long poll: one message wakes us, then take what else is there at once.
        pulled = await this.client.pull(
          source.stream,
          source.consumer,
          1,
          Math.min(remaining, PULL_CHUNK_MS),
          options.signal,
        )
        if (pulled.length > 0 && want > 1)
          pulled.push(...(await this.client.pull(source.stream, source.consumer, want - 1, 0)))
      } else {
        pulled = await this.client.pull(source.stream, source.consumer, want, 0)
      }
      const admitted = await this.admit(source, pulled, options)
      out.push(...admitted)
      if (out.length >= options.max) break
      if (pulled.length > 0 && admitted.length < pulled.length) continue // some were dead-lettered or filtered: look again
      if (out.length > 0 || monotonicNow() >= deadline) break
      if (options.pollIntervalMs !== undefined)
        await sleep(Math.min(options.pollIntervalMs, Math.max(0, deadline - monotonicNow())), options.signal).catch(
          () => {},
        )
    }
    return out
  }

  /** Turns pulled messages into deliveries: dead-letters the exhausted, skips what a pattern does not match, leases or acks the rest. */
  private async admit(source: Source, pulled: PulledMessage[], options: ReceiveOptions): Promise<Delivery[]> {
    const deliveries: Delivery[] = []
    const work: Promise<unknown>[] = []
    let expiredDropped = 0
    const now = Date.now()
    const lease = options.visibilityTimeoutMs ?? source.settings.visibilityTimeoutMs
    for (const msg of pulled) {
      const ack = parseAckSubject(msg.reply)
      if (!ack) continue
      let topic: string | undefined
      if (source.kind === 'subscription') {
        topic = this.naming.topicOf(msg.subject)
        if (source.matches && !source.matches(topic)) {
          this.client.send(msg.reply, '+ACK')
          continue
        }
        const topicSettings = await this.topicSettings(topic)
        if (topicSettings && now - ack.publishedAt > topicSettings.maxAgeMs) {
          this.client.send(msg.reply, '+ACK')
          continue
        }
      }
      const leaseSubject = this.naming.leaseSubject(ack.stream, ack.consumer, ack.streamSeq)
      let previous: LeaseRecord | undefined
      const schedule = source.kind === 'queue' ? readSchedule(msg.headers) : {}
      if (hasSchedule(schedule)) {
        const what = verdict(schedule, now)
        if (what === 'early') {
          // Not due yet: back to the server until it is; this delivery is not an attempt.
          const waiting: LeaseRecord = {d: ack.deliverySeq, s: 'd', u: schedule.notBefore!, c: 0, z: ack.count}
          work.push(this.client.publish(leaseSubject, JSON.stringify(waiting)))
          this.client.send(msg.reply, `-NAK ${JSON.stringify({delay: Math.max(1, schedule.notBefore! - now) * NS})}`)
          continue
        }
        if (schedule.notBefore !== undefined) {
          previous = (await this.lastRecord<LeaseRecord>(this.naming.leaseStream, leaseSubject))?.value
          ack.early = previous?.z ?? 0
        }
        if (what === 'expired') {
          const dropped = this.expire(source, ack, schedule.expiresAt!)
          work.push(dropped.then((gone) => (expiredDropped += gone ? 1 : 0)))
          continue
        }
      }
      const attempt = ack.count - ack.early
      if (source.settings.deadLetterQueue !== null && attempt > source.settings.maxDeliveries) {
        previous ??= (await this.lastRecord<LeaseRecord>(this.naming.leaseStream, leaseSubject))?.value
        work.push(this.deadLetter(source, ack, 'max-deliveries', attempt - 1, previous?.e))
        continue
      }
      const delivery: Delivery = {
        id: String(ack.streamSeq),
        body: decodeText(msg.data),
        headers: userHeaders(msg.headers),
        attempt,
        publishedAt: ack.publishedAt,
      }
      if (source.kind === 'queue') {
        delivery.queue = source.name
        delivery.priority = levelOfConsumer(ack.consumer)
        if (schedule.expiresAt !== undefined) delivery.expiresAt = schedule.expiresAt
      } else {
        delivery.topic = topic
        delivery.subscription = source.name
      }
      if (options.autoAck) this.client.send(msg.reply, '+ACK')
      else {
        const until = now + lease
        if (ack.count === 1 && previous === undefined && schedule.notBefore === undefined) {
          // A first delivery: no earlier receipt of it exists to be made stale, so no record yet;
          // the first settle creates it (compare-and-set against "none"), which a redelivery's
          // record would have beaten.
          delivery.receipt = formatReceipt(msg.reply, 0, until, 0)
        } else {
          const record: LeaseRecord = {d: ack.deliverySeq, s: 'l', u: until, c: attempt}
          if (ack.early > 0) record.z = ack.early
          // The receipt carries the lease record's sequence: settling it is then one compare-and-set.
          work.push(
            this.client.publish(leaseSubject, JSON.stringify(record)).then(({seq}) => {
              delivery.receipt = formatReceipt(msg.reply, seq, until, ack.early)
            }),
          )
        }
        if (lease !== source.settings.visibilityTimeoutMs)
          this.client.send(msg.reply, `-NAK ${JSON.stringify({delay: lease * NS})}`)
      }
      deliveries.push(delivery)
    }
    await Promise.all(work)
    // Acks and delayed NAKs went out unconfirmed: make sure the server has them.
    if (pulled.length > 0) await this.client.flush()
    if (options.autoAck && deliveries.length > 0 && source.kind === 'subscription')
      await this.bump(`${source.stream}-${source.consumer}`, {acked: deliveries.length})
    if (options.autoAck && source.kind === 'queue') this.rates.count(source.stream, 'acked', deliveries.length)
    if (expiredDropped > 0)
      await this.bump(`${source.stream}-${QUEUE_CONSUMER}`, {expired: expiredDropped, expiredDropped})
    return deliveries
  }

  /**
   * A message met after its TTL: dead-lettered (reason `expired`) when the queue asks for it and has
   * a dead-letter queue, else dropped. True when dropped (the caller counts those at once).
   */
  private async expire(source: Source, ack: AckInfo, expiresAt: number): Promise<boolean> {
    if (source.settings.deadLetterExpired && source.settings.deadLetterQueue !== null) {
      const at = `expired at ${new Date(expiresAt).toISOString()}`
      await this.deadLetter(source, ack, 'expired', ack.count - 1 - ack.early, at, {expired: 1})
      return false
    }
    await this.client.settle(ack.subject, '+ACK')
    return true
  }

  /** Copies a message to its dead-letter queue with mqctl's headers, then removes it from its source. */
  private async deadLetter(
    source: Source,
    ack: AckInfo,
    reason: string,
    attempts: number,
    error: string | undefined,
    counted: Record<string, number> = {},
  ): Promise<void> {
    const deadLetterQueue = source.settings.deadLetterQueue!
    const {message} = await this.client.api<{message: StoredMessage}>(`STREAM.MSG.GET.${ack.stream}`, {
      seq: ack.streamSeq,
    })
    const headers: Headers = parseHeaderBlock(message.hdrs)
    if (source.kind === 'queue') headers['x-original-queue'] = source.name
    else {
      headers['x-original-topic'] = this.naming.topicOf(message.subject)
      headers['x-original-subscription'] = source.name
    }
    headers['x-dead-letter-reason'] = reason
    headers['x-dead-letter-attempts'] = String(attempts)
    headers['x-dead-lettered-at'] = new Date().toISOString()
    if (error) headers['x-last-error'] = error.slice(0, 1000).replace(/[\r\n]+/g, ' ')
    if (!this.queues.has(deadLetterQueue)) await this.declareQueue(deadLetterQueue)
    const nats = this.client.headers()
    for (const [key, value] of Object.entries(headers)) nats.set(key, value)
    // Idempotent: a retry after a crash between the copy and the ack stores nothing new.
    nats.set('Nats-Msg-Id', `dlq-${ack.stream}-${ack.streamSeq}-${ack.deliverySeq}`)
    await this.client.publish(
      this.naming.queueSubject(deadLetterQueue),
      Buffer.from(message.data ?? '', 'base64'),
      nats,
    )
    await this.client.settle(ack.subject, '+ACK')
    await this.bump(this.counterKey(ack), {deadLettered: 1, ...counted})
  }

  /** Where a delivery's totals are counted: per queue (all its levels), per subscription. */
  private counterKey(ack: {stream: string; consumer: string}): string {
    return `${ack.stream}-${ack.stream === this.naming.topicStream ? ack.consumer : QUEUE_CONSUMER}`
  }

  // ---- settling

  private parseReceipts(receipts: string[]): AckInfo[] {
    return receipts.map((receipt, index) => {
      const ack = parseReceipt(receipt)
      if (!ack || !ack.stream.startsWith(`${this.naming.streamRoot}_`)) {
        throw atMessage(
          new InvalidInputError(`"${printable(receipt, 40)}" is not a receipt of this broker`, {
            code: 'bad_receipt',
            hint: 'pass receipts as printed by `mq consume --ack manual`, on the same --broker and --prefix',
          }),
          index,
          receipts.length,
        )
      }
      return ack
    })
  }

  /** The current lease of a delivery, when the receipt still holds it. */
  private async currentLease(ack: AckInfo): Promise<{seq: number; value: LeaseRecord} | undefined> {
    const record = await this.lastRecord<LeaseRecord>(
      this.naming.leaseStream,
      this.naming.leaseSubject(ack.stream, ack.consumer, ack.streamSeq),
    )
    if (!record || record.value.d !== ack.deliverySeq || record.value.s !== 'l') return undefined
    return record
  }

  /** Claims a delivery's lease by compare-and-set, so exactly one settle of a receipt wins. */
  private async claim(ack: AckInfo, next: Omit<LeaseRecord, 'd' | 'c'>): Promise<LeaseRecord | undefined> {
    const subject = this.naming.leaseSubject(ack.stream, ack.consumer, ack.streamSeq)
    // Fast path: the record is still the one written at delivery (no extend since), so it is this
    // delivery's live lease; anything else is looked at before deciding.
    const fresh: LeaseRecord = {d: ack.deliverySeq, s: 'l', u: 0, c: ack.count - ack.early}
    if (ack.early > 0) fresh.z = ack.early
    if (ack.leaseSeq !== undefined && (await this.casWrite(subject, {...fresh, ...next}, ack.leaseSeq))) return fresh
    const current = await this.currentLease(ack)
    if (!current) return undefined
    const record = {...current.value, ...next}
    return (await this.casWrite(subject, record, current.seq)) ? current.value : undefined
  }

  async ack(receipts: string[]): Promise<SettleOutcome[]> {
    const acks = this.parseReceipts(receipts)
    const settled = new Map<string, number>()
    const outcomes = await inWindows(acks, async (ack): Promise<SettleOutcome> => {
      if (!(await this.claim(ack, {s: 'x', u: Date.now()}))) return 'stale'
      // The claim decided; the ack itself needs no answer of its own: one flush for the batch
      // makes sure the server has them all.
      this.client.send(ack.subject, '+ACK')
      const key = `${ack.stream}-${ack.consumer}`
      settled.set(key, (settled.get(key) ?? 0) + 1)
      return 'ok'
    })
    await this.client.flush()
    // A queue's acked total is derived from its stream (see queueStats); subscriptions count theirs.
    for (const [key, acked] of settled) {
      if (key.startsWith(`${this.naming.topicStream}-`)) await this.bump(key, {acked})
      else this.rates.count(key.slice(0, key.lastIndexOf('-')), 'acked', acked)
    }
    return outcomes
  }

  async nack(receipts: string[], options: NackOptions = {}): Promise<NackOutcome[]> {
    const acks = this.parseReceipts(receipts)
    return inWindows(acks, async (ack): Promise<NackOutcome> => {
      const source = await this.sourceOf(ack)
      const attempt = ack.count - ack.early
      const exhausted = attempt >= source.settings.maxDeliveries
      const toDeadLetters =
        !options.uncounted && source.settings.deadLetterQueue !== null && (options.deadLetter || exhausted)
      const delayMs = options.uncounted
        ? 0
        : options.backoff
          ? backoffDelayMs(source.settings.retryBackoffMs, source.settings.retryBackoffMaxMs, attempt)
          : (options.delayMs ?? 0)
      const claimed = await this.claim(ack, {
        s: toDeadLetters || delayMs === 0 ? 'x' : 'd',
        u: Date.now() + delayMs,
        ...(options.error ? {e: options.error.slice(0, 1000)} : {}),
      })
      if (!claimed) return 'stale'
      if (toDeadLetters) {
        await this.deadLetter(source, ack, options.deadLetter ? 'rejected' : 'max-deliveries', attempt, options.error)
        return 'dead-lettered'
      }
      await this.client.settle(ack.subject, delayMs > 0 ? `-NAK ${JSON.stringify({delay: delayMs * NS})}` : '-NAK')
      return 'released'
    })
  }

  async extend(receipts: string[], byMs: number): Promise<SettleOutcome[]> {
    const acks = this.parseReceipts(receipts)
    return inWindows(acks, async (ack): Promise<SettleOutcome> => {
      if (!(await this.claim(ack, {s: 'l', u: Date.now() + byMs}))) return 'stale'
      // A delayed negative ack is JetStream's lease of any length: redelivery after byMs, an ack still works meanwhile.
      await this.client.settle(ack.subject, `-NAK ${JSON.stringify({delay: Math.max(1, byMs) * NS})}`)
      return 'ok'
    })
  }

  async stillLeased(receipts: string[]): Promise<boolean[]> {
    const acks = this.parseReceipts(receipts)
    const now = Date.now()
    return inWindows(acks, async (ack) => {
      const record = await this.lastRecord<LeaseRecord>(
        this.naming.leaseStream,
        this.naming.leaseSubject(ack.stream, ack.consumer, ack.streamSeq),
      )
      // No record: a first delivery nobody settled, extended or received again; its lease is the receipt's.
      if (!record) return ack.leaseSeq === 0 && (ack.until ?? 0) > now
      return record.value.d === ack.deliverySeq && record.value.s === 'l' && record.value.u > now
    })
  }

  async restore(deliveries: Delivery[]): Promise<void> {
    // Auto-acked messages are gone from JetStream: a queue gets them back at its end (attempt 1).
    for (const delivery of deliveries) {
      if (delivery.queue === undefined) continue
      const ttlMs = delivery.expiresAt === undefined ? undefined : Math.max(1, delivery.expiresAt - Date.now())
      await this.publish(delivery.queue, [
        {body: delivery.body, headers: delivery.headers, priority: delivery.priority, ttlMs},
      ])
    }
  }

  private async sourceOf(ack: AckInfo): Promise<Source> {
    if (ack.stream === this.naming.topicStream) {
      const consumer = await this.consumerInfo(ack.stream, ack.consumer)
      const meta = consumer && subscriptionMetaOf(consumer)
      if (!meta) throw new NotFoundError('the subscription of this receipt', '', {hint: 'it was deleted meanwhile'})
      return {
        stream: ack.stream,
        consumer: ack.consumer,
        kind: 'subscription',
        name: meta.name,
        settings: meta.settings,
      }
    }
    const info = await this.streamInfo(ack.stream)
    if (!info) throw new NotFoundError('the queue of this receipt', '', {hint: 'it was deleted meanwhile'})
    const meta = JSON.parse(info.config.description ?? '{}') as QueueMeta
    return {stream: ack.stream, consumer: ack.consumer, kind: 'queue', name: meta.name, settings: meta.settings}
  }

  // ---- dead letters

  async listDeadLetterQueues(): Promise<DeadLetterQueueInfo[]> {
    const owners = new Map<string, string[]>()
    for (const q of await this.listQueues()) {
      if (q.settings.deadLetterQueue !== null)
        owners.set(q.settings.deadLetterQueue, [...(owners.get(q.settings.deadLetterQueue) ?? []), q.name])
    }
    for (const s of await this.subscriptionMetas()) {
      if (s.meta.durable && s.meta.settings.deadLetterQueue !== null)
        owners.set(s.meta.settings.deadLetterQueue, [
          ...(owners.get(s.meta.settings.deadLetterQueue) ?? []),
          s.meta.name,
        ])
    }
    const out: DeadLetterQueueInfo[] = []
    for (const [name, sources] of [...owners].sort(([a], [b]) => a.localeCompare(b))) {
      const found = await this.queueMeta(name)
      if (!found) continue
      const state = found.info.state
      out.push({
        name,
        messages: state.messages,
        oldestAgeMs: state.messages > 0 ? Math.max(0, Date.now() - Date.parse(state.first_ts)) : null,
        sources,
      })
    }
    return out
  }

  async deadLetterQueueOf(name: string): Promise<string> {
    validateName(name, 'name')
    const queue = await this.queueMeta(name)
    const settings = queue?.meta.settings ?? (await this.durableMeta(name))?.settings
    if (!settings) throw new NotFoundError('queue or durable subscription', name)
    if (settings.deadLetterQueue === null) throw new InvalidInputError(`${name} has no dead-letter queue`)
    return settings.deadLetterQueue
  }

  async redrive(name: string, options: RedriveOptions = {}): Promise<RedriveResult> {
    const deadLetterQueue = await this.deadLetterQueueOf(name)
    if (!(await this.queueMeta(name))) {
      throw new InvalidInputError(`redriving into subscription ${name} is not available on a nats:// broker`, {
        hint: `a republished message would reach every subscription of its topic; consume ${deadLetterQueue} and handle the messages instead`,
      })
    }
    const result: RedriveResult = {
      deadLetterQueue,
      target: name,
      examined: 0,
      moved: 0,
      dryRun: Boolean(options.dryRun),
      ids: [],
    }
    const dlq = await this.queueMeta(deadLetterQueue)
    if (!dlq) return result
    const stream = this.naming.queueStream(deadLetterQueue)
    const limit = options.limit ?? Number.POSITIVE_INFINITY
    const spacingMs = options.ratePerSecond ? 1000 / options.ratePerSecond : 0
    let seq = dlq.info.state.first_seq
    const total = dlq.info.state.messages
    while (result.moved < limit && !options.signal?.aborted) {
      if (result.examined > 0 && result.examined % 100 === 0)
        options.onProgress?.({done: result.examined, total: Math.max(total, result.examined), moved: result.moved})
      const stored = await this.storedFrom(stream, this.naming.queueSubject(deadLetterQueue), seq)
      if (!stored) break
      seq = stored.seq + 1
      result.examined++
      const body = Buffer.from(stored.data ?? '', 'base64').toString('utf8')
      const headers = parseHeaderBlock(stored.hdrs)
      if (options.filter && !options.filter({body, headers})) continue
      result.ids.push(String(stored.seq))
      result.moved++
      if (result.dryRun) continue
      headers['x-redrive-count'] = String(Number(headers['x-redrive-count'] ?? 0) + 1)
      try {
        await this.publish(name, [{body, headers}], {blockTimeoutMs: 0})
      } catch (error) {
        if (!(error instanceof QueueFullError)) throw error
        result.ids.pop()
        result.moved--
        result.stoppedFull = true
        break
      }
      await this.client.api(`STREAM.MSG.DELETE.${stream}`, {seq: stored.seq, no_erase: true})
      await this.bump(`${stream}-${QUEUE_CONSUMER}`, {redriven: 1})
      if (spacingMs > 0) await sleep(spacingMs, options.signal).catch(() => {})
    }
    options.onProgress?.({done: result.examined, total: Math.max(total, result.examined), moved: result.moved})
    return result
  }

  // ---- topics

  private readonly topicCache = new Map<string, TopicSettings | null>()

  private async topicSettings(topic: string): Promise<TopicSettings | undefined> {
    if (!this.topicCache.has(topic)) this.topicCache.set(topic, (await this.topicMeta(topic))?.meta.settings ?? null)
    return this.topicCache.get(topic) ?? undefined
  }

  async declareTopic(
    name: string,
    given: Partial<TopicSettings> = {},
    placement: PlacementOptions = {},
  ): Promise<TopicInfo> {
    validateName(name, 'topic name')
    const {replicas} = placement
    if (given.maxBytes !== undefined && given.maxBytes !== null) this.refuseUnless('topic-max-bytes')
    if (replicas !== undefined) this.replicasFor(replicas)
    for (;;) {
      const existing = await this.topicMeta(name)
      if (existing) {
        const differing = differingSettings(
          given,
          resolveTopicSettings(name, given, existing.meta.settings),
          existing.meta.settings,
        )
        if (differing.length > 0) {
          throw new InvalidInputError(`topic ${name} already exists with other settings (${differing.join(', ')})`, {
            code: 'settings_differ',
          })
        }
        return this.topicInfo(existing.meta)
      }
      if (await this.queueMeta(name)) throw new WrongKindError(name, 'queue', {hint: `use \`mq consume ${name}\``})
      if (replicas !== undefined) await this.topicReplicas(replicas)
      await this.topicsStream()
      const meta: TopicMeta = {name, createdAt: Date.now(), settings: resolveTopicSettings(name, given)}
      if (await this.casWrite(this.naming.metaSubject('topic', name), meta, 0)) {
        this.topicCache.set(name, meta.settings)
        return this.topicInfo(meta)
      }
    }
  }

  /** All topics share one stream: `--replicas` sets its replication (made, or scaled if it exists). */
  private async topicReplicas(replicas: number): Promise<void> {
    const existing = await this.streamInfo(this.naming.topicStream)
    try {
      if (!existing) {
        this.ready.delete(this.naming.topicStream)
        await this.infra(this.naming.topicStream, {
          subjects: [`${this.naming.root}.t.>`],
          retention: 'limits',
          num_replicas: replicas,
          duplicate_window: DEFAULT_QUEUE_SETTINGS.dedupWindowMs * NS,
        })
      } else if ((existing.config.num_replicas ?? 1) !== replicas) {
        await this.client.api(`STREAM.UPDATE.${this.naming.topicStream}`, {...existing.config, num_replicas: replicas})
      }
    } catch (error) {
      throw replicasError(error, replicas)
    }
  }

  private async topicCounts(): Promise<Record<string, number>> {
    const info = await this.streamInfo(this.naming.topicStream, `${this.naming.root}.t.>`)
    const counts: Record<string, number> = {}
    for (const [subject, count] of Object.entries(info?.state.subjects ?? {}))
      counts[this.naming.topicOf(subject)] = count
    return counts
  }

  private async topicInfo(
    meta: TopicMeta,
    counts?: Record<string, number>,
    bytes?: Record<string, number>,
  ): Promise<TopicInfo> {
    const messages = (counts ?? (await this.topicCounts()))[meta.name] ?? 0
    const size =
      messages === 0 ? 0 : ((bytes ?? (await this.topicBytes(this.naming.topicSubject(meta.name))))[meta.name] ?? 0)
    return {name: meta.name, createdAt: meta.createdAt, settings: meta.settings, messages, bytes: size}
  }

  /** Bytes per topic under a filter: JetStream counts bytes per stream only (topic-bytes.ts). */
  private topicBytes(filter: string): Promise<Record<string, number>> {
    return topicBytes(this.client, this.naming.topicStream, filter, (subject) => this.naming.topicOf(subject))
  }

  private async topicMetas(): Promise<TopicMeta[]> {
    await this.meta()
    const info = await this.streamInfo(this.naming.metaStream, this.naming.metaSubjects('topic'))
    const metas: TopicMeta[] = []
    await inWindows(Object.keys(info?.state.subjects ?? {}), async (subject) => {
      const record = await this.lastRecord<TopicMeta>(this.naming.metaStream, subject)
      if (record) metas.push(record.value)
    })
    return metas.sort((a, b) => a.name.localeCompare(b.name))
  }

  async listTopics(): Promise<TopicInfo[]> {
    const [metas, counts] = await Promise.all([this.topicMetas(), this.topicCounts()])
    const bytes = Object.values(counts).some(Boolean) ? await this.topicBytes(`${this.naming.root}.t.>`) : {}
    return Promise.all(metas.map((meta) => this.topicInfo(meta, counts, bytes)))
  }

  async topicStats(name: string): Promise<TopicStats> {
    validateName(name, 'topic name')
    const found = await this.topicMeta(name)
    if (!found) {
      if (await this.queueMeta(name)) throw new WrongKindError(name, 'queue', {hint: `use \`mq queue stats ${name}\``})
      throw new NotFoundError('topic', name, {hint: 'see `mq topic list`'})
    }
    const info = await this.topicInfo(found.meta)
    const first =
      info.messages > 0 ? await this.storedFrom(this.naming.topicStream, this.naming.topicSubject(name), 1) : undefined
    const subscriptions = (await this.subscriptionMetas())
      .filter((s) => this.naming.filterFor(s.meta.pattern).matcher.matches(name))
      .map((s) => s.meta.name)
    const counts = await this.counters(`topic-${escapeCounter(name)}`)
    return {
      ...info,
      oldestAgeMs: first ? Math.max(0, Date.now() - Date.parse(first.time)) : null,
      subscriptions: subscriptions.sort(),
      totals: {published: info.messages + (counts.discarded ?? 0), discarded: counts.discarded ?? 0},
    }
  }

  async deleteTopic(name: string): Promise<{deleted: number}> {
    validateName(name, 'topic name')
    if (!(await this.topicMeta(name))) throw new NotFoundError('topic', name, {hint: 'see `mq topic list`'})
    const {purged} = await this.client.api<{purged: number}>(`STREAM.PURGE.${this.naming.topicStream}`, {
      filter: this.naming.topicSubject(name),
    })
    await this.purgeMeta(this.naming.metaSubject('topic', name))
    await this.purgeMeta(this.naming.metaSubject('count', `topic-${escapeCounter(name)}`))
    this.topicCache.delete(name)
    return {deleted: purged}
  }

  private async publishTopic(name: string, messages: OutgoingMessage[]): Promise<PublishResult[]> {
    const settings = (await this.topicSettings(name)) ?? resolveTopicSettings(name, {})
    checkBodySizes(name, settings.maxBodyBytes, messages)
    const subject = this.naming.topicSubject(name)
    const results = await inWindows(messages, async (message) => {
      const {data, headers} = this.encodeMessage(message)
      const ack = await this.client.publish(subject, data, headers)
      return {
        id: String(ack.seq),
        destination: name,
        kind: 'topic' as const,
        ...(ack.duplicate ? {duplicate: true} : {}),
      }
    })
    if (settings.maxMessages !== null) {
      const {purged} = await this.client.api<{purged: number}>(`STREAM.PURGE.${this.naming.topicStream}`, {
        filter: subject,
        keep: settings.maxMessages,
      })
      if (purged > 0) await this.bump(`topic-${escapeCounter(name)}`, {discarded: purged})
    }
    return results
  }

  // ---- subscriptions

  private async subscriptionMetas(): Promise<{consumer: ConsumerInfo; meta: SubscriptionMeta}[]> {
    if (!(await this.streamInfo(this.naming.topicStream))) return []
    const out: {consumer: ConsumerInfo; meta: SubscriptionMeta}[] = []
    for (let offset = 0; ;) {
      const page = await this.client.api<{consumers: ConsumerInfo[] | null; total: number}>(
        `CONSUMER.LIST.${this.naming.topicStream}`,
        {offset},
      )
      const consumers = page.consumers ?? []
      for (const consumer of consumers) {
        const meta = subscriptionMetaOf(consumer)
        if (meta) out.push({consumer, meta})
      }
      offset += consumers.length
      if (consumers.length === 0 || offset >= page.total) return out
    }
  }

  private async durableMeta(name: string): Promise<SubscriptionMeta | undefined> {
    const consumer = await this.consumerInfo(this.naming.topicStream, this.naming.subscriptionConsumer(name))
    return consumer && subscriptionMetaOf(consumer)
  }

  async subscribe(pattern: string, options: SubscribeOptions = {}): Promise<Subscription> {
    const {filter, exact, matcher} = this.naming.filterFor(pattern)
    if (options.durable !== undefined) validateName(options.durable, 'subscription name')
    if (matcher.literal && (await this.queueMeta(pattern)))
      throw new WrongKindError(pattern, 'queue', {hint: `consume it with \`mq consume ${pattern}\``})
    await this.topicsStream()
    const durable = options.durable !== undefined
    const name = options.durable ?? `~${process.pid}.${randomBytes(3).toString('hex')}`
    const consumerName = durable
      ? this.naming.subscriptionConsumer(name)
      : `E_${process.pid}_${randomBytes(3).toString('hex')}`
    if (durable) {
      const existing = await this.durableMeta(name)
      if (existing) {
        if (existing.pattern !== pattern) {
          throw new InvalidInputError(
            `durable subscription ${name} already exists with pattern "${existing.pattern}", not "${pattern}"`,
            {
              code: 'pattern_differs',
              hint: `use another name, or delete it with \`mq subscription delete ${name}\``,
            },
          )
        }
        return this.subscriptionHandle(
          existing,
          consumerName,
          exact ? undefined : (topic) => matcher.matches(topic),
          true,
        )
      }
    }
    const base = {
      ...DEFAULT_QUEUE_SETTINGS,
      deadLetterQueue: durable ? defaultDeadLetterQueue(name) : EPHEMERAL_DEAD_LETTER_QUEUE,
    }
    const full = resolveQueueSettings(name, options.settings ?? {}, base)
    const settings: SubscriptionSettings = {
      visibilityTimeoutMs: full.visibilityTimeoutMs,
      maxDeliveries: full.maxDeliveries,
      deadLetterQueue: full.deadLetterQueue,
      retryBackoffMs: full.retryBackoffMs,
      retryBackoffMaxMs: full.retryBackoffMaxMs,
    }
    const meta: SubscriptionMeta = {
      mq: 'subscription',
      name,
      pattern,
      durable,
      createdAt: Date.now(),
      settings,
      ...(durable ? {} : {pid: process.pid}),
    }
    const start = options.start ?? {kind: 'new'}
    const startConfig: Record<string, unknown> = {deliver_policy: 'new'}
    if (start.kind === 'all') startConfig.deliver_policy = 'all'
    else if (start.kind === 'since')
      Object.assign(startConfig, {deliver_policy: 'by_start_time', opt_start_time: new Date(start.time).toISOString()})
    else if (start.kind === 'from-id') {
      if (!/^[1-9]\d{0,15}$/.test(start.id))
        throw new InvalidInputError(`--from-id "${printable(start.id, 30)}" is not a message id`, {
          hint: 'message ids are positive whole numbers',
        })
      Object.assign(startConfig, {deliver_policy: 'by_start_sequence', opt_start_seq: Number(start.id)})
    }
    const config = this.consumerConfig(consumerName, settings, {
      description: JSON.stringify(meta),
      filter_subject: filter,
      ...startConfig,
    })
    if (!durable) {
      delete config.durable_name
      config.inactive_threshold = EPHEMERAL_INACTIVE_MS * NS
      config.name = consumerName
    }
    const stream = this.naming.topicStream
    if (durable)
      await this.client.api(`CONSUMER.DURABLE.CREATE.${stream}.${consumerName}`, {stream_name: stream, config})
    else {
      const created = await this.client.api<ConsumerInfo>(`CONSUMER.CREATE.${stream}`, {stream_name: stream, config})
      return this.subscriptionHandle(meta, created.name, exact ? undefined : (topic) => matcher.matches(topic), false)
    }
    return this.subscriptionHandle(meta, consumerName, exact ? undefined : (topic) => matcher.matches(topic), false)
  }

  private subscriptionHandle(
    meta: SubscriptionMeta,
    consumer: string,
    matches: ((topic: string) => boolean) | undefined,
    resumed: boolean,
  ): Subscription {
    const source: Source = {
      stream: this.naming.topicStream,
      consumer,
      kind: 'subscription',
      name: meta.name,
      settings: meta.settings,
      matches,
    }
    let closed = false
    return {
      name: meta.name,
      pattern: meta.pattern,
      durable: meta.durable,
      resumed,
      settings: meta.settings,
      receive: (options) => this.pullDeliveries(source, options),
      close: async () => {
        if (closed || meta.durable || this.closed) return
        closed = true
        await this.deleteConsumer(consumer)
      },
    }
  }

  private async deleteConsumer(consumer: string): Promise<void> {
    try {
      await this.client.api(`CONSUMER.DELETE.${this.naming.topicStream}.${consumer}`)
    } catch (error) {
      if (!(error instanceof JsApiError && error.error.err_code === ERR.consumerNotFound)) throw error
    }
    await this.forgetLeases(this.naming.topicStream, consumer)
    await this.purgeMeta(this.naming.metaSubject('count', `${this.naming.topicStream}-${consumer}`))
  }

  async listSubscriptions(): Promise<SubscriptionInfo[]> {
    return (await this.subscriptionMetas())
      .map(({meta}) => ({
        name: meta.name,
        pattern: meta.pattern,
        durable: meta.durable,
        createdAt: meta.createdAt,
        ...(meta.durable ? {} : {pid: meta.pid}),
      }))
      .sort((a, b) => a.name.localeCompare(b.name))
  }

  private async findSubscription(name: string): Promise<{consumer: ConsumerInfo; meta: SubscriptionMeta}> {
    validateName(name.replace(/^~/, ''), 'subscription name')
    const found = (await this.subscriptionMetas()).find((s) => s.meta.name === name)
    if (!found) throw new NotFoundError('subscription', name, {hint: 'see `mq subscription list`'})
    return found
  }

  async subscriptionStats(name: string): Promise<SubscriptionStats> {
    const {consumer, meta} = await this.findSubscription(name)
    const now = Date.now()
    const leases = await this.leaseRecords(this.naming.topicStream, consumer.name)
    const delayed =
      consumer.num_ack_pending === 0 ? 0 : [...leases.values()].filter((l) => l.s === 'd' && l.u > now).length
    const oldest =
      consumer.num_ack_pending > 0
        ? await this.storedFrom(
            this.naming.topicStream,
            consumer.config.filter_subject ?? '>',
            consumer.ack_floor.stream_seq + 1,
          )
        : undefined
    const {matcher} = this.naming.filterFor(meta.pattern)
    const counts = await this.counters(`${this.naming.topicStream}-${consumer.name}`)
    return {
      name: meta.name,
      pattern: meta.pattern,
      durable: meta.durable,
      createdAt: meta.createdAt,
      ...(meta.durable ? {} : {pid: meta.pid}),
      lag: consumer.num_pending,
      inFlight: Math.max(0, consumer.num_ack_pending - delayed),
      pendingRedelivery: delayed,
      oldestUnackedAgeMs: oldest ? Math.max(0, now - Date.parse(oldest.time)) : null,
      topics: (await this.topicMetas()).map((t) => t.name).filter((t) => matcher.matches(t)),
      settings: meta.settings,
      totals: {acked: counts.acked ?? 0, deadLettered: counts.deadLettered ?? 0},
    }
  }

  async deleteSubscription(name: string): Promise<void> {
    const {consumer} = await this.findSubscription(name)
    await this.deleteConsumer(consumer.name)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.rates.flush()
    await this.client.close()
  }
}

function queueInfo(meta: QueueMeta, info: StreamInfo): QueueInfo {
  return {
    name: meta.name,
    createdAt: meta.createdAt,
    settings: meta.settings,
    depth: info.state.messages,
    bytes: info.state.bytes,
  }
}

function subscriptionMetaOf(consumer: ConsumerInfo): SubscriptionMeta | undefined {
  try {
    const meta = JSON.parse(consumer.config.description ?? '') as SubscriptionMeta
    return meta.mq === 'subscription' ? meta : undefined
  } catch {
    return undefined
  }
}

/**
 * Runs `work` over items with at most WINDOW in flight, starting the next as soon as one ends
 * (items are started in order, so their requests go out in order); results in order. After a
 * failure no new item starts, and the first error is thrown once those in flight ended.
 */
async function inWindows<T, R>(items: T[], work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = Array.from({length: items.length})
  let next = 0
  let failure: {error: unknown} | undefined
  const worker = async () => {
    while (next < items.length && !failure) {
      const index = next++
      try {
        results[index] = await work(items[index], index)
      } catch (error) {
        failure ??= {error}
      }
    }
  }
  await Promise.all(Array.from({length: Math.min(WINDOW, items.length)}, worker))
  if (failure) throw failure.error
  return results
}

function wrapAt(check: () => void, index: number, count: number): void {
  try {
    check()
  } catch (error) {
    if (error instanceof InvalidInputError) throw atMessage(error, index, count)
    throw error
  }
}

/** The server refuses more replicas than it has servers: say so as a usage error. */
function replicasError(error: unknown, replicas: number | undefined): unknown {
  if (replicas === undefined || !(error instanceof JsApiError) || !/replica|cluster|peers/i.test(error.message))
    return error
  return new InvalidInputError(`cannot keep ${replicas} replicas: ${error.message}`, {
    hint: 'use --replicas N with N no more than the servers of the cluster',
  })
}

function escapeCounter(name: string): string {
  return name.replaceAll('.', '_d')
}

/** Whether `error` is a JetStream API error with one of these codes. */
function isApiError(error: unknown, ...codes: number[]): boolean {
  return error instanceof JsApiError && codes.includes(error.error.err_code)
}
