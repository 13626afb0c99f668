import {existsSync, rmSync, watch, type FSWatcher} from 'node:fs'
import {createServer, type Server, type Socket} from 'node:net'
import {basename, dirname} from 'node:path'

import {
  type Broker,
  type Delivery,
  type GroupPublisher,
  isGroupPublisher,
  type NackOptions,
  type OutgoingMessage,
  type PublishOptions,
  type PublishResult,
  type ReceiveOptions,
  type Subscription,
} from '../broker.js'
import {monotonicNow} from '../clock.js'
import {type CloudEvent, validateEvent} from '../engine/cloudevents.js'
import {Engine, type TriggerSummary} from '../engine/engine.js'
import {actionLogLine, eventLogLine} from '../engine/log-lines.js'
import {type LoadedRules, readRules} from '../engine/rules-file.js'
import {type RunningSources, startSources} from '../engine/sources/index.js'
import {DaemonUnavailableError, InvalidInputError, isMqError, QueueFullError} from '../errors.js'
import {FileBroker} from '../file-broker/index.js'
import {writeNoFollow} from '../no-follow.js'
import {formatDuration} from '../units.js'
import type {DaemonStatus} from './client.js'
import {
  claimPidFile,
  daemonPaths,
  daemonToken,
  liveDaemon,
  prepareSocketFolder,
  refuseDaemonFileLinks,
  releasePidFile,
} from './files.js'
import {DaemonHttp} from './http.js'
import {Metrics} from './metrics.js'
import {connect, frameId, HOLDER_OPS, onJsonLines, parseRequest, type Reply, type Request} from './protocol.js'

export interface DaemonOptions {
  home: string
  /** The broker publishes and actions go to (default: the file broker of `home`). The journal stays in `home`. */
  broker?: Broker
  /**
   * How clients name that broker (its address with the password hidden; default `file:HOME`):
   * receipt-holder requests for any other broker are refused.
   */
  brokerName?: string
  rulesPath: string
  /** 127.0.0.1 port for HTTP ingest; 0 picks a free one; null turns HTTP off. */
  httpPort: number | null
  version: string
  log(line: string): void
}

/** Events run at once by the daemon. */
const EVENT_CONCURRENCY = 8
/** How often the daemon looks for pending events handed over without a kick (or left by a crash). */
const EVENT_SCAN_MS = 1_000
/** How often publishes blocked on a full queue try again. */
const BLOCKED_RETRY_MS = 50
/** Most client publishes one group commit takes. */
const GROUP_MAX = 512

interface QueuedPublish {
  name: string
  messages: OutgoingMessage[]
  options: Omit<PublishOptions, 'signal'>
  done: PublishResult[]
  /** On the monotonic clock. */
  deadline: number
  /** Total messages asked for, to say how many made it if the wait runs out. */
  total: number
  resolve(results: PublishResult[]): void
  reject(error: unknown): void
  socket?: Socket
}

/**
 * The optional background daemon (README.md, "The daemon (optional)"; ARCHITECTURE.md, "The
 * daemon"). It owns nothing exclusively: it is one more process on the broker folder that group-commits publishes from many clients, runs handed-over events and
 * the rules' sources, and serves HTTP ingest and metrics on 127.0.0.1.
 */
export class Daemon {
  /** The folder: the event journal, and the broker too unless another was given. */
  private readonly local: FileBroker
  private readonly broker: Broker
  private engine!: Engine
  private rules!: LoadedRules
  private rulesError?: string
  private sources?: RunningSources
  private socketServer?: Server
  private http?: DaemonHttp
  private rulesWatcher?: FSWatcher
  private readonly startedAt = monotonicNow()
  private readonly metrics = new Metrics()
  private readonly clients = new Set<Socket>()
  /** Receives waiting for messages, per client and request id (`cancel`, a closed client and draining abort them). */
  private readonly waits = new Map<Socket, Map<number, AbortController>>()
  /** Durable subscriptions received from for clients, by name. */
  private readonly subscriptions = new Map<string, Promise<Subscription>>()
  private queue: QueuedPublish[] = []
  private accepting: {
    event: CloudEvent
    resolve(value: {seq: number; duplicateOf?: number}): void
    reject(error: unknown): void
  }[] = []
  private blocked: QueuedPublish[] = []
  private flushScheduled = false
  private blockedTimer?: NodeJS.Timeout
  private readonly running = new Map<number, Promise<void>>()
  private scanTimer?: NodeJS.Timeout
  private draining = false
  private readonly force = new AbortController()
  /** Aborted when draining starts: retries waiting for their backoff stop and hand their events back. */
  private readonly drainSignal = new AbortController()
  private stopped?: Promise<void>

  constructor(private readonly options: DaemonOptions) {
    this.local = new FileBroker(options.home)
    this.broker = options.broker ?? this.local
  }

  private get brokerName(): string {
    return this.options.brokerName ?? `file:${this.options.home}`
  }

  /** Starts everything; throws if another daemon already serves this folder (or anything fails, after undoing what started). */
  async start(): Promise<void> {
    const paths = daemonPaths(this.options.home)
    if (liveDaemon(this.options.home))
      throw new InvalidInputError(`a daemon already runs for ${this.options.home}`, {hint: 'see `mq daemon status`'})
    refuseDaemonFileLinks(this.options.home)
    claimPidFile(this.options.home)
    try {
      await this.startParts(paths)
      writeNoFollow(paths.state, JSON.stringify({pid: process.pid, http: this.http?.address() ?? null}))
    } catch (error) {
      await this.stop(true).catch(() => {})
      throw error
    }
    this.options.log(
      `daemon ${this.options.version} started (pid ${process.pid}) on ${paths.socket}${this.http ? `, HTTP ${this.http.url()}` : ''}`,
    )
  }

  private async startParts(paths: ReturnType<typeof daemonPaths>): Promise<void> {
    prepareSocketFolder(paths.socket)
    await this.removeStaleSocket(paths.socket)
    this.rules = await readRules(this.options.rulesPath)
    this.engine = new Engine({
      broker: this.broker,
      journal: this.local.journal,
      rules: this.rules.validated,
      baseDir: this.rules.dir,
      env: {...process.env, MQ_HOME: this.options.home},
      log: (line) => this.options.log(`log action: ${line}`),
      onAction: (seq, event, action) => this.options.log(actionLogLine(seq, event.type, action)),
      signal: this.force.signal,
      drain: this.drainSignal.signal,
    })
    // HTTP first: a port in use fails the start before any client can reach the socket.
    if (this.options.httpPort !== null) {
      this.http = new DaemonHttp({
        token: daemonToken(this.options.home),
        publish: (name, messages, options) => this.publish({name, messages, options}),
        accept: (event) => this.accept(event),
        metrics: () => this.metrics.render(this.broker),
        log: this.options.log,
      })
      await this.http.listen(this.options.httpPort)
    }
    this.socketServer = createServer((socket) => this.serve(socket))
    // The socket file is created with the umask: listen with a restrictive one, so it is never open to others.
    const umask = process.umask(0o077)
    try {
      await new Promise<void>((resolve, reject) => {
        this.socketServer!.once('error', reject)
        this.socketServer!.listen(paths.socket, () => resolve())
      })
    } finally {
      process.umask(umask)
    }
    const orphans = await this.engine.releaseOrphans()
    if (orphans > 0) this.options.log(`events: ${orphans} left running by a process that died will run again`)
    this.startSources()
    this.watchRules()
    this.scan()
  }

  /**
   * First call drains: no new work is taken, running actions finish, blocked publishes are
   * answered. `force` (a second SIGTERM) aborts running actions and gives their events back.
   */
  stop(force = false): Promise<void> {
    // Forced: running actions are stopped; the engine hands their events back as they settle.
    if (force) this.force.abort()
    this.stopped ??= this.drain()
    return this.stopped
  }

  private async drain(): Promise<void> {
    this.draining = true
    this.drainSignal.abort()
    this.options.log('daemon: draining')
    clearTimeout(this.scanTimer)
    this.rulesWatcher?.close()
    this.socketServer?.close()
    await this.http?.close()
    await this.sources?.stop()
    await Promise.all(this.running.values())
    this.flushNow()
    for (const request of this.blocked.splice(0)) request.reject(queueFull(request, 'the daemon is stopping'))
    for (const waiting of this.waits.values()) for (const controller of waiting.values()) controller.abort()
    clearTimeout(this.blockedTimer)
    for (const client of this.clients) client.destroy()
    const paths = daemonPaths(this.options.home)
    if (this.socketServer?.listening !== false) rmSync(paths.socket, {force: true})
    rmSync(paths.state, {force: true})
    releasePidFile(this.options.home)
    for (const opened of this.subscriptions.values()) await (await opened.catch(() => undefined))?.close()
    await this.broker.close()
    if (this.broker !== this.local) await this.local.close()
    this.options.log('daemon: stopped')
  }

  status(): DaemonStatus {
    const paths = daemonPaths(this.options.home)
    return {
      pid: process.pid,
      version: this.options.version,
      startedAt: new Date(this.startedAt).toISOString(),
      uptimeMs: Math.round(monotonicNow() - this.startedAt),
      home: this.options.home,
      broker: this.brokerName,
      socket: paths.socket,
      http: this.http?.listening ? this.http.address() : null,
      rules: {
        path: this.rules.path,
        rules: this.rules.validated.rules.length,
        sources: this.rules.validated.sources.length,
        ...(this.rulesError ? {error: this.rulesError} : {}),
      },
      counts: {
        ...this.metrics.counts,
        inFlightEvents: this.running.size,
        pendingEvents: this.queue.length + this.blocked.length,
      },
    }
  }

  // ---- the local socket

  private serve(socket: Socket): void {
    this.clients.add(socket)
    socket.on('close', () => {
      this.clients.delete(socket)
      // A client that went away no longer waits for its blocked publish, nor for messages.
      this.blocked = this.blocked.filter((request) => request.socket !== socket)
      for (const controller of this.waits.get(socket)?.values() ?? []) controller.abort()
      this.waits.delete(socket)
    })
    socket.on('error', () => {})
    const reply = (message: Reply) => {
      if (socket.destroyed) return
      let line: string
      try {
        line = JSON.stringify(message)
      } catch (error) {
        line = JSON.stringify({id: message.id, error: errorReply(error)})
      }
      socket.write(`${line}\n`)
    }
    onJsonLines(
      socket,
      (value) => {
        // A peer may send any JSON: a frame that is not a request gets an error, never a crash.
        let request: Request
        try {
          request = parseRequest(value)
        } catch (error) {
          return reply({id: frameId(value), error: errorReply(error)})
        }
        this.handle(request, socket).then(
          (result) => reply({id: request.id, result}),
          (error) => reply({id: request.id, error: errorReply(error)}),
        )
      },
      (problem) => {
        reply({id: null, error: {code: 'bad_request', message: problem.message, exitCode: 2}})
        if (problem.fatal) closeAfterReply(socket)
      },
    )
  }

  private async handle(request: Request, socket: Socket): Promise<unknown> {
    if (HOLDER_OPS.has(request.op) && request.broker !== this.brokerName) {
      throw new InvalidInputError(
        `the daemon of ${this.options.home} serves ${this.brokerName}, not ${String(request.broker)}`,
        {
          hint: `stop it (\`mq daemon stop\`) and start it for this broker, or use another MQ_HOME`,
        },
      )
    }
    switch (request.op) {
      case 'receive':
        return this.holdReceive(request, socket)
      case 'ack':
        return this.broker.ack(request.receipts as string[])
      case 'nack':
        return this.broker.nack(request.receipts as string[], (request.options ?? {}) as NackOptions)
      case 'extend':
        return this.broker.extend(request.receipts as string[], request.byMs as number)
      case 'still-leased':
        return this.broker.stillLeased(request.receipts as string[])
      case 'cancel':
        this.waits
          .get(socket)
          ?.get(request.request as number)
          ?.abort()
        return {cancelled: true}
      case 'status':
        return this.status()
      case 'publish':
        return this.publish({
          name: request.name as string,
          messages: request.messages as OutgoingMessage[],
          options: (request.options ?? {}) as PublishOptions,
          socket,
        })
      case 'trigger': {
        const event = validateEvent(request.event)
        if (request.wait) return this.runNow(event)
        return {...(await this.accept(event)), queued: true}
      }
      default:
        throw new InvalidInputError(`unknown request "${String(request.op)}"`)
    }
  }

  // ---- the receipt holder

  /**
   * A manual-ack receive for a client, for brokers whose receipts only the connection that
   * received can settle (amqp:// delivery tags belong to one channel): the daemon's connection
   * holds the leases, and the receipts it hands out are settled through it (`ack`, `nack`,
   * `extend`). If the daemon dies, the broker gives its unsettled deliveries back to the queue.
   */
  private async holdReceive(request: Request, socket: Socket): Promise<Delivery[]> {
    if (this.draining) throw new DaemonUnavailableError('the daemon is stopping')
    const given = request.options as Pick<ReceiveOptions, 'max' | 'visibilityTimeoutMs' | 'waitMs' | 'pollIntervalMs'>
    const controller = new AbortController()
    let waiting = this.waits.get(socket)
    if (!waiting) this.waits.set(socket, (waiting = new Map()))
    waiting.set(request.id, controller)
    let deliveries: Delivery[]
    try {
      const options: ReceiveOptions = {
        max: given.max,
        visibilityTimeoutMs: given.visibilityTimeoutMs,
        waitMs: given.waitMs,
        pollIntervalMs: given.pollIntervalMs,
        autoAck: false,
        signal: controller.signal,
      }
      const durable = request.subscription as {pattern: string; durable: string} | undefined
      deliveries = durable
        ? await (await this.durableSubscription(durable)).receive(options)
        : await this.broker.receive(request.queue as string, options)
    } finally {
      waiting.delete(request.id)
    }
    // Nobody to hand them to (the client went away or cancelled): they go back to the queue now
    // rather than when their leases run out.
    if (controller.signal.aborted || socket.destroyed) {
      const receipts = deliveries.flatMap((d) => (d.receipt ? [d.receipt] : []))
      if (receipts.length > 0) await this.broker.nack(receipts)
      return []
    }
    this.metrics.counts.held += deliveries.length
    return deliveries
  }

  /**
   * A durable subscription the daemon receives from for its clients (created by the client's
   * `subscribe`, resumed here by name), opened once and kept until the daemon stops.
   */
  private durableSubscription(given: {pattern: string; durable: string}): Promise<Subscription> {
    let opened = this.subscriptions.get(given.durable)
    if (!opened) {
      opened = this.broker.subscribe(given.pattern, {durable: given.durable})
      this.subscriptions.set(given.durable, opened)
      opened.catch(() => this.subscriptions.delete(given.durable))
    }
    return opened.then((subscription) => {
      if (subscription.pattern !== given.pattern) {
        throw new InvalidInputError(
          `durable subscription ${given.durable} has pattern ${subscription.pattern}, not ${given.pattern}`,
          {code: 'pattern_differs'},
        )
      }
      return subscription
    })
  }

  // ---- group commit

  /** Queues a publish for the next group commit; resolves once it is durable. */
  publish(request: {
    name: string
    messages: OutgoingMessage[]
    options: Omit<PublishOptions, 'signal'>
    socket?: Socket
  }): Promise<PublishResult[]> {
    if (this.draining) return Promise.reject(new DaemonUnavailableError('the daemon is stopping'))
    // A broker without group commit (nats://) takes each publish as it comes, blocking itself.
    if (!isGroupPublisher(this.broker)) {
      this.metrics.counts.published++
      return this.broker.publish(request.name, request.messages, request.options)
    }
    return new Promise((resolve, reject) => {
      this.queue.push({
        ...request,
        done: [],
        total: request.messages.length,
        deadline: monotonicNow() + (request.options.blockTimeoutMs ?? Number.POSITIVE_INFINITY),
        resolve,
        reject,
      })
      if (!this.flushScheduled) {
        this.flushScheduled = true
        // Everything that arrives while this commit runs waits for the next one: the batches grow
        // with the load, and each client still gets its answer after one fsync.
        setImmediate(() => this.flushNow())
      }
    })
  }

  private flushNow(): void {
    this.flushScheduled = false
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, GROUP_MAX)
      let outcomes
      try {
        outcomes = (this.broker as Broker & GroupPublisher).publishGroup(batch)
      } catch (error) {
        for (const request of batch) request.reject(error)
        continue
      }
      outcomes.forEach((outcome, index) => {
        const request = batch[index]
        if ('error' in outcome) return request.reject(outcome.error)
        this.metrics.counts.published++
        for (const result of outcome.results) request.done.push(result)
        if (outcome.rest.length === 0) return request.resolve(request.done)
        request.messages = outcome.rest
        if (monotonicNow() >= request.deadline || this.draining)
          request.reject(queueFull(request, outcome.full ?? 'the queue is full'))
        else this.blocked.push(request)
      })
    }
    if (this.blocked.length > 0 && !this.blockedTimer) {
      this.blockedTimer = setTimeout(() => {
        this.blockedTimer = undefined
        this.queue.push(...this.blocked.splice(0))
        this.flushNow()
      }, BLOCKED_RETRY_MS)
    }
  }

  // ---- events

  /**
   * Journals a handed-over event as pending and wakes the runner; durable before it returns.
   * Events arriving together (HTTP, sources, triggers) share one transaction, like publishes.
   */
  accept(event: CloudEvent): Promise<{seq: number; duplicateOf?: number}> {
    if (this.draining) return Promise.reject(new DaemonUnavailableError('the daemon is stopping'))
    return new Promise((resolve, reject) => {
      this.accepting.push({event, resolve, reject})
      if (this.accepting.length === 1) setImmediate(() => void this.flushAccepted())
    })
  }

  private async flushAccepted(): Promise<void> {
    const batch = this.accepting.splice(0)
    try {
      const results = await this.engine.acceptMany(batch.map((b) => b.event))
      let fresh = false
      batch.forEach((b, index) => {
        const result = results[index]
        if ('error' in result) return b.reject(result.error)
        this.metrics.counts.eventsAccepted++
        if (result.duplicateOf === undefined) fresh = true
        b.resolve(result)
      })
      if (fresh) setImmediate(() => this.scan())
    } catch (error) {
      for (const b of batch) b.reject(error)
    }
  }

  /** `trigger --wait` through the daemon: journal, run, answer with the summary. Drain waits for it. */
  private async runNow(event: CloudEvent): Promise<TriggerSummary> {
    if (this.draining) throw new DaemonUnavailableError('the daemon is stopping')
    const accepted = await this.engine.accept(event, true)
    if (accepted.duplicateOf !== undefined) return this.engine.handle(event) // re-runs an abandoned one, or reports the duplicate
    const task = this.engine.process(accepted.seq, event)
    const tracked = task.then(
      (summary) => this.finished(summary),
      () => {},
    )
    this.running.set(
      accepted.seq,
      tracked.finally(() => this.running.delete(accepted.seq)),
    )
    return task
  }

  /** An event is done (or handed back by a shutdown): count it and log it. */
  private finished(summary: TriggerSummary): void {
    this.metrics.recordSummary(summary)
    if (!summary.actions.some((a) => a.outcome === 'interrupted')) this.options.log(eventLogLine(summary))
  }

  /** Claims pending events up to the concurrency limit and runs them. */
  private scan(): void {
    clearTimeout(this.scanTimer)
    if (this.draining) return
    const free = EVENT_CONCURRENCY - this.running.size
    const next = () => {
      if (!this.draining) this.scanTimer = setTimeout(() => this.scan(), EVENT_SCAN_MS)
    }
    if (free <= 0) return next()
    this.engine.claimPending(free).then(
      (records) => {
        for (const record of records) {
          const task = this.engine
            .process(record.seq, record.event)
            .then((summary) => this.finished(summary))
            .catch((error) => this.options.log(`event #${record.seq}: ${(error as Error).message}`))
            .finally(() => {
              this.running.delete(record.seq)
              this.metrics.counts.eventsProcessed++
              if (!this.draining) setImmediate(() => this.scan())
            })
          this.running.set(record.seq, task)
        }
        next()
      },
      (error) => {
        this.options.log(`cannot claim events: ${(error as Error).message}`)
        next()
      },
    )
  }

  // ---- rules and sources

  private startSources(): void {
    const {sources, schedules} = this.rules.validated
    if (sources.length === 0) return
    const journal = this.local.journal
    this.sources = startSources(sources, schedules, {
      emit: async (event) => void (await this.accept(event)),
      state: {
        load: (name) => journal.loadSourceState(name),
        save: (name, state) => journal.saveSourceState(name, state),
      },
      signal: this.force.signal,
      log: this.options.log,
      baseDir: this.rules.dir,
    })
  }

  /** Reloads the rules document when it changes; an invalid edit is refused and the old rules stay. */
  private watchRules(): void {
    const file = basename(this.options.rulesPath)
    let timer: NodeJS.Timeout | undefined
    const reload = async () => {
      let next: LoadedRules
      try {
        next = await readRules(this.options.rulesPath)
      } catch (error) {
        this.rulesError = isMqError(error) ? error.line : String(error)
        this.options.log(`rules: refused the edit, keeping the previous rules: ${this.rulesError}`)
        return
      }
      this.rulesError = undefined
      const sourcesChanged =
        JSON.stringify(next.validated.document.sources ?? []) !==
        JSON.stringify(this.rules.validated.document.sources ?? [])
      this.rules = next
      this.engine.setRules(next.validated, next.dir)
      if (sourcesChanged) {
        await this.sources?.stop()
        this.sources = undefined
        if (!this.draining) this.startSources()
      }
      this.options.log(
        `rules: reloaded ${next.path} (${next.validated.rules.length} rules, ${next.validated.sources.length} sources)`,
      )
    }
    try {
      this.rulesWatcher = watch(dirname(this.options.rulesPath), {persistent: false}, (_event, name) => {
        if (name !== null && String(name) !== file) return
        clearTimeout(timer)
        timer = setTimeout(() => void reload(), 100) // editors write in several steps
      })
    } catch (error) {
      this.options.log(
        `rules: cannot watch ${this.options.rulesPath} for edits (${(error as Error).message}); restart the daemon after editing`,
      )
    }
  }

  private async removeStaleSocket(path: string): Promise<void> {
    if (!existsSync(path)) return
    try {
      const socket = await connect(path, 200)
      socket.destroy()
      throw new InvalidInputError(`another process serves ${path}`, {hint: 'see `mq daemon status`'})
    } catch (error) {
      if (error instanceof InvalidInputError) throw error
      rmSync(path, {force: true}) // left by a daemon that crashed
    }
  }
}

function queueFull(request: QueuedPublish, why: string): QueueFullError {
  const waited =
    Number.isFinite(request.options.blockTimeoutMs) && request.options.blockTimeoutMs !== undefined
      ? ` for ${formatDuration(request.options.blockTimeoutMs)}`
      : ''
  const error = new QueueFullError(`${why} and stayed full${waited}`, {
    hint: `${request.done.length} of ${request.total} messages were published; wait longer with --wait, or let consumers catch up`,
  })
  error.published = request.done
  return error
}

function errorReply(error: unknown): NonNullable<Reply['error']> {
  if (isMqError(error)) {
    return {
      code: error.code,
      message: error.line,
      exitCode: error.exitCode,
      ...(error instanceof QueueFullError ? {published: error.published} : {}),
    }
  }
  return {code: 'internal', message: `daemon error: ${(error as Error)?.message ?? String(error)}`, exitCode: 1}
}

/** How long a peer cut off for a bad frame has to read the error before its connection is dropped. */
const CUT_OFF_GRACE_MS = 10_000

/**
 * Ends a connection after the error reply: the rest of what the peer sends is read and dropped
 * until it closes its side, or the grace time ends. Destroying at once would reset a peer still
 * writing, and it would lose the error reply it had not read yet.
 */
function closeAfterReply(socket: Socket): void {
  socket.end()
  const timer = setTimeout(() => socket.destroy(), CUT_OFF_GRACE_MS)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
}
