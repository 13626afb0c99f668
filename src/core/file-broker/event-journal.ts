import type {CloudEvent} from '../engine/cloudevents.js'
import type {ActionRun, EventFilter, EventJournal, EventRecord, EventStatus, RuleActivity} from '../engine/journal.js'
import {LIMIT, type Sql} from './sql.js'

interface EventRow {
  seq: number
  envelope: string
  received_at: number
  status: EventStatus
  rules: string
}

interface RunRow {
  event_seq: number
  rule: string
  action: number
  action_type: string
  target: string
  attempt: number
  started_at: number
  duration_ms: number
  outcome: ActionRun['outcome']
  exit_code: number | null
  http_status: number | null
  error: string | null
  output_tail: string | null
}

/** The engine's journal in the broker's SQLite database. */
export class SqliteEventJournal implements EventJournal {
  constructor(private readonly sql: Sql) {}

  async record(
    event: CloudEvent,
    dedupWindowMs: number,
    claim?: {owner: string; leaseMs: number},
  ): Promise<{seq: number; duplicateOf?: number}> {
    return this.sql.write(() => this.recordOne(event, dedupWindowMs, claim))
  }

  async recordMany(
    events: CloudEvent[],
    dedupWindowMs: number,
  ): Promise<({seq: number; duplicateOf?: number} | {error: unknown})[]> {
    // Events from different clients share the transaction: a savepoint each keeps one client's
    // failure from undoing (or failing) the others', as publishes do.
    return this.sql.write(() =>
      events.map((event) => {
        try {
          return this.sql.savepoint(() => this.recordOne(event, dedupWindowMs))
        } catch (error) {
          return {error}
        }
      }),
    )
  }

  /** Call inside a write transaction. */
  private recordOne(
    event: CloudEvent,
    dedupWindowMs: number,
    claim?: {owner: string; leaseMs: number},
  ): {seq: number; duplicateOf?: number} {
    {
      const now = Date.now()
      const seen = this.sql
        .q('SELECT seq, expires_at FROM event_dedup WHERE source = ? AND event_id = ?')
        .get(event.source, event.id) as {seq: number; expires_at: number} | undefined
      if (seen && seen.expires_at > now) return {seq: seen.seq, duplicateOf: seen.seq}
      const seq = Number(
        this.sql
          .q(
            "INSERT INTO events (event_id, source, type, received_at, envelope, status, claim_owner, claim_expires) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
          )
          .run(
            event.id,
            event.source,
            event.type,
            now,
            JSON.stringify(event),
            claim?.owner ?? null,
            claim ? now + claim.leaseMs : null,
          ).lastInsertRowid,
      )
      this.sql
        .q(
          'INSERT INTO event_dedup (source, event_id, seq, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET seq = excluded.seq, expires_at = excluded.expires_at',
        )
        .run(event.source, event.id, seq, now + dedupWindowMs)
      this.sql
        .q(
          'DELETE FROM event_dedup WHERE (source, event_id) IN (SELECT source, event_id FROM event_dedup WHERE expires_at <= ? LIMIT 64)',
        )
        .run(now)
      return {seq}
    }
  }

  async claimPending(owner: string, leaseMs: number, limit: number): Promise<EventRecord[]> {
    return this.sql.write(() => {
      const now = Date.now()
      const rows = this.sql
        .q(
          `UPDATE events SET claim_owner = ?, claim_expires = ? WHERE seq IN (
             SELECT seq FROM events WHERE status = 'pending' AND (claim_owner IS NULL OR claim_expires <= ?) ORDER BY status, received_at ${LIMIT})
           RETURNING seq, envelope, received_at, status, rules`,
        )
        .all(owner, now + leaseMs, now, limit) as EventRow[]
      return rows.map(toRecord).sort((a, b) => a.seq - b.seq)
    })
  }

  async renewClaim(seq: number, owner: string, leaseMs: number): Promise<void> {
    this.sql.write(() =>
      this.sql
        .q('UPDATE events SET claim_expires = ? WHERE seq = ? AND claim_owner = ?')
        .run(Date.now() + leaseMs, seq, owner),
    )
  }

  async releaseClaim(seq: number, owner: string): Promise<void> {
    this.sql.write(() =>
      this.sql
        .q('UPDATE events SET claim_owner = NULL, claim_expires = NULL WHERE seq = ? AND claim_owner = ?')
        .run(seq, owner),
    )
  }

  async reclaim(
    seq: number,
    owner: string,
    leaseMs: number,
    isOwnerAlive: (owner: string) => boolean,
  ): Promise<boolean> {
    return this.sql.write(() => {
      const now = Date.now()
      const row = this.sql.q('SELECT status, claim_owner, claim_expires FROM events WHERE seq = ?').get(seq) as
        {status: string; claim_owner: string | null; claim_expires: number | null} | undefined
      if (!row || row.status !== 'pending') return false
      const held = row.claim_owner !== null && (row.claim_expires ?? 0) > now && isOwnerAlive(row.claim_owner)
      if (held) return false
      this.sql.q('UPDATE events SET claim_owner = ?, claim_expires = ? WHERE seq = ?').run(owner, now + leaseMs, seq)
      return true
    })
  }

  async releaseOrphanedClaims(isOwnerAlive: (owner: string) => boolean): Promise<number> {
    return this.sql.write(() => {
      const claimed = this.sql
        .q("SELECT seq, claim_owner FROM events WHERE status = 'pending' AND claim_owner IS NOT NULL")
        .all() as {seq: number; claim_owner: string}[]
      const orphaned = claimed.filter((row) => !isOwnerAlive(row.claim_owner))
      for (const row of orphaned)
        this.sql.q('UPDATE events SET claim_owner = NULL, claim_expires = NULL WHERE seq = ?').run(row.seq)
      return orphaned.length
    })
  }

  async finish(seq: number, status: EventStatus, rules: string[]): Promise<void> {
    this.sql.write(() =>
      this.sql
        .q('UPDATE events SET status = ?, rules = ?, claim_owner = NULL, claim_expires = NULL WHERE seq = ?')
        .run(status, JSON.stringify(rules), seq),
    )
  }

  async recordRun(run: ActionRun): Promise<void> {
    this.sql.write(() =>
      this.sql
        .q(
          `INSERT INTO action_runs (event_seq, rule, action, action_type, target, attempt, started_at, duration_ms, outcome, exit_code, http_status, error, output_tail)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          run.eventSeq,
          run.rule,
          run.action,
          run.actionType,
          run.target,
          run.attempt,
          run.startedAt,
          run.durationMs,
          run.outcome,
          run.exitCode ?? null,
          run.httpStatus ?? null,
          run.error ?? null,
          run.outputTail ?? null,
        ),
    )
  }

  async list(filter: EventFilter): Promise<EventRecord[]> {
    return this.sql.read(() => {
      const where: string[] = []
      const params: unknown[] = []
      const add = (clause: string, value: unknown) => {
        if (value === undefined) return
        where.push(clause)
        params.push(value)
      }
      add('type = ?', filter.type)
      add('status = ?', filter.status)
      add('received_at >= ?', filter.since)
      add('seq > ?', filter.afterSeq)
      add('seq IN (SELECT event_seq FROM action_runs WHERE rule = ?)', filter.rule)
      const order = filter.ascending ? 'ASC' : 'DESC'
      const rows = this.sql
        .q(
          `SELECT seq, envelope, received_at, status, rules FROM events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq ${order} ${LIMIT}`,
        )
        .all(...params, filter.limit) as EventRow[]
      return rows.map(toRecord)
    })
  }

  async get(seqOrId: string): Promise<EventRecord | undefined> {
    return this.sql.read(() => {
      const bySeq = /^\d{1,15}$/.test(seqOrId)
        ? (this.sql
            .q('SELECT seq, envelope, received_at, status, rules FROM events WHERE seq = ?')
            .get(Number(seqOrId)) as EventRow | undefined)
        : undefined
      const row =
        bySeq ??
        (this.sql
          .q(
            'SELECT seq, envelope, received_at, status, rules FROM events WHERE event_id = ? ORDER BY seq DESC LIMIT 1',
          )
          .get(seqOrId) as EventRow | undefined)
      return row && toRecord(row)
    })
  }

  async runs(seq: number): Promise<ActionRun[]> {
    return this.sql.read(() =>
      (this.sql.q('SELECT * FROM action_runs WHERE event_seq = ? ORDER BY id').all(seq) as RunRow[]).map((row) => ({
        eventSeq: row.event_seq,
        rule: row.rule,
        action: row.action,
        actionType: row.action_type,
        target: row.target,
        attempt: row.attempt,
        startedAt: row.started_at,
        durationMs: row.duration_ms,
        outcome: row.outcome,
        exitCode: row.exit_code ?? undefined,
        httpStatus: row.http_status ?? undefined,
        error: row.error ?? undefined,
        outputTail: row.output_tail ?? undefined,
      })),
    )
  }

  async ruleActivity(afterId: number): Promise<{lastId: number; rules: RuleActivity[]}> {
    return this.sql.read(() => {
      // A range of the primary key: after the first call, only the attempts since the last one.
      const rows = this.sql
        .q(
          `SELECT rule, sum(action = 0 AND attempt <= 1) AS matches, sum(attempt > 0) AS attempts,
             sum(outcome IN ('failed', 'dead-lettered')) AS failures, sum(outcome = 'dead-lettered') AS dead_lettered,
             sum(CASE WHEN attempt > 0 THEN duration_ms ELSE 0 END) AS duration_ms, max(duration_ms) AS max_duration_ms,
             max(started_at) AS last_at, max(id) AS last_id
           FROM action_runs WHERE id > ? GROUP BY rule`,
        )
        .all(afterId) as {
        rule: string
        matches: number
        attempts: number
        failures: number
        dead_lettered: number
        duration_ms: number
        max_duration_ms: number
        last_at: number
        last_id: number
      }[]
      return {
        lastId: Math.max(afterId, ...rows.map((r) => r.last_id)),
        rules: rows.map((r) => ({
          rule: r.rule,
          matches: r.matches,
          attempts: r.attempts,
          failures: r.failures,
          deadLettered: r.dead_lettered,
          durationMs: r.duration_ms,
          maxDurationMs: r.max_duration_ms,
          lastAt: r.last_at,
        })),
      }
    })
  }

  async lockRule(rule: string, owner: string, leaseMs: number): Promise<boolean> {
    return this.sql.write(() => {
      const now = Date.now()
      const info = this.sql
        .q(
          `INSERT INTO rule_locks (rule, owner, expires_at) VALUES (?, ?, ?)
           ON CONFLICT (rule) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
           WHERE rule_locks.owner = excluded.owner OR rule_locks.expires_at <= ?`,
        )
        .run(rule, owner, now + leaseMs, now)
      return info.changes === 1
    })
  }

  async unlockRule(rule: string, owner: string): Promise<void> {
    this.sql.write(() => this.sql.q('DELETE FROM rule_locks WHERE rule = ? AND owner = ?').run(rule, owner))
  }

  async loadSourceState(name: string): Promise<unknown> {
    const row = this.sql.read(
      () => this.sql.q('SELECT state FROM source_state WHERE name = ?').get(name) as {state: string} | undefined,
    )
    return row ? JSON.parse(row.state) : undefined
  }

  async saveSourceState(name: string, state: unknown): Promise<void> {
    this.sql.write(() =>
      this.sql
        .q('INSERT INTO source_state (name, state) VALUES (?, ?) ON CONFLICT DO UPDATE SET state = excluded.state')
        .run(name, JSON.stringify(state)),
    )
  }
}

function toRecord(row: EventRow): EventRecord {
  return {
    seq: row.seq,
    event: JSON.parse(row.envelope) as CloudEvent,
    receivedAt: row.received_at,
    status: row.status,
    rules: JSON.parse(row.rules) as string[],
  }
}
