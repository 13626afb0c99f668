import {randomBytes} from 'node:crypto'

import type {Message, MessageProperties, Options} from 'amqplib'

import type {Headers} from '../broker.js'

/** Headers the driver keeps on messages for itself; never shown as message headers. */
export const INTERNAL = {
  publishedAt: 'x-mq-published-at',
  /** Deliveries before this copy was (re)published: the next delivery is attempt this + 1. */
  attempts: 'x-mq-attempts',
  lastError: 'x-mq-last-error',
  expiresAt: 'x-mq-expires-at',
  /** The topic of a subscription's message put back for redelivery (its routing key is then the queue). */
  topic: 'x-mq-topic',
  marker: 'x-mq-marker',
} as const

/** RabbitMQ's own headers (dead-lettering, quorum counts, stream offsets) and the driver's. */
const HIDDEN = /^(x-mq-|x-death$|x-first-death-|x-last-death-|x-delivery-count$|x-stream-offset$|x-received-from$)/i

/**
 * AMQP basic properties shown (and set) as headers, so `consume --json` shows what other AMQP
 * clients put there and `publish -H content-type:…` reaches a pika consumer as a property.
 */
const PROPERTY_HEADERS = {
  'content-type': 'contentType',
  'content-encoding': 'contentEncoding',
  'correlation-id': 'correlationId',
  'reply-to': 'replyTo',
  type: 'type',
  'app-id': 'appId',
} as const satisfies Record<string, keyof MessageProperties>

function headerText(value: unknown): string {
  if (typeof value === 'string') return value
  if (Buffer.isBuffer(value)) return value.toString('utf8')
  if (value instanceof Date) return value.toISOString()
  if (typeof value === 'object' && value !== null) return JSON.stringify(value)
  return String(value)
}

/** The message's headers as mqctl shows them: its AMQP headers and properties, without the internal ones. */
export function userHeaders(message: Pick<Message, 'properties'>): Headers {
  const out: Headers = {}
  for (const [key, value] of Object.entries(message.properties.headers ?? {})) {
    if (HIDDEN.test(key) || value === undefined || value === null) continue
    out[key] = headerText(value)
  }
  for (const [header, property] of Object.entries(PROPERTY_HEADERS)) {
    const value = message.properties[property] as unknown
    if (value !== undefined && value !== null && value !== '') out[header] = headerText(value)
  }
  return out
}

export function internalHeader(message: Pick<Message, 'properties'>, key: string): unknown {
  return message.properties.headers?.[key]
}

function numberHeader(message: Pick<Message, 'properties'>, key: string): number | undefined {
  const value = Number(internalHeader(message, key))
  return Number.isFinite(value) ? value : undefined
}

/** An mqctl message id: the publish time in ms (base 36), then 12 random hex digits. */
export function messageId(now: number): string {
  // One randomBytes call per 4 KiB of ids: a call per message was a tenth of a bulk publish's CPU.
  if (idPoolAt + 6 > idPool.length) {
    idPool = randomBytes(4_096)
    idPoolAt = 0
  }
  idPoolAt += 6
  return `${now.toString(36)}-${idPool.toString('hex', idPoolAt - 6, idPoolAt)}`
}

let idPool = Buffer.alloc(0)
let idPoolAt = 0

const MESSAGE_ID = /^([0-9a-z]{8,9})-[0-9a-f]{12}$/

/** Epoch ms when the message was first published: from mqctl's id or header, else the AMQP timestamp (seconds). */
export function publishedAt(message: Pick<Message, 'properties'>): number | undefined {
  const own = numberHeader(message, INTERNAL.publishedAt)
  if (own !== undefined) return own
  const fromId = MESSAGE_ID.exec(String(message.properties.messageId ?? ''))
  if (fromId) return Number.parseInt(fromId[1], 36)
  const stamp = Number(message.properties.timestamp)
  return Number.isFinite(stamp) && stamp > 0 ? stamp * 1000 : undefined
}

export function expiresAt(message: Pick<Message, 'properties'>): number | undefined {
  return numberHeader(message, INTERNAL.expiresAt)
}

/**
 * Which delivery this is: the deliveries mqctl counted before (on republish), plus one if RabbitMQ
 * redelivered it (the holder died, or another client requeued it; a quorum queue counts exactly).
 */
export function attemptOf(message: Pick<Message, 'properties' | 'fields'>): number {
  const prior = numberHeader(message, INTERNAL.attempts) ?? 0
  const quorum = numberHeader(message, 'x-delivery-count')
  const returned = quorum ?? (message.fields.redelivered ? 1 : 0)
  return prior + returned + 1
}

/** AMQP publish options for an mqctl message: its headers split into properties and the headers table. */
export function publishOptions(
  headers: Headers | undefined,
  internal: Record<string, string | number>,
  extra: Options.Publish = {},
): Options.Publish {
  const table: Record<string, unknown> = {}
  const options: Options.Publish = {persistent: true, ...extra}
  for (const [key, value] of Object.entries(headers ?? {})) {
    const property = PROPERTY_HEADERS[key.toLowerCase() as keyof typeof PROPERTY_HEADERS]
    if (property) (options as Record<string, unknown>)[property] = value
    else table[key] = value
  }
  for (const [key, value] of Object.entries(internal)) table[key] = value
  // No empty table: encoding one per message is a measurable part of a bulk publish.
  for (const _key in table) {
    options.headers = table
    break
  }
  return options
}

/** The options that republish a received message as it was (id, time, properties), with new internal headers. */
export function republishOptions(
  message: Message,
  internal: Record<string, string | number | undefined>,
): Options.Publish {
  const p = message.properties
  const headers: Record<string, unknown> = {...p.headers}
  for (const key of Object.keys(headers))
    if (/^(x-death|x-first-death-|x-last-death-|x-delivery-count)/.test(key)) delete headers[key]
  for (const [key, value] of Object.entries(internal)) {
    if (value === undefined) delete headers[key]
    else headers[key] = value
  }
  if (headers[INTERNAL.publishedAt] === undefined && p.timestamp && !MESSAGE_ID.test(String(p.messageId ?? '')))
    headers[INTERNAL.publishedAt] = Number(p.timestamp) * 1000
  return {
    persistent: true,
    headers,
    messageId: p.messageId,
    timestamp: p.timestamp,
    contentType: p.contentType,
    contentEncoding: p.contentEncoding,
    correlationId: p.correlationId,
    replyTo: p.replyTo,
    type: p.type,
    appId: p.appId,
    priority: p.priority,
  }
}
