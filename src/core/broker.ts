import type {BrokerDescription} from './capabilities.js'
import type {LockWaiter} from './lock-wait.js'

/**
 * The broker contract. Commands and the engine talk to a `Broker`; the file-backed SQLite broker
 * (`file-broker/`) is the first implementation, and a networked one must pass the same
 * conformance tests (`test/core/broker-conformance.ts`). No SQL or file layout leaks through here.
 */

export type Headers = Record<string, string>
export type DestinationKind = 'queue' | 'topic'
export type OverflowPolicy = 'reject' | 'drop-oldest' | 'block'

/** Per-queue settings, each with its default in `DEFAULT_QUEUE_SETTINGS`. */
export interface QueueSettings {
  /** How long a delivered, unacked message stays hidden before redelivery. */
  visibilityTimeoutMs: number
  /** Deliveries after which a message is dead-lettered instead of delivered again. */
  maxDeliveries: number
  /** Where dead letters go; `null` keeps them in place (the default for a dead-letter queue itself). */
  deadLetterQueue: string | null
  /** Largest accepted message: body plus stored headers, in bytes of UTF-8 (see `messageSize`). */
  maxBodyBytes: number
  /** First retry delay after a failed `--exec` run; doubles per attempt, with jitter. */
  retryBackoffMs: number
  /** Ceiling of the retry delay. */
  retryBackoffMaxMs: number
  /** Most messages held (ready, delayed and in flight); `null` = unbounded. */
  maxLength: number | null
  /** Most bytes held (bodies plus stored headers, see `messageSize`); `null` = unbounded. */
  maxBytes: number | null
  /** What a publish into a full queue does. */
  overflow: OverflowPolicy
  /** Default time-to-live of a message; `null` = never expires. */
  defaultTtlMs: number | null
  /** Send expired messages to the dead-letter queue (reason `expired`) instead of discarding them. */
  deadLetterExpired: boolean
  /** How long a `dedupId` is remembered. */
  dedupWindowMs: number
}

export const DEFAULT_QUEUE_SETTINGS: Readonly<QueueSettings> = Object.freeze({
  visibilityTimeoutMs: 30_000,
  maxDeliveries: 5,
  deadLetterQueue: null,
  maxBodyBytes: 1024 * 1024,
  retryBackoffMs: 1_000,
  retryBackoffMaxMs: 60_000,
  maxLength: null,
  maxBytes: null,
  overflow: 'reject',
  defaultTtlMs: null,
  deadLetterExpired: false,
  dedupWindowMs: 5 * 60_000,
})

/** The name of a queue's dead-letter queue unless configured otherwise. */
export function defaultDeadLetterQueue(queue: string): string | null {
  const name = `${queue}.dlq`
  return queue.endsWith('.dlq') || name.length > 200 ? null : name
}

/** Per-topic retention: the oldest messages are discarded past any limit. */
export interface TopicSettings {
  /** Keep messages this long (default 7 days). */
  maxAgeMs: number
  /** Keep at most this many messages; `null` = no count limit. */
  maxMessages: number | null
  /** Keep at most this many bytes (bodies plus stored headers); `null` = no size limit. */
  maxBytes: number | null
  /** Largest accepted message: body plus stored headers, in bytes of UTF-8 (see `messageSize`). */
  maxBodyBytes: number
  /** How long a `dedupId` is remembered. */
  dedupWindowMs: number
}

export const DEFAULT_TOPIC_SETTINGS: Readonly<TopicSettings> = Object.freeze({
  maxAgeMs: 7 * 86_400_000,
  maxMessages: null,
  maxBytes: null,
  maxBodyBytes: 1024 * 1024,
  dedupWindowMs: 5 * 60_000,
})

/** A durable subscription's delivery settings: the same meaning as a queue's. */
export type SubscriptionSettings = Pick<
  QueueSettings,
  'visibilityTimeoutMs' | 'maxDeliveries' | 'deadLetterQueue' | 'retryBackoffMs' | 'retryBackoffMaxMs'
>

/** Where a new subscription starts reading. */
export type StartPosition =
  {kind: 'new'} | {kind: 'all'} | {kind: 'since'; time: number} | {kind: 'from-id'; id: string}

export interface SubscribeOptions {
  /** Name of a durable subscription, created or resumed; omit for an ephemeral one. */
  durable?: string
  /** Start position of a new subscription (default: new messages only). */
  start?: StartPosition
  /** Settings of a new durable subscription. */
  settings?: Partial<SubscriptionSettings>
}

/** An open subscription; `close` removes an ephemeral one and everything it held. */
export interface Subscription {
  readonly name: string
  readonly pattern: string
  readonly durable: boolean
  /** True when `subscribe` resumed an existing durable subscription. */
  readonly resumed: boolean
  readonly settings: SubscriptionSettings
  receive(options: ReceiveOptions): Promise<Delivery[]>
  close(): Promise<void>
}

export interface TopicInfo {
  name: string
  createdAt: number
  settings: TopicSettings
  /** Retained messages. */
  messages: number
  bytes: number
}

export interface TopicStats extends TopicInfo {
  oldestAgeMs: number | null
  /** Subscriptions whose pattern covers this topic. */
  subscriptions: string[]
  totals: {published: number; discarded: number}
}

export interface SubscriptionInfo {
  name: string
  pattern: string
  durable: boolean
  createdAt: number
  /** Process holding an ephemeral subscription. */
  pid?: number
}

export interface SubscriptionStats extends SubscriptionInfo {
  /** Messages in matching topics not yet delivered. */
  lag: number
  inFlight: number
  /** Delivered, unacked and waiting for redelivery (nacked or lease expired). */
  pendingRedelivery: number
  oldestUnackedAgeMs: number | null
  topics: string[]
  settings: SubscriptionSettings
  totals: {acked: number; deadLettered: number}
}

export interface DeadLetterQueueInfo {
  /** The dead-letter queue. */
  name: string
  messages: number
  oldestAgeMs: number | null
  /** Queues and subscriptions that send their dead letters here. */
  sources: string[]
}

/** How far a long operation is: `done` of `total` (README.md, "Progress"). */
export interface ProgressReport {
  done: number
  total: number
}

/** For long operations that report progress and can stop between steps. */
export interface BulkOptions {
  /** Called after each step (a transaction), with what has been done so far. */
  onProgress?(report: ProgressReport): void
  /** Stops between steps; what was done stays done. */
  signal?: AbortSignal
}

export interface RedriveOptions {
  /** Only messages matching this predicate (default: all). */
  filter?: (message: {body: string; headers: Headers}) => boolean
  /** Move at most this many. */
  limit?: number
  /** Report what would move; change nothing. */
  dryRun?: boolean
  /** Paces the moves (messages per second). */
  ratePerSecond?: number
  signal?: AbortSignal
  /** After each batch: dead letters examined so far of those there were when it started. */
  onProgress?(report: ProgressReport & {moved: number}): void
}

export interface RedriveResult {
  deadLetterQueue: string
  /** Where the messages went (or would go): the queue or subscription. */
  target: string
  examined: number
  moved: number
  dryRun: boolean
  /** The target queue was full (its max length or bytes), so the redrive stopped early. */
  stoppedFull?: boolean
  /** Ids, in the dead-letter queue, of the messages moved (or that would move). */
  ids: string[]
}

export interface OutgoingMessage {
  body: string
  headers?: Headers
  /** 0–9, higher first; default 0. */
  priority?: number
  /** Not deliverable before this epoch-ms time. */
  deliverAt?: number
  /** Expires this long after publishing. */
  ttlMs?: number
  /** A repeat of this id within the queue's dedup window stores nothing and returns the first id. */
  dedupId?: string
}

export interface PublishOptions {
  /** Force a topic (`publish --topic`), creating it when missing. */
  kind?: DestinationKind
  /** For `block` overflow: how long to wait for room before failing with exit 4 (default: as long as it takes). */
  blockTimeoutMs?: number
  signal?: AbortSignal
}

export interface PublishResult {
  id: string
  destination: string
  kind: DestinationKind
  /** True when a dedup id matched an earlier message: nothing new was stored. */
  duplicate?: boolean
}

export interface Delivery {
  id: string
  /** Set for queue deliveries. */
  queue?: string
  /** Set for topic deliveries. */
  topic?: string
  subscription?: string
  body: string
  headers: Headers
  /** 1 on first delivery. */
  attempt: number
  /** Present unless the delivery was auto-acked. */
  receipt?: string
  publishedAt: number
  priority?: number
  /** When the message expires (TTL), if it does. */
  expiresAt?: number
}

export interface ReceiveOptions {
  /** Most messages returned (≥ 1). */
  max: number
  /** Lease length; default: the queue's visibility timeout. */
  visibilityTimeoutMs?: number
  /** At-most-once: remove messages as they are delivered. */
  autoAck: boolean
  /** Long poll: wait up to this long for the first message (0 = return at once). */
  waitMs?: number
  /** Fixed polling instead of change notifications while waiting. */
  pollIntervalMs?: number
  signal?: AbortSignal
  /**
   * Auto-ack long poll: called at once with messages a publish handed to this waiting receive,
   * before the receive returns them (the same array), so that they can be written out without
   * waiting for the way back. A driver may ignore it.
   */
  onHandOff?: (deliveries: Delivery[]) => void
}

export type SettleOutcome = 'ok' | 'stale'
/** A nack either releases the message for redelivery or, out of deliveries, dead-letters it. */
export type NackOutcome = 'released' | 'dead-lettered' | 'stale'

export interface AckOptions {
  /**
   * Receipts that arrived since the call (a stream of them on stdin), without waiting for any: a
   * driver that has to wait before it can settle (the file broker, for another process's write
   * lock) may call it while it waits and settle those too, in the same commit. The outcomes then
   * follow `receipts` and, after them, what each call returned, in order. A driver may ignore it.
   */
  more?: () => string[]
}

export interface NackOptions {
  delayMs?: number
  deadLetter?: boolean
  /** Recorded on the message; becomes the dead letter's `x-last-error`. */
  error?: string
  /** Use the queue's exponential retry backoff (with jitter) instead of `delayMs`. */
  backoff?: boolean
  /**
   * The delivery never reached a handler (its command could not start): release it at once and
   * never dead-letter it; the file broker also takes the attempt back (NATS JetStream and
   * RabbitMQ keep their own delivery counts).
   */
  uncounted?: boolean
}

export interface QueueInfo {
  name: string
  createdAt: number
  settings: QueueSettings
  depth: number
  bytes: number
}

/** What a queue has seen since it was created, by outcome. */
export interface QueueTotals {
  published: number
  acked: number
  deadLettered: number
  dropped: number
  expired: number
  deduplicated: number
}

export interface QueueStats extends QueueInfo {
  ready: number
  inFlight: number
  delayed: number
  /** Messages now in this queue's dead-letter queue. */
  deadLettered: number
  oldestAgeMs: number | null
  totals: QueueTotals
  /** Messages per second over the last minute and the last five. */
  rates: {publishedPerSecond: {last1m: number; last5m: number}; ackedPerSecond: {last1m: number; last5m: number}}
  /** amqp:// only: RabbitMQ's queue type (`classic`, `quorum`, `stream`), as the server reports it. */
  queueType?: string
}

export interface PeekedMessage {
  id: string
  body: string
  headers: Headers
  state: 'ready' | 'in-flight' | 'delayed'
  attempts: number
  publishedAt: number
  visibleAt: number
  priority: number
}

/** Where a new queue or topic lives, for drivers that replicate (refused by the file broker). */
export interface PlacementOptions {
  /** Copies kept on different servers (default: 3 when the cluster has at least 3 servers, else 1). */
  replicas?: number
  /**
   * amqp:// only: a non-durable queue without arguments, as clients with default arguments (the
   * RabbitMQ tutorial's `queue_declare('hello')`) declare it, so they can declare it afterwards.
   */
  transient?: boolean
  /**
   * amqp:// only: a classic priority queue (`x-max-priority 9`), so `--priority` is honoured.
   * Priority queues are slower, so only queues created with this (or by a first publish that
   * carries a priority) are. Other brokers always honour priorities.
   */
  priorities?: boolean
}

export interface Broker {
  /** Creates the queue if missing; with settings, they must match an existing queue's. */
  declareQueue(name: string, settings?: Partial<QueueSettings>, placement?: PlacementOptions): Promise<QueueInfo>
  updateQueue(name: string, settings: Partial<QueueSettings>): Promise<QueueInfo>
  deleteQueue(name: string): Promise<{deleted: number}>
  /**
   * Deletes the messages the queue held when the purge started (published meanwhile are kept),
   * in batches of one transaction each; an interrupted purge leaves the rest in place.
   */
  purgeQueue(name: string, options?: BulkOptions): Promise<{purged: number}>
  listQueues(): Promise<QueueInfo[]>
  /** The queue, or undefined when there is none (a topic of that name is an error). */
  getQueue(name: string): Promise<QueueInfo | undefined>
  queueStats(name: string): Promise<QueueStats>
  peek(queue: string, limit: number): Promise<PeekedMessage[]>

  declareTopic(name: string, settings?: Partial<TopicSettings>, placement?: PlacementOptions): Promise<TopicInfo>
  deleteTopic(name: string): Promise<{deleted: number}>
  listTopics(): Promise<TopicInfo[]>
  topicStats(name: string): Promise<TopicStats>

  /** Opens a subscription on a pattern (`*` one segment, `#` any number). */
  subscribe(pattern: string, options?: SubscribeOptions): Promise<Subscription>
  listSubscriptions(): Promise<SubscriptionInfo[]>
  subscriptionStats(name: string): Promise<SubscriptionStats>
  deleteSubscription(name: string): Promise<void>

  listDeadLetterQueues(): Promise<DeadLetterQueueInfo[]>
  /** The dead-letter queue of a queue or durable subscription. */
  deadLetterQueueOf(name: string): Promise<string>
  /**
   * Moves dead letters of a queue or durable subscription back to it, at the back of the queue,
   * keeping their headers and adding `x-redrive-count`.
   */
  redrive(name: string, options?: RedriveOptions): Promise<RedriveResult>

  /** Publishes a batch atomically: all stored, or none (and an error). */
  publish(name: string, messages: OutgoingMessage[], options?: PublishOptions): Promise<PublishResult[]>
  /** Delivers up to `max` messages of a queue, FIFO among ready messages (higher priority first). */
  receive(queue: string, options: ReceiveOptions): Promise<Delivery[]>

  /** Settle receipts; each gets its own outcome, and a stale one changes nothing. */
  ack(receipts: string[], options?: AckOptions): Promise<SettleOutcome[]>
  nack(receipts: string[], options?: NackOptions): Promise<NackOutcome[]>
  extend(receipts: string[], byMs: number): Promise<SettleOutcome[]>
  /**
   * Puts auto-acked deliveries back, as they were, because they could not be handed on (the
   * consumer's output failed). Queue messages return to their place; a subscription gets them
   * again as redeliveries.
   */
  restore(deliveries: Delivery[]): Promise<void>
  /** For each receipt, whether its lease is still held (not settled, expired or redelivered). */
  stillLeased(receipts: string[]): Promise<boolean[]>

  /** Which driver and server this is, and what it does natively, emulates or refuses. */
  describe(): Promise<BrokerDescription>

  /**
   * Optional, for long-running commands (followers, `--exec` workers, `--lines` streams): from now
   * on the broker waits out outages through `waiter` instead of failing — another process's
   * write lock on the folder, a networked broker that stops answering once it was reached.
   */
  waitOutOutages?(waiter: LockWaiter): void

  /** Idempotent. */
  close(): Promise<void>
}

/**
 * What receives with manual acks and settles receipts: the broker itself where any process can
 * settle a receipt (file, nats://), or the daemon that holds the broker's leases where only the
 * receiving connection can (amqp://; ARCHITECTURE.md, "The daemon as receipt holder").
 */
export type ReceiptHolder = Pick<Broker, 'receive' | 'ack' | 'nack' | 'extend' | 'stillLeased'>

/** Optional: a driver that commits many publish requests in one write (the daemon's group commit). */
export interface GroupPublisher {
  publishGroup(
    requests: {name: string; messages: OutgoingMessage[]; options: PublishOptions}[],
  ): ({results: PublishResult[]; rest: OutgoingMessage[]; full?: string} | {error: unknown})[]
}

export function isGroupPublisher(broker: Broker): broker is Broker & GroupPublisher {
  return 'publishGroup' in broker
}

/** Optional: cheap per-queue counters for metrics scrapes (otherwise `queueStats` serves). */
export interface QueueCounters {
  inFlight(name: string): Promise<number>
  queueTotals(name: string): Promise<QueueTotals>
}

export function hasQueueCounters(broker: Broker): broker is Broker & QueueCounters {
  return 'queueTotals' in broker
}
