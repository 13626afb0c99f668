import type {CloudEvent} from './cloudevents.js'

/**
 * Where the engine records events, every action attempt, dedup ids, rule locks and source state.
 * The file broker implements it in SQLite next to the messages (`file-broker/event-journal.ts`).
 */

export type EventStatus = 'pending' | 'done' | 'failed' | 'unmatched' | 'duplicate'
export type RunOutcome = 'ok' | 'failed' | 'dead-lettered' | 'dropped'

export interface EventRecord {
  seq: number
  event: CloudEvent
  receivedAt: number
  status: EventStatus
  /** Rules that matched. */
  rules: string[]
}

export interface ActionRun {
  eventSeq: number
  rule: string
  /** Index of the action in the rule. */
  action: number
  actionType: string
  /** What it ran: argv, URL, queue or file. */
  target: string
  attempt: number
  startedAt: number
  durationMs: number
  outcome: RunOutcome
  exitCode?: number
  httpStatus?: number
  error?: string
  outputTail?: string
}

/** What the journal says about one rule's actions (`mq top`): sums over a range of attempts. */
export interface RuleActivity {
  rule: string
  /** Events the rule ran for (its first action's first attempt, or its skip). */
  matches: number
  /** Action attempts made. */
  attempts: number
  /** Attempts that failed (retried or given up). */
  failures: number
  /** Actions that gave up (dead-lettered). */
  deadLettered: number
  /** Sum and most of the attempts' durations. */
  durationMs: number
  maxDurationMs: number
  /** Epoch ms of the newest attempt. */
  lastAt: number
}

export interface EventFilter {
  type?: string
  rule?: string
  status?: EventStatus
  since?: number
  /** Only events after this sequence number. */
  afterSeq?: number
  limit: number
  /** Oldest first (for replay) instead of newest first. */
  ascending?: boolean
}

export interface EventJournal {
  /**
   * Records an event, unless one with the same source and id was recorded within `dedupWindowMs`:
   * then nothing is recorded and `duplicateOf` names the first. Atomic across processes.
   */
  record(
    event: CloudEvent,
    dedupWindowMs: number,
    claim?: {owner: string; leaseMs: number},
  ): Promise<{seq: number; duplicateOf?: number}>
  /**
   * Records several events in one transaction (group commit), unclaimed. Each is recorded on its
   * own (a savepoint): one that fails comes back as `{error}` and the others are kept.
   */
  recordMany(
    events: CloudEvent[],
    dedupWindowMs: number,
  ): Promise<({seq: number; duplicateOf?: number} | {error: unknown})[]>
  /** Takes pending events nobody holds (or whose holder's lease ran out), oldest first. */
  claimPending(owner: string, leaseMs: number, limit: number): Promise<EventRecord[]>
  /** Extends the claim on an event being processed. */
  renewClaim(seq: number, owner: string, leaseMs: number): Promise<void>
  releaseClaim(seq: number, owner: string): Promise<void>
  /** Takes over a pending event whose claim ran out or whose owner died; false if it is done or held. */
  reclaim(seq: number, owner: string, leaseMs: number, isOwnerAlive: (owner: string) => boolean): Promise<boolean>
  /** Releases claims held by owners that are gone (a runner killed mid-action); returns how many. */
  releaseOrphanedClaims(isOwnerAlive: (owner: string) => boolean): Promise<number>
  /** Settles an event (and releases its claim). */
  finish(seq: number, status: EventStatus, rules: string[]): Promise<void>
  recordRun(run: ActionRun): Promise<void>
  list(filter: EventFilter): Promise<EventRecord[]>
  /** By journal sequence number, or by CloudEvent id (the newest with that id). */
  get(seqOrId: string): Promise<EventRecord | undefined>
  runs(seq: number): Promise<ActionRun[]>
  /** Per-rule sums of the attempts journalled after `afterId`, and the newest id (read on from there). */
  ruleActivity(afterId: number): Promise<{lastId: number; rules: RuleActivity[]}>
  /** Takes or renews a rule's lease; false when another live owner holds it. */
  lockRule(rule: string, owner: string, leaseMs: number): Promise<boolean>
  unlockRule(rule: string, owner: string): Promise<void>
  loadSourceState(name: string): Promise<unknown>
  saveSourceState(name: string, state: unknown): Promise<void>
}
