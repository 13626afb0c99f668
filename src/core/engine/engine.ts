import {randomBytes} from 'node:crypto'

import {backoffDelayMs} from '../backoff.js'
import type {Broker} from '../broker.js'
import {monotonicNow} from '../clock.js'
import {isProcessAlive} from '../process-alive.js'
import {sleep} from '../rate-limiter.js'
import {type ActionResult, describeAction, runAction} from './actions.js'
import type {CloudEvent} from './cloudevents.js'
import type {EventJournal, RunOutcome} from './journal.js'
import {RuleMatcher} from './matcher.js'
import type {Rule, ValidatedDocument} from './rules.js'

/** How long a serial or drop rule's lease lasts before it must be renewed. */
const RULE_LEASE_MS = 30_000
/** How long a claim on a pending event lasts before it must be renewed (else another runner takes it). */
export const EVENT_CLAIM_MS = 60_000
/** How often a serial rule waiting for its lease tries again. */
const LOCK_POLL_MS = 50

export interface ActionSummary {
  rule: string
  action: number
  type: string
  target: string
  /** `interrupted`: the runner stopped (daemon shutdown) before the action was done; the event runs again later. */
  outcome: Exclude<RunOutcome, 'failed'> | 'interrupted'
  attempts: number
  exitCode?: number
  httpStatus?: number
  error?: string
  /** The action's program could not start (not found, not executable); it was not retried. */
  cannotStart?: true
  durationMs: number
}

export interface TriggerSummary {
  seq: number
  id: string
  type: string
  source: string
  /** Set when the same source and id were seen within the dedup window: nothing ran. */
  duplicateOf?: number
  matched: string[]
  actions: ActionSummary[]
  /** Every action succeeded (or was dropped by its rule's concurrency). */
  ok: boolean
  durationMs: number
}

/** Claim owners are `<pid>.<random>`: alive while that process is. */
function isOwnerAlive(owner: string): boolean {
  return isProcessAlive(Number(owner.split('.')[0]))
}

/** Whole milliseconds since `start` on the monotonic clock. */
function elapsedSince(start: number): number {
  return Math.round(monotonicNow() - start)
}

function duplicateSummary(event: CloudEvent, seq: number, duplicateOf: number, started: number): TriggerSummary {
  return {
    seq,
    id: event.id,
    type: event.type,
    source: event.source,
    duplicateOf,
    matched: [],
    actions: [],
    ok: true,
    durationMs: elapsedSince(started),
  }
}

export interface EngineOptions {
  broker: Broker
  journal: EventJournal
  rules: ValidatedDocument
  /** Relative paths in actions resolve against it (the rules file's folder). */
  baseDir: string
  env?: NodeJS.ProcessEnv
  /** Where `log` actions print. */
  log(line: string): void
  /** Where exec actions' output is copied (e.g. stderr). */
  output?: NodeJS.WritableStream
  /** Aborted to stop running actions at once (a forced shutdown). */
  signal?: AbortSignal
  /** Aborted to stop waiting between retries (a graceful shutdown): the event is handed back. */
  drain?: AbortSignal
  /** Told each action's outcome once it is settled (the daemon logs it). */
  onAction?(seq: number, event: CloudEvent, action: ActionSummary): void
}

/**
 * Matches events against rules and runs the actions of every rule that matches: each action at
 * least once, retried with exponential backoff and jitter up to the rule's attempts and age,
 * journalled attempt by attempt; an action that gives up leaves a dead-letter record.
 */
export class Engine {
  private readonly owner = `${process.pid}.${randomBytes(4).toString('hex')}`
  private runs = 0
  private matcher: RuleMatcher

  constructor(private readonly options: EngineOptions) {
    this.matcher = new RuleMatcher(options.rules.rules)
  }

  /** Swaps in a newly loaded rules document (the daemon reloads it when the file changes). */
  setRules(rules: ValidatedDocument, baseDir: string): void {
    this.options.rules = rules
    this.options.baseDir = baseDir
    this.matcher = new RuleMatcher(rules.rules)
  }

  /** Gives a claimed event back, so another runner takes it at once (on a forced shutdown). */
  release(seq: number): Promise<void> {
    return this.options.journal.releaseClaim(seq, this.owner)
  }

  /** The enabled rules whose pattern matches (optionally only the rule named). */
  match(event: CloudEvent, onlyRule?: string): Rule[] {
    if (onlyRule === undefined) return this.matcher.match(event)
    return this.options.rules.rules.filter(
      (rule) => rule.enabled && rule.name === onlyRule && rule.pattern.matches(event),
    )
  }

  /** Journals an event (unless a duplicate) and runs the matching rules. */
  async handle(event: CloudEvent): Promise<TriggerSummary> {
    const started = monotonicNow()
    const accepted = await this.accept(event, true)
    if (accepted.duplicateOf !== undefined) {
      // A repeat of an event whose runner died before finishing it (e.g. a killed trigger): run it now.
      if (await this.options.journal.reclaim(accepted.duplicateOf, this.owner, EVENT_CLAIM_MS, isOwnerAlive)) {
        return this.process(accepted.duplicateOf, event, started)
      }
      return duplicateSummary(event, accepted.seq, accepted.duplicateOf, started)
    }
    return this.process(accepted.seq, event, started)
  }

  /**
   * Journals an event as pending (unless a duplicate of one within the dedup window). With `claim`
   * this process holds it; otherwise it waits for a runner (the daemon) to claim it.
   */
  accept(event: CloudEvent, claim: boolean): Promise<{seq: number; duplicateOf?: number}> {
    return this.options.journal.record(
      event,
      this.options.rules.dedupWindowMs,
      claim ? {owner: this.owner, leaseMs: EVENT_CLAIM_MS} : undefined,
    )
  }

  /** Journals several events as pending in one transaction (the daemon's group commit); each fails alone. */
  acceptMany(events: CloudEvent[]): Promise<({seq: number; duplicateOf?: number} | {error: unknown})[]> {
    return this.options.journal.recordMany(events, this.options.rules.dedupWindowMs)
  }

  /** Runs a journalled, claimed event through the rules, keeping the claim alive meanwhile. */
  async process(seq: number, event: CloudEvent, started = monotonicNow()): Promise<TriggerSummary> {
    const renew = setInterval(
      () => void this.options.journal.renewClaim(seq, this.owner, EVENT_CLAIM_MS).catch(() => {}),
      EVENT_CLAIM_MS / 3,
    )
    try {
      const summary = await this.run(seq, event, this.match(event), started)
      // Interrupted by a shutdown: hand the event back so the next runner does it again.
      if (summary.actions.some((a) => a.outcome === 'interrupted'))
        await this.options.journal.releaseClaim(seq, this.owner)
      return summary
    } finally {
      clearInterval(renew)
    }
  }

  /** Gives back events claimed by runners that died (their owner names their pid). */
  releaseOrphans(): Promise<number> {
    return this.options.journal.releaseOrphanedClaims(isOwnerAlive)
  }

  /** Claims pending events for this engine (the daemon's queue of handed-over events). */
  claimPending(limit: number) {
    return this.options.journal.claimPending(this.owner, EVENT_CLAIM_MS, limit)
  }

  /** Runs a journalled event through the current rules again (replay); no dedup. */
  async replay(seq: number, event: CloudEvent, onlyRule?: string): Promise<TriggerSummary> {
    // The replay's attempts are journalled under the event; its original outcome stays as it was.
    return this.run(seq, event, this.match(event, onlyRule), monotonicNow(), false)
  }

  /** `started` is on the monotonic clock. */
  private async run(
    seq: number,
    event: CloudEvent,
    rules: Rule[],
    started: number,
    settle = true,
  ): Promise<TriggerSummary> {
    const actions = (await Promise.all(rules.map((rule) => this.runRule(rule, event, seq)))).flat()
    const ok = actions.every((a) => a.outcome !== 'dead-lettered' && a.outcome !== 'interrupted')
    if (actions.some((a) => a.outcome === 'interrupted')) settle = false // it stays pending
    if (settle)
      await this.options.journal.finish(
        seq,
        rules.length === 0 ? 'unmatched' : ok ? 'done' : 'failed',
        rules.map((r) => r.name),
      )
    return {
      seq,
      id: event.id,
      type: event.type,
      source: event.source,
      matched: rules.map((r) => r.name),
      actions,
      ok,
      durationMs: elapsedSince(started),
    }
  }

  /** One rule: its concurrency mode decides whether to wait for, skip, or ignore other runs. */
  private async runRule(rule: Rule, event: CloudEvent, seq: number): Promise<ActionSummary[]> {
    if (rule.concurrency === 'parallel') return this.runActions(rule, event, seq)
    const {journal} = this.options
    // A lease per run, so two events in one process are serialised as well as two processes.
    const owner = `${this.owner}.${++this.runs}`
    let locked = await journal.lockRule(rule.name, owner, RULE_LEASE_MS)
    if (!locked && rule.concurrency === 'drop')
      return this.skipActions(rule, event, seq, 'dropped', 'the rule was already running (concurrency: drop)')
    const deadline = monotonicNow() + rule.retry.maxAgeMs
    while (!locked && monotonicNow() < deadline && !this.options.signal?.aborted) {
      await sleep(LOCK_POLL_MS, this.options.signal)
      locked = await journal.lockRule(rule.name, owner, RULE_LEASE_MS)
    }
    // Serial means serial: rather than run alongside another run, give up like a failed delivery.
    if (!locked)
      return this.skipActions(
        rule,
        event,
        seq,
        'dead-lettered',
        `the rule stayed busy for its whole retry age (${rule.retry.maxAgeMs}ms, concurrency: serial)`,
      )
    const renew = setInterval(
      () => void journal.lockRule(rule.name, owner, RULE_LEASE_MS).catch(() => {}),
      RULE_LEASE_MS / 3,
    )
    try {
      return await this.runActions(rule, event, seq)
    } finally {
      clearInterval(renew)
      await journal.unlockRule(rule.name, owner)
    }
  }

  /** Records every action of a rule as not run (dropped, or given up waiting for its turn). */
  private skipActions(
    rule: Rule,
    event: CloudEvent,
    seq: number,
    outcome: 'dropped' | 'dead-lettered',
    error: string,
  ): Promise<ActionSummary[]> {
    const now = Date.now()
    return Promise.all(
      rule.actions.map(async (action, index) => {
        const summary: ActionSummary = {
          rule: rule.name,
          action: index,
          type: action.type,
          target: describeAction(action),
          outcome,
          attempts: 0,
          durationMs: 0,
          error,
        }
        await this.options.journal.recordRun({
          eventSeq: seq,
          rule: rule.name,
          action: index,
          actionType: action.type,
          target: summary.target,
          attempt: 0,
          startedAt: now,
          durationMs: 0,
          outcome,
          error,
        })
        return this.settled(seq, event, summary)
      }),
    )
  }

  private settled(seq: number, event: CloudEvent, summary: ActionSummary): ActionSummary {
    this.options.onAction?.(seq, event, summary)
    return summary
  }

  private async runActions(rule: Rule, event: CloudEvent, seq: number): Promise<ActionSummary[]> {
    const summaries: ActionSummary[] = []
    // A rule's actions run in order; each is delivered (retried) on its own.
    for (const [index] of rule.actions.entries())
      summaries.push(this.settled(seq, event, await this.deliver(rule, index, event, seq)))
    return summaries
  }

  private async deliver(rule: Rule, index: number, event: CloudEvent, seq: number): Promise<ActionSummary> {
    const action = rule.actions[index]
    const {retry} = rule
    // Retry age and durations are elapsed time in this process (monotonic); `startedAt` in the
    // journal is a wall-clock timestamp for people.
    const first = monotonicNow()
    let result: ActionResult = {ok: false, target: describeAction(action)}
    let attempt = 0
    const stopped =
      this.options.drain && this.options.signal
        ? AbortSignal.any([this.options.drain, this.options.signal])
        : (this.options.signal ?? this.options.drain)
    const interrupted = (): ActionSummary => ({
      rule: rule.name,
      action: index,
      type: action.type,
      target: result.target,
      outcome: 'interrupted',
      attempts: attempt,
      durationMs: elapsedSince(first),
      error: 'interrupted by a shutdown',
    })
    for (;;) {
      if (stopped?.aborted) return interrupted()
      attempt++
      const startedAt = Date.now()
      const attemptStarted = monotonicNow()
      result = await runAction(action, event, {
        broker: this.options.broker,
        baseDir: this.options.baseDir,
        env: this.options.env ?? process.env,
        rule: rule.name,
        attempt,
        log: this.options.log,
        output: this.options.output,
        signal: this.options.signal,
      })
      const durationMs = elapsedSince(attemptStarted)
      const delay = backoffDelayMs(retry.backoffMs, retry.maxBackoffMs, attempt)
      const killed = !result.ok && this.options.signal?.aborted === true
      const giveUp =
        !result.ok &&
        !killed &&
        (result.cannotStart === true || attempt >= retry.maxAttempts || monotonicNow() + delay - first > retry.maxAgeMs)
      const outcome: RunOutcome = result.ok ? 'ok' : giveUp ? 'dead-lettered' : 'failed'
      await this.options.journal.recordRun({
        eventSeq: seq,
        rule: rule.name,
        action: index,
        actionType: action.type,
        target: result.target,
        attempt,
        startedAt,
        durationMs,
        outcome,
        exitCode: result.exitCode,
        httpStatus: result.httpStatus,
        error: result.error,
        outputTail: killed
          ? `${result.outputTail ?? ''}\n(stopped by a forced shutdown; it will run again)`.trim()
          : result.outputTail,
      })
      if (killed) return interrupted()
      if (outcome !== 'failed') {
        return {
          rule: rule.name,
          action: index,
          type: action.type,
          target: result.target,
          outcome,
          attempts: attempt,
          exitCode: result.exitCode,
          httpStatus: result.httpStatus,
          error: result.error,
          ...(result.cannotStart ? {cannotStart: true as const} : {}),
          durationMs: elapsedSince(first),
        }
      }
      await sleep(delay, stopped)
    }
  }
}
