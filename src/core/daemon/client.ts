import type {Socket} from 'node:net'

import type {
  Delivery,
  NackOptions,
  NackOutcome,
  OutgoingMessage,
  PublishOptions,
  PublishResult,
  ReceiptHolder,
  ReceiveOptions,
  SettleOutcome,
} from '../broker.js'
import type {CloudEvent} from '../engine/cloudevents.js'
import type {TriggerSummary} from '../engine/engine.js'
import {DaemonUnavailableError, type ErrorCode, type ExitCodeValue, MqError, QueueFullError} from '../errors.js'
import {BUSY_TIMEOUT_MS} from '../lock-wait.js'
import {daemonPaths, socketProblem} from './files.js'
import {connect, MAX_FRAME_BYTES, onJsonLines, type Reply, type Request} from './protocol.js'

/** How long a command waits to reach the daemon before doing the work itself. */
const CONNECT_TIMEOUT_MS = 300
/** How long a request may go unanswered (beyond any wait it asked for) before the daemon counts as gone. */
const REQUEST_TIMEOUT_MS = 10_000
const STATUS_TIMEOUT_MS = 2_000
/** Receipt-holder requests: the daemon settles on the broker server, which has its own timeouts. */
const SETTLE_TIMEOUT_MS = 30_000
/** Time for a daemon that met a held write lock to answer after its busy timeout. */
const LOCKED_REPLY_MARGIN_MS = 5_000

export {DaemonUnavailableError}

/** An error the daemon reported, with the exit code it maps to. */
export class RemoteError extends MqError {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly exitCode: ExitCodeValue,
  ) {
    super(message)
  }
}

export interface DaemonStatus {
  pid: number
  version: string
  startedAt: string
  uptimeMs: number
  home: string
  /** The broker it serves: `file:HOME`, or the address given with --broker (password hidden). */
  broker: string
  socket: string
  http: {address: string; port: number} | null
  rules: {path: string; rules: number; sources: number; error?: string}
  /** `held`: deliveries received for clients with receipts the daemon holds (amqp://). */
  counts: {
    published: number
    eventsAccepted: number
    eventsProcessed: number
    actionsOk: number
    actionsFailed: number
    held: number
    pendingEvents: number
    inFlightEvents: number
  }
}

/** The daemon as receipt holder; it also receives from durable subscriptions (by name). */
export interface DaemonReceiptHolder extends ReceiptHolder {
  readonly heldByDaemon: true
  receiveDurable(subscription: {pattern: string; durable: string}, options: ReceiveOptions): Promise<Delivery[]>
}

export function isDaemonReceiptHolder(holder: ReceiptHolder): holder is DaemonReceiptHolder {
  return (holder as Partial<DaemonReceiptHolder>).heldByDaemon === true
}

/** A connection to the daemon of a broker folder. */
export class DaemonClient {
  private nextId = 1
  private readonly waiting = new Map<number, {resolve(value: unknown): void; reject(error: Error): void}>()
  private closed = false

  private constructor(private readonly socket: Socket) {
    onJsonLines(
      socket,
      (value) => {
        const reply = value as Reply
        if (typeof reply?.id !== 'number') return
        const pending = this.waiting.get(reply.id)
        if (!pending) return
        this.waiting.delete(reply.id)
        if (reply.error) pending.reject(toError(reply.error))
        else pending.resolve(reply.result)
      },
      (problem) => {
        if (problem.fatal) socket.destroy()
      },
    )
    const fail = () => {
      this.closed = true
      for (const pending of this.waiting.values())
        pending.reject(new DaemonUnavailableError('the daemon closed the connection'))
      this.waiting.clear()
    }
    socket.on('close', fail)
    socket.on('error', fail)
  }

  /** Connects when a daemon serves this folder; undefined otherwise (no daemon, or it is not answering). */
  static async connect(home: string): Promise<DaemonClient | undefined> {
    const {socket} = daemonPaths(home)
    // A socket someone else could have bound is never spoken to: the command uses the folder itself.
    if (socketProblem(socket)) return undefined
    try {
      return new DaemonClient(await connect(socket, CONNECT_TIMEOUT_MS))
    } catch {
      return undefined
    }
  }

  /**
   * Sends one request. With `timeoutMs`, a daemon that does not answer in time (hung, stopped with
   * SIGSTOP) counts as gone: DaemonUnavailableError, and the caller does the work itself.
   */
  request<T>(
    op: Request['op'],
    fields: Record<string, unknown> = {},
    timeoutMs?: number,
    signal?: AbortSignal,
  ): Promise<T> {
    if (this.closed) return Promise.reject(new DaemonUnavailableError('not connected'))
    const id = this.nextId++
    // An aborted wait is cancelled on the daemon's side, which then answers at once.
    const onAbort = () => void this.request('cancel', {request: id}, REQUEST_TIMEOUT_MS).catch(() => {})
    if (signal?.aborted) queueMicrotask(onAbort)
    else signal?.addEventListener('abort', onAbort, {once: true})
    const frame = `${JSON.stringify({id, op, ...fields})}\n`
    // The daemon cuts off longer lines; the caller does such work itself instead.
    if (Buffer.byteLength(frame) > MAX_FRAME_BYTES)
      return Promise.reject(new DaemonUnavailableError('the request is too large for the daemon'))
    return new Promise<T>((resolve, reject) => {
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              this.waiting.delete(id)
              this.close()
              reject(new DaemonUnavailableError(`the daemon did not answer within ${timeoutMs}ms`))
            }, timeoutMs)
      const settle =
        <V>(fn: (value: V) => void) =>
        (value: V) => {
          clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
          fn(value)
        }
      this.waiting.set(id, {resolve: settle(resolve as (value: unknown) => void), reject: settle(reject)})
      this.socket.write(frame)
    })
  }

  /**
   * Publishes through the daemon. Messages without a dedup id get one, so that if the daemon dies
   * after committing but before answering, publishing them again on the folder stores nothing twice.
   */
  publish(
    name: string,
    messages: OutgoingMessage[],
    options: Omit<PublishOptions, 'signal'>,
  ): Promise<PublishResult[]> {
    // A daemon waiting for another process's write lock answers "locked" after the busy timeout:
    // wait for that answer rather than give up first and wait out the same lock again directly.
    const timeoutMs =
      (options.blockTimeoutMs ?? 0) + Math.max(REQUEST_TIMEOUT_MS, BUSY_TIMEOUT_MS + LOCKED_REPLY_MARGIN_MS)
    return this.request('publish', {name, messages, options}, timeoutMs)
  }

  /** Hands an event over (the daemon journals it before answering); with `wait`, returns once its actions ran. */
  trigger(
    event: CloudEvent,
    wait: boolean,
  ): Promise<TriggerSummary | {seq: number; duplicateOf?: number; queued: true}> {
    return this.request('trigger', {event, wait}, wait ? undefined : REQUEST_TIMEOUT_MS)
  }

  status(): Promise<DaemonStatus> {
    return this.request('status', {}, STATUS_TIMEOUT_MS)
  }

  /**
   * The daemon as the receipt holder of `broker` (its name as the daemon knows it, see
   * `DaemonStatus.broker`): manual-ack receives and settling go to the daemon, whose connection
   * holds the leases. A daemon that stops answering cannot be replaced by this process (the
   * leases were its own): the error says so, exit 1.
   */
  receiptHolder(broker: string): DaemonReceiptHolder {
    const call = async <T>(
      op: Request['op'],
      fields: Record<string, unknown>,
      timeoutMs: number,
      signal?: AbortSignal,
    ): Promise<T> => {
      try {
        return await this.request<T>(op, {...fields, broker}, timeoutMs, signal)
      } catch (error) {
        if (!(error instanceof DaemonUnavailableError)) throw error
        throw new DaemonUnavailableError(`the daemon holding the receipts of ${broker} went away (${error.message})`, {
          hint: 'the deliveries it held go back to the queue; start it again with `mq daemon start` (their old receipts are stale)',
        })
      }
    }
    return {
      heldByDaemon: true,
      receive: (queue: string, options: ReceiveOptions): Promise<Delivery[]> => {
        const {signal, autoAck: _autoAck, ...rest} = options
        return call('receive', {queue, options: rest}, (options.waitMs ?? 0) + SETTLE_TIMEOUT_MS, signal)
      },
      receiveDurable: (
        subscription: {pattern: string; durable: string},
        options: ReceiveOptions,
      ): Promise<Delivery[]> => {
        const {signal, autoAck: _autoAck, ...rest} = options
        return call('receive', {subscription, options: rest}, (options.waitMs ?? 0) + SETTLE_TIMEOUT_MS, signal)
      },
      ack: (receipts: string[]): Promise<SettleOutcome[]> => call('ack', {receipts}, SETTLE_TIMEOUT_MS),
      nack: (receipts: string[], options?: NackOptions): Promise<NackOutcome[]> =>
        call('nack', {receipts, options}, SETTLE_TIMEOUT_MS),
      extend: (receipts: string[], byMs: number): Promise<SettleOutcome[]> =>
        call('extend', {receipts, byMs}, SETTLE_TIMEOUT_MS),
      stillLeased: (receipts: string[]): Promise<boolean[]> => call('still-leased', {receipts}, SETTLE_TIMEOUT_MS),
    }
  }

  close(): void {
    this.closed = true
    this.socket.destroy()
  }
}

function toError(error: NonNullable<Reply['error']>): Error {
  // A daemon that is stopping answers "unavailable": the command does the work itself.
  if (error.code === 'unavailable') return new DaemonUnavailableError(error.message)
  if (error.code === 'queue_full') {
    const full = new QueueFullError(error.message)
    full.published = error.published ?? []
    return full
  }
  return new RemoteError(error.code, error.message, error.exitCode as ExitCodeValue)
}
