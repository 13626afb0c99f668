import type {MsgHdrs, NatsConnection, Msg} from '@nats-io/transport-node'

import {InvalidInputError, StoreError} from '../errors.js'
import type {NatsTarget} from '../open-broker.js'

/** Connect timeout and per-request timeout (env MQ_NATS_TIMEOUT_MS), so nothing ever hangs. */
export const CONNECT_TIMEOUT_MS = 5_000
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000
/**
 * How long a request keeps being retried while a cluster elects a new leader or the client moves
 * to another server (env MQ_NATS_FAILOVER_MS). nats-server 2.9 can take ~10 s to elect.
 */
export const DEFAULT_FAILOVER_MS = 30_000

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export interface ApiError {
  code: number
  err_code: number
  description: string
}

/** A JetStream API answer that carries an error. */
export class JsApiError extends Error {
  constructor(
    readonly subject: string,
    readonly error: ApiError,
  ) {
    super(error.description)
  }
}

export const ERR = {
  streamNotFound: 10059,
  consumerNotFound: 10014,
  noMessage: 10037,
  wrongLastSequence: 10071,
  maxMessages: 10077,
  maxBytes: 10078,
} as const

export interface PulledMessage {
  subject: string
  reply: string
  data: Uint8Array
  headers?: MsgHdrs
}

/**
 * One connection to a NATS server or cluster with the raw JetStream API: the driver needs pull
 * requests with `no_wait` and sub-second expiries, which the high-level client refuses, and it
 * keeps every request under a timeout.
 */
export class JsClient {
  private closed = false
  /** Set once JetStream answered: from then on "no responders" means a leader is being elected. */
  private jetStreamSeen = false
  private readonly failoverMs = Number(process.env.MQ_NATS_FAILOVER_MS) || DEFAULT_FAILOVER_MS

  private constructor(
    readonly nc: NatsConnection,
    readonly target: NatsTarget,
    readonly timeoutMs: number,
    private readonly lib: typeof import('@nats-io/transport-node'),
  ) {}

  /**
   * Runs a request, retrying what a failover causes (timeouts, no responders, "temporarily
   * unavailable", a dropped connection being re-established) until the failover budget is spent.
   * Retried publishes without a dedup id may be stored twice: at-least-once, never lost.
   */
  private async retrying<T>(subject: string, attempt: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.failoverMs
    for (let pause = 100; ; pause = Math.min(pause * 2, 1_000)) {
      try {
        return await attempt()
      } catch (error) {
        const transient = this.jetStreamSeen && !this.closed && !this.nc.isClosed() && isTransient(error)
        if (!transient || Date.now() + pause >= deadline)
          throw error instanceof JsApiError ? error : this.requestError(error, subject)
        await new Promise((resolve) => setTimeout(resolve, pause))
      }
    }
  }

  static async connect(target: NatsTarget): Promise<JsClient> {
    const lib = await import('@nats-io/transport-node')
    const timeoutMs = Number(process.env.MQ_NATS_TIMEOUT_MS) || DEFAULT_REQUEST_TIMEOUT_MS
    let authenticator
    if (target.credsFile) {
      const {readFile} = await import('node:fs/promises')
      let creds: Uint8Array
      try {
        creds = await readFile(target.credsFile)
      } catch (error) {
        throw new InvalidInputError(
          `cannot read the credentials file ${target.credsFile} (${(error as NodeJS.ErrnoException).code ?? error})`,
          {hint: 'check ?creds= in the broker URL'},
        )
      }
      authenticator = lib.credsAuthenticator(creds)
    }
    let nc: NatsConnection
    try {
      nc = await lib.connect({
        servers: target.servers,
        user: target.user,
        pass: target.pass,
        token: target.token,
        authenticator,
        timeout: CONNECT_TIMEOUT_MS,
        name: 'mqctl',
        // Follow the cluster through a server's loss; give up after about a minute.
        maxReconnectAttempts: 240,
        reconnectTimeWait: 250,
      })
    } catch (error) {
      throw connectionError(target, error)
    }
    const client = new JsClient(nc, target, timeoutMs, lib)
    // A server without JetStream answers API requests with "no responders".
    try {
      await client.api('INFO')
    } catch (error) {
      await nc.close()
      throw error
    }
    return client
  }

  get version(): string {
    return this.nc.info?.version ?? '0.0.0'
  }

  headers(): MsgHdrs {
    return this.lib.headers()
  }

  /** A JetStream API request; its error answer becomes JsApiError. */
  async api<T = Record<string, unknown>>(subject: string, body?: unknown, timeoutMs = this.timeoutMs): Promise<T> {
    const full = `$JS.API.${subject}`
    const parsed = await this.retrying(full, async () => {
      const reply: Msg = await this.nc.request(full, body === undefined ? '' : JSON.stringify(body), {
        timeout: timeoutMs,
      })
      const answer = JSON.parse(decoder.decode(reply.data)) as T & {error?: ApiError}
      if (answer.error) throw new JsApiError(full, answer.error)
      return answer
    })
    this.jetStreamSeen = true
    return parsed
  }

  /** Publishes into a stream and waits for its acknowledgement (the PubAck). */
  async publish(
    subject: string,
    data: Uint8Array | string,
    headers?: MsgHdrs,
  ): Promise<{stream: string; seq: number; duplicate?: boolean}> {
    const payload = typeof data === 'string' ? encoder.encode(data) : data
    return this.retrying(subject, async () => {
      const reply: Msg = await this.nc.request(subject, payload, {timeout: this.timeoutMs, headers})
      const parsed = JSON.parse(decoder.decode(reply.data)) as {
        stream: string
        seq: number
        duplicate?: boolean
        error?: ApiError
      }
      if (parsed.error) throw new JsApiError(subject, parsed.error)
      return parsed
    })
  }

  /** An ack-protocol message (`+ACK`, `-NAK {…}`, `+WPI`) to a delivery's reply subject, confirmed by the server. */
  async settle(ackSubject: string, verb: string): Promise<void> {
    await this.retrying(ackSubject, () => this.nc.request(ackSubject, verb, {timeout: this.timeoutMs}))
  }

  /** Fire-and-forget ack-protocol message; `flush()` afterwards makes sure the server has it. */
  send(subject: string, verb: string): void {
    this.nc.publish(subject, verb)
  }

  async flush(): Promise<void> {
    await this.nc.flush()
  }

  /**
   * A pull request on a consumer: up to `batch` messages, waiting up to `expiresMs` for the first
   * (0: take what is there now). Returns when the batch is full, the server says no more, or the
   * wait runs out. With `firstOnly`, returns as soon as one message arrived (long-poll wake-up).
   */
  async pull(
    stream: string,
    consumer: string,
    batch: number,
    expiresMs: number,
    signal?: AbortSignal,
  ): Promise<PulledMessage[]> {
    const inbox = this.lib.createInbox()
    const sub = this.nc.subscribe(inbox)
    const request = expiresMs > 0 ? {batch, expires: Math.round(expiresMs * 1e6)} : {batch, no_wait: true}
    const got: PulledMessage[] = []
    const guard = setTimeout(() => sub.unsubscribe(), expiresMs + this.timeoutMs)
    const onAbort = () => sub.unsubscribe()
    signal?.addEventListener('abort', onAbort, {once: true})
    try {
      this.nc.publish(`$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`, JSON.stringify(request), {reply: inbox})
      for await (const msg of sub) {
        const status = msg.headers?.code ?? 0
        if (status !== 0 && msg.data.length === 0) {
          if (status === 404 || status === 408 || status === 409 || status === 100) {
            if (status === 409 && /consumer (deleted|is push based)/i.test(msg.headers!.description)) {
              throw new JsApiError(stream, {
                code: 409,
                err_code: ERR.consumerNotFound,
                description: msg.headers!.description,
              })
            }
            break
          }
          continue
        }
        got.push({subject: msg.subject, reply: msg.reply ?? '', data: msg.data, headers: msg.headers})
        if (got.length >= batch) break
      }
    } finally {
      clearTimeout(guard)
      signal?.removeEventListener('abort', onAbort)
      sub.unsubscribe()
    }
    return got
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.nc.drain().catch(() => this.nc.close())
  }

  private requestError(error: unknown, subject: string): Error {
    const message = (error as Error)?.message ?? String(error)
    const name = (error as Error)?.name ?? ''
    if (/no responders|503/i.test(message) || name === 'NoRespondersError') {
      if (subject.startsWith('$JS.API')) {
        return new StoreError(`JetStream does not answer on ${this.target.display}`, {
          code: 'unreachable',
          hint: 'is nats-server running with -js (JetStream enabled)?',
        })
      }
      return new StoreError(`no stream takes ${subject} on ${this.target.display}`, {
        code: 'unreachable',
        hint: 'the stream was deleted meanwhile; try again',
      })
    }
    if (/timeout/i.test(message) || name === 'TimeoutError') {
      return new StoreError(`${this.target.display} did not answer within ${this.timeoutMs} ms`, {
        code: 'timeout',
        hint: 'is the server (or its cluster) up and has it elected leaders? raise MQ_NATS_TIMEOUT_MS for slow links',
      })
    }
    if (/closed|disconnect/i.test(message)) return connectionError(this.target, error)
    return error instanceof Error ? error : new Error(message)
  }
}

function isTransient(error: unknown): boolean {
  // Limits answer with 503 too (10077 maximum messages exceeded): only leaderless moments are retried.
  if (error instanceof JsApiError)
    return (
      error.error.err_code === 10008 ||
      /temporarily unavailable|no (stream|consumer )?leader|not current/i.test(error.error.description)
    )
  const message = (error as Error)?.message ?? String(error)
  const name = (error as Error)?.name ?? ''
  return /timeout|no responders|503|disconnect|reconnect/i.test(`${name} ${message}`)
}

export function connectionError(target: NatsTarget, error: unknown): StoreError {
  const message = (error as Error)?.message ?? String(error)
  const code = (error as {code?: string})?.code
  const what = /auth/i.test(message) ? 'authentication failed' : (code ?? message)
  return new StoreError(`cannot connect to ${target.display} (${what})`, {
    code: 'unreachable',
    hint: /auth/i.test(message)
      ? 'check the user, password, token or ?creds= in the broker URL'
      : 'is nats-server running with -js, and reachable from here?',
  })
}

export function decodeText(data: Uint8Array): string {
  return decoder.decode(data)
}

export function encodeText(text: string): Uint8Array {
  return encoder.encode(text)
}
