import {closeSync, fstatSync, openSync} from 'node:fs'

import {validateEvent} from '../../core/engine/cloudevents.js'
import {ruleIndex} from '../../core/engine/index-cache.js'
import {InvalidInputError} from '../../core/errors.js'
import {defineCommand} from '../definition.js'
import {RULES_FLAG, rulesPathFor} from '../engine-context.js'
import {fileChunks, type LineBatch, lineBatches, stdinLineBatches} from '../input.js'

export default defineCommand({
  id: 'rule:match',
  summary: 'Print which enabled rules each event matches, without running anything.',
  description: `Reads CloudEvents as JSON Lines (structured mode, one event per line) from the files given, or from
stdin, and prints one line per event: the names of the enabled rules whose pattern matches it,
separated by spaces, in the order of the rules document; an empty line when none matches. With
--json, one {"id": …, "rules": […]} object per event. Nothing is journalled and no action runs.
A line that is not a valid event stops the command with exit 2, naming the file and line.`,
  examples: [
    '<%= config.bin %> rule match events.jsonl',
    'cat events.jsonl | <%= config.bin %> rule match --json --rules ci/rules.json',
  ],
  args: [{name: 'files', summary: 'Files of JSON Lines events (default, or "-": stdin).', variadic: true}],
  flags: {...RULES_FLAG},
  fast: true,
  async run({argv, flags}, ctx): Promise<undefined> {
    if (argv.length === 0 && ctx.stdinIsTTY) {
      throw new InvalidInputError('no events given', {
        code: 'usage',
        hint: 'pipe CloudEvents as JSON lines, or give files: mq rule match events.jsonl',
      })
    }
    // The index is kept in the broker folder while the rules document stays the same (index-cache.ts).
    const {names, matcher} = await ruleIndex(rulesPathFor(ctx, flags.rules), ctx.home)
    for (const file of argv.length === 0 ? ['-'] : argv) {
      const what = file === '-' ? 'stdin' : file
      for await (const batch of file === '-' ? stdinLineBatches(ctx) : lineBatches(openFile(file), file)) {
        for (let i = 0; i < batch.lines.length; i++) {
          const event = parseEvent(batch, i, what)
          const count = matcher.matchCount(event)
          if (ctx.json) ctx.out.line(JSON.stringify({id: event.id, rules: namesOf(matcher.matches, count, names)}))
          else ctx.out.line(joinedNames(matcher.matches, count, names))
        }
        await ctx.out.flush()
        if (ctx.out.isBroken) return undefined
      }
    }
    return undefined
  },
})

/** The names of the first `count` rules of `matched`. */
function namesOf(matched: Int32Array, count: number, names: readonly string[]): string[] {
  const of: string[] = []
  for (let i = 0; i < count; i++) of.push(names[matched[i]])
  return of
}

/** The same, separated by spaces (no array per event). */
function joinedNames(matched: Int32Array, count: number, names: readonly string[]): string {
  if (count === 0) return ''
  let line = names[matched[0]]
  for (let i = 1; i < count; i++) line += ` ${names[matched[i]]}`
  return line
}

function parseEvent(batch: LineBatch, index: number, what: string) {
  try {
    const line = batch.lines[index]
    return validateEvent(JSON.parse(line), line.length)
  } catch (error) {
    if (!(error instanceof SyntaxError || error instanceof InvalidInputError)) throw error
    const reason = error instanceof SyntaxError ? `not valid JSON (${error.message})` : (error as Error).message
    throw new InvalidInputError(`line ${batch.numbers[index]} of ${what}: ${reason}`, {
      code: 'bad_event',
      hint: 'give one CloudEvent (structured-mode JSON) per line',
    })
  }
}

async function* openFile(path: string): AsyncGenerator<Buffer> {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (error) {
    throw notReadable(path, error)
  }
  try {
    if (fstatSync(fd).isDirectory()) throw notReadable(path, Object.assign(new Error('is a folder'), {code: 'EISDIR'}))
    yield* fileChunks(fd)
  } finally {
    closeSync(fd)
  }
}

function notReadable(path: string, error: unknown): unknown {
  const code = (error as NodeJS.ErrnoException).code
  if (code === 'ENOENT' || code === 'EISDIR')
    return new InvalidInputError(`${path} ${code === 'ENOENT' ? 'does not exist' : 'is a folder'}`, {
      hint: 'give files of JSON lines, or pipe them on stdin',
    })
  return error
}
