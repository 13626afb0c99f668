import {randomBytes} from 'node:crypto'

import type {Channel, Message} from 'amqplib'

import {backoffDelayMs} from '../backoff.js'
import {
  type Broker,
  DEFAULT_QUEUE_SETTINGS,
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
  defaultDeadLetterQueue,
} from '../broker.js'
import {type BrokerCapabilities, type BrokerDescription, type Feature, requireFeature} from '../capabilities.js'
import {InterruptedError, InvalidInputError, NotFoundError, QueueFullError, WrongKindError} from '../errors.js'
import {resolveQueueSettings, resolveTopicSettings} from '../file-broker/destinations.js'
import {atMessage, checkBodySizes, differingSettings, validateMessages} from '../file-broker/validation.js'
import {compileTopicPattern, validateName} from '../names.js'
import type {LockWaiter} from '../lock-wait.js'
import type {AmqpTarget} from '../open-broker.js'
import {sleep} from '../rate-limiter.js'
import {AmqpClient, amqpCode, ManagementApi, type PublishEntry} from './client.js'
import {amqpCapabilities, managementRefusal} from './features.js'
import {LOG_MAX_AGE, LOG_STREAM, LogReader, TOPIC_EXCHANGE} from './log-reader.js'
import {
  attemptOf,
  expiresAt,
  messageId,
  INTERNAL,
  internalHeader,
  publishedAt,
  publishOptions,
  republishOptions,
  userHeaders,
} from './messages.js'
import {Records} from './records.js'

/** Names of the driver's own objects contain `~`, which mqctl names cannot: they never collide with a user's. */
const RECORD = {queue: (name: string) => `mq~q.${name}`, topic: (name: string) => `mq~t.${name}`}
const SUBSCRIPTION_QUEUE = (name: string) => `mq~sub.${name}`
const EPHEMERAL_MARKER = (name: string) => `mq~e.${name}`
const DELAY_QUEUE = (target: string, ms: number) => `mq~delay.${target}.${ms}`
const EPHEMERAL_DEAD_LETTER_QUEUE = 'ephemeral.dlq'
/** Publishes per confirm window (see `inWindows`). */
const PUBLISH_WINDOW = 512
/** Publish windows unconfirmed at once (see `inWindows`). */
const WINDOWS_IN_FLIGHT = 4
/** A batch receive stops waiting for more after this long without a message. */
const BATCH_QUIET_MS = 20
/** Priorities 0–9 (README: publish --priority). */
const MAX_PRIORITY = 9

interface QueueRecord {
  mq: 'queue'
  name: string
  createdAt: number
  settings: QueueSettings
  /** Declared with x-max-priority (mqctl's durable queues). */
  priority: boolean
  /** Declared non-durable without arguments, as default-argument AMQP clients declare it. */
  transient?: boolean
  /** Made by another client: mqctl adopted it as it is. */
  adopted?: boolean
  counters: {deadLettered: number}
}

interface TopicRecord {
  mq: 'topic'
  name: string
  createdAt: number
  settings: TopicSettings
}

type SourceSettings = Pick<
  QueueSettings,
  'visibilityTimeoutMs' | 'maxDeliveries' | 'deadLetterQueue' | 'retryBackoffMs' | 'retryBackoffMaxMs'
>

/** Where deliveries come from: a queue, a durable subscription's queue, or an ephemeral subscription's log reader. */
interface Source {
  kind: 'queue' | 'subscription'
  name: string
  /** The RabbitMQ queue (for a reader: none). */
  amqpName?: string
  settings: SourceSettings
  reader?: EphemeralState
}

interface EphemeralState {
  reader: LogReader
  /** Deliveries put back (nack, lease expiry): delivered again when due. */
  again: {delivery: Delivery; dueAt: number}[]
  caughtUp: boolean
}

interface Lease {
  source: Source
  delivery: Delivery
  /** The AMQP message and the channel it came on (none for a log reader's delivery). */
  message?: Message
  channel?: Channel
  generation: number
  timer?: NodeJS.Timeout
  until: number
}

interface ManagedQueue {
  name: string
  durable: boolean
  arguments?: Record<string, unknown>
  /** `classic`, `quorum` or `stream` (RabbitMQ 3.8 and later). */
  type?: string
  messages?: number
  messages_ready?: number
  messages_unacknowledged?: number
  message_bytes?: number
  message_stats?: {
    publish?: number
    ack?: number
    publish_details?: {rate: number; samples?: {sample: number; timestamp: number}[]}
    ack_details?: {rate: number; samples?: {sample: number; timestamp: number}[]}
  }
}

const RECEIPT = /^a1:([0-9a-f]{12}):(\d{1,15})$/

/**
 * The Broker on RabbitMQ over AMQP 0-9-1 (README: "Running on RabbitMQ"). Queues are RabbitMQ
 * queues of the same name; topics are one topic exchange with a stream keeping the log;
 * subscriptions are queues bound with their pattern (durable) or readers of the log (ephemeral).
 * Receipts are delivery tags held by this process: leases, their timers and stale detection live
 * here, and the daemon is the process that holds them for other commands.
 */
export class AmqpBroker implements Broker {
  private readonly capabilities: BrokerCapabilities
  private readonly records: Records
  private readonly management?: ManagementApi
  /** Identifies this process's receipts. */
  private readonly holder = randomBytes(6).toString('hex')
  private nextLease = 1
  private readonly leases = new Map<string, Lease>()
  private readonly idleWaiters: Channel[] = []
  private readonly kinds = new Map<string, 'queue' | 'topic'>()
  private readonly ephemeral = new Map<string, EphemeralState>()
  private infraReady?: Promise<void>
  /** Leases running out right now (put back or dead-lettered): a receive waits for them first. */
  private readonly expiring = new Set<Promise<void>>()
  /** Wait queues this process used, by target (the management API lists new queues with a delay). */
  private readonly delayNames = new Map<string, Set<string>>()
  private closed = false

  private constructor(
    private readonly client: AmqpClient,
    private readonly target: AmqpTarget,
  ) {
    this.capabilities = amqpCapabilities(target.management !== undefined)
    this.records = new Records(client)
    if (target.management) this.management = new ManagementApi(target.management, target, client.timeoutMs)
    client.onLoss = (channel) => this.dropLeases(channel)
  }

  static async connect(target: AmqpTarget, waiter?: LockWaiter): Promise<AmqpBroker> {
    const broker = new AmqpBroker(await AmqpClient.connect(target), target)
    if (waiter) broker.waitOutOutages(waiter)
    return broker
  }

  /** Long-running commands ride out a lost connection instead of failing (README: "Running on RabbitMQ"). */
  waitOutOutages(waiter: LockWaiter): void {
    this.client.waitOutOutages(waiter)
  }

  private refuseUnless(feature: Feature): void {
    requireFeature(this.capabilities, feature, `RabbitMQ (${this.target.display})`)
  }

  private requireManagement(what: string): ManagementApi {
    if (!this.management)
      throw new InvalidInputError(managementRefusal(`${what} on ${this.target.display}`), {code: 'unsupported'})
    return this.management
  }

  async describe(): Promise<BrokerDescription> {
    return {
      driver: 'amqp',
      url: this.target.display,
      server: {name: this.client.serverProduct, version: this.client.serverVersion},
      capabilities: this.capabilities,
    }
  }

  /**
   * A channel (or the whole connection) was lost: RabbitMQ requeued its unacked deliveries, so
   * their receipts are stale.
   */
  private dropLeases(channel?: Channel): void {
    for (const [receipt, lease] of this.leases) {
      if (!lease.message || (channel && lease.channel !== channel)) continue
      clearTimeout(lease.timer)
      this.leases.delete(receipt)
    }
    if (!channel) this.idleWaiters.length = 0
    else if (this.idleWaiters.includes(channel)) this.idleWaiters.splice(this.idleWaiters.indexOf(channel), 1)
  }

  // ---- the topic exchange and its log

  private infra(): Promise<void> {
    this.infraReady ??= this.client
      .run('declare the topic exchange', async () => {
        const channel = this.client.ops
        await channel.assertExchange(TOPIC_EXCHANGE, 'topic', {durable: true})
        if (!(await this.client.checkQueue(LOG_STREAM))) {
          await channel.assertQueue(LOG_STREAM, {
            durable: true,
            arguments: {'x-queue-type': 'stream', 'x-max-age': LOG_MAX_AGE},
          })
        }
        await channel.bindQueue(LOG_STREAM, TOPIC_EXCHANGE, '#')
      })
      .catch((error: unknown) => {
        this.infraReady = undefined
        throw error
      })
    return this.infraReady
  }

  // ---- queues

  private async queueRecord(name: string, fresh = false): Promise<QueueRecord | undefined> {
    const record = await this.records.read<QueueRecord>(RECORD.queue(name), fresh)
    if (record) return record
    const found = await this.client.checkQueue(name)
    if (!found) return undefined
    // Made by another client: adopt it as it is (what the management API says of it, else defaults).
    return this.adoptedRecord(name)
  }

  private async adoptedRecord(name: string): Promise<QueueRecord> {
    const settings = resolveQueueSettings(name, {})
    let priority = false
    let transient = false
    if (this.management) {
      const info = await this.managedQueue(name)
      const args = info?.arguments ?? {}
      if (typeof args['x-max-length'] === 'number') settings.maxLength = args['x-max-length']
      if (typeof args['x-max-length-bytes'] === 'number') settings.maxBytes = args['x-max-length-bytes']
      if (args['x-overflow'] === 'drop-head') settings.overflow = 'drop-oldest'
      if (typeof args['x-message-ttl'] === 'number') settings.defaultTtlMs = args['x-message-ttl']
      priority = typeof args['x-max-priority'] === 'number'
      transient = info?.durable === false
    }
    return {mq: 'queue', name, createdAt: 0, settings, priority, transient, adopted: true, counters: {deadLettered: 0}}
  }

  private async managedQueue(amqpName: string): Promise<ManagedQueue | undefined> {
    const api = this.requireManagement('reading queue details')
    return api.request<ManagedQueue>(
      'GET',
      `queues/${api.vhostPath()}/${encodeURIComponent(amqpName)}?msg_rates_age=360&msg_rates_incr=5`,
    )
  }

  private async topicRecord(name: string, fresh = false): Promise<TopicRecord | undefined> {
    return this.records.read<TopicRecord>(RECORD.topic(name), fresh)
  }

  /** The queue arguments of mqctl's settings (RabbitMQ enforces them). */
  private queueArguments(settings: QueueSettings, transient: boolean, priorities: boolean): Record<string, unknown> {
    if (settings.deadLetterExpired) {
      throw new InvalidInputError('--dead-letter-expired is not available on RabbitMQ through mqctl', {
        code: 'unsupported',
        hint: "expired messages are discarded; use a policy with dead-letter-exchange for RabbitMQ's own dead-lettering",
      })
    }
    const args: Record<string, unknown> = {}
    if (settings.maxLength !== null) args['x-max-length'] = settings.maxLength
    if (settings.maxBytes !== null) args['x-max-length-bytes'] = settings.maxBytes
    if (settings.maxLength !== null || settings.maxBytes !== null)
      args['x-overflow'] = settings.overflow === 'drop-oldest' ? 'drop-head' : 'reject-publish'
    if (settings.defaultTtlMs !== null) args['x-message-ttl'] = settings.defaultTtlMs
    if (transient && (Object.keys(args).length > 0 || priorities)) {
      throw new InvalidInputError(
        'a --transient queue has no arguments, so it cannot have --max-length, --max-bytes, --default-ttl or --priorities',
        {
          hint: 'set them with a RabbitMQ policy, or drop --transient',
        },
      )
    }
    if (priorities) args['x-max-priority'] = MAX_PRIORITY
    return args
  }

  async declareQueue(
    name: string,
    given: Partial<QueueSettings> = {},
    placement: PlacementOptions = {},
  ): Promise<QueueInfo> {
    validateName(name, 'queue name')
    if (placement.replicas !== undefined) this.refuseUnless('replicas')
    const transient = placement.transient === true
    const priorities = placement.priorities === true
    const existing = await this.queueRecord(name, true)
    if (existing) {
      const wanted = resolveQueueSettings(name, given, existing.settings)
      const differing = differingSettings(given, wanted, existing.settings)
      if (transient && !existing.transient) differing.push('transient')
      if (priorities && !existing.priority) differing.push('priorities')
      if (differing.length > 0) {
        if (existing.adopted) return this.adopt(existing, given, differing)
        throw new InvalidInputError(`queue ${name} already exists with other settings (${differing.join(', ')})`, {
          code: 'settings_differ',
          hint: `change them with \`mq queue update ${name}\``,
        })
      }
      return this.queueInfo(existing)
    }
    if (await this.topicRecord(name, true))
      throw new WrongKindError(name, 'topic', {hint: `use \`mq subscribe ${name}\``})
    const settings = resolveQueueSettings(name, given)
    const args = this.queueArguments(settings, transient, priorities)
    await this.checkDeadLetterTarget(settings.deadLetterQueue)
    const record: QueueRecord = {
      mq: 'queue',
      name,
      createdAt: Date.now(),
      settings,
      priority: priorities,
      ...(transient ? {transient: true} : {}),
      counters: {deadLettered: 0},
    }
    try {
      await this.client.run(`declare queue ${name}`, () =>
        this.client.ops.assertQueue(name, {durable: !transient, arguments: args}),
      )
    } catch (error) {
      // Another client declared it differently at the same moment: adopt theirs.
      if (amqpCode(error) === 406) return this.queueInfo(await this.adoptedRecord(name))
      throw error
    }
    const stands = await this.records.create(RECORD.queue(name), record)
    this.kinds.set(name, 'queue')
    return this.queueInfo(stands)
  }

  /**
   * Another client made the queue: mqctl keeps what RabbitMQ enforces (arguments cannot change)
   * and records only what mqctl itself enforces (deliveries, leases, dead letters, backoff).
   */
  private async adopt(existing: QueueRecord, given: Partial<QueueSettings>, differing: string[]): Promise<QueueInfo> {
    const fixed = differing.filter((key) =>
      ['maxLength', 'maxBytes', 'overflow', 'defaultTtlMs', 'deadLetterExpired', 'transient', 'priorities'].includes(
        key,
      ),
    )
    if (fixed.length > 0) {
      throw new InvalidInputError(
        `queue ${existing.name} was declared by another client without ${fixed.join(', ')}, and RabbitMQ cannot change a queue's arguments`,
        {
          code: 'settings_differ',
          hint: `set them with a RabbitMQ policy, or delete the queue and create it with mqctl`,
        },
      )
    }
    const record: QueueRecord = {
      ...existing,
      adopted: undefined,
      createdAt: Date.now(),
      settings: resolveQueueSettings(existing.name, given, existing.settings),
    }
    delete record.adopted
    await this.records.create(RECORD.queue(existing.name), record)
    return this.queueInfo(record)
  }

  private async checkDeadLetterTarget(deadLetterQueue: string | null): Promise<void> {
    if (deadLetterQueue !== null && (await this.topicRecord(deadLetterQueue))) {
      throw new WrongKindError(deadLetterQueue, 'topic', {
        hint: 'a dead-letter queue must be a queue: choose another name',
      })
    }
  }

  private async queueInfo(record: QueueRecord): Promise<QueueInfo> {
    const found = await this.client.checkQueue(record.name)
    return {
      name: record.name,
      createdAt: record.createdAt,
      settings: record.settings,
      depth: found?.messageCount ?? 0,
      bytes: 0,
    }
  }

  async updateQueue(name: string, settings: Partial<QueueSettings>): Promise<QueueInfo> {
    validateName(name, 'queue name')
    const existing = await this.queueRecord(name, true)
    if (!existing) throw new NotFoundError('queue', name, {hint: 'see `mq queue list`'})
    const wanted = resolveQueueSettings(name, settings, existing.settings)
    const fixed = differingSettings(settings, wanted, existing.settings).filter((key) =>
      ['maxLength', 'maxBytes', 'overflow', 'defaultTtlMs', 'deadLetterExpired'].includes(key),
    )
    if (fixed.length > 0) {
      throw new InvalidInputError(`RabbitMQ cannot change the arguments of queue ${name} (${fixed.join(', ')})`, {
        code: 'unsupported',
        hint: 'set them with a RabbitMQ policy, or delete the queue and create it again',
      })
    }
    await this.checkDeadLetterTarget(wanted.deadLetterQueue)
    const record = existing.adopted
      ? await this.records.create(RECORD.queue(name), {...existing, adopted: undefined, settings: wanted})
      : await this.records.update<QueueRecord>(RECORD.queue(name), (old) => ({...old, settings: wanted}))
    return this.queueInfo(record ?? {...existing, settings: wanted})
  }

  async deleteQueue(name: string): Promise<{deleted: number}> {
    validateName(name, 'queue name')
    const existing = await this.queueRecord(name, true)
    if (!existing) throw new NotFoundError('queue', name, {hint: 'see `mq queue list`'})
    const {messageCount} = await this.client.run(`delete queue ${name}`, () => this.client.ops.deleteQueue(name))
    const delayed = await this.delayQueues(name).catch(() => [])
    for (const queue of delayed)
      await this.client.run(`delete ${queue.name}`, () => this.client.ops.deleteQueue(queue.name))
    await this.records.remove(RECORD.queue(name))
    this.kinds.delete(name)
    return {deleted: messageCount + this.unackedHere(name)}
  }

  /** Deliveries of a queue this process holds (RabbitMQ counts them nowhere over AMQP). */
  private unackedHere(name: string): number {
    let count = 0
    for (const lease of this.leases.values()) if (lease.source.kind === 'queue' && lease.source.name === name) count++
    return count
  }

  async purgeQueue(name: string): Promise<{purged: number}> {
    validateName(name, 'queue name')
    if (!(await this.queueRecord(name))) throw new NotFoundError('queue', name, {hint: 'see `mq queue list`'})
    const {messageCount} = await this.client.run(`purge ${name}`, () => this.client.ops.purgeQueue(name))
    // Held deliveries are dropped too: acked without delivering them again.
    let held = 0
    for (const [receipt, lease] of this.leases) {
      if (lease.source.kind !== 'queue' || lease.source.name !== name) continue
      this.leases.delete(receipt)
      clearTimeout(lease.timer)
      if (lease.channel && lease.message) lease.channel.ack(lease.message)
      held++
    }
    return {purged: messageCount + held}
  }

  private async listManaged(pattern: string): Promise<ManagedQueue[]> {
    const api = this.requireManagement('listing')
    const found = await api.request<ManagedQueue[]>(
      'GET',
      `queues/${api.vhostPath()}?columns=name,durable,arguments,messages,messages_ready,messages_unacknowledged,message_bytes`,
    )
    const regex = new RegExp(pattern)
    return (found ?? []).filter((queue) => regex.test(queue.name))
  }

  async listQueues(): Promise<QueueInfo[]> {
    const queues = (await this.listManaged('^[A-Za-z0-9_-]')).filter((q) => !q.name.includes('~'))
    const out: QueueInfo[] = []
    for (const queue of queues) {
      const record =
        (await this.records.read<QueueRecord>(RECORD.queue(queue.name))) ?? (await this.adoptedRecord(queue.name))
      out.push({
        name: queue.name,
        createdAt: record.createdAt,
        settings: record.settings,
        depth: queue.messages ?? 0,
        bytes: queue.message_bytes ?? 0,
      })
    }
    return out.sort((a, b) => a.name.localeCompare(b.name))
  }

  async getQueue(name: string): Promise<QueueInfo | undefined> {
    validateName(name, 'queue name')
    const record = await this.queueRecord(name, true)
    if (!record) {
      if (await this.topicRecord(name))
        throw new WrongKindError(name, 'topic', {hint: `use \`mq topic stats ${name}\``})
      return undefined
    }
    return this.queueInfo(record)
  }

  private async delayQueues(target: string): Promise<ManagedQueue[]> {
    if (!this.management) return []
    return this.listManaged(`^mq~delay\\.${escapeRegex(target)}\\.\\d+$`)
  }

  /**
   * The management API samples queue figures (collect_statistics_interval, 5 s by default; a new
   * queue has none until its first sample): wait, a few seconds at most, for two samples in a row
   * that agree with each other and with the broker's own ready count (a passive declare).
   */
  private async freshManaged(amqpName: string): Promise<{info: ManagedQueue; ready: number}> {
    const deadline = Date.now() + 6_000
    let previous: ManagedQueue | undefined
    for (;;) {
      const [info, found] = await Promise.all([this.managedQueue(amqpName), this.client.checkQueue(amqpName)])
      if (!info || !found) throw new NotFoundError('queue', amqpName)
      const sampled = info.messages_ready !== undefined && info.messages_unacknowledged !== undefined
      const agrees =
        sampled &&
        info.messages_ready === found.messageCount &&
        previous?.messages_ready === info.messages_ready &&
        previous?.messages_unacknowledged === info.messages_unacknowledged
      if (agrees || Date.now() > deadline) return {info, ready: found.messageCount}
      if (sampled) previous = info
      await sleep(150)
    }
  }

  private async delayedCount(amqpName: string): Promise<number> {
    const names = new Set([
      ...(this.delayNames.get(amqpName) ?? []),
      ...(await this.delayQueues(amqpName)).map((q) => q.name),
    ])
    let delayed = 0
    for (const name of names) delayed += (await this.client.checkQueue(name))?.messageCount ?? 0
    return delayed
  }

  async queueStats(name: string): Promise<QueueStats> {
    validateName(name, 'queue name')
    const record = await this.queueRecord(name, true)
    if (!record) {
      if (await this.topicRecord(name))
        throw new WrongKindError(name, 'topic', {hint: `use \`mq topic stats ${name}\``})
      throw new NotFoundError('queue', name, {hint: 'see `mq queue list`'})
    }
    this.requireManagement('queue stats (in flight, totals, rates)')
    // Wait queues first: the management API's figures can take a moment to settle.
    const delayed = await this.delayedCount(name)
    const {info, ready} = await this.freshManaged(name)
    const inFlight = info.messages_unacknowledged ?? 0
    const dlq = record.settings.deadLetterQueue
    const deadLettered = dlq ? ((await this.client.checkQueue(dlq))?.messageCount ?? 0) : 0
    const stats = info.message_stats ?? {}
    return {
      name,
      createdAt: record.createdAt,
      settings: record.settings,
      depth: ready + inFlight + delayed,
      bytes: info.message_bytes ?? 0,
      ready,
      inFlight,
      delayed,
      deadLettered,
      oldestAgeMs: this.oldestHeldAge(name) ?? (ready + inFlight > 0 ? 0 : null),
      totals: {
        published: stats.publish ?? 0,
        acked: stats.ack ?? 0,
        deadLettered: record.counters?.deadLettered ?? 0,
        dropped: 0,
        expired: 0,
        deduplicated: 0,
      },
      rates: {
        publishedPerSecond: sampledRates(stats.publish_details),
        ackedPerSecond: sampledRates(stats.ack_details),
      },
      queueType: queueTypeOf(info),
    }
  }

  private oldestHeldAge(name: string): number | undefined {
    let oldest: number | undefined
    for (const lease of this.leases.values()) {
      if (lease.source.name !== name) continue
      oldest = Math.min(oldest ?? Infinity, lease.delivery.publishedAt)
    }
    return oldest === undefined ? undefined : Math.max(0, Date.now() - oldest)
  }

  async peek(queue: string, _limit: number): Promise<PeekedMessage[]> {
    validateName(queue, 'queue name')
    this.refuseUnless('peek')
    return []
  }

  // ---- publishing

  /** Where a publish to `name` goes: an existing queue or topic, a topic a subscription covers, else a new queue. */
  private async kindFor(
    name: string,
    forced: 'queue' | 'topic' | undefined,
    priorities = false,
  ): Promise<'queue' | 'topic'> {
    const known = this.kinds.get(name)
    if (known && (forced === undefined || forced === known)) return known
    if (await this.records.read<QueueRecord>(RECORD.queue(name))) return this.remember(name, 'queue', forced)
    if (await this.topicRecord(name)) return this.remember(name, 'topic', forced)
    if (await this.client.checkQueue(name)) return this.remember(name, 'queue', forced)
    if (forced === 'topic' || (forced === undefined && (await this.coveredBySubscription(name)))) {
      await this.declareTopic(name)
      return 'topic'
    }
    await this.declareQueue(name, {}, priorities ? {priorities} : {})
    return 'queue'
  }

  private remember(name: string, kind: 'queue' | 'topic', forced: 'queue' | 'topic' | undefined): 'queue' | 'topic' {
    if (forced !== undefined && forced !== kind) {
      throw new WrongKindError(name, kind, {
        hint: kind === 'queue' ? 'publish without --topic' : `use \`mq subscribe ${name}\``,
      })
    }
    this.kinds.set(name, kind)
    return kind
  }

  /** Without the management API subscriptions cannot be listed: a new name then becomes a queue (README). */
  private async coveredBySubscription(name: string): Promise<boolean> {
    if (!this.management) return false
    const subscriptions = await this.listManaged('^mq~(sub|e)\\.')
    return subscriptions.some((queue) => {
      const pattern = queue.arguments?.['x-mq-pattern']
      return typeof pattern === 'string' && compileTopicPattern(pattern).matches(name)
    })
  }

  async publish(name: string, messages: OutgoingMessage[], options: PublishOptions = {}): Promise<PublishResult[]> {
    validateName(name)
    validateMessages(messages)
    messages.forEach((message, index) => {
      if (message.dedupId !== undefined) wrapAt(() => this.refuseUnless('dedup'), index, messages.length)
    })
    const kind = await this.kindFor(
      name,
      options.kind,
      messages.some((m) => (m.priority ?? 0) > 0),
    )
    if (kind === 'topic') return this.publishTopic(name, messages)
    const record = (await this.queueRecord(name))!
    checkBodySizes(name, record.settings.maxBodyBytes, messages)
    messages.forEach((message, index) => {
      if ((message.priority ?? 0) > 0 && !record.priority) {
        throw atMessage(
          new InvalidInputError(`queue ${name} is not a priority queue (x-max-priority)`, {
            code: 'unsupported',
            hint: `publish without --priority, or delete it and \`mq queue create ${name} --priorities\` (a first publish with --priority also makes one)`,
          }),
          index,
          messages.length,
        )
      }
    })
    const now = Date.now()
    const delays = new Set(
      messages.filter((m) => m.deliverAt !== undefined && m.deliverAt > now).map((m) => roundUp(m.deliverAt! - now)),
    )
    for (const ms of delays) await this.delayQueue(name, ms)
    const results: PublishResult[] = []
    const pending = messages.map((message) => {
      const id = messageId(now)
      results.push({id, destination: name, kind: 'queue'})
      return {message, id}
    })
    const published: {id: string}[] = []
    const deadline = options.blockTimeoutMs === undefined ? Infinity : Date.now() + options.blockTimeoutMs
    for (let round = 0; pending.length > 0; round++) {
      const confirmed = await inWindows(pending, (window) =>
        this.client.publishBatch(window.map(({message, id}) => this.queueEntry(name, record, message, id, now))),
      )
      const rejected = pending.filter((_entry, index) => !confirmed[index])
      for (const [index, entry] of pending.entries()) if (confirmed[index]) published.push({id: entry.id})
      if (rejected.length === 0) break
      if (record.settings.overflow !== 'block' || Date.now() > deadline || options.signal?.aborted) {
        if (options.signal?.aborted) throw new InterruptedError()
        const error = new QueueFullError(`queue ${name} is full (${describeLimits(record.settings)})`, {
          hint: 'consume some messages, or raise --max-length / --max-bytes with a RabbitMQ policy',
        })
        error.published = published
        throw error
      }
      pending.splice(0, pending.length, ...rejected)
      await sleep(Math.min(50 * 2 ** Math.min(round, 5), 1_000), options.signal)
    }
    return results
  }

  /** Where and how one message is published: its queue, or a wait queue when delayed. */
  private queueEntry(
    name: string,
    record: QueueRecord,
    message: OutgoingMessage,
    id: string,
    now: number,
  ): PublishEntry {
    // The publish time (to the millisecond) is in the id (`messageId`): no header to encode.
    const internal: Record<string, string | number> = {}
    if (message.ttlMs !== undefined) internal[INTERNAL.expiresAt] = now + message.ttlMs
    const extra: Record<string, unknown> = {
      messageId: id,
      timestamp: Math.floor(now / 1000),
      persistent: !record.transient,
      ...(message.priority !== undefined && record.priority ? {priority: message.priority} : {}),
    }
    const delayMs = message.deliverAt !== undefined ? message.deliverAt - now : 0
    const content = Buffer.from(message.body)
    if (delayMs > 0) {
      // Declared before the batch is published (see `publish`).
      return {
        exchange: '',
        routingKey: DELAY_QUEUE(name, roundUp(delayMs)),
        content,
        options: publishOptions(message.headers, internal, extra),
      }
    }
    if (message.ttlMs !== undefined) extra.expiration = String(message.ttlMs)
    return {exchange: '', routingKey: name, content, options: publishOptions(message.headers, internal, extra)}
  }

  /**
   * A wait queue: messages sit there for `ms` (rounded up to 2 significant digits, so retries with
   * jitter share a few queues), then RabbitMQ dead-letters them into `target`. Each use redeclares
   * it, which keeps it from expiring; an unused one disappears a minute after its last message.
   */
  private async delayQueue(target: string, ms: number): Promise<string> {
    const rounded = roundUp(ms)
    const name = DELAY_QUEUE(target, rounded)
    const known = this.delayNames.get(target) ?? new Set()
    known.add(name)
    this.delayNames.set(target, known)
    await this.client.run(`declare ${name}`, () =>
      this.client.ops.assertQueue(name, {
        durable: true,
        arguments: {
          'x-message-ttl': rounded,
          'x-dead-letter-exchange': '',
          'x-dead-letter-routing-key': target,
          'x-expires': rounded + 60_000,
        },
      }),
    )
    return name
  }

  // ---- receiving

  private async queueSource(queue: string): Promise<Source> {
    validateName(queue, 'queue name')
    let record = await this.queueRecord(queue)
    if (!record) {
      if (await this.topicRecord(queue))
        throw new WrongKindError(queue, 'topic', {hint: `use \`mq subscribe ${queue}\``})
      await this.declareQueue(queue)
      record = (await this.queueRecord(queue))!
    }
    return {kind: 'queue', name: queue, amqpName: queue, settings: record.settings}
  }

  async receive(queue: string, options: ReceiveOptions): Promise<Delivery[]> {
    return this.deliver(await this.queueSource(queue), options)
  }

  private async deliver(source: Source, options: ReceiveOptions): Promise<Delivery[]> {
    if (!(options.max >= 1)) throw new InvalidInputError('max must be ≥ 1')
    if (this.expiring.size > 0) await Promise.all(this.expiring)
    if (source.reader) return this.deliverFromLog(source, source.reader, options)
    const out: Delivery[] = []
    const deadline = Date.now() + (options.waitMs ?? 0)
    while (out.length < options.max) {
      const message = await this.client.get(source.amqpName!, false)
      if (!message) {
        if (out.length > 0 || Date.now() >= deadline || options.signal?.aborted) break
        const waited = await this.waitForOne(source.amqpName!, deadline - Date.now(), options.signal)
        if (!waited) break
        const delivery = await this.accept(source, waited.message, waited.channel, options)
        if (delivery) out.push(delivery)
        continue
      }
      const delivery = await this.accept(source, message, this.client.ops, options)
      if (delivery) out.push(delivery)
      // More are ready: take them in one go through a consumer instead of a get each.
      const more = Math.min(options.max - out.length, message.fields.messageCount)
      if (more > 1) {
        for (const taken of await this.consumeBatch(source.amqpName!, more)) {
          const next = await this.accept(source, taken.message, taken.channel, options)
          if (next) out.push(next)
        }
      }
    }
    return out
  }

  /**
   * Up to `count` ready messages through a consumer with prefetch `count` on a channel of its own:
   * it returns when they all arrived or none came for a moment (other consumers took the rest).
   * Nothing is acked before the consumer is cancelled, so no more than `count` are ever delivered.
   */
  private async consumeBatch(queue: string, count: number): Promise<{message: Message; channel: Channel}[]> {
    let channel!: Channel
    const got: Message[] = []
    let wake!: () => void
    const done = new Promise<void>((resolve) => (wake = resolve))
    let idle: NodeJS.Timeout | undefined
    const quiet = () => {
      clearTimeout(idle)
      idle = setTimeout(wake, BATCH_QUIET_MS)
    }
    const ok = await this.client.run(`consume ${queue}`, async () => {
      channel = this.idleWaiters.pop() ?? (await this.client.newChannel())
      await channel.prefetch(count)
      return channel.consume(queue, (message) => {
        if (!message) return wake()
        got.push(message)
        if (got.length >= count) wake()
        else quiet()
      })
    })
    quiet()
    channel.once('close', wake)
    await done
    clearTimeout(idle)
    channel.removeListener('close', wake)
    await channel.cancel(ok.consumerTag).catch(() => undefined)
    if (got.length === 0) this.idleWaiters.push(channel)
    return got.map((message) => ({message, channel}))
  }

  /** Long poll: a consumer with prefetch 1 on a channel of its own until one message arrives, the wait ends or the signal fires. */
  private async waitForOne(
    queue: string,
    ms: number,
    signal?: AbortSignal,
  ): Promise<{message: Message; channel: Channel} | undefined> {
    let channel!: Channel
    let got: Message | undefined
    let wake!: () => void
    const arrived = new Promise<void>((resolve) => (wake = resolve))
    // A channel lost meanwhile is not reused: each try takes an idle one or opens another.
    const ok = await this.client.run(`consume ${queue}`, async () => {
      channel = this.idleWaiters.pop() ?? (await this.client.newChannel())
      await channel.prefetch(1)
      return channel.consume(queue, (message) => {
        if (message && !got) got = message
        wake()
      })
    })
    const timer = setTimeout(wake, ms)
    signal?.addEventListener('abort', wake, {once: true})
    // Aborted while the consumer was being set up (a Ctrl-C then): the listener came too late.
    if (signal?.aborted) wake()
    // A lost connection ends the wait at once; the caller's next get reconnects.
    channel.once('close', wake)
    await arrived
    clearTimeout(timer)
    signal?.removeEventListener('abort', wake)
    channel.removeListener('close', wake)
    await channel.cancel(ok.consumerTag).catch(() => undefined)
    if (!got) {
      this.idleWaiters.push(channel)
      return undefined
    }
    // The channel now holds the delivery: it is settled there, and reused once that is done.
    return {message: got, channel}
  }

  /** Turns a message into a delivery (or dead-letters / drops it), leasing it unless auto-acked. */
  private async accept(
    source: Source,
    message: Message,
    channel: Channel,
    options: ReceiveOptions,
  ): Promise<Delivery | undefined> {
    const attempt = attemptOf(message)
    const expiry = expiresAt(message)
    if (expiry !== undefined && expiry <= Date.now()) {
      ackQuietly(channel, message)
      this.releaseWaiter(channel)
      return undefined
    }
    const {settings} = source
    if (settings.deadLetterQueue !== null && attempt > settings.maxDeliveries) {
      await this.deadLetter(source, message, 'max-deliveries', attempt - 1)
      ackQuietly(channel, message)
      this.releaseWaiter(channel)
      return undefined
    }
    const topic =
      source.kind === 'subscription'
        ? String(internalHeader(message, INTERNAL.topic) ?? message.fields.routingKey)
        : undefined
    const delivery: Delivery = {
      id: message.properties.messageId ?? `amqp-${message.fields.deliveryTag}`,
      ...(source.kind === 'queue' ? {queue: source.name} : {topic, subscription: source.name}),
      body: message.content.toString('utf8'),
      headers: userHeaders(message),
      attempt,
      publishedAt: publishedAt(message) ?? Date.now(),
      ...(message.properties.priority ? {priority: Number(message.properties.priority)} : {}),
      ...(expiry === undefined ? {} : {expiresAt: expiry}),
    }
    if (options.autoAck) {
      ackQuietly(channel, message)
      this.releaseWaiter(channel)
      return delivery
    }
    const receipt = `a1:${this.holder}:${this.nextLease++}`
    delivery.receipt = receipt
    const lease: Lease = {source, delivery, message, channel, generation: this.client.generation, until: 0}
    this.leases.set(receipt, lease)
    this.arm(receipt, lease, options.visibilityTimeoutMs ?? settings.visibilityTimeoutMs)
    return delivery
  }

  /** A long-poll channel whose delivery was settled is free for the next wait. */
  private releaseWaiter(channel: Channel): void {
    if (channel === this.client.ops) return
    for (const lease of this.leases.values()) if (lease.channel === channel) return
    if (!this.idleWaiters.includes(channel)) this.idleWaiters.push(channel)
  }

  private arm(receipt: string, lease: Lease, ms: number): void {
    clearTimeout(lease.timer)
    lease.until = Date.now() + ms
    lease.timer = setTimeout(() => {
      const done = this.expire(receipt)
        .catch(() => undefined)
        .finally(() => this.expiring.delete(done))
      this.expiring.add(done)
    }, ms)
    lease.timer.unref()
  }

  /** A lease ran out: the message goes back for redelivery (or to its dead-letter queue after its last delivery). */
  private async expire(receipt: string): Promise<void> {
    const lease = this.take(receipt)
    if (!lease) return
    const {settings} = lease.source
    if (settings.deadLetterQueue !== null && lease.delivery.attempt >= settings.maxDeliveries) {
      await this.deadLetterLease(lease, 'max-deliveries', `lease expired on delivery ${lease.delivery.attempt}`)
      return
    }
    await this.putBack(lease, 0)
  }

  /** Removes a current lease from the table; undefined when stale (settled, expired, or its connection lost). */
  private take(receipt: string): Lease | undefined {
    const lease = this.leases.get(receipt)
    if (!lease) return undefined
    this.leases.delete(receipt)
    clearTimeout(lease.timer)
    return lease
  }

  /** Acks a lease's message; false when its channel is gone (RabbitMQ requeued the message: stale). */
  private settleMessage(lease: Lease): boolean {
    if (!lease.channel || !lease.message) return true
    try {
      lease.channel.ack(lease.message)
    } catch {
      return false
    }
    this.releaseWaiter(lease.channel)
    return true
  }

  /** Republishes a held message for redelivery (after `delayMs`) with its attempt count, then acks the original. */
  private async putBack(lease: Lease, delayMs: number, error?: string): Promise<void> {
    if (lease.source.reader) {
      lease.source.reader.again.push({
        delivery: {...lease.delivery, receipt: undefined, ...(error ? {lastError: error} : {})},
        dueAt: Date.now() + delayMs,
      })
      return
    }
    const message = lease.message!
    const target = lease.source.amqpName!
    const options = republishOptions(message, {
      [INTERNAL.attempts]: lease.delivery.attempt,
      [INTERNAL.lastError]:
        error?.slice(0, 1000) ?? (internalHeader(message, INTERNAL.lastError) as string | undefined),
      ...(lease.source.kind === 'subscription' ? {[INTERNAL.topic]: lease.delivery.topic} : {}),
    })
    const queue = delayMs > 0 ? await this.delayQueue(target, delayMs) : target
    await this.client.publish('', queue, message.content, options)
    this.settleMessage(lease)
  }

  private async deadLetterLease(
    lease: Lease,
    reason: 'max-deliveries' | 'rejected',
    error: string | undefined,
  ): Promise<void> {
    if (lease.message) {
      await this.deadLetter(lease.source, lease.message, reason, lease.delivery.attempt, error)
      this.settleMessage(lease)
    } else {
      await this.deadLetterDelivery(lease.source, lease.delivery, reason, lease.delivery.attempt, error)
    }
  }

  private async deadLetter(
    source: Source,
    message: Message,
    reason: string,
    attempts: number,
    error?: string,
  ): Promise<void> {
    const lastError = error ?? (internalHeader(message, INTERNAL.lastError) as string | undefined)
    const topic =
      source.kind === 'subscription'
        ? String(internalHeader(message, INTERNAL.topic) ?? message.fields.routingKey)
        : undefined
    const headers = this.deadLetterHeaders(source, topic, reason, attempts, lastError)
    const dlq = source.settings.deadLetterQueue!
    await this.declareDeadLetterQueue(dlq)
    const options = republishOptions(message, {
      [INTERNAL.attempts]: undefined,
      [INTERNAL.lastError]: undefined,
      [INTERNAL.topic]: undefined,
      [INTERNAL.expiresAt]: undefined,
    })
    options.headers = {...options.headers, ...headers}
    await this.client.publish('', dlq, message.content, options)
    await this.countDeadLetter(source)
  }

  private async deadLetterDelivery(
    source: Source,
    delivery: Delivery,
    reason: string,
    attempts: number,
    error?: string,
  ): Promise<void> {
    const headers = this.deadLetterHeaders(
      source,
      delivery.topic,
      reason,
      attempts,
      error ?? (delivery as {lastError?: string}).lastError,
    )
    const dlq = source.settings.deadLetterQueue!
    await this.declareDeadLetterQueue(dlq)
    await this.client.publish(
      '',
      dlq,
      Buffer.from(delivery.body),
      publishOptions(
        {...delivery.headers, ...headers},
        {[INTERNAL.publishedAt]: delivery.publishedAt},
        {messageId: delivery.id, timestamp: Math.floor(delivery.publishedAt / 1000)},
      ),
    )
  }

  private deadLetterHeaders(
    source: Source,
    topic: string | undefined,
    reason: string,
    attempts: number,
    error?: string,
  ): Headers {
    const origin: Headers =
      source.kind === 'queue'
        ? {'x-original-queue': source.name}
        : {'x-original-topic': topic ?? '', 'x-original-subscription': source.name}
    return {
      ...origin,
      'x-dead-letter-reason': reason,
      'x-dead-letter-attempts': String(attempts),
      'x-dead-lettered-at': new Date().toISOString(),
      ...(error ? {'x-last-error': error.slice(0, 1000)} : {}),
    }
  }

  private async declareDeadLetterQueue(dlq: string): Promise<void> {
    if (this.kinds.get(dlq) === 'queue') return
    if (!(await this.records.read<QueueRecord>(RECORD.queue(dlq))) && !(await this.client.checkQueue(dlq))) {
      await this.declareQueue(dlq, {deadLetterQueue: null})
    }
    this.kinds.set(dlq, 'queue')
  }

  private async countDeadLetter(source: Source): Promise<void> {
    if (source.kind !== 'queue') return
    await this.records.update<QueueRecord>(RECORD.queue(source.name), (old) => ({
      ...old,
      counters: {...old.counters, deadLettered: (old.counters?.deadLettered ?? 0) + 1},
    }))
  }

  // ---- settling

  private parseReceipts(receipts: string[]): void {
    for (const receipt of receipts) {
      if (!RECEIPT.test(receipt)) {
        throw new InvalidInputError(`"${receipt.slice(0, 60)}" is not a receipt of an amqp:// broker`, {
          hint: 'pass a receipt exactly as `mq consume --ack manual` printed it',
        })
      }
    }
  }

  async ack(receipts: string[]): Promise<SettleOutcome[]> {
    this.parseReceipts(receipts)
    return receipts.map((receipt) => {
      const lease = this.take(receipt)
      if (!lease) return 'stale'
      return this.settleMessage(lease) ? 'ok' : 'stale'
    })
  }

  async nack(receipts: string[], options: NackOptions = {}): Promise<NackOutcome[]> {
    this.parseReceipts(receipts)
    const outcomes: NackOutcome[] = []
    for (const receipt of receipts) {
      const lease = this.take(receipt)
      if (!lease) {
        outcomes.push('stale')
        continue
      }
      const {settings} = lease.source
      const out = !options.uncounted && (options.deadLetter || lease.delivery.attempt >= settings.maxDeliveries)
      if (out && settings.deadLetterQueue !== null) {
        await this.deadLetterLease(lease, options.deadLetter ? 'rejected' : 'max-deliveries', options.error)
        outcomes.push('dead-lettered')
        continue
      }
      const delayMs = options.uncounted
        ? 0
        : options.backoff
          ? backoffDelayMs(settings.retryBackoffMs, settings.retryBackoffMaxMs, lease.delivery.attempt)
          : (options.delayMs ?? 0)
      await this.putBack(lease, delayMs, options.error)
      outcomes.push('released')
    }
    return outcomes
  }

  async extend(receipts: string[], byMs: number): Promise<SettleOutcome[]> {
    this.parseReceipts(receipts)
    return receipts.map((receipt) => {
      const lease = this.leases.get(receipt)
      if (!lease) return 'stale'
      this.arm(receipt, lease, byMs)
      return 'ok'
    })
  }

  async stillLeased(receipts: string[]): Promise<boolean[]> {
    return receipts.map((receipt) => {
      const lease = this.leases.get(receipt)
      return lease !== undefined
    })
  }

  async restore(deliveries: Delivery[]): Promise<void> {
    for (const delivery of deliveries) {
      if (delivery.subscription !== undefined) {
        const state = this.ephemeral.get(delivery.subscription)
        if (state) {
          state.again.push({delivery: {...delivery, attempt: delivery.attempt - 1}, dueAt: 0})
          continue
        }
      }
      const target = delivery.queue ?? (delivery.subscription ? SUBSCRIPTION_QUEUE(delivery.subscription) : undefined)
      if (!target) continue
      await this.client.publish(
        '',
        target,
        Buffer.from(delivery.body),
        publishOptions(
          delivery.headers,
          {
            [INTERNAL.publishedAt]: delivery.publishedAt,
            [INTERNAL.attempts]: delivery.attempt - 1,
            ...(delivery.topic ? {[INTERNAL.topic]: delivery.topic} : {}),
          },
          {
            messageId: delivery.id,
            timestamp: Math.floor(delivery.publishedAt / 1000),
            ...(delivery.priority ? {priority: delivery.priority} : {}),
          },
        ),
      )
    }
  }

  // ---- dead letters

  async listDeadLetterQueues(): Promise<DeadLetterQueueInfo[]> {
    const queues = await this.listQueues()
    const sources = new Map<string, string[]>()
    for (const queue of queues) {
      const dlq = queue.settings.deadLetterQueue
      if (dlq) sources.set(dlq, [...(sources.get(dlq) ?? []), queue.name])
    }
    const out: DeadLetterQueueInfo[] = []
    for (const queue of queues) {
      if (!sources.has(queue.name) && !queue.name.endsWith('.dlq')) continue
      out.push({
        name: queue.name,
        messages: queue.depth,
        oldestAgeMs: null,
        sources: (sources.get(queue.name) ?? []).sort(),
      })
    }
    return out
  }

  async deadLetterQueueOf(name: string): Promise<string> {
    validateName(name)
    const record = await this.queueRecord(name)
    if (record) {
      if (record.settings.deadLetterQueue === null)
        throw new InvalidInputError(`queue ${name} has no dead-letter queue`, {
          hint: `set one with \`mq queue update ${name} --dead-letter-queue NAME\``,
        })
      return record.settings.deadLetterQueue
    }
    const subscription = await this.subscriptionQueue(name)
    if (subscription) return subscription.settings.deadLetterQueue ?? EPHEMERAL_DEAD_LETTER_QUEUE
    throw new NotFoundError('queue or subscription', name)
  }

  async redrive(name: string, options: RedriveOptions = {}): Promise<RedriveResult> {
    const dlq = await this.deadLetterQueueOf(name)
    const isQueue = (await this.queueRecord(name)) !== undefined
    const target = isQueue ? name : SUBSCRIPTION_QUEUE(name)
    const result: RedriveResult = {
      deadLetterQueue: dlq,
      target: name,
      examined: 0,
      moved: 0,
      dryRun: options.dryRun === true,
      ids: [],
    }
    const limit = options.limit ?? Infinity
    const channel = await this.client.newChannel()
    const held: Message[] = []
    try {
      for (;;) {
        if (result.moved >= limit || options.signal?.aborted) break
        const message = await channel.get(dlq, {noAck: false})
        if (!message) break
        held.push(message)
        result.examined++
        const headers = userHeaders(message)
        const body = message.content.toString('utf8')
        if (options.filter && !options.filter({body, headers})) continue
        result.ids.push(message.properties.messageId ?? '')
        result.moved++
        if (options.dryRun) continue
        const count = Number(headers['x-redrive-count'] ?? 0) + 1
        const republish = republishOptions(message, {[INTERNAL.attempts]: undefined})
        const keep: Record<string, unknown> = {}
        for (const [key, value] of Object.entries(republish.headers ?? {})) {
          if (!/^x-(dead-letter-|dead-lettered-at|original-|last-error)/.test(key)) keep[key] = value
        }
        republish.headers = {...keep, 'x-redrive-count': String(count)}
        if (!(await this.client.publish('', target, message.content, republish))) {
          result.moved--
          result.ids.pop()
          result.stoppedFull = true
          break
        }
        channel.ack(message)
        held.pop()
        if (options.ratePerSecond) await sleep(1000 / options.ratePerSecond, options.signal)
      }
    } finally {
      // What was looked at but not moved goes back, in order.
      for (const message of held.reverse()) channel.nack(message, false, true)
      await channel.close().catch(() => undefined)
    }
    return result
  }

  // ---- topics

  async declareTopic(
    name: string,
    given: Partial<TopicSettings> = {},
    placement: PlacementOptions = {},
  ): Promise<TopicInfo> {
    validateName(name, 'topic name')
    if (placement.replicas !== undefined) this.refuseUnless('replicas')
    if (given.maxBytes !== undefined && given.maxBytes !== null) this.refuseUnless('topic-max-bytes')
    const existing = await this.topicRecord(name, true)
    if (existing) {
      const wanted = resolveTopicSettings(name, given, existing.settings)
      const differing = differingSettings(given, wanted, existing.settings)
      if (differing.length > 0) {
        throw new InvalidInputError(`topic ${name} already exists with other settings (${differing.join(', ')})`, {
          code: 'settings_differ',
          hint: `delete it with \`mq topic delete ${name}\` first`,
        })
      }
      return this.topicInfo(existing)
    }
    if ((await this.records.read(RECORD.queue(name))) || (await this.client.checkQueue(name)))
      throw new WrongKindError(name, 'queue', {hint: `use \`mq consume ${name}\``})
    await this.infra()
    const record: TopicRecord = {mq: 'topic', name, createdAt: Date.now(), settings: resolveTopicSettings(name, given)}
    const stands = await this.records.create(RECORD.topic(name), record)
    this.kinds.set(name, 'topic')
    return this.topicInfo(stands)
  }

  private async topicInfo(record: TopicRecord, counts?: Map<string, LogCount>): Promise<TopicInfo> {
    const count = (counts ?? (await this.scanLog()))?.get(record.name)
    return {
      name: record.name,
      createdAt: record.createdAt,
      settings: record.settings,
      messages: count?.retained ?? 0,
      bytes: count?.bytes ?? 0,
    }
  }

  /**
   * Reads the whole topic log once and counts, per topic, what its settings retain (README: topics
   * on RabbitMQ are counted by reading the log).
   */
  private async scanLog(): Promise<Map<string, LogCount>> {
    await this.infra()
    const reader = await LogReader.open(this.client, compileTopicPattern('#'), {kind: 'all'})
    try {
      await reader.catchUp()
      const entries: {topic: string; at: number; bytes: number}[] = []
      for (;;) {
        const batch = reader.take(reader.entries.length)
        for (const entry of batch)
          entries.push({topic: entry.topic, at: publishedAt(entry.message) ?? 0, bytes: entry.message.content.length})
        if (batch.length === 0) break
        await reader.catchUp()
      }
      const keep = await this.retained(entries)
      const counts = new Map<string, LogCount>()
      for (const [i, {topic, at, bytes}] of entries.entries()) {
        if (keep[i] === undefined) continue
        const count = counts.get(topic) ?? {retained: 0, bytes: 0, discarded: 0, oldest: undefined}
        counts.set(topic, count)
        if (!keep[i]) {
          count.discarded++
          continue
        }
        count.retained++
        count.bytes += bytes
        count.oldest ??= at
      }
      return counts
    } finally {
      await reader.close()
    }
  }

  /**
   * Which log entries (oldest first) their topic's settings still retain: true kept, false
   * discarded (past --max-messages, or --max-age before a later publish or more than
   * AGE_SLACK_MS ago), undefined for a topic deleted (or made again) since.
   */
  private async retained(entries: {topic: string; at: number}[]): Promise<(boolean | undefined)[]> {
    const records = new Map<string, TopicRecord | undefined>()
    for (const {topic} of entries) if (!records.has(topic)) records.set(topic, await this.topicRecord(topic))
    const keep: (boolean | undefined)[] = []
    const later = new Map<string, {count: number; newest: number}>()
    const now = Date.now()
    for (let i = entries.length - 1; i >= 0; i--) {
      const {topic, at} = entries[i]
      const record = records.get(topic)
      if (!record || at < record.createdAt) continue
      const seen = later.get(topic) ?? {count: 0, newest: at}
      later.set(topic, {count: seen.count + 1, newest: seen.newest})
      const {maxMessages, maxAgeMs} = record.settings
      keep[i] =
        (maxMessages === null || seen.count < maxMessages) &&
        seen.newest - at <= maxAgeMs &&
        now - at <= maxAgeMs + AGE_SLACK_MS
    }
    return keep
  }

  private async topicRecords(): Promise<TopicRecord[]> {
    const queues = await this.listManaged('^mq~t\\.')
    const out: TopicRecord[] = []
    for (const queue of queues) {
      const record = await this.records.read<TopicRecord>(queue.name)
      if (record) out.push(record)
    }
    return out.sort((a, b) => a.name.localeCompare(b.name))
  }

  async listTopics(): Promise<TopicInfo[]> {
    const records = await this.topicRecords()
    if (records.length === 0) return []
    const counts = await this.scanLog()
    return Promise.all(records.map((record) => this.topicInfo(record, counts)))
  }

  async topicStats(name: string): Promise<TopicStats> {
    validateName(name, 'topic name')
    const record = await this.topicRecord(name, true)
    if (!record) {
      if (await this.queueRecord(name))
        throw new WrongKindError(name, 'queue', {hint: `use \`mq queue stats ${name}\``})
      throw new NotFoundError('topic', name, {hint: 'see `mq topic list`'})
    }
    const counts = await this.scanLog()
    const count = counts.get(name)
    const subscriptions = this.management
      ? (await this.listSubscriptions()).filter((s) => compileTopicPattern(s.pattern).matches(name)).map((s) => s.name)
      : []
    return {
      ...(await this.topicInfo(record, counts)),
      oldestAgeMs: count?.oldest === undefined ? null : Math.max(0, Date.now() - count.oldest),
      subscriptions: subscriptions.sort(),
      totals: {published: (count?.retained ?? 0) + (count?.discarded ?? 0), discarded: count?.discarded ?? 0},
    }
  }

  async deleteTopic(name: string): Promise<{deleted: number}> {
    validateName(name, 'topic name')
    const record = await this.topicRecord(name, true)
    if (!record) throw new NotFoundError('topic', name, {hint: 'see `mq topic list`'})
    const counts = await this.scanLog()
    // The log cannot delete single messages: a topic made again under this name starts after them.
    await this.records.remove(RECORD.topic(name))
    this.kinds.delete(name)
    return {deleted: counts.get(name)?.retained ?? 0}
  }

  private async publishTopic(name: string, messages: OutgoingMessage[]): Promise<PublishResult[]> {
    const record =
      (await this.topicRecord(name)) ?? (await this.declareTopic(name), (await this.topicRecord(name, true))!)
    checkBodySizes(name, record.settings.maxBodyBytes, messages)
    messages.forEach((message, index) => {
      if (message.deliverAt !== undefined || message.ttlMs !== undefined || (message.priority ?? 0) > 0) {
        throw atMessage(
          new InvalidInputError('--delay, --at, --ttl and --priority apply to queues, not to topics', {
            code: 'unsupported',
          }),
          index,
          messages.length,
        )
      }
    })
    await this.infra()
    const now = Date.now()
    const ids = messages.map(() => messageId(now))
    const confirmed = await inWindows(messages, (window, start) =>
      this.client.publishBatch(
        window.map((message, offset) => ({
          exchange: TOPIC_EXCHANGE,
          routingKey: name,
          content: Buffer.from(message.body),
          options: publishOptions(
            message.headers,
            {},
            {messageId: ids[start + offset], timestamp: Math.floor(now / 1000)},
          ),
        })),
      ),
    )
    if (confirmed.includes(false))
      throw new QueueFullError(`RabbitMQ refused a message for topic ${name} (a subscription queue is full)`)
    return ids.map((id) => ({id, destination: name, kind: 'topic' as const}))
  }

  // ---- subscriptions

  private async subscriptionQueue(
    name: string,
  ): Promise<{pattern: string; settings: SourceSettings; createdAt: number; durable: boolean} | undefined> {
    const amqpName = SUBSCRIPTION_QUEUE(name)
    if (!(await this.client.checkQueue(amqpName))) return undefined
    // The pattern and settings live in the queue's arguments; over AMQP a record keeps them too.
    const record = await this.records.read<{pattern: string; settings: SourceSettings; createdAt: number}>(
      `mq~s.${name}`,
    )
    return record && {...record, durable: true}
  }

  async subscribe(pattern: string, options: SubscribeOptions = {}): Promise<Subscription> {
    const matcher = compileTopicPattern(pattern)
    if (options.durable !== undefined) validateName(options.durable, 'subscription name')
    if (
      matcher.literal &&
      ((await this.records.read(RECORD.queue(pattern))) || (await this.client.checkQueue(pattern)))
    )
      throw new WrongKindError(pattern, 'queue', {hint: `consume it with \`mq consume ${pattern}\``})
    await this.infra()
    const start = options.start ?? {kind: 'new'}
    const durable = options.durable !== undefined
    const name = options.durable ?? `~${process.pid}.${randomBytes(3).toString('hex')}`
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
    if (!durable) return this.ephemeralSubscription(name, pattern, settings, start)
    const existing = await this.subscriptionQueue(name)
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
      return this.durableHandle(name, pattern, existing.settings, true)
    }
    if (start.kind !== 'new') {
      throw new InvalidInputError(
        `a durable subscription on RabbitMQ starts with new messages (--${start.kind} is not available)`,
        {
          code: 'unsupported',
          hint: 'read older messages with an ephemeral subscription (no --durable), which reads the topic log',
        },
      )
    }
    const createdAt = Date.now()
    const amqpName = SUBSCRIPTION_QUEUE(name)
    await this.client.run(`declare ${amqpName}`, async () => {
      await this.client.ops.assertQueue(amqpName, {
        durable: true,
        arguments: {'x-mq-pattern': pattern, 'x-mq-created-at': createdAt},
      })
      await this.client.ops.bindQueue(amqpName, TOPIC_EXCHANGE, pattern)
    })
    const stands = await this.records.create(`mq~s.${name}`, {pattern, settings, createdAt})
    if (stands.pattern !== pattern) return this.subscribe(pattern, options)
    return this.durableHandle(name, pattern, stands.settings, false)
  }

  private durableHandle(name: string, pattern: string, settings: SourceSettings, resumed: boolean): Subscription {
    const source: Source = {kind: 'subscription', name, amqpName: SUBSCRIPTION_QUEUE(name), settings}
    return {
      name,
      pattern,
      durable: true,
      resumed,
      settings,
      receive: (options) => this.deliver(source, options),
      close: async () => undefined,
    }
  }

  private async ephemeralSubscription(
    name: string,
    pattern: string,
    settings: SubscriptionSettings,
    start: NonNullable<SubscribeOptions['start']>,
  ): Promise<Subscription> {
    const marker = EPHEMERAL_MARKER(name)
    // An exclusive queue: it lists the subscription and disappears with this connection.
    await this.client.run(`declare ${marker}`, () =>
      this.client.ops.assertQueue(marker, {
        exclusive: true,
        autoDelete: true,
        durable: false,
        arguments: {'x-mq-pattern': pattern, 'x-mq-pid': process.pid, 'x-mq-created-at': Date.now()},
      }),
    )
    const reader = await LogReader.open(this.client, compileTopicPattern(pattern), start)
    const state: EphemeralState = {reader, again: [], caughtUp: false}
    this.ephemeral.set(name, state)
    const source: Source = {kind: 'subscription', name, settings, reader: state}
    let closed = false
    return {
      name,
      pattern,
      durable: false,
      resumed: false,
      settings,
      receive: (options) => this.deliver(source, options),
      close: async () => {
        if (closed) return
        closed = true
        this.ephemeral.delete(name)
        for (const [receipt, lease] of this.leases) if (lease.source === source) this.take(receipt)
        await reader.close()
        if (!this.closed)
          await this.client.run(`delete ${marker}`, () => this.client.ops.deleteQueue(marker)).catch(() => undefined)
      },
    }
  }

  private async deliverFromLog(source: Source, state: EphemeralState, options: ReceiveOptions): Promise<Delivery[]> {
    const out: Delivery[] = []
    const deadline = Date.now() + (options.waitMs ?? 0)
    for (;;) {
      const now = Date.now()
      // Put-back deliveries first, when due.
      for (let i = 0; i < state.again.length && out.length < options.max;) {
        const entry = state.again[i]
        if (entry.dueAt > now) {
          i++
          continue
        }
        state.again.splice(i, 1)
        const attempt = entry.delivery.attempt + 1
        if (source.settings.deadLetterQueue !== null && attempt > source.settings.maxDeliveries) {
          await this.deadLetterDelivery(source, entry.delivery, 'max-deliveries', attempt - 1)
          continue
        }
        out.push(this.leaseLogDelivery(source, {...entry.delivery, attempt}, options))
      }
      if (out.length >= options.max) return out
      if (!state.caughtUp || (options.waitMs ?? 0) === 0) {
        await state.reader.catchUp()
        state.caughtUp = true
      }
      const entries = state.reader.entries
      const keep = await this.retained(
        entries.map((entry) => ({topic: entry.topic, at: publishedAt(entry.message) ?? 0})),
      )
      let taken = 0
      for (let i = 0; i < entries.length && out.length < options.max; i++) {
        taken = i + 1
        if (!keep[i]) continue
        const {message, topic} = entries[i]
        out.push(
          this.leaseLogDelivery(
            source,
            {
              id: message.properties.messageId ?? '',
              topic,
              subscription: source.name,
              body: message.content.toString('utf8'),
              headers: userHeaders(message),
              attempt: 1,
              publishedAt: publishedAt(message) ?? Date.now(),
            },
            options,
          ),
        )
      }
      state.reader.take(taken)
      if (out.length > 0 || Date.now() >= deadline || options.signal?.aborted) return out
      const nextDue = Math.min(...state.again.map((entry) => entry.dueAt), deadline)
      await state.reader.arrival(Math.max(1, Math.min(nextDue, deadline) - Date.now()), options.signal)
    }
  }

  private leaseLogDelivery(source: Source, delivery: Delivery, options: ReceiveOptions): Delivery {
    if (options.autoAck) return delivery
    const receipt = `a1:${this.holder}:${this.nextLease++}`
    const leased = {...delivery, receipt}
    const lease: Lease = {source, delivery: leased, generation: this.client.generation, until: 0}
    this.leases.set(receipt, lease)
    this.arm(receipt, lease, options.visibilityTimeoutMs ?? source.settings.visibilityTimeoutMs)
    return leased
  }

  async listSubscriptions(): Promise<SubscriptionInfo[]> {
    const queues = await this.listManaged('^mq~(sub|e)\\.')
    return queues
      .map((queue) => {
        const durable = queue.name.startsWith('mq~sub.')
        const args = queue.arguments ?? {}
        return {
          name: queue.name.slice(durable ? 'mq~sub.'.length : 'mq~e.'.length),
          pattern: String(args['x-mq-pattern'] ?? ''),
          durable,
          createdAt: Number(args['x-mq-created-at'] ?? 0),
          ...(durable ? {} : {pid: Number(args['x-mq-pid'])}),
        }
      })
      .sort((a, b) => a.name.localeCompare(b.name))
  }

  async subscriptionStats(name: string): Promise<SubscriptionStats> {
    const info = (await this.listSubscriptions()).find((s) => s.name === name)
    if (!info) throw new NotFoundError('subscription', name, {hint: 'see `mq subscription list`'})
    const topics = (await this.topicRecords())
      .map((t) => t.name)
      .filter((t) => compileTopicPattern(info.pattern).matches(t))
    let lag = 0
    let inFlight = 0
    let pendingRedelivery = 0
    let settings: SourceSettings = {...DEFAULT_QUEUE_SETTINGS, deadLetterQueue: EPHEMERAL_DEAD_LETTER_QUEUE}
    if (info.durable) {
      const amqpName = SUBSCRIPTION_QUEUE(name)
      const {info: managed, ready} = await this.freshManaged(amqpName)
      lag = ready
      inFlight = managed.messages_unacknowledged ?? 0
      pendingRedelivery = await this.delayedCount(amqpName)
      settings = (await this.subscriptionQueue(name))?.settings ?? settings
    } else {
      const state = this.ephemeral.get(name)
      if (state) {
        pendingRedelivery = state.again.length
        for (const lease of this.leases.values()) if (lease.source.reader === state) inFlight++
      }
    }
    return {
      ...info,
      lag,
      inFlight,
      pendingRedelivery,
      oldestUnackedAgeMs: this.oldestHeldAge(name) ?? null,
      topics,
      settings,
      totals: {acked: 0, deadLettered: 0},
    }
  }

  async deleteSubscription(name: string): Promise<void> {
    const found = await this.subscriptionQueue(name)
    if (!found) {
      if ((await this.listSubscriptions().catch(() => [])).some((s) => s.name === name && !s.durable))
        throw new InvalidInputError(`subscription ${name} is ephemeral: it ends with its process`, {
          hint: 'stop that process',
        })
      throw new NotFoundError('subscription', name, {hint: 'see `mq subscription list`'})
    }
    await this.client.run(`delete subscription ${name}`, () => this.client.ops.deleteQueue(SUBSCRIPTION_QUEUE(name)))
    await this.records.remove(`mq~s.${name}`)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const state of this.ephemeral.values()) await state.reader.close()
    for (const lease of this.leases.values()) clearTimeout(lease.timer)
    this.leases.clear()
    await this.client.close()
  }
}

/**
 * The file broker applies --max-age when a topic is published to; reading the log applies it
 * against later publishes exactly, and against the clock this much late at most.
 */
const AGE_SLACK_MS = 5_000

interface LogCount {
  retained: number
  bytes: number
  discarded: number
  oldest: number | undefined
}

/** Acks on a channel that may have just been lost (then RabbitMQ requeued the message itself). */
function ackQuietly(channel: Channel, message: Message): void {
  try {
    channel.ack(message)
  } catch {
    // the channel is gone: nothing to settle on it
  }
}

/** Publishes awaiting confirms in windows, so a big batch does not flood the channel's buffer. */
/** The queue type RabbitMQ reports (`type`, else the x-queue-type argument); classic when neither says. */
function queueTypeOf(info: ManagedQueue): string {
  const declared = info.arguments?.['x-queue-type']
  return info.type ?? (typeof declared === 'string' ? declared : 'classic')
}

/**
 * Publishes in windows of {@link PUBLISH_WINDOW} with up to {@link WINDOWS_IN_FLIGHT} windows
 * unconfirmed at once: the next window goes out while the broker confirms the previous one (one
 * awaited window at a time left the connection idle for a round trip per window). Returns when
 * every window answered, so a publish that returned is confirmed.
 */
async function inWindows<T, R>(items: T[], work: (window: T[], start: number) => Promise<R[]>): Promise<R[]> {
  const windows: Promise<R[]>[] = []
  for (let start = 0; start < items.length; start += PUBLISH_WINDOW) {
    if (windows.length >= WINDOWS_IN_FLIGHT) await windows[windows.length - WINDOWS_IN_FLIGHT]
    const window = work(items.slice(start, start + PUBLISH_WINDOW), start)
    window.catch(() => undefined) // awaited below; a failure must not go unhandled while others run
    windows.push(window)
  }
  return (await Promise.all(windows)).flat()
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** Rounds a delay up to 2 significant digits (1234 → 1300), so retries with jitter share wait queues. */
export function roundUp(ms: number): number {
  const value = Math.max(1, Math.ceil(ms))
  const scale = 10 ** Math.max(0, Math.floor(Math.log10(value)) - 1)
  return Math.ceil(value / scale) * scale
}

function describeLimits(settings: QueueSettings): string {
  const parts = []
  if (settings.maxLength !== null) parts.push(`max ${settings.maxLength} messages`)
  if (settings.maxBytes !== null) parts.push(`max ${settings.maxBytes} bytes`)
  return parts.join(', ') || 'refused by RabbitMQ'
}

/**
 * Per-second rates over the last minute and five, as the file broker defines them (what was
 * counted in the window, divided by its length), from the management API's samples of the running
 * totals (newest first, 5 s apart, 6 minutes kept). A queue younger than the window counted from 0.
 */
function sampledRates(details: {rate: number; samples?: {sample: number; timestamp: number}[]} | undefined): {
  last1m: number
  last5m: number
} {
  const samples = details?.samples ?? []
  if (samples.length === 0) return {last1m: 0, last5m: 0}
  const [latest] = samples
  const over = (seconds: number) => {
    const base = samples.find((s) => latest.timestamp - s.timestamp >= seconds * 1000)
    return Math.max(0, (latest.sample - (base?.sample ?? 0)) / seconds)
  }
  return {last1m: over(60), last5m: over(300)}
}

function wrapAt(check: () => void, index: number, count: number): void {
  try {
    check()
  } catch (error) {
    if (error instanceof InvalidInputError) throw atMessage(error, index, count)
    throw error
  }
}
