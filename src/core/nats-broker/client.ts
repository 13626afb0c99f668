import type {MsgHdrs, NatsConnection, Msg} from '@nats-io/transport-node'

import {monotonicNow} from '../clock.js'
import {InvalidInputError, StoreError} from '../errors.js'
import type {LockWaiter} from '../lock-wait.js'
import type {NatsTarget} from '../open-broker.js'
import {sleep} from '../rate-limiter.js'
import {importLazily} from '../lazy-require.js'

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
  /** Set for long-running commands: outages are waited out without a budget. */
  private patience?: LockWaiter

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
    if (this.patience) {
      // A long-running command: no budget; the waiter says so once and retries until a second Ctrl-C.
      // Errors are translated before the waiter sees them, so what it says names the broker.
      const raw = new WeakMap<object, unknown>()
      const translated = async () => {
        try {
          return await attempt()
        } catch (error) {
          if (error instanceof JsApiError) throw error
          const mapped = this.requestError(error, subject)
          raw.set(mapped, error)
          throw mapped
        }
      }
      return this.patience.run(translated, undefined, (error) =>
        this.isOutage(error instanceof Object && raw.has(error) ? raw.get(error) : error),
      )
    }
    const deadline = monotonicNow() + this.failoverMs
    for (let pause = 100; ; pause = Math.min(pause * 2, 1_000)) {
      try {
        return await attempt()
      } catch (error) {
        if (!this.isOutage(error) || monotonicNow() + pause >= deadline)
          throw error instanceof JsApiError ? error : this.requestError(error, subject)
        await sleep(pause)
      }
    }
  }

  /**
   * A failure a failover causes, on a connection that is still ours. Before JetStream first
   * answered, only a patient command waits (for a timeout: a cluster still electing its leaders);
   * "no responders" then means a server without JetStream, and that is an error at once.
   */
  private isOutage(error: unknown): boolean {
    if (this.closed || this.nc.isClosed()) return false
    if (this.jetStreamSeen) return isTransient(error)
    return this.patience !== undefined && isTimeout(error)
  }

  /**
   * From now on requests wait out outages through `waiter` (long-running commands): see
   * `LockWaiter` and `Context.waitOutLocks`.
   */
  waitOutOutages(waiter: LockWaiter): void {
    this.patience = waiter
  }

  static async connect(target: NatsTarget, patience?: LockWaiter): Promise<JsClient> {
    const lib = await importLazily<typeof import('@nats-io/transport-node')>('@nats-io/transport-node')
    const timeoutMs = Number(process.env.MQ_NATS_TIMEOUT_MS) || DEFAULT_REQUEST_TIMEOUT_MS
    let authenticator
    if (target.credsFile) {
      const {readFile} = await importLazily<typeof import('node:fs/promises')>('node:fs/promises')
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
        // Follow the cluster through a server's loss; a one-shot command gives up after about a
        // minute, a long-running one never does (it waits, see `waitOutOutages`).
        maxReconnectAttempts: patience ? -1 : 240,
        reconnectTimeWait: 250,
      })
    } catch (error) {
      throw connectionError(target, error)
    }
    const client = new JsClient(nc, target, timeoutMs, lib)
    client.patience = patience
    void client.watchReconnects()
    // A server without JetStream answers API requests with "no responders".
    try {
      await client.api('INFO')
    } catch (error) {
      await nc.close()
      throw error
    }
    return client
  }

  /**
   * A pull request waiting on the server dies with the connection: after a reconnect, waiting pulls
   * end at once (empty) so their callers ask again, instead of sitting out their expiry.
   */
  private reconnected = new AbortController()

  private async watchReconnects(): Promise<void> {
    try {
      for await (const status of this.nc.status()) {
        if (status.type !== 'reconnect') continue
        this.reconnected.abort()
        this.reconnected = new AbortController()
      }
    } catch {
      // The status stream ends with the connection.
    }
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
      const reply: Msg = await this.request(full, body === undefined ? '' : JSON.stringify(body), {
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
      const reply: Msg = await this.request(subject, payload, {timeout: this.timeoutMs, headers})
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

  /**
   * `nc.request` without the stack traces it captures up front for errors it may raise (a
   * RequestError and a TimeoutError per request): measured at a third of the CPU of a bulk
   * publish, and the driver translates those errors anyway (`requestError`).
   */
  private request(subject: string, data: Uint8Array | string, options: {timeout: number; headers?: MsgHdrs}) {
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    try {
      return this.nc.request(subject, data, options)
    } finally {
      Error.stackTraceLimit = limit
    }
  }

  /** An ack-protocol message (`+ACK`, `-NAK {…}`, `+WPI`) to a delivery's reply subject, confirmed by the server. */
  async settle(ackSubject: string, verb: string): Promise<void> {
    await this.retrying(ackSubject, () => this.request(ackSubject, verb, {timeout: this.timeoutMs}))
  }

  /** Fire-and-forget ack-protocol message; `flush()` afterwards makes sure the server has it. */
  send(subject: string, verb: string): void {
    this.nc.publish(subject, verb)
  }

  /**
   * Waits until the server has everything sent so far. Across a reconnect, what was sent before
   * it may be lost (an unconfirmed ack: the message comes again, at-least-once); the flush is then
   * retried like any request rather than failing the command.
   */
  async flush(): Promise<void> {
    await this.retrying('flush', () => this.nc.flush())
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
    const reconnected = this.reconnected.signal
    reconnected.addEventListener('abort', onAbort, {once: true})
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
      reconnected.removeEventListener('abort', onAbort)
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

function isTimeout(error: unknown): boolean {
  const message = (error as Error)?.message ?? String(error)
  const name = (error as Error)?.name ?? ''
  return /timeout/i.test(`${name} ${message}`)
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
