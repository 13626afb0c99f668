import {timingSafeEqual} from 'node:crypto'
import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import type {AddressInfo} from 'node:net'

import type {OutgoingMessage, PublishOptions, PublishResult} from '../broker.js'
import {type CloudEvent, validateEvent} from '../engine/cloudevents.js'
import {type ErrorCode, isMqError} from '../errors.js'
import {newHeaders} from '../headers.js'
import {parsePriority} from '../units.js'

/** Largest request body accepted (a batch of events, or one message). */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024
/** How much of an oversized body is read (and dropped) so the client hears the 413. */
const DISCARD_LIMIT = 64 * 1024 * 1024

export interface HttpHandlers {
  token: string
  publish(name: string, messages: OutgoingMessage[], options: Omit<PublishOptions, 'signal'>): Promise<PublishResult[]>
  accept(event: CloudEvent): Promise<{seq: number; duplicateOf?: number}>
  metrics(): Promise<string>
  log(line: string): void
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

/**
 * HTTP ingest on 127.0.0.1: `POST /events` (CloudEvents HTTP binding: structured, binary and batch
 * modes), `POST /queues/<name>/messages`, `GET /metrics` (Prometheus) and `GET /healthz`. Every
 * request but /healthz needs `Authorization: Bearer <token>` (the token file in the broker folder).
 */
export class DaemonHttp {
  private readonly server: Server

  constructor(private readonly handlers: HttpHandlers) {
    this.server = createServer((request, response) => {
      this.route(request, response).catch((error) => {
        const status =
          error instanceof HttpError ? error.status : isMqError(error) ? statusFor(error.exitCode, error.code) : 500
        const message = error instanceof HttpError ? error.message : isMqError(error) ? error.line : 'internal error'
        if (status === 500) handlers.log(`http: ${request.method} ${request.url}: ${(error as Error)?.stack ?? error}`)
        send(response, status, {error: {status, message}})
      })
    })
    this.server.keepAliveTimeout = 5_000
  }

  listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, '127.0.0.1', () => resolve())
    })
  }

  get listening(): boolean {
    return this.server.listening
  }

  address(): {address: string; port: number} {
    const address = this.server.address() as AddressInfo
    return {address: address.address, port: address.port}
  }

  url(): string {
    const {address, port} = this.address()
    return `http://${address}:${port}`
  }

  /** Stops taking connections and lets requests in flight finish (up to 5 s), then closes the rest. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      const force = setTimeout(() => this.server.closeAllConnections(), 5_000)
      this.server.close(() => {
        clearTimeout(force)
        resolve()
      })
      this.server.closeIdleConnections()
    })
  }

  private async route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://localhost')
    if (request.method === 'GET' && url.pathname === '/healthz') return send(response, 200, {status: 'ok'})
    this.authorize(request)
    if (request.method === 'GET' && url.pathname === '/metrics') {
      response.writeHead(200, {'content-type': 'text/plain; version=0.0.4; charset=utf-8'})
      response.end(await this.handlers.metrics())
      return
    }
    if (request.method === 'POST' && url.pathname === '/events')
      return send(response, 202, await this.ingestEvents(request))
    const queue = /^\/queues\/([^/]+)\/messages$/.exec(url.pathname)
    if (request.method === 'POST' && queue) {
      const body = await readBody(request)
      const text = decodeText(body)
      const headers = newHeaders() // keeps a header named __proto__
      for (const [name, value] of Object.entries(request.headers)) {
        if (name.startsWith('mq-header-') && typeof value === 'string')
          headers[name.slice('mq-header-'.length)] = headerText(name, value)
      }
      const priority = url.searchParams.get('priority')
      let name: string
      try {
        name = decodeURIComponent(queue[1])
      } catch {
        throw new HttpError(400, 'the queue name in the path is not valid percent-encoding')
      }
      // A full queue answers 429 at once (under --overflow block too): an HTTP client retries, it does not hang.
      const [result] = await this.handlers.publish(
        name,
        [{body: text, headers, priority: priority === null ? undefined : parsePriority(priority, '?priority=')}],
        {blockTimeoutMs: 0},
      )
      return send(response, 201, result)
    }
    if (['/events', '/metrics', '/healthz'].includes(url.pathname) || queue)
      throw new HttpError(405, `method ${request.method} not allowed here`)
    throw new HttpError(
      404,
      `no such endpoint ${url.pathname}: use POST /events, POST /queues/NAME/messages, GET /metrics, GET /healthz`,
    )
  }

  private authorize(request: IncomingMessage): void {
    const given = /^Bearer (\S+)$/i.exec(request.headers.authorization ?? '')?.[1] ?? ''
    const expected = Buffer.from(this.handlers.token)
    const actual = Buffer.from(given)
    if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
      throw new HttpError(
        401,
        'missing or wrong bearer token: send "Authorization: Bearer <token>" with the token from daemon.token in the broker folder',
      )
    }
  }

  /** The three modes of the CloudEvents HTTP binding. */
  private async ingestEvents(
    request: IncomingMessage,
  ): Promise<{accepted: {seq: number; id: string; duplicateOf?: number}[]}> {
    const type = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase()
    const body = await readBody(request)
    let events: unknown[]
    if (type === 'application/cloudevents+json') events = [parseJson(body)]
    else if (type === 'application/cloudevents-batch+json') {
      const batch = parseJson(body)
      if (!Array.isArray(batch)) throw new HttpError(400, 'a batch must be a JSON array of events')
      events = batch
    } else if (request.headers['ce-specversion'] !== undefined) events = [binaryEvent(request, type, body)]
    else {
      throw new HttpError(
        415,
        'send application/cloudevents+json (structured), application/cloudevents-batch+json (batch), or ce-* headers (binary)',
      )
    }
    const valid = events.map((event, index) => {
      try {
        return validateEvent(event)
      } catch (error) {
        const where = events.length > 1 ? `event ${index + 1}: ` : ''
        throw new HttpError(400, `${where}${(error as Error).message}`)
      }
    })
    // All validated first, so a bad event in a batch stores none of it; accepted together, in one transaction.
    const results = await Promise.all(valid.map((event) => this.handlers.accept(event)))
    return {accepted: valid.map((event, index) => ({id: event.id, ...results[index]}))}
  }
}

/**
 * Binary mode: attributes from `ce-*` headers (percent-decoded, as the binding requires), the body
 * as the data, and Content-Type, verbatim, as datacontenttype.
 */
function binaryEvent(request: IncomingMessage, mediaType: string, body: Buffer): Record<string, unknown> {
  const event: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(request.headers)) {
    if (!name.startsWith('ce-') || typeof value !== 'string') continue
    const attribute = name.slice(3)
    if (attribute === 'data' || attribute === 'data_base64')
      throw new HttpError(400, `header ${name} is not allowed: in binary mode the body is the data`)
    try {
      event[attribute] = decodeURIComponent(headerText(name, value))
    } catch (error) {
      if (error instanceof HttpError) throw error
      throw new HttpError(400, `header ${name} is not valid percent-encoding`)
    }
  }
  const contentType = request.headers['content-type']
  if (body.length > 0) {
    if (mediaType === '' || mediaType.endsWith('json')) {
      event.datacontenttype = contentType || 'application/json'
      event.data = parseJson(body)
    } else if (mediaType.startsWith('text/')) {
      event.datacontenttype = contentType
      event.data = decodeText(body)
    } else {
      event.datacontenttype = contentType
      event.data_base64 = body.toString('base64')
    }
  }
  return event
}

/**
 * Reads the body up to the limit. Past it, the rest is read and dropped (up to DISCARD_LIMIT) so
 * the client, still sending, gets its 413 rather than a reset connection; past that, it is cut off.
 */
async function readBody(request: IncomingMessage): Promise<Buffer> {
  const declared = Number(request.headers['content-length'] ?? 0)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > DISCARD_LIMIT) {
      request.pause()
      throw new HttpError(413, `the body is over the ${MAX_REQUEST_BYTES}-byte limit`)
    }
    if (size <= MAX_REQUEST_BYTES && declared <= MAX_REQUEST_BYTES) chunks.push(chunk)
  }
  if (size > MAX_REQUEST_BYTES || declared > MAX_REQUEST_BYTES) {
    throw new HttpError(413, `the body is ${Math.max(size, declared)} bytes, over the ${MAX_REQUEST_BYTES}-byte limit`)
  }
  return Buffer.concat(chunks)
}

/**
 * A header value as text. Node hands header bytes over one char per byte (latin1); mqctl reads
 * them as UTF-8, as curl and most clients send non-ASCII text, so `Zürich` stays `Zürich`. Bytes
 * that are not UTF-8 are refused (400), the same rule as for bodies.
 */
function headerText(name: string, value: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(value)) return value
  try {
    return new TextDecoder('utf-8', {fatal: true}).decode(Buffer.from(value, 'latin1'))
  } catch {
    throw new HttpError(400, `header ${name} is not valid UTF-8 text`)
  }
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(decodeText(body))
  } catch (error) {
    if (error instanceof HttpError) throw error
    throw new HttpError(400, `malformed JSON: ${(error as Error).message}`)
  }
}

function decodeText(body: Buffer): string {
  try {
    return new TextDecoder('utf-8', {fatal: true}).decode(body)
  } catch {
    throw new HttpError(400, 'the body is not valid UTF-8 text')
  }
}

function send(response: ServerResponse, status: number, body: unknown): void {
  if (response.headersSent) return
  const headers: Record<string, string> = {'content-type': 'application/json'}
  if (status === 413) headers.connection = 'close'
  if (status === 429) headers['retry-after'] = '1'
  response.writeHead(status, headers)
  response.end(`${JSON.stringify(body)}\n`)
}

/** Exit codes become HTTP statuses: invalid 400, queue full 429, otherwise 500. */
function statusFor(exitCode: number, code: ErrorCode): number {
  if (exitCode === 2) return code === 'wrong_kind' ? 409 : code === 'too_large' ? 413 : 400
  if (exitCode === 4) return 429
  return 500
}
