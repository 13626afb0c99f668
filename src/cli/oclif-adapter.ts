import {Args, Command, Flags, type Interfaces} from '@oclif/core'

import {type CommandDefinition, execute} from './definition.js'
import {reportError} from './errors.js'
import {convertFlag, type FlagSpec, type FlagSpecs, GLOBAL_FLAGS, type ParsedInput} from './spec.js'

/** Turns a command definition into the oclif command class that `src/commands/*` exports. */
export function oclifCommand<F extends FlagSpecs, R>(definition: CommandDefinition<F, R>): typeof Command {
  const variadic = definition.args?.some((arg) => arg.variadic) ?? false
  const OclifCommand = class extends Command {
    static override summary = definition.summary
    static override description = definition.description
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

    override async catch(error: Error & {exitCode?: number}): Promise<void> {
      process.exitCode = reportError(error, {json: this.argv.includes('--json'), commandId: definition.id})
    }
  }
  return OclifCommand
}

// oclif's flag types are precise per flag; these are built from data, so they are typed loosely here.
function toOclifFlags(specs: FlagSpecs): Interfaces.FlagInput {
  return Object.fromEntries(Object.entries(specs).map(([name, spec]) => [name, toOclifFlag(name, spec)])) as Interfaces.FlagInput
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
      return Flags.string({...common, multiple: true, multipleNonGreedy: true, default: []})
    case 'string':
      return Flags.string({...common, default: spec.default, options: spec.options as string[] | undefined})
    case 'integer':
      return Flags.custom<number>({...common, default: spec.default, parse: async (raw) => convertFlag(name, spec, raw) as number})()
    case 'duration':
    case 'size':
      return Flags.custom<number>({...common, parse: async (raw) => convertFlag(name, spec, raw) as number})()
  }
}
