import type {
  Broker,
  Delivery,
  NackOptions,
  NackOutcome,
  OutgoingMessage,
  PeekedMessage,
  PublishOptions,
  PublishResult,
  QueueInfo,
  QueueSettings,
  QueueStats,
  ReceiveOptions,
  SettleOutcome,
} from '../broker.js'
import {InvalidInputError, NotFoundError, WrongKindError} from '../errors.js'
import {printable, validateName} from '../names.js'
import {openDatabase} from '../store/database.js'
import {ChangeNotifier, FALLBACK_POLL_MS} from './change-notifier.js'
import {type DestinationRow, Destinations, resolveQueueSettings} from './destinations.js'
import {QueueStore} from './queue-store.js'
import {parseReceipts} from './receipts.js'
import {Sql} from './sql.js'

export interface FileBrokerOptions {
  /** Create the folder and database if missing (default true). */
  create?: boolean
}

/**
 * The broker on a local folder: one SQLite database in WAL mode, shared safely by any number of
 * processes with or without the daemon (DESIGN §4).
 */
export class FileBroker implements Broker {
  private readonly sql: Sql
  private readonly destinations: Destinations
  private readonly queues: QueueStore
  private readonly notifier: ChangeNotifier
  private closed = false

  constructor(readonly home: string, options: FileBrokerOptions = {}) {
    const db = openDatabase(home, {create: options.create})
    this.sql = new Sql(db, home)
    this.destinations = new Destinations(this.sql)
    this.queues = new QueueStore(this.sql, this.destinations)
    this.notifier = new ChangeNotifier(home)
  }

  async declareQueue(name: string, settings: Partial<QueueSettings> = {}): Promise<QueueInfo> {
    validateName(name, 'queue name')
    return this.sql.write(() => {
      const existing = this.destinations.queue(name)
      if (!existing) return queueInfo(this.destinations.createQueue(name, settings))
      const wanted = resolveQueueSettings(name, settings, existing.settings)
      const differing = (Object.keys(settings) as (keyof QueueSettings)[]).filter(
        (key) => settings[key] !== undefined && wanted[key] !== existing.settings[key],
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
      this.destinations.saveSettings(queue.id, next)
      return queueInfo({...queue, settings: next})
    })
  }

  async deleteQueue(name: string): Promise<{deleted: number}> {
    return this.sql.write(() => {
      const queue = this.requireQueue(name)
      const deleted = this.queues.purge(queue.id)
      this.destinations.delete(queue.id)
      return {deleted}
    })
  }

  async purgeQueue(name: string): Promise<{purged: number}> {
    return this.sql.write(() => ({purged: this.queues.purge(this.requireQueue(name).id)}))
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

  async queueStats(name: string): Promise<QueueStats> {
    return this.sql.read(() => {
      const queue = this.requireQueue(name)
      const now = Date.now()
      const counts = this.queues.counts(queue.id, now)
      const dlq = queue.settings.deadLetterQueue ? this.destinations.get(queue.settings.deadLetterQueue) : undefined
      return {
        ...queueInfo(queue),
        ready: counts.ready,
        inFlight: counts.inFlight,
        delayed: counts.delayed,
        deadLettered: dlq?.depth ?? 0,
        oldestAgeMs: counts.oldestPublishedAt === null ? null : Math.max(0, now - counts.oldestPublishedAt),
        totals: queue.totals,
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
    return this.sql.write(() => {
      const now = Date.now()
      const existing = this.destinations.get(name)
      if (existing && options.kind && existing.kind !== options.kind) throw new WrongKindError(name, existing.kind)
      const queue = this.destinations.queue(name) ?? this.destinations.createQueue(name)
      this.checkBodySizes(queue, messages)
      const ids = this.queues.insert(queue, messages, now)
      return ids.map((id) => ({id: String(id), destination: name, kind: 'queue' as const}))
    })
  }

  async receive(queueName: string, options: ReceiveOptions): Promise<Delivery[]> {
    validateName(queueName, 'queue name')
    if (!(options.max >= 1)) throw new InvalidInputError('the number of messages to receive must be at least 1')
    const deadline = Date.now() + (options.waitMs ?? 0)
    for (;;) {
      this.notifier.reset()
      const queue = this.sql.read(() => this.destinations.queue(queueName))
      let nextDueAt = Number.POSITIVE_INFINITY
      if (queue) {
        const delivered = this.tryReceive(queue, options)
        if (delivered.length > 0) return delivered
        nextDueAt = this.sql.read(() => this.queues.nextDueAt(queue.id))
      }
      const now = Date.now()
      if (now >= deadline || options.signal?.aborted || this.closed) return []
      const pause = options.pollIntervalMs ?? FALLBACK_POLL_MS
      const until = Math.min(deadline, nextDueAt, now + pause)
      if (options.pollIntervalMs === undefined) await this.notifier.wait(until - now, options.signal)
      else await sleep(until - now, options.signal)
    }
  }

  async ack(receipts: string[]): Promise<SettleOutcome[]> {
    const parsed = parseReceipts(receipts)
    return this.sql.write(() => parsed.map((r) => (this.queues.ack(r.messageId, r.token) === undefined ? 'stale' : 'ok')))
  }

  async nack(receipts: string[], options: NackOptions = {}): Promise<NackOutcome[]> {
    const parsed = parseReceipts(receipts)
    const settings = {delayMs: options.delayMs ?? 0, deadLetter: options.deadLetter ?? false, error: options.error, backoff: options.backoff ?? false}
    return this.sql.write(() => {
      const now = Date.now()
      return parsed.map((r) => this.queues.nack(r.messageId, r.token, settings, now))
    })
  }

  async extend(receipts: string[], byMs: number): Promise<SettleOutcome[]> {
    const parsed = parseReceipts(receipts)
    return this.sql.write(() => {
      const now = Date.now()
      return parsed.map((r) => (this.queues.extend(r.messageId, r.token, byMs, now) ? 'ok' : 'stale'))
    })
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
    this.closed = true
    this.notifier.close()
    this.sql.db.close()
  }

  private tryReceive(queue: DestinationRow, options: ReceiveOptions): Delivery[] {
    // Probe without the write lock so idle consumers never queue behind publishers.
    if (!this.sql.read(() => this.queues.hasDeliverable(queue.id, Date.now()))) return []
    return this.sql.write(() => {
      const current = this.destinations.queue(queue.name)
      if (!current) return []
      const visibility = options.visibilityTimeoutMs ?? current.settings.visibilityTimeoutMs
      return this.queues.receive(current, options.max, options.autoAck, visibility, Date.now())
    })
  }

  private requireQueue(name: string): DestinationRow {
    validateName(name, 'queue name')
    const queue = this.destinations.queue(name)
    if (!queue) throw new NotFoundError('queue', name, {hint: 'see `mq queue list`'})
    return queue
  }

  private checkBodySizes(queue: DestinationRow, messages: OutgoingMessage[]): void {
    const limit = queue.settings.maxBodyBytes
    messages.forEach((message, index) => {
      const size = Buffer.byteLength(message.body)
      if (size > limit) {
        throw atMessage(
          new InvalidInputError(`body is ${size} bytes, over the ${limit}-byte limit of ${queue.name}`, {
            code: 'too_large',
            hint: `raise it with \`mq queue update ${queue.name} --max-body-size\` or send a smaller body`,
          }),
          index,
          messages.length,
        )
      }
    })
  }
}

/** Checks what does not depend on the destination: priorities and header names. */
function validateMessages(messages: OutgoingMessage[]): void {
  messages.forEach((message, index) => {
    if (message.priority !== undefined && !(Number.isInteger(message.priority) && message.priority >= 0 && message.priority <= 9)) {
      throw atMessage(new InvalidInputError(`priority ${message.priority} is out of range`, {hint: 'use 0 to 9'}), index, messages.length)
    }
    for (const key of Object.keys(message.headers ?? {})) {
      if (!/^[A-Za-z0-9_.-]{1,128}$/.test(key)) {
        throw atMessage(
          new InvalidInputError(`header name "${printable(key, 40)}" is invalid`, {hint: 'use letters, digits, _, . and -, up to 128 characters'}),
          index,
          messages.length,
        )
      }
    }
  })
}

function atMessage<E extends InvalidInputError>(error: E, index: number, count: number): E {
  error.index = index
  if (count > 1) error.where = `message ${index + 1}`
  return error
}

function queueInfo(row: DestinationRow): QueueInfo {
  return {name: row.name, createdAt: row.createdAt, settings: row.settings, depth: row.depth, bytes: row.bytes}
}

async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 || signal?.aborted) return
  await new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, {once: true})
  })
}
