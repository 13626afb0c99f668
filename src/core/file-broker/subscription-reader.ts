import type {Delivery, ReceiveOptions, StartPosition, Subscription, SubscriptionSettings} from '../broker.js'
import {InvalidInputError, NotFoundError} from '../errors.js'
import {compileTopicPattern, printable, type TopicPattern} from '../names.js'
import type {Destinations} from './destinations.js'
import {idText} from './message-ids.js'
import {decodeHeaders, type QueueStore} from './queue-store.js'
import type {SubscriptionRow, SubscriptionStore} from './subscription-store.js'
import type {LogRow, TopicStore} from './topic-store.js'

/**
 * The read path of subscriptions: where a new one starts in the topic log, whether one has
 * something to deliver, and taking deliveries (redeliveries from its pending table first, then
 * new messages from the matching topics' logs, advancing its cursor). The long-poll loop around
 * it lives in the broker (FileBroker.receiveSubscription), shared with queue receives.
 */
export class SubscriptionReader {
  constructor(
    private readonly destinations: Destinations,
    private readonly queues: QueueStore,
    private readonly topics: TopicStore,
    private readonly subscriptions: SubscriptionStore,
  ) {}

  /** The log position a new subscription starts after. Call inside a write. */
  startCursor(pattern: TopicPattern, start: StartPosition): number {
    switch (start.kind) {
      case 'new':
        return this.topics.lastId()
      case 'all':
        return 0
      case 'since': {
        const topicIds = this.topics.matching(pattern).map((t) => t.id)
        const first = this.topics.firstIdSince(topicIds, start.time)
        return first === undefined ? this.topics.lastId() : first - 1
      }
      case 'from-id': {
        if (!/^\d{1,15}$/.test(start.id) || Number(start.id) < 1) {
          throw new InvalidInputError(`--from-id "${printable(start.id, 30)}" is not a message id`, {
            hint: 'message ids are positive whole numbers',
          })
        }
        return Number(start.id) - 1
      }
    }
  }

  /** Whether the subscription has a redelivery due or new messages in its topics. Call inside a read. */
  hasDeliverable(destId: number): boolean {
    const row = this.subscriptions.getByDest(destId)
    if (!row) throw subscriptionGone()
    const topicIds = this.topics.matching(compileTopicPattern(row.pattern)).map((t) => t.id)
    return this.queues.hasDeliverable(destId, Date.now()) || this.topics.hasAfter(topicIds, row.cursor)
  }

  /** Takes up to options.max deliveries: redeliveries first, then new messages. Call inside a write. */
  take(destId: number, options: ReceiveOptions): Delivery[] {
    const row = this.subscriptions.getByDest(destId)
    const dest = this.destinations.getById(destId)
    if (!row || !dest) throw subscriptionGone()
    const now = Date.now()
    const visibility = options.visibilityTimeoutMs ?? dest.settings.visibilityTimeoutMs
    const topicNames = new Map<number, string>()
    const topicName = (id: number) => {
      if (!topicNames.has(id)) topicNames.set(id, this.destinations.getById(id)?.name ?? '')
      return topicNames.get(id)!
    }
    const delivery = (log: LogRow, attempt: number, receipt?: string): Delivery => ({
      id: idText(log.id),
      topic: topicName(log.dest_id),
      subscription: row.name,
      body: log.body,
      headers: decodeHeaders(log.headers),
      attempt,
      receipt,
      publishedAt: log.published_at,
    })
    // Redeliveries (nacked, or whose lease ran out) come first: they are the oldest messages.
    const pending = this.queues.take(dest, options.max, options.autoAck, visibility, now)
    const logs = this.topics.byIds(pending.filter((p) => p.ref_id !== null).map((p) => p.ref_id!))
    const deliveries: Delivery[] = []
    for (const pointer of pending) {
      if (pointer.ref_id === null) {
        // A redriven dead letter carries its own body.
        const headers = decodeHeaders(pointer.headers)
        deliveries.push({
          ...delivery(
            {
              id: pointer.id,
              dest_id: 0,
              body: pointer.body,
              headers: pointer.headers,
              published_at: pointer.published_at,
            },
            pointer.attempts,
            pointer.receipt,
          ),
          topic: headers['x-original-topic'] ?? '',
          headers,
        })
        continue
      }
      const log = logs.get(pointer.ref_id)
      if (log) deliveries.push(delivery(log, pointer.attempts, pointer.receipt))
      else if (!options.autoAck) this.queues.drop(pointer.id) // discarded by retention meanwhile
    }
    const room = Math.min(options.max, 1000) - deliveries.length
    if (room > 0) {
      const topicIds = this.topics.matching(compileTopicPattern(row.pattern)).map((t) => t.id)
      // Age limits apply to readers too, not only when the next publish comes.
      for (const topicId of topicIds) this.topics.enforceRetention(topicId, now)
      const fresh = this.topics.readAfter(topicIds, row.cursor, room)
      if (fresh.length > 0) {
        this.subscriptions.setCursor(destId, fresh.at(-1)!.id)
        if (options.autoAck) {
          this.destinations.bump(destId, 'acked_total', fresh.length)
          for (const log of fresh) deliveries.push(delivery(log, 1))
        } else {
          const receipts = this.queues.insertLeased(dest, fresh, visibility, now)
          fresh.forEach((log, index) => deliveries.push(delivery(log, 1, receipts[index])))
        }
      }
    }
    return deliveries
  }
}

/** What a subscription handle needs from the broker that opened it. */
export interface SubscriptionOwner {
  receiveSubscription(destId: number, options: ReceiveOptions): Promise<Delivery[]>
  closeSubscription(destId: number, durable: boolean): Promise<void>
}

/** A subscription opened by this process. */
export class FileSubscription implements Subscription {
  private closed = false

  constructor(
    private readonly broker: SubscriptionOwner,
    private readonly row: SubscriptionRow,
    readonly resumed: boolean,
    readonly settings: SubscriptionSettings,
  ) {}

  get name(): string {
    return this.row.name
  }

  get pattern(): string {
    return this.row.pattern
  }

  get durable(): boolean {
    return this.row.durable
  }

  receive(options: ReceiveOptions): Promise<Delivery[]> {
    return this.broker.receiveSubscription(this.row.destId, options)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.broker.closeSubscription(this.row.destId, this.row.durable)
  }
}

function subscriptionGone(): NotFoundError {
  return new NotFoundError('this subscription', '', {
    hint: 'it was deleted meanwhile (`mq subscription delete`); subscribe again',
  })
}
