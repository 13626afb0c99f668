import type {Socket} from 'node:net'

import type {OutgoingMessage, PublishOptions, PublishResult} from '../broker.js'
import type {CloudEvent} from '../engine/cloudevents.js'
import type {TriggerSummary} from '../engine/engine.js'
import {DaemonUnavailableError, type ErrorCode, type ExitCodeValue, MqError, QueueFullError} from '../errors.js'
import {daemonPaths, socketProblem} from './files.js'
import {connect, MAX_FRAME_BYTES, onJsonLines, type Reply, type Request} from './protocol.js'

/** How long a command waits to reach the daemon before doing the work itself. */
const CONNECT_TIMEOUT_MS = 300
/** How long a request may go unanswered (beyond any wait it asked for) before the daemon counts as gone. */
const REQUEST_TIMEOUT_MS = 10_000
const STATUS_TIMEOUT_MS = 2_000

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
  socket: string
  http: {address: string; port: number} | null
  rules: {path: string; rules: number; sources: number; error?: string}
  counts: {published: number; eventsAccepted: number; eventsProcessed: number; actionsOk: number; actionsFailed: number; pendingEvents: number; inFlightEvents: number}
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
      for (const pending of this.waiting.values()) pending.reject(new DaemonUnavailableError('the daemon closed the connection'))
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
  request<T>(op: Request['op'], fields: Record<string, unknown> = {}, timeoutMs?: number): Promise<T> {
    if (this.closed) return Promise.reject(new DaemonUnavailableError('not connected'))
    const id = this.nextId++
    const frame = `${JSON.stringify({id, op, ...fields})}\n`
    // The daemon cuts off longer lines; the caller does such work itself instead.
    if (Buffer.byteLength(frame) > MAX_FRAME_BYTES) return Promise.reject(new DaemonUnavailableError('the request is too large for the daemon'))
    return new Promise<T>((resolve, reject) => {
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              this.waiting.delete(id)
              this.close()
              reject(new DaemonUnavailableError(`the daemon did not answer within ${timeoutMs}ms`))
            }, timeoutMs)
      const settle = <V>(fn: (value: V) => void) => (value: V) => {
        clearTimeout(timer)
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
  publish(name: string, messages: OutgoingMessage[], options: Omit<PublishOptions, 'signal'>): Promise<PublishResult[]> {
    const timeoutMs = (options.blockTimeoutMs ?? 0) + REQUEST_TIMEOUT_MS
    return this.request('publish', {name, messages, options}, timeoutMs)
  }

  /** Hands an event over (the daemon journals it before answering); with `wait`, returns once its actions ran. */
  trigger(event: CloudEvent, wait: boolean): Promise<TriggerSummary | {seq: number; duplicateOf?: number; queued: true}> {
    return this.request('trigger', {event, wait}, wait ? undefined : REQUEST_TIMEOUT_MS)
  }

  status(): Promise<DaemonStatus> {
    return this.request('status', {}, STATUS_TIMEOUT_MS)
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
