import type {Channel, ChannelModel, ConfirmChannel, GetMessage, Options} from 'amqplib'

import {InvalidInputError, StoreError} from '../errors.js'
import type {LockWaiter} from '../lock-wait.js'
import type {AmqpTarget} from '../open-broker.js'
import {importLazily} from '../lazy-require.js'

/** Connect timeout and per-request timeout (env MQ_AMQP_TIMEOUT_MS), so nothing ever hangs. */
export const DEFAULT_TIMEOUT_MS = 5_000
/** How long operations keep reconnecting after the connection was lost (env MQ_AMQP_FAILOVER_MS). */
export const DEFAULT_FAILOVER_MS = 30_000

export interface PublishEntry {
  exchange: string
  routingKey: string
  content: Buffer
  options: Options.Publish
}

/** A channel error answered by the server (404 not found, 406 precondition failed, 405 locked, …). */
export function amqpCode(error: unknown): number | undefined {
  const code = (error as {code?: unknown})?.code
  return typeof code === 'number' ? code : undefined
}

/**
 * A lost connection or channel (not a refusal by the server such as 404 or 406): worth reopening
 * and retrying. A channel the server closed with a refusal fails later calls with "Channel closed"
 * too: the retry then runs on a reopened channel.
 */
function isConnectionLoss(error: unknown): boolean {
  const message = (error as Error)?.message ?? ''
  const code = (error as {code?: unknown})?.code
  if (/\b(403|404|405|406)\b/.test(message) || code === 403 || code === 404 || code === 405 || code === 406)
    return false
  return (
    /connection (closed|ended|lost)|channel (ended|closed)|CONNECTION[-_]FORCED|ECONNRESET|EPIPE|socket|heartbeat/i.test(
      message,
    ) ||
    code === 'ECONNRESET' ||
    code === 'ECONNREFUSED' ||
    code === 320
  )
}

/**
 * One connection to RabbitMQ with the channels the driver needs: a confirm channel for publishes
 * (every publish waits for the broker's confirm), a channel for `basic.get` and settling, and a
 * probe channel for passive declares (a 404 closes a channel, so that one is reopened when needed).
 * The connection is reopened with backoff after a loss; `generation` tells leases from before the
 * loss (the broker requeued their messages) from current ones.
 */
export class AmqpClient {
  generation = 0
  private connection?: ChannelModel
  private opening?: Promise<void>
  private pubChannel?: ConfirmChannel
  private opsChannel?: Channel
  private probeChannel?: Promise<Channel>
  private closed = false
  private patience?: LockWaiter
  /** Channels opened for long polls, log readers and redrives. */
  private readonly channels = new Set<Channel>()
  serverVersion = ''
  serverProduct = 'RabbitMQ'
  readonly timeoutMs = Number(process.env.MQ_AMQP_TIMEOUT_MS) || DEFAULT_TIMEOUT_MS
  private readonly failoverMs = Number(process.env.MQ_AMQP_FAILOVER_MS) || DEFAULT_FAILOVER_MS
  /** Called when a connection was lost (leases of that generation are gone). */
  onLoss?: (channel?: Channel) => void

  private constructor(
    readonly target: AmqpTarget,
    private readonly lib: typeof import('amqplib'),
  ) {}

  static async connect(target: AmqpTarget): Promise<AmqpClient> {
    const lib = await importLazily<typeof import('amqplib') & {default?: typeof import('amqplib')}>('amqplib')
    const client = new AmqpClient(target, lib.default ?? lib)
    await client.open()
    return client
  }

  private async open(): Promise<void> {
    let connection: ChannelModel
    try {
      connection = await withTimeout(
        // noDelay: an ack followed by the next basic.get would otherwise wait for the server's
        // delayed TCP ack (Nagle), ~40 ms per message.
        this.lib.connect(this.target.url, {
          timeout: this.timeoutMs,
          noDelay: true,
          clientProperties: {connection_name: 'mqctl'},
        }),
        this.timeoutMs + 500,
        'connect',
      )
    } catch (error) {
      throw connectionError(this.target, error)
    }
    coalesceWrites(connection)
    const properties = (connection.connection as unknown as {serverProperties?: Record<string, string>})
      .serverProperties
    this.serverVersion = String(properties?.version ?? '')
    this.serverProduct = String(properties?.product ?? 'RabbitMQ')
    ++this.generation
    connection.on('error', () => {
      // 'close' follows; nothing to do here but keep the error from being thrown.
    })
    connection.on('close', () => {
      if (this.connection !== connection) return
      this.connection = undefined
      this.pubChannel = undefined
      this.opsChannel = undefined
      this.probeChannel = undefined
      this.onLoss?.()
    })
    this.connection = connection
    await this.openChannels()
  }

  /**
   * The publish and ops channels. A channel error (a 404 on `basic.get` of a queue deleted
   * meanwhile, say) closes only that channel: it is reopened, and deliveries it held are gone.
   */
  private async openChannels(): Promise<void> {
    const connection = this.connection!
    if (!this.pubChannel) {
      const channel = await connection.createConfirmChannel()
      channel.on('error', () => undefined)
      channel.on('close', () => {
        if (this.pubChannel === channel) this.pubChannel = undefined
      })
      this.pubChannel = channel
    }
    if (!this.opsChannel) {
      const channel = await connection.createChannel()
      channel.on('error', () => undefined)
      channel.on('close', () => {
        if (this.opsChannel !== channel) return
        this.opsChannel = undefined
        if (this.connection === connection) this.onLoss?.(channel)
      })
      this.opsChannel = channel
    }
  }

  /** The connection, reopened (with backoff, within the failover budget) after a loss. */
  private async ready(): Promise<void> {
    if (this.closed) throw new StoreError(`the connection to ${this.target.display} is closed`)
    if (this.connection && this.pubChannel && this.opsChannel) return
    if (this.connection && !this.opening) {
      try {
        await this.openChannels()
        return
      } catch {
        // the connection is going too: reopen it below
      }
    }
    this.opening ??= (async () => {
      const deadline = Date.now() + this.failoverMs
      for (let pause = 200; ; pause = Math.min(pause * 2, 2_000)) {
        try {
          await this.connection?.close().catch(() => undefined)
          this.connection = undefined
          await this.open()
          return
        } catch (error) {
          if (this.closed || Date.now() + pause >= deadline) throw error
          await new Promise((resolve) => setTimeout(resolve, pause))
        }
      }
    })().finally(() => {
      this.opening = undefined
    })
    await this.opening
  }

  /**
   * From now on operations wait out outages through `waiter` (long-running commands: followers,
   * `--exec` workers): a lost connection is reopened for as long as it takes. See `LockWaiter`.
   */
  waitOutOutages(waiter: LockWaiter): void {
    this.patience = waiter
  }

  /** Runs an operation on a live connection; a connection lost meanwhile is reopened and the operation retried. */
  async run<T>(what: string, operation: () => Promise<T>, retry = true): Promise<T> {
    if (!this.patience || !retry) return this.runBudgeted(what, operation, retry)
    return this.patience.run(
      () => this.runBudgeted(what, operation, retry),
      undefined,
      (error) =>
        !this.closed && error instanceof StoreError && (error.code === 'unreachable' || error.code === 'timeout'),
    )
  }

  private async runBudgeted<T>(what: string, operation: () => Promise<T>, retry: boolean): Promise<T> {
    const deadline = Date.now() + this.failoverMs
    for (;;) {
      await this.ready()
      try {
        return await withTimeout(operation(), this.timeoutMs, what)
      } catch (error) {
        if (!retry || this.closed || !isConnectionLoss(error) || Date.now() >= deadline)
          throw this.requestError(error, what)
        this.connection = undefined
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
  }

  get channelModel(): ChannelModel {
    return this.connection!
  }

  get publisher(): ConfirmChannel {
    return this.pubChannel!
  }

  get ops(): Channel {
    return this.opsChannel!
  }

  async newChannel(): Promise<Channel> {
    await this.ready()
    const connection = this.connection!
    const channel = await connection.createChannel()
    channel.on('error', () => undefined)
    this.channels.add(channel)
    channel.on('close', () => {
      this.channels.delete(channel)
      if (this.connection === connection) this.onLoss?.(channel)
    })
    return channel
  }

  /** A passive declare: the queue's ready-message and consumer counts, or undefined when it does not exist. */
  async checkQueue(name: string): Promise<{messageCount: number; consumerCount: number} | undefined> {
    return this.run(`check queue ${name}`, async () => {
      this.probeChannel ??= this.connection!.createChannel().then((channel) => {
        channel.on('error', () => undefined)
        channel.on('close', () => {
          if (this.probeChannel && this.connection) this.probeChannel = undefined
        })
        return channel
      })
      const channel = await this.probeChannel
      try {
        const ok = await channel.checkQueue(name)
        return {messageCount: ok.messageCount, consumerCount: ok.consumerCount}
      } catch (error) {
        this.probeChannel = undefined
        if (amqpCode(error) === 404) return undefined
        throw error
      }
    })
  }

  /** Publishes through the confirm channel; resolves true when confirmed, false when the broker nacked it (a full queue). */
  publish(exchange: string, routingKey: string, content: Buffer, options: Options.Publish): Promise<boolean> {
    return this.run(
      `publish to ${routingKey}`,
      () =>
        new Promise<boolean>((resolve, reject) => {
          try {
            this.publisher.publish(exchange, routingKey, content, options, (error) => resolve(!error))
          } catch (error) {
            reject(error)
          }
        }),
    )
  }

  /** `basic.get`; false when the queue is empty or does not exist. */
  /**
   * Publishes a window of messages through the confirm channel and waits for all their confirms
   * (one timeout for the window); each is true when confirmed, false when nacked (a full queue).
   * A connection lost meanwhile republishes the window: at-least-once.
   */
  publishBatch(entries: PublishEntry[]): Promise<boolean[]> {
    return this.run(`publish to ${entries[0]?.routingKey ?? ''}`, () => {
      const channel = this.publisher
      return Promise.all(
        entries.map(
          (entry) =>
            new Promise<boolean>((resolve, reject) => {
              try {
                channel.publish(entry.exchange, entry.routingKey, entry.content, entry.options, (error) =>
                  resolve(!error),
                )
              } catch (error) {
                reject(error)
              }
            }),
        ),
      )
    })
  }

  async get(queue: string, noAck: boolean): Promise<GetMessage | false> {
    try {
      // Without noAck a get lost with its connection was never taken: safe to retry.
      return await this.run(`get from ${queue}`, () => this.ops.get(queue, {noAck}), !noAck)
    } catch (error) {
      if (/NOT_FOUND|404/.test((error as Error)?.message ?? '')) return false
      throw error
    }
  }

  /**
   * Closes every channel first: amqplib writes each channel's frames through its own buffer, so a
   * connection close could overtake acks still buffered on a channel (and their messages would be
   * delivered again). A channel's close-ok comes after everything sent on it.
   */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    const connection = this.connection
    this.connection = undefined
    const channels = [...this.channels, this.opsChannel, this.pubChannel].filter((c): c is Channel => c !== undefined)
    await withTimeout(
      Promise.all(channels.map((c) => c.close().catch(() => undefined))),
      this.timeoutMs,
      'close',
    ).catch(() => undefined)
    await connection?.close().catch(() => undefined)
  }

  requestError(error: unknown, what: string): Error {
    if (error instanceof StoreError || error instanceof InvalidInputError) return error
    if ((error as Error)?.name === 'TimeoutError' || /timed out/i.test((error as Error)?.message ?? '')) {
      return new StoreError(`${this.target.display} did not answer within ${this.timeoutMs} ms (${what})`, {
        code: 'timeout',
        hint: 'is the RabbitMQ node up and not blocked (disk or memory alarm)? raise MQ_AMQP_TIMEOUT_MS for slow links',
      })
    }
    if (isConnectionLoss(error)) return connectionError(this.target, error)
    return error instanceof Error ? error : new Error(String(error))
  }
}

/**
 * amqplib's multiplexer moves each channel's frames to the socket one message at a time, and with
 * noDelay every one of those writes is a TCP segment of its own: a window of 512 publishes (or a
 * batch of acks) cost hundreds of write calls. Corking the socket around each pass sends what one
 * pass gathered in a single writev, in the same tick (no added latency). A version of amqplib
 * without these internals is left as it is.
 */
function coalesceWrites(connection: ChannelModel): void {
  const inner = connection.connection as unknown as {
    muxer?: {_readIncoming?: () => void; out?: NodeJS.WritableStream & {cork?: () => void; uncork?: () => void}}
  }
  const muxer = inner.muxer
  const pass = muxer?._readIncoming
  const out = muxer?.out
  if (!muxer || typeof pass !== 'function' || typeof out?.cork !== 'function' || typeof out.uncork !== 'function')
    return
  muxer._readIncoming = function (this: unknown) {
    out.cork!()
    try {
      pass.call(this)
    } finally {
      out.uncork!()
    }
  }
}

class TimeoutError extends Error {
  override name = 'TimeoutError'
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} timed out`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

export function connectionError(target: AmqpTarget, error: unknown): StoreError {
  const message = (error as Error)?.message ?? String(error)
  const code = (error as {code?: unknown})?.code
  if (/ACCESS[-_]REFUSED|403|auth/i.test(message)) {
    return new StoreError(`cannot connect to ${target.display} (authentication failed)`, {
      code: 'unreachable',
      hint: 'check the user and password in the broker URL',
    })
  }
  if (/NOT[-_]ALLOWED|530|vhost/i.test(message)) {
    return new StoreError(`cannot connect to ${target.display} (virtual host "${target.vhost}" refused)`, {
      code: 'unreachable',
      hint: 'check that the vhost exists and the user may use it (rabbitmqctl list_permissions -p VHOST)',
    })
  }
  const what =
    (error as Error)?.name === 'TimeoutError' || /timed? ?out/i.test(message)
      ? 'no answer'
      : typeof code === 'string'
        ? code
        : message
  return new StoreError(`cannot connect to ${target.display} (${what})`, {
    code: 'unreachable',
    hint: 'is rabbitmq-server running and reachable from here, on that host and port?',
  })
}

/** The management HTTP API (rabbitmq_management), for what AMQP 0-9-1 cannot ask. */
export class ManagementApi {
  constructor(
    private readonly base: string,
    private readonly target: AmqpTarget,
    private readonly timeoutMs: number,
  ) {}

  vhostPath(): string {
    return encodeURIComponent(this.target.vhost)
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T | undefined> {
    let response: Response
    try {
      response = await fetch(`${this.base}/api/${path}`, {
        method,
        headers: {
          authorization: `Basic ${Buffer.from(`${this.target.user}:${this.target.pass}`).toString('base64')}`,
          ...(body === undefined ? {} : {'content-type': 'application/json'}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      })
    } catch (error) {
      throw new StoreError(`the management API ${this.base} does not answer (${(error as Error).message})`, {
        code: 'unreachable',
        hint: 'check ?management= in the broker URL (rabbitmq-plugins enable rabbitmq_management)',
      })
    }
    if (response.status === 404) return undefined
    if (response.status === 401) {
      throw new StoreError(`the management API ${this.base} refused the URL's user`, {
        code: 'unreachable',
        hint: 'the user needs the "monitoring" (or "management") tag: rabbitmqctl set_user_tags USER monitoring',
      })
    }
    if (!response.ok) throw new StoreError(`the management API ${this.base} answered ${response.status} to ${path}`)
    const text = await response.text()
    return (text ? JSON.parse(text) : {}) as T
  }
}
