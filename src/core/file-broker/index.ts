import {join} from 'node:path'

import {
  type AckOptions,
  type Broker,
  type BulkOptions,
  DEFAULT_TOPIC_SETTINGS,
  type Delivery,
  type DeadLetterQueueInfo,
  type DestinationKind,
  type NackOptions,
  type NackOutcome,
  type OutgoingMessage,
  type PeekedMessage,
  type PublishOptions,
  type PublishResult,
  type QueueInfo,
  type QueueSettings,
  type QueueStats,
  type QueueTotals,
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
import {monotonicNow} from '../clock.js'
import {type BrokerDescription, FILE_BROKER_CAPABILITIES} from '../capabilities.js'
import {
  InterruptedError,
  InvalidInputError,
  isMqError,
  NotFoundError,
  QueueFullError,
  WrongKindError,
} from '../errors.js'
import {lazyCrypto} from '../lazy-require.js'
import {isLockedError, type LockWaiter} from '../lock-wait.js'
import {sleep} from '../rate-limiter.js'
import {formatDuration} from '../units.js'
import {compileTopicPattern, validateName} from '../names.js'
import {closeDatabase, openDatabase} from '../store/database.js'
import {refuseLinks} from '../no-follow.js'
import {ChangeNotifier, FALLBACK_POLL_MS, SIGNAL_FILE} from './change-notifier.js'
import {type DestinationRow, Destinations, resolveQueueSettings, resolveTopicSettings} from './destinations.js'
import {decodeHeaders, QueueStore, type TakenRow} from './queue-store.js'
import type {EventJournal} from '../engine/journal.js'
import {SqliteEventJournal} from './event-journal.js'
import {DeadLetters} from './dead-letters.js'
import {Publisher, type PublishStep} from './publisher.js'
import {idText, lastIds} from './message-ids.js'
import {parseReceipts, type Receipt} from './receipts.js'
import {type Durability, pauseForLock, Sql} from './sql.js'
import {checkBodySizes, differingSettings, validateMessages} from './validation.js'
import {FileSubscription, SubscriptionReader} from './subscription-reader.js'
import {type SubscriptionRow, SubscriptionStore} from './subscription-store.js'
import {TopicStore} from './topic-store.js'
import {REFRESH_MS, TRUSTED_MS, Waiters} from './waiters.js'

/** Messages one purge transaction deletes: big enough to be quick, small enough not to hold the write lock long. */
const PURGE_BATCH = 5_000

/**
 * How often a waiting consumer settles what its re-armed registration owes (Waiters.rearm): the
 * handed messages' totals and rates, their ids' place in band 0's counter.
 */
const SETTLE_MS = 1_000
/** How long an ack waiting for the write lock gathers the receipts arriving meanwhile (see ackGathering). */
const GATHER_MS = 50

export interface FileBrokerOptions {
  /** Create the folder and database if missing (default true). */
  create?: boolean
}

/**
 * The broker on a local folder: one SQLite database in WAL mode, shared safely by any number of
 * processes with or without the daemon (README.md, "Where messages live"; ARCHITECTURE.md, "The
 * file broker").
 */
export class FileBroker implements Broker {
  private readonly sql: Sql
  private readonly destinations: Destinations
  private readonly queues: QueueStore
  private readonly topics: TopicStore
  private readonly subscriptions: SubscriptionStore
  private readonly publisher: Publisher
  private readonly deadLetters: DeadLetters
  private readonly reader: SubscriptionReader
  private readonly notifier: ChangeNotifier
  private readonly waiters: Waiters
  /** This broker's registrations as a waiting consumer (see receive), with their queue's name. */
  private readonly registrations = new Map<number, string>()
  /**
   * Registrations whose handed messages were read, with their queue's name: made to wait again by
   * the next registration on that queue (see Waiters.rearm), deleted by the next write otherwise
   * (or on close).
   */
  private readonly spent = new Map<number, string>()
  /** When this broker last settled what a re-armed registration owes (see Waiters.rearm). */
  private settledAt = 0
  private closed = false
  private eventJournal?: EventJournal
  private lockWaiter?: LockWaiter

  constructor(
    readonly home: string,
    options: FileBrokerOptions = {},
  ) {
    // Commits write to the signal file after they land: a link there is refused up front, with a
    // clear error, rather than silently not written through later (see openSignalFile).
    refuseLinks(join(home, SIGNAL_FILE))
    const db = openDatabase(home, {create: options.create})
    this.sql = new Sql(db, home, join(home, SIGNAL_FILE))
    this.destinations = new Destinations(this.sql)
    this.queues = new QueueStore(this.sql, this.destinations)
    this.topics = new TopicStore(this.sql, this.destinations)
    this.subscriptions = new SubscriptionStore(this.sql, this.destinations)
    this.waiters = new Waiters(this.sql, this.destinations, this.queues)
    this.publisher = new Publisher(this.sql, this.destinations, this.queues, this.topics, this.waiters)
    this.deadLetters = new DeadLetters(this.sql, this.destinations, this.queues, this.subscriptions)
    this.reader = new SubscriptionReader(this.destinations, this.queues, this.topics, this.subscriptions)
    this.notifier = new ChangeNotifier(home)
  }

  /**
   * Long-running commands: receives, publishes and settles wait out another process's write lock
   * (retrying with backoff) instead of failing after the busy timeout. Lease extensions do not
   * wait: their timer tries again anyway.
   */
  waitOutOutages(waiter: LockWaiter): void {
    this.lockWaiter = waiter
  }

  /** Runs one unit of work, waiting out the write lock when `waitOutOutages` was called. */
  private patiently<T>(operation: () => T, signal?: AbortSignal): T | Promise<T> {
    return this.lockWaiter ? this.lockWaiter.run(operation, signal) : operation()
  }

  async declareQueue(name: string, settings: Partial<QueueSettings> = {}): Promise<QueueInfo> {
    validateName(name, 'queue name')
    return this.sql.write(() => {
      const existing = this.destinations.queue(name)
      if (!existing) {
        const created = this.destinations.createQueue(name, settings)
        this.destinations.checkDeadLetterTarget(created.settings)
        return queueInfo(created)
      }
      const differing = differingSettings(
        settings,
        resolveQueueSettings(name, settings, existing.settings),
        existing.settings,
      )
      if (differing.length > 0) {
        throw new InvalidInputError(`queue ${name} already exists with other settings (${differing.join(', ')})`, {
          code: 'settings_differ',
          hint: `change them with \`mq queue update ${name}\``,
        })
      }
      return queueInfo(existing)
    })
  }

  async updateQueue(name: string, settings: Partial<QueueSettings>): Promise<QueueInfo> {
    return this.sql.write(() => {
      const queue = this.requireQueue(name)
      const next = resolveQueueSettings(name, settings, queue.settings)
      this.destinations.checkDeadLetterTarget(next)
      this.destinations.saveSettings(queue.id, next)
      return queueInfo({...queue, settings: next})
    })
  }

  async deleteQueue(name: string): Promise<{deleted: number}> {
    return this.sql.write(() => {
      const queue = this.requireQueue(name)
      const deleted = this.queues.purge(queue.id)
      this.waiters.removeAll(queue.id)
      this.destinations.delete(queue.id)
      return {deleted}
    })
  }

  async purgeQueue(name: string, options: BulkOptions = {}): Promise<{purged: number}> {
    // In batches, each its own transaction: other processes keep working meanwhile, and progress
    // can be shown. Only what the queue held at the start goes (ids given out by then).
    const start = this.sql.read(() => {
      const queue = this.requireQueue(name)
      return {id: queue.id, total: queue.depth, newest: lastIds(this.sql)}
    })
    let purged = 0
    while (!options.signal?.aborted) {
      const deleted = this.sql.write(() =>
        this.destinations.getById(start.id) ? this.queues.purgeBatch(start.id, start.newest, PURGE_BATCH) : 0,
      )
      purged += deleted
      options.onProgress?.({done: purged, total: Math.max(start.total, purged)})
      if (deleted < PURGE_BATCH) break
      await new Promise((resolve) => setImmediate(resolve)) // timers and signals run between batches
    }
    return {purged}
  }

  async listQueues(): Promise<QueueInfo[]> {
    return this.sql.read(() => this.destinations.list<QueueSettings>('queue').map((row) => queueInfo(row)))
  }

  async getQueue(name: string): Promise<QueueInfo | undefined> {
    validateName(name, 'queue name')
    return this.sql.read(() => {
      const row = this.destinations.queue(name)
      return row && queueInfo(row)
    })
  }

  /** Deliveries of a queue awaiting their ack (cheaper than queueStats: only the waiting index). */
  async inFlight(name: string): Promise<number> {
    return this.sql.read(() => {
      const queue = this.requireQueue(name)
      return this.queues.inFlightCount(queue.id, Date.now())
    })
  }

  /** A queue's running totals (published, acked, dead-lettered, …). */
  async queueTotals(name: string): Promise<QueueTotals> {
    return this.sql.snapshot(() => {
      const queue = this.requireQueue(name)
      return withUncounted(queue.totals, this.waiters.uncounted(queue.id).total)
    })
  }

  async queueStats(name: string): Promise<QueueStats> {
    // One snapshot: the totals and what waiters owe them (see withUncounted) must agree.
    return this.sql.snapshot(() => {
      const queue = this.requireQueue(name)
      const now = Date.now()
      const counts = this.queues.counts(queue.id, now)
      const dlq = queue.settings.deadLetterQueue ? this.destinations.get(queue.settings.deadLetterQueue) : undefined
      const uncounted = this.waiters.uncounted(queue.id)
      return {
        ...queueInfo(queue),
        ready: counts.ready,
        inFlight: counts.inFlight,
        delayed: counts.delayed,
        deadLettered: dlq?.depth ?? 0,
        oldestAgeMs: counts.oldestPublishedAt === null ? null : Math.max(0, now - counts.oldestPublishedAt),
        totals: withUncounted(queue.totals, uncounted.total),
        rates: this.destinations.rates(queue.id, now, uncounted.minutes),
      }
    })
  }

  async peek(queue: string, limit: number): Promise<PeekedMessage[]> {
    return this.sql.read(() => this.queues.peek(this.requireQueue(queue).id, limit, Date.now()))
  }

  async publish(name: string, messages: OutgoingMessage[], options: PublishOptions = {}): Promise<PublishResult[]> {
    validateName(name, options.kind === 'topic' ? 'topic name' : 'destination name')
    if (messages.length === 0) return []
    validateMessages(messages)
    const results: PublishResult[] = []
    // In-process deadline: on the monotonic clock, so a step of the system clock does not move it.
    const deadline = monotonicNow() + (options.blockTimeoutMs ?? Number.POSITIVE_INFINITY)
    let pending = messages
    for (;;) {
      const mark = this.notifier.mark()
      // Each step commits on its own, so only the step that met the lock is tried again.
      const step = await this.patiently(() => this.sql.write(() => this.publishStep(name, pending, options)))
      if (step.rest.length === 0 && results.length === 0) return step.results
      // A whole file can be one batch: spreading 200k results as arguments would overflow the stack.
      for (const result of step.results) results.push(result)
      if (step.rest.length === 0) return results
      // Overflow "block": wait for consumers to make room (their acks wake us), up to the deadline.
      const now = monotonicNow()
      if (options.signal?.aborted) throw new InterruptedError()
      if (now >= deadline || this.closed) {
        const waited = options.blockTimeoutMs === undefined ? '' : ` for ${formatDuration(options.blockTimeoutMs)}`
        const error = new QueueFullError(`${step.full} and stayed full${waited}`, {
          hint: `${results.length} of ${messages.length} messages were published; wait longer with --wait, or let consumers catch up`,
        })
        error.published = results
        throw error
      }
      pending = step.rest
      await this.notifier.wait(mark, Math.min(deadline - now, FALLBACK_POLL_MS), options.signal)
    }
  }

  /** One publish transaction's work (see Publisher): call inside a write. */
  private publishStep(name: string, messages: OutgoingMessage[], options: PublishOptions): PublishStep {
    const destination = this.resolveForPublish(name, options)
    const sizes = checkBodySizes(destination.name, destination.settings.maxBodyBytes, messages)
    if (
      destination.kind === 'topic' &&
      messages.some((m) => m.deliverAt !== undefined || m.ttlMs !== undefined || m.priority)
    ) {
      throw new InvalidInputError(`${name} is a topic: delays, TTLs and priorities apply to queues`, {
        hint: 'publish without --delay, --at, --ttl and --priority',
      })
    }
    return this.publisher.step(destination, messages, Date.now(), sizes)
  }

  /**
   * Group commit (the daemon): many clients' publishes in ONE transaction, each in its own
   * savepoint so one client's bad batch fails alone. A step that found its queue full under the
   * block policy returns the messages still waiting for room in `rest`.
   */
  publishGroup(
    requests: {name: string; messages: OutgoingMessage[]; options: PublishOptions}[],
  ): (PublishStep | {error: unknown})[] {
    const invalid: ({error: unknown} | undefined)[] = requests.map((r) => {
      try {
        validateName(r.name, r.options.kind === 'topic' ? 'topic name' : 'destination name')
        validateMessages(r.messages)
        return undefined
      } catch (error) {
        return {error}
      }
    })
    // The transaction returns every outcome (it may run twice, see Sql.write).
    return this.sql.write(() =>
      requests.map((r, index) => {
        if (invalid[index]) return invalid[index]
        if (r.messages.length === 0) return {results: [], rest: []}
        try {
          return this.sql.savepoint(() => this.publishStep(r.name, r.messages, r.options))
        } catch (error) {
          return {error}
        }
      }),
    )
  }

  /**
   * The destination a publish goes to (README.md, "Publish/subscribe"): an existing topic or queue; else a new topic
   * when forced or when a subscription pattern covers the name; else a new queue.
   */
  private resolveForPublish(name: string, options: PublishOptions): DestinationRow<QueueSettings | TopicSettings> {
    const existing = this.destinations.get<QueueSettings | TopicSettings>(name)
    if (existing) {
      if (options.kind && existing.kind !== options.kind)
        throw new WrongKindError(name, existing.kind as DestinationKind)
      return existing
    }
    const topic =
      options.kind === 'topic' ||
      (options.kind === undefined && this.subscriptions.livePatterns().some((p) => p.matches(name)))
    return topic
      ? this.destinations.insert(name, 'topic', {...DEFAULT_TOPIC_SETTINGS})
      : this.destinations.createQueue(name)
  }

  async receive(queueName: string, options: ReceiveOptions): Promise<Delivery[]> {
    validateName(queueName, 'queue name')
    // An auto-ack long poll registers before it sleeps, so a publish can hand it messages in its
    // own commit (ARCHITECTURE.md, "Hand-off to waiting consumers"); for one receive only.
    const handOff = options.autoAck && options.pollIntervalMs === undefined
    let registration: number | undefined
    /** Until when publishes trust the registration (see Waiters); refreshed on wake-ups. */
    let trustedUntil = 0
    let deliveries: Delivery[]
    /** What a publish handed to the registration, taken as soon as its signal came (see below). */
    let handedEarly: Delivery[] | undefined
    /** Takes what was handed to the registration, if anything: undefined while it still waits. */
    const takeHanded = (): Delivery[] | undefined => {
      const handed = this.sql.read(() => this.waiters.handed(registration!))
      if (handed === null) {
        // Gone with its queue.
        this.registrations.delete(registration!)
        registration = undefined
        return undefined
      }
      if (!handed) return undefined
      // The publisher may still be syncing its commit: nothing is printed before it is on disk.
      this.sql.syncNow()
      this.registrations.delete(registration!)
      this.spent.set(registration!, queueName)
      registration = undefined
      return handed.map((row) => queueDelivery(queueName, row))
    }
    const {onHandOff} = options
    // Taken in the watch's callback, and given to onHandOff there: the consumer prints it without
    // the way back through the poll loop and its caller first (ARCHITECTURE.md, "Hand-off to
    // waiting consumers").
    const stopEarly =
      handOff && onHandOff
        ? this.notifier.onChange(() => {
            // Nothing to take once it was taken: that spends the registration.
            if (registration === undefined) return false
            try {
              handedEarly = takeHanded()
            } catch {
              return false // the poll's own attempt reads again, and reports what fails
            }
            if (handedEarly === undefined) return false
            onHandOff(handedEarly)
            return true
          })
        : undefined
    try {
      deliveries = await this.poll(options, (max, willWait) => {
        if (handedEarly !== undefined) return {deliveries: handedEarly, nextDueAt: 0}
        if (registration !== undefined) {
          const handed = takeHanded()
          if (handed !== undefined) return {deliveries: handed, nextDueAt: 0}
          if (registration !== undefined && trustedUntil - Date.now() < REFRESH_MS) {
            const now = Date.now()
            const settle = this.settleDue(now)
            this.sql.write(() => this.waiters.refresh(registration!, now, settle), 'lease', false)
            trustedUntil = now + TRUSTED_MS
          }
        }
        const queue = this.sql.read(() => this.destinations.queue(queueName))
        if (!queue) return {deliveries: [], nextDueAt: Number.POSITIVE_INFINITY}
        const deliverable = this.sql.read(() => this.queues.hasDeliverable(queue.id, Date.now()))
        // The rows become deliveries after the commit: the write lock is held for the SQL only.
        let rows: TakenRow[] = []
        if (deliverable) {
          rows = this.writeDroppingSpent(
            () => this.takeFromQueue(queueName, {...options, max}),
            takeDurability(options),
          )
        } else if (handOff && willWait && registration === undefined) {
          // Not synced: a registration lost in a power cut went with the process that made it.
          // A publish committed after the read above finds no registration, but its signal comes
          // after the waiting mark, so the wait below returns at once for it.
          // The registration of the last delivery on this queue waits again when it can: one row
          // updated (one page), where deleting it and inserting another wrote five, and every
          // page a consumer writes without a sync is written by the next publisher's sync.
          const now = Date.now()
          const reusable = spentOn(this.spent, queueName)
          const settle = reusable !== undefined && this.settleDue(now)
          registration = this.writeDroppingSpent(
            () =>
              reusable !== undefined && this.waiters.rearm(reusable, queue.id, max, now, settle)
                ? reusable
                : this.waiters.register(queue.id, max, now),
            'lease',
            false,
            reusable,
          )
          trustedUntil = now + TRUSTED_MS
          this.registrations.set(registration, queueName)
        } else if (this.spent.size > 0) {
          this.writeDroppingSpent(() => undefined, 'lease', false)
        }
        const taken = rows.map((row) => queueDelivery(queueName, row))
        return {
          deliveries: taken,
          nextDueAt: taken.length > 0 ? 0 : this.sql.read(() => this.queues.nextDueAt(queue.id)),
        }
      })
    } catch (error) {
      if (registration !== undefined) this.leave(registration)
      throw error
    } finally {
      stopEarly?.()
    }
    if (registration !== undefined) {
      try {
        this.leave(registration)
      } catch (error) {
        // What was taken is not lost for it: the registration is tried again on close.
        if (deliveries.length === 0) throw error
      }
    }
    // What onHandOff was given is delivered also when the poll ended without asking (a close).
    return handedEarly ?? deliveries
  }

  /**
   * Ends a registration that was not handed anything it read: removes it and puts back what a
   * publish handed it meanwhile (same ids, so same place in the queue).
   */
  private leave(registration: number): void {
    const queueName = this.registrations.get(registration)
    if (this.closed || queueName === undefined) return
    this.writeDroppingSpent(() => {
      const handed = this.waiters.remove(registration)
      const queue = handed.length > 0 ? this.destinations.queue(queueName) : undefined
      if (queue) this.queues.restore(queue, handed.map(restorable), Date.now())
    }, 'durable')
    this.registrations.delete(registration)
  }

  /**
   * A write that also deletes the registrations whose handed messages were read (once it commits).
   * `wakes`: as Sql.write; a consumer's own registration and its spent ones give nobody anything
   * to wait for.
   */
  private writeDroppingSpent<T>(fn: () => T, durability: Durability, wakes = true, keep?: number): T {
    const spent = [...this.spent.keys()]
    const result = this.sql.write(
      () => {
        for (const id of spent) if (id !== keep) this.waiters.retire(id)
        return fn()
      },
      durability,
      wakes,
    )
    for (const id of spent) this.spent.delete(id)
    return result
  }

  /**
   * Whether a write of a waiting consumer should settle what its registration owes now (see
   * Waiters.rearm): at most once per SETTLE_MS, so the counts of what was handed reach the totals
   * and rates within seconds while each re-arm stays one page.
   */
  private settleDue(now: number): boolean {
    if (now - this.settledAt < SETTLE_MS) return false
    this.settledAt = now
    return true
  }

  private takeFromQueue(queueName: string, options: ReceiveOptions): TakenRow[] {
    const queue = this.destinations.queue(queueName)
    if (!queue) return []
    const visibility = options.visibilityTimeoutMs ?? queue.settings.visibilityTimeoutMs
    return this.queues.take(queue, options.max, options.autoAck, visibility, Date.now())
  }

  async restore(deliveries: Delivery[]): Promise<void> {
    if (deliveries.length === 0) return
    await this.patiently(() =>
      this.sql.write(() => {
        const now = Date.now()
        for (const delivery of deliveries) {
          const row = {
            id: Number(delivery.id),
            body: delivery.body,
            headers: delivery.headers,
            attempt: delivery.attempt,
            publishedAt: delivery.publishedAt,
            priority: delivery.priority ?? 0,
            expiresAt: delivery.expiresAt,
          }
          if (delivery.queue !== undefined) {
            const queue = this.destinations.queue(delivery.queue)
            if (queue) this.queues.restore(queue, [row], now)
          } else if (delivery.subscription !== undefined) {
            const subscription = this.subscriptions.get(delivery.subscription)
            const dest = subscription && this.destinations.getById(subscription.destId)
            if (dest) this.queues.restore(dest, [{...row, refId: row.id}], now)
          }
        }
      }),
    )
  }

  /**
   * The long-poll loop shared by queues and subscriptions: try, and when nothing came, sleep until
   * a change notification, the next due message, the fallback poll or the deadline.
   */
  private async poll(
    options: ReceiveOptions,
    attempt: (max: number, willWait: boolean) => {deliveries: Delivery[]; nextDueAt: number},
  ): Promise<Delivery[]> {
    if (!(options.max >= 1)) throw new InvalidInputError('the number of messages to receive must be at least 1')
    // The wait is measured on the monotonic clock; only `nextDueAt` (a delay or a lease stored in
    // the database, shared with other processes) is wall-clock.
    const deadline = monotonicNow() + (options.waitMs ?? 0)
    for (;;) {
      if (this.closed) return []
      const mark = this.notifier.mark()
      // Whether the loop would wait if this attempt finds nothing (it may still decide not to).
      const willWait = deadline > monotonicNow() && !options.signal?.aborted && !this.closed
      let found
      try {
        found = await this.patiently(() => whileDiskFull(options.max, (max) => attempt(max, willWait)), options.signal)
      } catch (error) {
        // Interrupted while waiting out a lock: nothing was taken.
        if (isLockedError(error) && options.signal?.aborted) return []
        throw error
      }
      const {deliveries, nextDueAt} = found
      if (deliveries.length > 0) return deliveries
      const left = deadline - monotonicNow()
      if (left <= 0 || options.signal?.aborted || this.closed) return []
      const waitMs = Math.min(left, nextDueAt - Date.now(), options.pollIntervalMs ?? FALLBACK_POLL_MS)
      if (options.pollIntervalMs === undefined) await this.notifier.wait(mark, waitMs, options.signal)
      else await sleep(waitMs, options.signal)
    }
  }

  // ---- dead letters

  listDeadLetterQueues(): Promise<DeadLetterQueueInfo[]> {
    return this.deadLetters.list()
  }

  deadLetterQueueOf(name: string): Promise<string> {
    return this.deadLetters.queueOf(name)
  }

  redrive(name: string, options: RedriveOptions = {}): Promise<RedriveResult> {
    return this.deadLetters.redrive(name, options)
  }

  // ---- topics

  async declareTopic(name: string, settings: Partial<TopicSettings> = {}): Promise<TopicInfo> {
    validateName(name, 'topic name')
    return this.sql.write(() => {
      const existing = this.destinations.get<TopicSettings>(name)
      if (existing && existing.kind !== 'topic') throw new WrongKindError(name, existing.kind as DestinationKind)
      if (!existing) return topicInfo(this.destinations.insert(name, 'topic', resolveTopicSettings(name, settings)))
      const differing = differingSettings(
        settings,
        resolveTopicSettings(name, settings, existing.settings),
        existing.settings,
      )
      if (differing.length > 0) {
        throw new InvalidInputError(`topic ${name} already exists with other settings (${differing.join(', ')})`, {
          code: 'settings_differ',
          hint: `delete and recreate it, or keep its settings`,
        })
      }
      return topicInfo(existing)
    })
  }

  async deleteTopic(name: string): Promise<{deleted: number}> {
    return this.sql.write(() => {
      const topic = this.requireTopic(name)
      const deleted = this.topics.purge(topic.id)
      this.destinations.delete(topic.id)
      return {deleted}
    })
  }

  async listTopics(): Promise<TopicInfo[]> {
    return this.sql.read(() => this.destinations.list<TopicSettings>('topic').map((row) => topicInfo(row)))
  }

  async topicStats(name: string): Promise<TopicStats> {
    return this.sql.write(() => {
      const now = Date.now()
      const topic = this.requireTopic(name)
      this.topics.enforceRetention(topic.id, now)
      const current = this.destinations.getById<TopicSettings>(topic.id)!
      const oldest = this.topics.oldestPublishedAt(topic.id)
      this.subscriptions.sweepDead()
      const subscriptions = this.subscriptions
        .list()
        .filter((row) => compileTopicPattern(row.pattern).matches(name))
        .map((row) => row.name)
      return {
        ...topicInfo(current),
        oldestAgeMs: oldest === null ? null : Math.max(0, now - oldest),
        subscriptions,
        totals: {published: current.totals.published, discarded: current.totals.dropped},
      }
    })
  }

  // ---- subscriptions

  async subscribe(pattern: string, options: SubscribeOptions = {}): Promise<Subscription> {
    const compiled = compileTopicPattern(pattern)
    if (options.durable !== undefined) validateName(options.durable, 'subscription name')
    const {row, resumed} = await this.patiently(() =>
      this.sql.write(() => {
        if (compiled.literal) {
          const existing = this.destinations.get(pattern)
          if (existing?.kind === 'queue') {
            throw new WrongKindError(pattern, 'queue', {hint: `consume it with \`mq consume ${pattern}\``})
          }
        }
        this.subscriptions.sweepDead()
        if (options.durable !== undefined) {
          const existing = this.subscriptions.get(options.durable)
          if (existing) {
            if (existing.pattern !== pattern) {
              throw new InvalidInputError(
                `durable subscription ${options.durable} already exists with pattern "${existing.pattern}", not "${pattern}"`,
                {
                  code: 'pattern_differs',
                  hint: `use another name, or delete it with \`mq subscription delete ${options.durable}\``,
                },
              )
            }
            return {row: existing, resumed: true}
          }
        }
        const name = options.durable ?? `~${process.pid}.${lazyCrypto().randomBytes(3).toString('hex')}`
        const cursor = this.reader.startCursor(compiled, options.start ?? {kind: 'new'})
        return {
          row: this.subscriptions.create(name, pattern, options.durable !== undefined, cursor, options.settings ?? {}),
          resumed: false,
        }
      }),
    )
    const settings = this.sql.read(() => this.destinations.getById(row.destId)!.settings)
    return new FileSubscription(this, row, resumed, pickSubscriptionSettings(settings))
  }

  /** One receive on a subscription: redeliveries first, then new messages from the matching topics. */
  receiveSubscription(destId: number, options: ReceiveOptions): Promise<Delivery[]> {
    return this.poll(options, (max) => {
      const deliverable = this.sql.read(() => this.reader.hasDeliverable(destId))
      const deliveries = deliverable
        ? this.sql.write(() => this.reader.take(destId, {...options, max}), takeDurability(options))
        : []
      return {deliveries, nextDueAt: deliveries.length > 0 ? 0 : this.sql.read(() => this.queues.nextDueAt(destId))}
    })
  }

  /** Closes a subscription handle; an ephemeral subscription is removed with all it held. */
  async closeSubscription(destId: number, durable: boolean): Promise<void> {
    if (durable || this.closed) return
    await this.patiently(() =>
      this.sql.write(() => {
        const row = this.subscriptions.getByDest(destId)
        if (row) this.subscriptions.delete(row)
      }),
    )
  }

  async listSubscriptions(): Promise<SubscriptionInfo[]> {
    return this.sql.write(() => {
      this.subscriptions.sweepDead()
      return this.subscriptions.list().map((row) => subscriptionInfo(row))
    })
  }

  async subscriptionStats(name: string): Promise<SubscriptionStats> {
    return this.sql.write(() => {
      this.subscriptions.sweepDead()
      const row = this.requireSubscription(name)
      const dest = this.destinations.getById(row.destId)!
      const now = Date.now()
      const topics = this.topics.matching(compileTopicPattern(row.pattern))
      const counts = this.queues.counts(row.destId, now)
      return {
        ...subscriptionInfo(row),
        lag: this.topics.countAfter(
          topics.map((t) => t.id),
          row.cursor,
        ),
        inFlight: counts.inFlight,
        pendingRedelivery: counts.ready + counts.delayed,
        oldestUnackedAgeMs: counts.oldestPublishedAt === null ? null : Math.max(0, now - counts.oldestPublishedAt),
        topics: topics.map((t) => t.name),
        settings: pickSubscriptionSettings(dest.settings),
        totals: {acked: dest.totals.acked, deadLettered: dest.totals.deadLettered},
      }
    })
  }

  async deleteSubscription(name: string): Promise<void> {
    this.sql.write(() => this.subscriptions.delete(this.requireSubscription(name)))
  }

  async ack(receipts: string[], options: AckOptions = {}): Promise<SettleOutcome[]> {
    const parsed = parseReceipts(receipts)
    if (options.more) {
      const outcomes = await this.ackGathering(parsed, options.more)
      if (outcomes) return outcomes
    }
    return this.patiently(() =>
      inSmallerChunksWhileDiskFull(parsed, (chunk) => this.sql.write(() => this.queues.ack(chunk))),
    )
  }

  /**
   * Acks `parsed` at once if the write lock is free. While another process holds it (a consumer
   * taking its next batch), the receipts that arrive meanwhile join `parsed` (`more`, parsed in
   * place), so they share one commit, one fsync, instead of each batch waiting for its own: the
   * manual-ack pipeline's two processes take turns on the lock with fewer, larger batches. After
   * GATHER_MS of waiting (or on a full disk) it leaves them to the waiting write: undefined.
   */
  private async ackGathering(parsed: Receipt[], more: () => string[]): Promise<SettleOutcome[] | undefined> {
    const started = monotonicNow()
    for (;;) {
      let done
      try {
        done = this.sql.writeIfFree(() => this.queues.ack(parsed))
      } catch (error) {
        if (isDiskFullError(error)) return undefined
        throw error
      }
      if (done) return done.value
      const waited = monotonicNow() - started
      if (waited >= GATHER_MS) return undefined
      pauseForLock(waited)
      // The event loop reads what arrived on stdin meanwhile.
      await new Promise((resolve) => setImmediate(resolve))
      for (const receipt of parseReceipts(more())) parsed.push(receipt)
    }
  }

  async nack(receipts: string[], options: NackOptions = {}): Promise<NackOutcome[]> {
    const parsed = parseReceipts(receipts)
    const settings = {
      delayMs: options.delayMs ?? 0,
      deadLetter: options.deadLetter ?? false,
      error: options.error,
      backoff: options.backoff ?? false,
      uncounted: options.uncounted ?? false,
    }
    return this.patiently(() =>
      inSmallerChunksWhileDiskFull(parsed, (chunk) =>
        this.sql.write(() => {
          const now = Date.now()
          return chunk.map((r) => this.queues.nack(r.messageId, r.token, settings, now))
        }),
      ),
    )
  }

  async stillLeased(receipts: string[]): Promise<boolean[]> {
    const parsed = parseReceipts(receipts)
    return this.patiently(() =>
      this.sql.read(() => {
        const now = Date.now()
        return parsed.map((r) => this.queues.isLeased(r.messageId, r.token, now))
      }),
    )
  }

  async extend(receipts: string[], byMs: number): Promise<SettleOutcome[]> {
    const parsed = parseReceipts(receipts)
    return this.sql.write(() => {
      const now = Date.now()
      return parsed.map((r) => (this.queues.extend(r.messageId, r.token, byMs, now) ? 'ok' : 'stale'))
    })
  }

  async describe(): Promise<BrokerDescription> {
    return {driver: 'file', url: `file:${this.home}`, capabilities: FILE_BROKER_CAPABILITIES}
  }

  /** The event engine's journal, in the same database. */
  get journal(): EventJournal {
    this.eventJournal ??= new SqliteEventJournal(this.sql)
    return this.eventJournal
  }

  /** Diagnostics: the SQL of every statement this connection has used. */
  statementSources(): string[] {
    return this.sql.sources()
  }

  /** Diagnostics: EXPLAIN QUERY PLAN of one statement, its parameters bound to NULL. */
  explain(source: string): string[] {
    const parameters = (source.match(/\?/g) ?? []).map(() => null)
    const rows = this.sql.db.prepare(`EXPLAIN QUERY PLAN ${source}`).all(...parameters) as {detail: string}[]
    return rows.map((row) => row.detail)
  }

  async close(): Promise<void> {
    if (this.closed) return
    // Registrations still waiting (a receive interrupted by this close) put back what they were
    // handed. If that fails (the lock held for long), they are removed as a dead process's later.
    try {
      for (const registration of [...this.registrations.keys()]) this.leave(registration)
      if (this.spent.size > 0) this.writeDroppingSpent(() => undefined, 'lease', false)
    } catch {
      // Closing goes on.
    }
    this.closed = true
    this.notifier.close()
    this.sql.close()
    closeDatabase(this.sql.db)
  }

  private requireQueue(name: string): DestinationRow {
    validateName(name, 'queue name')
    const queue = this.destinations.queue(name)
    if (!queue) throw new NotFoundError('queue', name, {hint: 'see `mq queue list`'})
    return queue
  }

  private requireTopic(name: string): DestinationRow<TopicSettings> {
    validateName(name, 'topic name')
    const topic = this.destinations.get<TopicSettings>(name)
    if (!topic) throw new NotFoundError('topic', name, {hint: 'see `mq topic list`'})
    if (topic.kind !== 'topic') throw new WrongKindError(name, topic.kind as DestinationKind)
    return topic
  }

  private requireSubscription(name: string): SubscriptionRow {
    const row = this.subscriptions.get(name)
    if (!row) throw new NotFoundError('subscription', name, {hint: 'see `mq subscription list`'})
    return row
  }
}

/**
 * A manual-ack receive commits its leases without a sync of their own: lost in a power cut, they
 * leave the messages ready again, which at-least-once delivery allows (ARCHITECTURE.md, "Leases
 * are not synced"). An auto-acked receive deletes what it prints (at most once): that must not
 * come back.
 */
function takeDurability(options: ReceiveOptions): Durability {
  return options.autoAck ? 'durable' : 'lease'
}

/**
 * On a full disk a big transaction may not fit in the WAL when a small one would: consumers and
 * acks, which free space, go on in smaller steps. Each receipt's outcome stands on its own, so
 * settling a list in chunks is the same as settling it at once.
 */
function inSmallerChunksWhileDiskFull<T, R>(items: T[], run: (chunk: T[]) => R[]): R[] {
  try {
    return run(items)
  } catch (error) {
    if (items.length < 2 || !isDiskFullError(error)) throw error
    const half = Math.ceil(items.length / 2)
    return [
      ...inSmallerChunksWhileDiskFull(items.slice(0, half), run),
      ...inSmallerChunksWhileDiskFull(items.slice(half), run),
    ]
  }
}

/** Takes fewer messages at a time while the disk is full (see inSmallerChunksWhileDiskFull). */
function whileDiskFull<R>(max: number, take: (max: number) => R): R {
  try {
    return take(max)
  } catch (error) {
    if (max < 2 || !isDiskFullError(error)) throw error
    return whileDiskFull(Math.ceil(max / 2), take)
  }
}

function isDiskFullError(error: unknown): boolean {
  return isMqError(error) && error.code === 'disk_full'
}

/** A queue message taken by a receive (or handed to it), as the receive returns it. */
function queueDelivery(queue: string, row: TakenRow): Delivery {
  return {
    id: idText(row.id),
    queue,
    body: row.body,
    headers: decodeHeaders(row.headers),
    attempt: row.attempts,
    receipt: row.receipt,
    publishedAt: row.published_at,
    priority: row.priority,
    expiresAt: row.expires_at ?? undefined,
  }
}

/** A taken row as QueueStore.restore puts it back. */
function restorable(row: TakenRow): Parameters<QueueStore['restore']>[1][number] {
  return {
    id: row.id,
    body: row.body,
    headers: decodeHeaders(row.headers),
    attempt: row.attempts,
    publishedAt: row.published_at,
    priority: row.priority,
    expiresAt: row.expires_at ?? undefined,
  }
}

/** The first registration of `spent` made on `queueName`. */
function spentOn(spent: Map<number, string>, queueName: string): number | undefined {
  for (const [id, name] of spent) if (name === queueName) return id
  return undefined
}

/**
 * A queue's totals with the messages handed to waiting consumers and not counted yet (see
 * Waiters.accept): published, and delivered (acked) as auto-ack deliveries are.
 */
function withUncounted(totals: QueueTotals, uncounted: number): QueueTotals {
  return uncounted === 0
    ? totals
    : {...totals, published: totals.published + uncounted, acked: totals.acked + uncounted}
}

function queueInfo(row: DestinationRow): QueueInfo {
  return {name: row.name, createdAt: row.createdAt, settings: row.settings, depth: row.depth, bytes: row.bytes}
}

function topicInfo(row: DestinationRow<TopicSettings>): TopicInfo {
  return {name: row.name, createdAt: row.createdAt, settings: row.settings, messages: row.depth, bytes: row.bytes}
}

function subscriptionInfo(row: SubscriptionRow): SubscriptionInfo {
  return {
    name: row.name,
    pattern: row.pattern,
    durable: row.durable,
    createdAt: row.createdAt,
    ...(row.durable ? {} : {pid: row.ownerPid ?? undefined}),
  }
}

function pickSubscriptionSettings(s: QueueSettings): SubscriptionSettings {
  return {
    visibilityTimeoutMs: s.visibilityTimeoutMs,
    maxDeliveries: s.maxDeliveries,
    deadLetterQueue: s.deadLetterQueue,
    retryBackoffMs: s.retryBackoffMs,
    retryBackoffMaxMs: s.retryBackoffMaxMs,
  }
}
