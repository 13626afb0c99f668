import type {Broker, Delivery} from './broker.js'
import {monotonicNow} from './clock.js'
import {type ConsumeLoopOptions, type ReceiveFn, waitBudget} from './consumer.js'
import {cannotStartReason, firstWord} from './cannot-start.js'
import {InvalidInputError} from './errors.js'
import {runChild} from './process-group.js'

/** Exit status that dead-letters a message at once (EX_DATAERR from sysexits.h). */
export const EXIT_DEAD_LETTER = 65

export type ExecOutcome = 'acked' | 'retry' | 'dead-lettered' | 'released' | 'lease-lost'

export interface ExecEvent {
  delivery: Delivery
  outcome: ExecOutcome
  /** Exit code, or the signal name, or `timeout`. */
  status: string
  durationMs: number
  error?: string
  /** The command could not start at all (not found, not executable): the worker stops. */
  cannotStart?: string
}

export interface ExecWorkerOptions extends Omit<ConsumeLoopOptions, 'autoAck' | 'batchSize' | 'signal'> {
  /** Run through `sh -c`; the body goes to stdin, never into the command string. */
  command: string
  /** Commands running at once (≥ 1). */
  parallel: number
  /** Deliveries held at once, running or waiting to run (default and minimum: `parallel`). */
  prefetch?: number
  /** Kill a command running longer than this, and retry its message. */
  execTimeoutMs?: number
  /** Lease length; the leases of held messages are extended while they wait and run. */
  visibilityTimeoutMs: number
  /** Environment for the command, before the MQ_* variables. */
  env: NodeJS.ProcessEnv
  /** First interrupt: take no more messages, let running commands finish. */
  drain: AbortSignal
  /** Second interrupt: stop running commands and release their messages. */
  force: AbortSignal
  onEvent?: (event: ExecEvent) => void
}

export interface ExecSummary {
  received: number
  acked: number
  retried: number
  deadLettered: number
  released: number
  /** The command finished but the lease had run out (or could not be settled): it may run again. */
  leaseLost: number
}

/** Deliveries whose command did not succeed: retried, dead-lettered, or settled too late. */
export function failedDeliveries(summary: ExecSummary): number {
  return summary.retried + summary.deadLettered + summary.leaseLost
}

/** `3 deliveries: 1 acked, 1 retried, 1 dead-lettered` (counts that are zero are left out). */
export function describeExecSummary(summary: ExecSummary): string {
  const parts = [
    [summary.acked, 'acked'],
    [summary.retried, 'retried (back in the queue for a later attempt)'],
    [summary.deadLettered, 'dead-lettered'],
    [summary.leaseLost, 'finished after the lease ran out (may run again)'],
    [summary.released, 'released unfinished (interrupted)'],
  ] as const
  const counts = parts.filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}`)
  return `${summary.received} deliver${summary.received === 1 ? 'y' : 'ies'}${counts.length > 0 ? `: ${counts.join(', ')}` : ''}`
}

/**
 * Runs a command once per message with the `--exec` contract (README.md, "The `--exec` contract"): exit 0 acks, 65
 * dead-letters, anything else (a signal, a timeout) retries with backoff until max deliveries.
 * Up to `parallel` commands run at once; up to `prefetch` deliveries are held (a sliding window).
 */
export async function runExecWorker(
  broker: Broker,
  receive: ReceiveFn,
  options: ExecWorkerOptions,
): Promise<ExecSummary> {
  const summary: ExecSummary = {received: 0, acked: 0, retried: 0, deadLettered: 0, released: 0, leaseLost: 0}
  const window = Math.max(options.prefetch ?? options.parallel, options.parallel)
  const waiting: Delivery[] = []
  const running = new Map<Promise<void>, Delivery>()
  let remaining = options.count
  const clock = options.clock ?? monotonicNow
  const deadline = clock() + options.waitMs

  // One timer keeps every held lease alive, waiting or running.
  const extendEvery = Math.max(100, Math.floor(options.visibilityTimeoutMs / 3))
  const extender = setInterval(() => {
    const receipts = [...waiting, ...running.values()].map((d) => d.receipt!)
    if (receipts.length > 0) broker.extend(receipts, options.visibilityTimeoutMs).catch(() => {})
  }, extendEvery)

  // A command that cannot start fails the same way for every message: stop at once.
  let notStarted: string | undefined
  const stop = new AbortController()
  const stopReceiving = AbortSignal.any([options.drain, stop.signal])

  const startWaiting = () => {
    while (
      running.size < options.parallel &&
      waiting.length > 0 &&
      !options.force.aborted &&
      notStarted === undefined
    ) {
      const delivery = waiting.shift()!
      const task: Promise<void> = handle(broker, delivery, options).then((event) => {
        running.delete(task)
        if (event.outcome === 'acked') summary.acked++
        else if (event.outcome === 'retry') summary.retried++
        else if (event.outcome === 'dead-lettered') summary.deadLettered++
        else if (event.outcome === 'released') summary.released++
        else if (event.outcome === 'lease-lost') summary.leaseLost++
        if (event.cannotStart !== undefined && notStarted === undefined) {
          notStarted = event.cannotStart
          stop.abort()
        }
        options.onEvent?.(event)
      })
      running.set(task, delivery)
    }
  }

  try {
    while (!stopReceiving.aborted) {
      startWaiting()
      const free = Math.min(window - waiting.length - running.size, remaining)
      if (free <= 0) {
        if (running.size === 0 && waiting.length === 0) break
        await Promise.race(running.keys())
        continue
      }
      const granted = options.rate ? await options.rate.take(free, options.drain) : free
      if (granted === 0) break
      const batch = await receive({
        max: granted,
        autoAck: false,
        visibilityTimeoutMs: options.visibilityTimeoutMs,
        // Only look (do not wait) while commands run and either more are queued to start when a
        // slot frees, or this is a bounded run whose own retries may come back.
        waitMs: running.size > 0 && (waiting.length > 0 || !options.follow) ? 0 : waitBudget(options, deadline),
        pollIntervalMs: options.pollIntervalMs,
        signal: stopReceiving,
      })
      options.rate?.giveBack(granted - batch.length)
      if (batch.length === 0) {
        if (running.size > 0) await Promise.race(running.keys())
        else if (!options.follow && clock() >= deadline) break
        continue
      }
      remaining -= batch.length
      summary.received += batch.length
      waiting.push(...batch)
    }
    // Draining: deliveries not started go back at once, running commands finish (or are forced).
    if (waiting.length > 0) {
      const released = waiting.splice(0)
      const options = notStarted === undefined ? {error: 'released unstarted on shutdown'} : {uncounted: true}
      await broker
        .nack(
          released.map((d) => d.receipt!),
          options,
        )
        .catch(() => {})
      summary.released += released.length
    }
    await Promise.all(running.keys())
    if (notStarted !== undefined) {
      const error = new InvalidInputError(`--exec ${notStarted}`, {
        code: 'cannot_start',
        hint: 'fix the command; its message was released untouched (no attempt counted)',
      })
      error.details = {summary}
      throw error
    }
  } catch (error) {
    // Commands already running have done their work: let them settle before the error ends the
    // run (and closes the broker under them).
    await Promise.all(running.keys())
    throw error
  } finally {
    clearInterval(extender)
  }
  return summary
}

async function handle(broker: Broker, delivery: Delivery, options: ExecWorkerOptions): Promise<ExecEvent> {
  const started = monotonicNow()
  const receipt = delivery.receipt!
  const end = await runChild({
    argv: ['sh', '-c', options.command],
    env: {...options.env, ...messageEnvironment(delivery)},
    stdin: delivery.body,
    stdout: 'inherit',
    stderr: (chunk) => process.stderr.write(chunk),
    tail: {max: 2_000, of: ['stderr']},
    timeoutMs: options.execTimeoutMs,
    signal: options.force,
  })
  const cannotStart = cannotStartReason(end, firstWord(options.command), process.cwd())
  if (cannotStart !== undefined) {
    await broker.nack([receipt], {uncounted: true}).catch(() => {})
    return {
      delivery,
      outcome: 'released',
      status: end.started && end.code !== null ? String(end.code) : 'spawn',
      durationMs: 0,
      error: cannotStart,
      cannotStart,
    }
  }
  if (!end.started) {
    // e.g. a NUL byte in a header: this message can never run, the worker goes on with the others.
    const reason = `cannot start the command: ${end.error.message}`
    const [outcome] = await broker.nack([receipt], {backoff: true, error: reason}).catch(() => ['stale' as const])
    return {
      delivery,
      outcome: outcome === 'dead-lettered' ? 'dead-lettered' : outcome === 'stale' ? 'lease-lost' : 'retry',
      status: 'spawn',
      durationMs: 0,
      error: reason,
    }
  }
  const {timedOut, aborted: forced} = end
  const code = end.error ? 127 : end.code
  const signal = end.error ? null : end.signal
  const tail = end.error ? (end.tail + String(end.error)).slice(-2_000) : end.tail

  const durationMs = Math.round(monotonicNow() - started)
  const status = timedOut ? 'timeout' : (signal ?? String(code))
  const error = describeFailure(status, tail, options.execTimeoutMs)
  const event = (outcome: ExecOutcome, message?: string): ExecEvent => ({
    delivery,
    outcome,
    status,
    durationMs,
    error: message,
  })

  try {
    if (forced) {
      await broker.nack([receipt], {error: 'interrupted'})
      return event('released', 'interrupted')
    }
    if (code === 0 && !timedOut) {
      const [outcome] = await broker.ack([receipt])
      return outcome === 'ok' ? event('acked') : event('lease-lost', 'the lease ran out before the command finished')
    }
    const deadLetter = code === EXIT_DEAD_LETTER && !timedOut
    const [outcome] = await broker.nack([receipt], {deadLetter, backoff: !deadLetter, error})
    if (outcome === 'stale') return event('lease-lost', error)
    return event(outcome === 'dead-lettered' ? 'dead-lettered' : 'retry', error)
  } catch (settleError) {
    return event('lease-lost', `could not settle: ${(settleError as Error).message}`)
  }
}

function describeFailure(status: string, stderrTail: string, timeoutMs?: number): string {
  const last = stderrTail.trim().split('\n').slice(-3).join(' | ')
  const what =
    status === 'timeout'
      ? `timed out after ${timeoutMs}ms`
      : /^\d+$/.test(status)
        ? `exit ${status}`
        : `killed by ${status}`
  return last ? `${what}: ${last}` : what
}

/** The MQ_* environment of one message (README.md, "The `--exec` contract"). */
export function messageEnvironment(delivery: Delivery): Record<string, string> {
  const env: Record<string, string> = {
    MQ_MESSAGE_ID: delivery.id,
    MQ_ATTEMPT: String(delivery.attempt),
    MQ_PUBLISHED_AT: new Date(delivery.publishedAt).toISOString(),
  }
  if (delivery.receipt) env.MQ_RECEIPT = delivery.receipt
  if (delivery.queue) env.MQ_QUEUE = delivery.queue
  if (delivery.topic) env.MQ_TOPIC = delivery.topic
  if (delivery.subscription) env.MQ_SUBSCRIPTION = delivery.subscription
  // Every header, exactly, as JSON; and one variable per header unless two names map to the same
  // variable (`a.b` and `a_b`): then that variable is left unset rather than holding either value.
  env.MQ_HEADERS = JSON.stringify(delivery.headers)
  const claimed = new Map<string, number>()
  const variable = (name: string) => `MQ_HEADER_${name.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}`
  for (const name of Object.keys(delivery.headers)) claimed.set(variable(name), (claimed.get(variable(name)) ?? 0) + 1)
  for (const [name, value] of Object.entries(delivery.headers))
    if (claimed.get(variable(name)) === 1) env[variable(name)] = value
  return env
}
