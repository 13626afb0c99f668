import {fstatSync} from 'node:fs'

import type {OutgoingMessage, PublishOptions, PublishResult} from '../../core/broker.js'
import {InterruptedError, InvalidInputError, isMqError, QueueFullError} from '../../core/errors.js'
import {validateName} from '../../core/names.js'
import {parseTimeOrDelay} from '../../core/units.js'
import type {Context} from '../context.js'
import {defineCommand} from '../definition.js'
import {toJson} from '../output.js'
import {
  checkArgumentUtf8,
  parseEnvelope,
  parseHeaderFlags,
  readStdinBody,
  stdinLineBatches,
  withoutTrailingNewline,
} from '../input.js'
import {askName, askText} from '../prompts.js'

const flags = {
  header: {kind: 'multiple', char: 'H', summary: 'Add a header (repeatable).', helpValue: 'KEY=VALUE'},
  lines: {kind: 'boolean', summary: 'Publish each stdin line as one message, as it arrives.'},
  envelopes: {kind: 'boolean', summary: 'Read JSON envelopes (as printed by `consume --json`), one per stdin line.'},
  topic: {kind: 'boolean', summary: 'Publish to the topic NAME, creating it if needed.'},
  delay: {kind: 'duration', summary: 'Deliver no sooner than DUR from now (queues).', helpValue: 'DUR'},
  at: {kind: 'string', summary: 'Deliver no sooner than TIME (ISO-8601; queues).', helpValue: 'TIME'},
  ttl: {
    kind: 'duration',
    positive: true,
    summary: 'Expire the message DUR after publishing: never delivered after that (queues).',
    helpValue: 'DUR',
  },
  priority: {kind: 'integer', summary: '0–9, higher delivered first; FIFO within a priority (queues).', min: 0, max: 9},
  'dedup-id': {
    kind: 'string',
    summary: 'Idempotent publish: a repeat within the window returns the first id and stores nothing.',
    helpValue: 'ID',
  },
  wait: {
    kind: 'duration',
    summary: 'When the queue is full under --overflow block: wait up to DUR for room, then exit 4.',
    helpValue: 'DUR',
  },
  raw: {
    kind: 'boolean',
    summary: 'Keep a body read from stdin exactly as it is (by default one trailing newline is dropped).',
  },
} as const

export default defineCommand({
  id: 'publish',
  summary: 'Publish a message to a queue or topic.',
  description: `The body is the argument if given, otherwise stdin (less one trailing newline, unless --raw). NAME is a topic if one exists (or a
subscription pattern matches it), otherwise a queue, created on first use. Prints the new message id.`,
  examples: [
    '<%= config.bin %> publish jobs "hello"',
    'echo \'{"order":42}\' | <%= config.bin %> publish orders -H type=created',
    'tail -f app.log | <%= config.bin %> publish logs --lines',
    "<%= config.bin %> consume jobs --json -n 10 | jq -c '.body |= ascii_upcase' | <%= config.bin %> publish jobs.upper --envelopes",
  ],
  args: [
    {name: 'name', summary: 'Queue or topic to publish to.'},
    {name: 'body', summary: 'Message body (default: stdin).'},
  ],
  flags,
  fast: true,
  async run({args, flags}, ctx): Promise<PublishResult | undefined> {
    const name =
      args.name ??
      (await askName(
        ctx,
        'queue or topic',
        (await ctx.broker().listQueues()).map((q) => q.name),
        'give it as the first argument: mq publish NAME [BODY]',
      ))
    validateName(name, flags.topic ? 'topic name' : 'destination name')
    const headers = parseHeaderFlags(flags.header)
    const kind = flags.topic ? ('topic' as const) : undefined
    if (flags.delay !== undefined && flags.at !== undefined)
      throw new InvalidInputError('--delay and --at cannot be combined', {hint: 'use one of them'})
    const timing: Omit<OutgoingMessage, 'body'> = {
      deliverAt:
        flags.delay !== undefined
          ? Date.now() + flags.delay
          : flags.at !== undefined
            ? parseTimeOrDelay(flags.at, '--at')
            : undefined,
      ttlMs: flags.ttl,
      priority: flags.priority,
    }
    const options = {kind, blockTimeoutMs: flags.wait, signal: ctx.handleInterrupts().drain}
    if (flags.lines && flags.envelopes)
      throw new InvalidInputError('--lines and --envelopes cannot be combined', {hint: 'use one of them'})
    if (flags.lines || flags.envelopes) {
      if (flags.raw)
        throw new InvalidInputError(
          `--raw keeps one body exactly; --${flags.lines ? 'lines' : 'envelopes'} reads lines`,
        )
      if (args.body !== undefined)
        throw new InvalidInputError(`--${flags.lines ? 'lines' : 'envelopes'} reads stdin; do not pass a body`)
      if (flags['dedup-id'] !== undefined)
        throw new InvalidInputError('--dedup-id names one message', {
          hint: 'publish messages one at a time to give each its own dedup id',
        })
      const timed = timing.deliverAt !== undefined || timing.ttlMs !== undefined || timing.priority !== undefined
      const toMessage = (line: string, number: number): OutgoingMessage => {
        const message = flags.envelopes ? withHeaders(parseEnvelope(line, number), headers) : {body: line, headers}
        return timed ? {...timing, ...message} : message
      }
      await publishStream(ctx, name, toMessage, options)
      return undefined
    }
    let body = args.body
    if (body === undefined) {
      // Empty stdin is an empty message, as an empty argument is (README: Limits).
      body = ctx.stdinIsTTY
        ? await askText(ctx, 'message body', 'give the body as an argument or on stdin')
        : await readStdinBody(ctx.stdin)
      if (!flags.raw) body = withoutTrailingNewline(body)
    } else {
      checkArgumentUtf8(body, 'the body argument')
    }
    const [result] = await (
      await ctx.publisher()
    ).publish(name, [{...timing, body, headers, dedupId: flags['dedup-id']}], options)
    return result
  },
  render: (result, ctx) =>
    result.duplicate && ctx.stdoutIsTTY ? `${result.id} (duplicate: already published)` : result.id,
})

/** Publishes stdin line by line; each batch read together is one transaction, ids print as it commits. */
async function publishStream(
  ctx: Context,
  name: string,
  toMessage: (line: string, lineNumber: number) => OutgoingMessage,
  options: PublishOptions,
): Promise<void> {
  const publisher = await ctx.publisher()
  // A stream waits out another process's write lock; through the daemon, a batch the daemon could
  // not commit for the lock is sent again (nothing of it was stored).
  const waiter = ctx.waitOutLocks()
  let published = 0
  // The first Ctrl-C stops reading: what was read is published, then exit 130.
  options.signal?.addEventListener('abort', () => ctx.stopStdin(), {once: true})
  // From a file (`< big.txt`), how far through it we are; from a pipe, a count and a rate.
  const fileSize = stdinFileSize(ctx)
  const progress = ctx.progress(`publishing to ${name}`, {stdoutBusy: true})
  let bytes = 0
  for await (const batch of stdinLineBatches(ctx)) {
    bytes += batch.bytes
    const {numbers} = batch
    const messages = batch.lines.map((line, index) => toMessage(line, numbers[index]))
    let results: PublishResult[]
    try {
      results = await waiter.run(() => publisher.publish(name, messages, options))
    } catch (error) {
      if (error instanceof QueueFullError) {
        // Under --overflow block part of the batch may have gone in before the wait ran out.
        for (const result of error.published) ctx.out.line(ctx.json ? toJson(result) : result.id)
        await ctx.out.flush()
      }
      if (isMqError(error) && error.index !== undefined) {
        error.where = `line ${numbers[error.index]}`
        const done =
          published === 0
            ? 'nothing was published'
            : `${published} earlier messages were published, nothing from this batch`
        error.hint = error.hint ? `${error.hint} (${done})` : done
      }
      throw error
    }
    published += results.length
    ctx.out.lines(results, (result) => (ctx.json ? toJson(result) : result.id))
    await ctx.out.flush()
    progress.update(published, undefined, fileSize ? Math.min(1, bytes / fileSize) : undefined)
    if (options.signal?.aborted) break // a file, read without a stream, stops here
  }
  progress.stop()
  if (options.signal?.aborted) throw new InterruptedError()
}

/** The size of stdin when it is a regular file, else undefined. */
function stdinFileSize(ctx: Context): number | undefined {
  const fd = ctx.stdinFd
  if (fd === undefined) return undefined
  try {
    const stat = fstatSync(fd)
    return stat.isFile() && stat.size > 0 ? stat.size : undefined
  } catch {
    return undefined
  }
}

function withHeaders(message: OutgoingMessage, extra: OutgoingMessage['headers']): OutgoingMessage {
  return extra ? {...message, headers: {...message.headers, ...extra}} : message
}
