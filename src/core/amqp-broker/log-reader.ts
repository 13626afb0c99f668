import {randomBytes} from 'node:crypto'

import type {Channel, ConsumeMessage} from 'amqplib'

import type {StartPosition} from '../broker.js'
import {InvalidInputError, StoreError} from '../errors.js'
import type {TopicPattern} from '../names.js'
import type {AmqpClient} from './client.js'
import {INTERNAL, internalHeader, publishedAt} from './messages.js'

/** The topic log: a RabbitMQ stream bound to the topic exchange with `#`, so every topic message is kept. */
export const LOG_STREAM = 'mq~log'
export const TOPIC_EXCHANGE = 'mq~topics'
/** The log keeps messages this long (topics' --max-age is applied when reading). */
export const LOG_MAX_AGE = '7D'
const CREDIT = 1_000

/** One message of the log with the topic it was published to. */
export interface LogEntry {
  message: ConsumeMessage
  topic: string
}

/**
 * Reads the topic log from a start position, keeping the messages whose topic matches a pattern.
 * `catchUp()` writes a marker into the log and waits until the reader passed it: then everything
 * published before the call has been read. Credit (stream acks) is given as entries are taken, so
 * an idle reader holds at most CREDIT messages.
 */
export class LogReader {
  private readonly buffer: LogEntry[] = []
  private readonly waiters = new Set<() => void>()
  private readonly markers = new Map<string, () => void>()
  private skipUntilId?: string
  private consumerTag?: string
  private failed?: Error
  private closed = false

  private constructor(
    private readonly client: AmqpClient,
    private readonly channel: Channel,
    private readonly matcher: TopicPattern,
  ) {}

  static async open(client: AmqpClient, matcher: TopicPattern, start: StartPosition): Promise<LogReader> {
    const channel = await client.newChannel()
    const reader = new LogReader(client, channel, matcher)
    let offset: unknown = 'next'
    if (start.kind === 'all') offset = 'first'
    else if (start.kind === 'since') offset = {'!': 'timestamp', value: Math.floor(start.time / 1000) - 1}
    else if (start.kind === 'from-id') {
      if (!/^[\w-]{1,64}$/.test(start.id))
        throw new InvalidInputError(`--from-id "${start.id.slice(0, 30)}" is not a message id`, {
          hint: 'give the id a publish printed',
        })
      offset = 'first'
      reader.skipUntilId = start.id
    }
    const since = start.kind === 'since' ? start.time : undefined
    channel.on('close', () => {
      if (!reader.closed) reader.fail(new StoreError('the topic log reader lost its channel', {code: 'unreachable'}))
    })
    await channel.prefetch(CREDIT)
    const ok = await client.run('read the topic log', () =>
      channel.consume(LOG_STREAM, (message) => message && reader.arrive(message, since), {
        noAck: false,
        arguments: {'x-stream-offset': offset},
      }),
    )
    reader.consumerTag = ok.consumerTag
    return reader
  }

  private fail(error: Error): void {
    this.failed = error
    for (const wake of this.waiters) wake()
  }

  private arrive(message: ConsumeMessage, since: number | undefined): void {
    const marker = internalHeader(message, INTERNAL.marker)
    const topic = String(internalHeader(message, INTERNAL.topic) ?? message.fields.routingKey)
    let keep = marker === undefined && this.matcher.matches(topic)
    if (keep && this.skipUntilId !== undefined) {
      if (message.properties.messageId === this.skipUntilId) this.skipUntilId = undefined
      else keep = false
    }
    if (keep && since !== undefined) {
      const at = publishedAt(message)
      if (at !== undefined && at < since) keep = false
    }
    if (keep) this.buffer.push({message, topic})
    else this.channel.ack(message)
    if (marker !== undefined) this.markers.get(String(marker))?.()
    for (const wake of this.waiters) wake()
  }

  /** Resolves once everything published to the log before this call has been read. */
  async catchUp(): Promise<void> {
    if (this.failed) throw this.failed
    const id = randomBytes(8).toString('hex')
    const seen = new Promise<void>((resolve) => this.markers.set(id, resolve))
    try {
      await this.client.publish('', LOG_STREAM, Buffer.alloc(0), {headers: {[INTERNAL.marker]: id}})
      await this.waitFor(() => this.markers.get(id) === undefined || this.buffer.length >= CREDIT, seen)
    } finally {
      this.markers.delete(id)
    }
  }

  private async waitFor(done: () => boolean, also: Promise<void>): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      also,
      new Promise<void>((resolve, reject) => {
        const wake = () => {
          if (this.failed) reject(this.failed)
          else if (done()) resolve()
        }
        this.waiters.add(wake)
        timer = setTimeout(
          () => reject(new StoreError('the topic log did not answer in time', {code: 'timeout'})),
          this.client.timeoutMs * 2,
        )
        void also.finally(() => this.waiters.delete(wake))
      }),
    ]).finally(() => clearTimeout(timer))
  }

  /** Waits up to `ms` for an entry to arrive (or the signal). */
  async arrival(ms: number, signal?: AbortSignal): Promise<void> {
    if (this.buffer.length > 0 || ms <= 0 || signal?.aborted) return
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.waiters.delete(done)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.waiters.add(done)
      signal?.addEventListener('abort', done, {once: true})
    })
    if (this.failed) throw this.failed
  }

  /** Everything buffered now (the caller takes what it delivers with `take`). */
  get entries(): readonly LogEntry[] {
    return this.buffer
  }

  /** Removes entries from the front and gives their credit back. */
  take(count: number): LogEntry[] {
    const taken = this.buffer.splice(0, count)
    for (const entry of taken) this.channel.ack(entry.message)
    return taken
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.consumerTag) await this.channel.cancel(this.consumerTag).catch(() => undefined)
    await this.channel.close().catch(() => undefined)
  }
}
