import type {GetMessage} from 'amqplib'

import {sleep} from '../rate-limiter.js'
import type {AmqpClient} from './client.js'

/** How long a reader waits for a record another process holds for a moment (read or update). */
const HELD_WAIT_MS = 2_000

/**
 * Small JSON records kept in RabbitMQ itself, one durable queue per record holding one message
 * (`mq~q.NAME` for a queue's settings, `mq~t.NAME` for a topic's): AMQP cannot read a queue's
 * arguments, so what mqctl must know about a queue in every process lives here. A read takes the
 * message without acking and requeues it; an update holds it (others wait), publishes the new
 * version and acks the old one, so updates never overlap and a dead updater's hold is released by
 * the broker.
 */
export class Records {
  private readonly cache = new Map<string, {value: unknown; at: number}>()

  constructor(
    private readonly client: AmqpClient,
    private readonly cacheMs = 2_000,
  ) {}

  private async hold(key: string): Promise<GetMessage | undefined> {
    const deadline = Date.now() + HELD_WAIT_MS
    for (;;) {
      const message = await this.client.get(key, false)
      if (message) return message
      if (Date.now() > deadline) return undefined
      await sleep(10)
    }
  }

  /** The record, or undefined when there is none. Cached briefly unless `fresh`. */
  async read<T>(key: string, fresh = false): Promise<T | undefined> {
    const cached = this.cache.get(key)
    if (!fresh && cached && Date.now() - cached.at < this.cacheMs) return cached.value as T | undefined
    if (!(await this.client.checkQueue(key))) {
      this.cache.set(key, {value: undefined, at: Date.now()})
      return undefined
    }
    const message = await this.hold(key)
    if (!message) return undefined
    this.client.ops.nack(message, false, true)
    const value = JSON.parse(message.content.toString('utf8')) as T
    this.cache.set(key, {value, at: Date.now()})
    return value
  }

  /** Creates the record unless one exists; returns the one that stands. */
  async create<T>(key: string, value: T): Promise<T> {
    const existing = await this.read<T>(key, true)
    if (existing !== undefined) return existing
    await this.client.run(`declare ${key}`, () => this.client.ops.assertQueue(key, {durable: true}))
    const current = await this.client.get(key, false)
    if (current) {
      this.client.ops.nack(current, false, true)
      const stands = JSON.parse(current.content.toString('utf8')) as T
      this.cache.set(key, {value: stands, at: Date.now()})
      return stands
    }
    await this.client.publish('', key, Buffer.from(JSON.stringify(value)), {persistent: true})
    this.cache.set(key, {value, at: Date.now()})
    return value
  }

  /** Replaces the record by `change(old)` while holding it; undefined when there is none. */
  async update<T>(key: string, change: (old: T) => T): Promise<T | undefined> {
    if (!(await this.client.checkQueue(key))) return undefined
    const message = await this.hold(key)
    if (!message) return undefined
    const channel = this.client.ops
    try {
      const next = change(JSON.parse(message.content.toString('utf8')) as T)
      await this.client.publish('', key, Buffer.from(JSON.stringify(next)), {persistent: true})
      channel.ack(message)
      this.cache.set(key, {value: next, at: Date.now()})
      return next
    } catch (error) {
      channel.nack(message, false, true)
      throw error
    }
  }

  async remove(key: string): Promise<void> {
    this.cache.delete(key)
    await this.client.run(`delete ${key}`, () => this.client.ops.deleteQueue(key))
  }

  forget(key: string): void {
    this.cache.delete(key)
  }
}
