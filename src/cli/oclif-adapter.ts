import {Args, Command, Flags, type Interfaces} from '@oclif/core'

import {InvalidInputError} from '../core/errors.js'

import {type CommandDefinition, execute} from './definition.js'
import {reportError} from './errors.js'
import {closest} from './suggest.js'
import {convertFlag, type FlagSpec, type FlagSpecs, GLOBAL_FLAGS, type ParsedInput} from './spec.js'

/** Turns a command definition into the oclif command class that `src/commands/*` exports. */
export function oclifCommand<F extends FlagSpecs, R>(definition: CommandDefinition<F, R>): typeof Command {
  const variadic = definition.args?.some((arg) => arg.variadic) ?? false
  const OclifCommand = class extends Command {
    static override summary = definition.summary
    static override description = definition.description === undefined ? undefined : reflow(definition.description)
    static override examples = definition.examples
    static override aliases = definition.aliases ?? []
    static override strict = !variadic
    static override args = Object.fromEntries(
      // Commands read stdin themselves (bodies, receipts, events): oclif must not take it for a missing argument.
      (definition.args ?? []).map((arg) => [arg.name, Args.string({description: arg.summary, ignoreStdin: true})]),
    )
    static override flags = toOclifFlags({...definition.flags, ...GLOBAL_FLAGS})

    async run(): Promise<void> {
      const {args, argv, flags} = await this.parse(OclifCommand)
      const input = {args, argv: argv as string[], flags} as unknown as ParsedInput<F>
      process.exitCode = await execute(definition, input)
    }

    override async catch(error: Error): Promise<void> {
      process.exitCode = reportError(parseErrorFor(error, definition), {
        json: this.argv.includes('--json'),
        commandId: definition.id,
      })
    }
  }
  return OclifCommand
}

// oclif's flag types are precise per flag; these are built from data, so they are typed loosely here.
function toOclifFlags(specs: FlagSpecs): Interfaces.FlagInput {
  return Object.fromEntries(
    Object.entries(specs).map(([name, spec]) => [name, toOclifFlag(name, spec)]),
  ) as Interfaces.FlagInput
}

function toOclifFlag(name: string, spec: FlagSpec) {
  const common = {
    summary: spec.summary,
    char: spec.char as 'a' | undefined,
    helpValue: spec.helpValue,
    hidden: spec.hidden,
    env: spec.env,
  }
  switch (spec.kind) {
    case 'boolean':
      return Flags.boolean(common)
    case 'multiple':
      // Non-greedy: `-H k=v q body` gives one header and two arguments, as the fast parser reads it.
      // No default: oclif would print an empty `[default: ]` in the help (execute fills in []).
      return Flags.string({...common, multiple: true, multipleNonGreedy: true})
    case 'string':
      return Flags.string({...common, default: spec.default, options: spec.options as string[] | undefined})
    case 'integer':
      return Flags.custom<number>({
        ...common,
        default: spec.default,
        parse: async (raw) => convertFlag(name, spec, raw) as number,
      })()
    case 'duration':
    case 'size':
      return Flags.custom<number>({...common, parse: async (raw) => convertFlag(name, spec, raw) as number})()
  }
}

/**
 * Joins the lines of each paragraph of a description, so oclif wraps it to the terminal's width
 * (80 columns in a pipe) instead of breaking it where the source line ended. Blank lines separate
 * paragraphs; lines starting with `-`, `*`, `$` or an indent stay lines of their own.
 */
export function reflow(text: string): string {
  return text
    .split(/\n\s*\n/)
    .map((paragraph) =>
      paragraph
        .split('\n')
        .reduce<string[]>((lines, line) => {
          const keep = lines.length === 0 || /^(\s|[-*$])/.test(line)
          if (keep) lines.push(line)
          else lines[lines.length - 1] += ` ${line.trim()}`
          return lines
        }, [])
        .join('\n'),
    )
    .join('\n\n')
}

/** What an error from oclif's parser is reported as: an unknown flag gets a "did you mean". */
export function parseErrorFor(error: unknown, definition: Pick<CommandDefinition, 'flags' | 'id'>): unknown {
  const {message, flags} = (error ?? {}) as {message?: string; flags?: unknown}
  const unknown = /^Nonexistent flags?:/.test(message ?? '') && Array.isArray(flags) ? (flags as string[]) : undefined
  return unknown ? unknownFlagError(unknown, {...definition.flags, ...GLOBAL_FLAGS}, definition.id) : error
}

/** `unknown flag --jsn: did you mean --json?` (exit 2), for every command, through either parser. */
export function unknownFlagError(flags: string[], specs: FlagSpecs, commandId: string): InvalidInputError {
  const names = Object.keys(specs).map((name) => `--${name}`)
  const suggestions = flags.flatMap((flag) =>
    closest(flag.split('=')[0], names, 1).map((near) => `${flag.split('=')[0]} → ${near}`),
  )
  const help = `see \`mq ${commandId.replaceAll(':', ' ')} --help\``
  const hint =
    suggestions.length === 1 && flags.length === 1
      ? `did you mean ${suggestions[0].split(' → ')[1]}? ${help}`
      : suggestions.length > 0
        ? `did you mean ${suggestions.join(', ')}? ${help}`
        : help
  return new InvalidInputError(`unknown flag${flags.length === 1 ? '' : 's'} ${flags.join(', ')}`, {
    code: 'usage',
    hint,
  })
}
