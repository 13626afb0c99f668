import type {TriggerSummary} from '../../core/engine/engine.js'
import {followEvents} from '../../core/engine/follow-events.js'
import type {ActionRun, EventRecord, EventStatus} from '../../core/engine/journal.js'
import {InvalidInputError, NotFoundError} from '../../core/errors.js'
import {formatDuration, parseTimeOrAgo} from '../../core/units.js'
import {defineCommand} from '../definition.js'
import {engineFor, RULES_FLAG} from '../engine-context.js'
import {table, toJson} from '../output.js'

const STATUSES = ['pending', 'done', 'failed', 'unmatched'] as const

export const eventsList = defineCommand({
  id: 'events:list',
  summary: 'List journalled events, newest first (-f: oldest first, then new ones).',
  description: `With -f (like tail -f) it prints the last --limit events oldest first, then each new event once it
has run (an event still running after 2s is printed as pending), until Ctrl-C (exit 0).`,
  examples: [
    '<%= config.bin %> events list --since 1h',
    '<%= config.bin %> events list --status failed --rule deploy --json',
    '<%= config.bin %> events list -f -n 10',
  ],
  flags: {
    follow: {kind: 'boolean', char: 'f', summary: 'Keep printing new events until interrupted.'},
    type: {kind: 'string', summary: 'Only events of this type.', helpValue: 'TYPE'},
    rule: {kind: 'string', summary: 'Only events a rule ran for.', helpValue: 'NAME'},
    status: {kind: 'string', summary: 'Only events in this state.', options: STATUSES},
    since: {kind: 'string', summary: 'Only events since DUR ago or TIME.', helpValue: 'DUR|TIME'},
    limit: {kind: 'integer', char: 'n', summary: 'Most events to show.', default: 50, min: 1, max: 100_000},
  },
  async run({flags}, ctx): Promise<EventRecord[] | undefined> {
    const filter = {
      type: flags.type,
      rule: flags.rule,
      status: flags.status as EventStatus | undefined,
      since: flags.since === undefined ? undefined : parseTimeOrAgo(flags.since, '--since'),
    }
    const journal = ctx.local().journal
    if (!flags.follow) return journal.list({...filter, limit: flags.limit})
    const {drain} = ctx.handleInterrupts()
    if (ctx.stdoutIsTTY && !ctx.json) ctx.out.line(EVENT_COLUMNS.join('  '))
    for await (const record of followEvents(journal, {filter, backlog: flags.limit, signal: drain})) {
      ctx.out.line(ctx.json ? toJson(record) : eventCells(record).join(ctx.stdoutIsTTY ? '  ' : '\t'))
      await ctx.out.flush()
      if (ctx.out.isBroken) break
    }
    return undefined // Ctrl-C ends a follow as it should: exit 0
  },
  render(records, ctx) {
    if (records.length === 0) return ctx.stdoutIsTTY ? 'no events' : undefined
    return table(
      EVENT_COLUMNS,
      records.map((r) => eventCells(r)),
    )
  },
})

const EVENT_COLUMNS = ['SEQ', 'RECEIVED', 'TYPE', 'SOURCE', 'STATUS', 'RULES']

function eventCells(r: EventRecord): (string | number)[] {
  return [
    r.seq,
    new Date(r.receivedAt).toISOString().replace('T', ' ').slice(0, 19),
    r.event.type,
    r.event.source,
    r.status,
    r.rules.join(', ') || '-',
  ]
}

export const eventsShow = defineCommand({
  id: 'events:show',
  summary: 'Show one event and every action attempt made for it.',
  examples: ['<%= config.bin %> events show 42', '<%= config.bin %> events show 5f0c…-uuid --json'],
  args: [{name: 'event', summary: 'Journal sequence number, or the CloudEvent id.'}],
  flags: {},
  async run({args}, ctx): Promise<EventRecord & {attempts: ActionRun[]}> {
    if (args.event === undefined)
      throw new InvalidInputError('missing event', {
        code: 'usage',
        hint: 'give a sequence number from `mq events list`',
      })
    const journal = ctx.local().journal
    const record = await journal.get(args.event)
    if (!record) throw new NotFoundError('event', args.event, {hint: 'see `mq events list`'})
    return {...record, attempts: await journal.runs(record.seq)}
  },
  render(r) {
    const lines = [
      `event #${r.seq} ${r.event.type} (${r.status}), received ${new Date(r.receivedAt).toISOString()}`,
      JSON.stringify(r.event, null, 2),
    ]
    if (r.attempts.length > 0) lines.push('', 'attempts:')
    for (const a of r.attempts) {
      const result = a.outcome === 'ok' ? 'ok' : `${a.outcome}${a.error ? `: ${a.error}` : ''}`
      const status =
        a.httpStatus !== undefined ? ` HTTP ${a.httpStatus}` : a.exitCode !== undefined ? ` exit ${a.exitCode}` : ''
      lines.push(
        `  ${a.rule} #${a.action + 1} attempt ${a.attempt} ${a.actionType} ${a.target}:${status} ${result} (${formatDuration(a.durationMs)})`,
      )
      if (a.outputTail && a.outcome !== 'ok')
        lines.push(
          ...a.outputTail
            .trimEnd()
            .split('\n')
            .slice(-5)
            .map((line) => `      | ${line}`),
        )
    }
    return lines.join('\n')
  },
})

interface ReplayResult {
  replayed: number
  dryRun: boolean
  events: {seq: number; type: string; rules: string[]; ok?: boolean}[]
}

export const eventsReplay = defineCommand({
  id: 'events:replay',
  summary: 'Run past events through the current rules again.',
  description:
    'Takes the journalled events since a time or from a sequence number, oldest first. Exit 1 if an action failed.',
  examples: [
    '<%= config.bin %> events replay --since 1h --dry-run',
    '<%= config.bin %> events replay --from 120 --rule deploy',
  ],
  flags: {
    since: {kind: 'string', summary: 'Events since DUR ago or TIME.', helpValue: 'DUR|TIME'},
    from: {kind: 'integer', summary: 'Events from this sequence number on.', min: 1},
    rule: {kind: 'string', summary: 'Only run this rule.', helpValue: 'NAME'},
    'dry-run': {kind: 'boolean', summary: 'Only show which rules would run.'},
    limit: {kind: 'integer', summary: 'Most events to replay.', default: 10_000, min: 1},
    ...RULES_FLAG,
  },
  async run({flags}, ctx): Promise<ReplayResult> {
    if ((flags.since === undefined) === (flags.from === undefined)) {
      throw new InvalidInputError('give exactly one of --since and --from', {
        code: 'usage',
        hint: 'e.g. mq events replay --since 1h',
      })
    }
    const {engine, rules} = await engineFor(ctx, flags.rules, ctx.handleInterrupts().drain)
    if (flags.rule !== undefined && !rules.validated.rules.some((r) => r.name === flags.rule)) {
      throw new NotFoundError('rule', flags.rule, {hint: 'see `mq rule list`'})
    }
    const records = await ctx.local().journal.list({
      since: flags.since === undefined ? undefined : parseTimeOrAgo(flags.since, '--since'),
      afterSeq: flags.from === undefined ? undefined : flags.from - 1,
      limit: flags.limit,
      ascending: true,
    })
    const result: ReplayResult = {replayed: 0, dryRun: flags['dry-run'], events: []}
    const progress = flags['dry-run'] ? undefined : ctx.progress('replaying events', {unit: 'events', stdoutBusy: true})
    for (const record of records) {
      progress?.update(result.replayed, records.length)
      if (flags['dry-run']) {
        result.events.push({
          seq: record.seq,
          type: record.event.type,
          rules: engine.match(record.event, flags.rule).map((r) => r.name),
        })
        continue
      }
      const summary: TriggerSummary = await engine.replay(record.seq, record.event, flags.rule)
      result.replayed++
      result.events.push({seq: record.seq, type: record.event.type, rules: summary.matched, ok: summary.ok})
      if (!summary.ok) ctx.exitCode = 1
    }
    progress?.stop()
    return result
  },
  render(r, ctx) {
    const lines = r.events.map(
      (e) =>
        `#${e.seq} ${e.type}: ${e.rules.length ? e.rules.join(', ') : 'no rule'}${e.ok === false ? ' (FAILED)' : ''}`,
    )
    lines.push(
      r.dryRun
        ? `dry run: ${r.events.filter((e) => e.rules.length).length} of ${r.events.length} events would run rules`
        : `replayed ${r.replayed} events`,
    )
    return ctx.stdoutIsTTY || r.dryRun ? lines.join('\n') : lines.at(-1)
  },
})
