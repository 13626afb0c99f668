import type {DeadLetterQueueInfo, RedriveResult} from '../../core/broker.js'
import {parseFilters} from '../../core/filter.js'
import {parseRate} from '../../core/rate-limiter.js'
import {formatDuration} from '../../core/units.js'
import type {Context} from '../context.js'
import {defineCommand} from '../definition.js'
import {listing} from '../output.js'
import {askName, confirm} from '../prompts.js'
import {printPeeked} from './queue.js'

const ownerArg = [{name: 'name', summary: 'The queue or durable subscription whose dead letters these are.'}]

async function ownerName(ctx: Context, given: string | undefined, command: string): Promise<string> {
  if (given !== undefined) return given
  const owners = (await ctx.broker().listDeadLetterQueues()).flatMap((d) => d.sources)
  return askName(ctx, 'queue or subscription', owners, `give it as an argument: mq dlq ${command} QUEUE`)
}

export const dlqList = defineCommand({
  id: 'dlq:list',
  summary: 'List dead-letter queues, their depth and where their messages come from.',
  examples: ['<%= config.bin %> dlq list', '<%= config.bin %> dlq list --json'],
  flags: {},
  jsonLines: true,
  run: (_input, ctx): Promise<DeadLetterQueueInfo[]> => ctx.broker().listDeadLetterQueues(),
  render: (dlqs, ctx) =>
    listing(
      ctx,
      ['DEAD-LETTER QUEUE', 'MESSAGES', 'OLDEST', 'FROM'],
      dlqs.map((d) => [
        d.name,
        d.messages,
        d.oldestAgeMs === null ? '-' : formatDuration(d.oldestAgeMs),
        d.sources.join(', '),
      ]),
      'no dead-letter queues',
    ),
})

export const dlqPeek = defineCommand({
  id: 'dlq:peek',
  summary: 'Show the dead letters of a queue or subscription, and why they died.',
  examples: [
    '<%= config.bin %> dlq peek jobs',
    '<%= config.bin %> dlq peek jobs --json | jq \'.headers["x-last-error"]\'',
  ],
  args: ownerArg,
  flags: {
    limit: {kind: 'integer', char: 'n', summary: 'Messages to show.', default: 10, min: 1, max: 10_000},
  },
  async run({args, flags}, ctx): Promise<undefined> {
    const broker = ctx.broker()
    const dlq = await broker.deadLetterQueueOf(await ownerName(ctx, args.name, 'peek'))
    const messages = (await broker.getQueue(dlq)) ? await broker.peek(dlq, flags.limit) : []
    printPeeked(ctx, dlq, messages)
    return undefined
  },
})

export const dlqRedrive = defineCommand({
  id: 'dlq:redrive',
  summary: 'Move dead letters back to their queue or subscription, headers kept.',
  description: `Each message is published again (a new id) with its headers and x-redrive-count + 1. --filter
picks messages (all must match): body~TEXT, body=TEXT, HEADER=VALUE, HEADER~TEXT, HEADER.`,
  examples: [
    '<%= config.bin %> dlq redrive jobs --dry-run',
    '<%= config.bin %> dlq redrive jobs --filter x-dead-letter-reason=max-deliveries --limit 100 --rate 20/s --yes',
    "<%= config.bin %> dlq redrive jobs --filter 'x-last-error~timed out' --yes",
  ],
  args: ownerArg,
  flags: {
    filter: {kind: 'multiple', summary: 'Only messages matching EXPR (repeatable; all must match).', helpValue: 'EXPR'},
    limit: {kind: 'integer', summary: 'Move at most N messages.', min: 1},
    rate: {kind: 'string', summary: 'Move at most RATE (e.g. 50/s) so consumers are not flooded.', helpValue: 'RATE'},
    'dry-run': {kind: 'boolean', summary: 'Show what would move; change nothing.'},
    yes: {
      kind: 'boolean',
      char: 'y',
      summary: 'Do not ask for confirmation (needed without a terminal, except with --dry-run).',
    },
  },
  async run({args, flags}, ctx): Promise<RedriveResult> {
    const name = await ownerName(ctx, args.name, 'redrive')
    if (!flags['dry-run']) await confirm(ctx, flags.yes, `Move the dead letters of ${name} back to it?`)
    const progress = ctx.progress(
      flags['dry-run'] ? `examining dead letters of ${name}` : `redriving dead letters of ${name}`,
    )
    const result = await ctx.broker().redrive(name, {
      onProgress: (p) => progress.update(p.done, p.total),
      filter: flags.filter.length > 0 ? parseFilters(flags.filter) : undefined,
      limit: flags.limit,
      ratePerSecond: flags.rate === undefined ? undefined : parseRate(flags.rate),
      dryRun: flags['dry-run'],
      signal: ctx.handleInterrupts().drain,
    })
    progress.stop()
    return result
  },
  render(r, ctx) {
    if (r.stoppedFull)
      ctx.warn(`stopped early: ${r.target} is full (its max length or bytes); redrive the rest once consumers catch up`)
    const what = `${r.moved} of ${r.examined} examined message${r.examined === 1 ? '' : 's'} in ${r.deadLetterQueue}`
    return r.dryRun
      ? `would redrive ${what} to ${r.target} (dry run: nothing changed)${r.ids.length > 0 ? `\nids: ${r.ids.join(' ')}` : ''}`
      : `redrove ${what} to ${r.target}`
  },
})
