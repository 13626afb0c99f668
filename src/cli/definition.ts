import {StoreError} from '../core/errors.js'
import {Context, type Io} from './context.js'
import {reportError} from './errors.js'
import {toJson} from './output.js'
import {type ArgSpec, type FlagSpecs, globalOptions, type ParsedInput} from './spec.js'

/**
 * One command: its help, its flags and arguments, what it does (`run`, which returns typed data)
 * and how that data reads for a person (`render`). With --json the data is printed as JSON.
 */
export interface CommandDefinition<F extends FlagSpecs = FlagSpecs, R = unknown> {
  /** oclif id, topics joined by ':' (e.g. `queue:create`). */
  id: string
  summary: string
  description?: string
  examples: string[]
  args?: ArgSpec[]
  flags: F
  aliases?: string[]
  /**
   * Hot command: the launcher may parse and run it without loading oclif (one or two words, e.g.
   * `rule match`); the build turns these marks into src/cli/fast-commands.ts.
   */
  fast?: boolean
  /** A list: with --json, each item of the array `run` returns is printed as one JSON line (JSONL). */
  jsonLines?: boolean
  run(input: ParsedInput<F>, ctx: Context): Promise<R>
  render?(result: NonNullable<R>, ctx: Context): string | undefined | Promise<string | undefined>
}

function outputFailure(error: NodeJS.ErrnoException): StoreError {
  return new StoreError(`cannot write the output (${error.code ?? error.message})`, {
    code: 'output',
    hint: 'check where stdout goes (a full disk?)',
  })
}

export function defineCommand<F extends FlagSpecs, R>(definition: CommandDefinition<F, R>): CommandDefinition<F, R> {
  return definition
}

/**
 * Runs a parsed command and returns its exit code; shared by the oclif adapter and the fast
 * launcher. `io` replaces the process's streams and environment (the tests' in-process runs).
 */
export async function execute<F extends FlagSpecs, R>(
  definition: CommandDefinition<F, R>,
  input: ParsedInput<F>,
  io: Partial<Io> = {},
): Promise<number> {
  const globals = globalOptions(input.flags as Record<string, unknown>)
  // A repeatable flag not given is an empty list, whichever parser read the line.
  for (const [name, spec] of Object.entries(definition.flags))
    if (spec.kind === 'multiple') (input.flags as Record<string, unknown>)[name] ??= []
  let ctx: Context | undefined
  try {
    ctx = new Context(globals, io)
    const result = await definition.run(input, ctx)
    if (result !== undefined) {
      if (ctx.json && definition.jsonLines && Array.isArray(result))
        for (const item of result) ctx.out.line(toJson(item))
      else if (ctx.json) ctx.out.line(toJson(result))
      else {
        const text = definition.render ? await definition.render(result as NonNullable<R>, ctx) : undefined
        if (text !== undefined && text !== '') ctx.out.line(text)
      }
    }
    await ctx.out.settle()
    if (ctx.out.failure) throw outputFailure(ctx.out.failure)
    return ctx.exitCode
  } catch (error) {
    await ctx?.out.settle().catch(() => {})
    return reportError(error, {
      json: globals.json,
      commandId: definition.id,
      color: ctx?.stderrColor(),
      stderr: io.stderr,
      env: io.env,
    })
  } finally {
    await ctx?.close()
  }
}
