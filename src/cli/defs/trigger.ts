import {buildEvent, type CloudEvent, eventWarnings, validateEvent} from '../../core/engine/cloudevents.js'
import {DaemonUnavailableError} from '../../core/daemon/client.js'
import type {TriggerSummary} from '../../core/engine/engine.js'
import {InvalidInputError, NothingArrivedError} from '../../core/errors.js'
import {formatDuration} from '../../core/units.js'
import type {Context} from '../context.js'
import {defineCommand} from '../definition.js'
import {toJson} from '../output.js'
import {engineFor, RULES_FLAG} from '../engine-context.js'
import {checkArgumentUtf8, readDataFlag, readStdinBody} from '../input.js'

const flags = {
  data: {
    kind: 'string',
    summary: 'Event data as JSON; - reads it from stdin, @FILE from a file (default: no data).',
    helpValue: 'JSON|-|@FILE',
  },
  source: {kind: 'string', summary: 'Event source (default: mqctl://USER@HOST).', helpValue: 'URI'},
  subject: {kind: 'string', summary: 'Event subject.', helpValue: 'TEXT'},
  id: {
    kind: 'string',
    summary: 'Event id (default: a new UUID); repeats within the dedup window are ignored.',
    helpValue: 'ID',
  },
  envelope: {kind: 'boolean', summary: 'Take a whole CloudEvent (structured JSON) from the argument or stdin.'},
  'require-match': {kind: 'boolean', summary: 'Exit 3 when no rule matched.'},
  wait: {kind: 'boolean', summary: 'With the daemon running: wait for the actions instead of handing the event over.'},
  ...RULES_FLAG,
} as const

export default defineCommand({
  id: 'trigger',
  summary: 'Trigger an event: the actions of every matching rule run, with retries.',
  description: `Builds a CloudEvents 1.0 event (id, time, specversion and source filled in), records it, and runs
the actions of every enabled rule whose pattern matches, waiting for them. Exit 0 when every action
succeeded, 1 when one failed after its retries, 3 with --require-match when no rule matched.
Data comes from --data: JSON, - for stdin, or @FILE; stdin is never read otherwise.`,
  examples: [
    '<%= config.bin %> trigger build.finished --data \'{"branch":"main","ok":true}\'',
    'echo \'{"order":{"id":42}}\' | <%= config.bin %> trigger order.created --subject orders/42 --data -',
    '<%= config.bin %> trigger order.created --data @order.json',
    '<%= config.bin %> trigger --envelope < event.json --json',
    '<%= config.bin %> trigger deploy.requested --require-match --rules ./ci/rules.json',
  ],
  args: [{name: 'type', summary: 'Event type (or, with --envelope, the whole event as JSON).'}],
  flags,
  fast: true,
  async run({args, flags}, ctx): Promise<TriggerSummary | Queued> {
    const event = await eventFrom(ctx, args.type, flags)
    const {engine, rules} = await engineFor(ctx, flags.rules)
    const handedOver = await handOver(ctx, event, rules.path, flags.wait)
    if (handedOver && 'queued' in handedOver) {
      if (flags['require-match'] && engine.match(event).length === 0) {
        throw new NothingArrivedError(`no rule matched event ${event.type} (#${handedOver.seq})`, {
          hint: 'see `mq rule list`, or check a pattern with `mq rule test`',
        })
      }
      return handedOver
    }
    const summary = handedOver ?? (await engine.handle(event))
    if (summary.matched.length === 0 && summary.duplicateOf === undefined && flags['require-match']) {
      if (ctx.json) ctx.out.line(toJson(summary))
      await ctx.out.flush()
      throw new NothingArrivedError(`no rule matched event ${event.type} (#${summary.seq})`, {
        hint: 'see `mq rule list`, or check a pattern with `mq rule test`',
      })
    }
    if (!summary.ok) {
      ctx.exitCode = 1
      const notStarted = summary.actions.find((a) => a.cannotStart)
      if (notStarted) {
        // A missing or non-executable program is a mistake in the rule, not a failure to retry.
        const error = new InvalidInputError(
          `rule ${notStarted.rule} action ${notStarted.action + 1}: ${notStarted.error}`,
          {
            code: 'cannot_start',
            hint: `fix the rule's command (\`mq rule show ${notStarted.rule}\`); see \`mq events show ${summary.seq}\``,
          },
        )
        if (ctx.json) ctx.out.line(toJson(summary))
        throw error
      }
      for (const a of summary.actions.filter((x) => x.outcome === 'dead-lettered')) {
        ctx.warn(
          `error: rule ${a.rule} action ${a.action + 1} (${a.type} ${a.target}) failed after ${a.attempts} attempt${a.attempts === 1 ? '' : 's'}: ${a.error ?? 'failed'}; see \`mq events show ${summary.seq}\``,
        )
      }
    }
    return summary
  },
  render(summary, ctx) {
    if ('queued' in summary) {
      if (summary.duplicateOf !== undefined) return `duplicate of event #${summary.duplicateOf}: nothing to do`
      return ctx.stdoutIsTTY ? `event #${summary.seq} handed to the daemon (mq events show ${summary.seq})` : undefined
    }
    if (summary.duplicateOf !== undefined)
      return `duplicate of event #${summary.duplicateOf} (same source and id within the dedup window): nothing ran`
    if (!ctx.stdoutIsTTY) return undefined
    if (summary.matched.length === 0) return `event #${summary.seq} ${summary.type}: no rule matched`
    const lines = [
      `event #${summary.seq} ${summary.type}: ${summary.matched.length} rule${summary.matched.length === 1 ? '' : 's'} matched`,
    ]
    for (const a of summary.actions) {
      const how =
        a.outcome === 'ok'
          ? `ok in ${formatDuration(a.durationMs)}`
          : a.outcome === 'dropped'
            ? 'dropped (rule busy)'
            : a.outcome === 'interrupted'
              ? 'interrupted by a shutdown (it will run again)'
              : `FAILED after ${a.attempts} attempts: ${a.error}`
      lines.push(
        `  ${a.rule} → ${a.type} ${a.target}: ${how}${a.attempts > 1 && a.outcome === 'ok' ? ` (attempt ${a.attempts})` : ''}`,
      )
    }
    return lines.join('\n')
  },
})

interface Queued {
  seq: number
  duplicateOf?: number
  queued: true
}

/**
 * With a daemon running on the same rules document, the event goes to it: journalled there before
 * it answers, its actions run in the background (or, with --wait, before it answers). Without one,
 * or if it goes away, the command runs the rules itself.
 */
async function handOver(
  ctx: Context,
  event: CloudEvent,
  rulesPath: string,
  wait: boolean,
): Promise<TriggerSummary | Queued | undefined> {
  const client = await ctx.daemon()
  if (!client) return undefined
  try {
    if ((await client.status()).rules.path !== rulesPath) return undefined
    return (await client.trigger(event, wait)) as TriggerSummary | Queued
  } catch (error) {
    if (error instanceof DaemonUnavailableError) return undefined
    throw error
  }
}

async function eventFrom(
  ctx: Context,
  arg: string | undefined,
  flags: {data?: string; source?: string; subject?: string; id?: string; envelope: boolean},
): Promise<CloudEvent> {
  if (flags.envelope) {
    if (
      flags.data !== undefined ||
      flags.source !== undefined ||
      flags.subject !== undefined ||
      flags.id !== undefined
    ) {
      throw new InvalidInputError('--envelope takes the whole event: --data, --source, --subject and --id do not apply')
    }
    if (arg !== undefined) checkArgumentUtf8(arg, 'the event argument')
    const text = arg ?? (ctx.stdinIsTTY ? undefined : await readStdinBody(ctx.stdin))
    if (text === undefined || text.trim() === '')
      throw new InvalidInputError('no event given', {hint: 'pass the CloudEvent JSON as an argument or on stdin'})
    const event = validateEvent(parseJson(text, 'the event'), text.length)
    for (const warning of eventWarnings(event)) ctx.warn(`note: ${warning}`)
    return event
  }
  if (arg === undefined)
    throw new InvalidInputError('missing event type', {
      code: 'usage',
      hint: 'e.g. mq trigger order.created --data \'{"id":1}\'',
    })
  // stdin is read only when asked (--data -): in `while read l; do mq trigger t; done < file`
  // the loop's stdin belongs to the loop.
  let data: unknown
  if (flags.data !== undefined) {
    const given = await readDataFlag(ctx, flags.data, '--data')
    if (given.text.trim() !== '' || given.from === 'argument') data = parseJson(given.text, given.what)
  }
  return buildEvent({type: arg, data, source: flags.source, subject: flags.subject, id: flags.id})
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new InvalidInputError(`${what} is not valid JSON (${(error as Error).message})`, {
      code: 'bad_json',
      hint: 'quote strings as JSON, e.g. --data \'"hello"\' or --data \'{"k":"v"}\'',
    })
  }
}
