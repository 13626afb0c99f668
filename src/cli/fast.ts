import type {CommandDefinition} from './definition.js'
import {convertFlag, type FlagSpec, type FlagSpecs, GLOBAL_FLAGS, type ParsedInput} from './spec.js'

/**
 * Parses the common, well-formed invocation of a hot command straight from its definition, so
 * `mq publish q hello` does not pay for loading oclif. Anything unusual (help, an unknown flag, a
 * bad value, a missing value) returns undefined and the launcher hands the whole command line to
 * oclif, which owns help and usage errors.
 */
export function parseFast<F extends FlagSpecs>(
  definition: CommandDefinition<F>,
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): ParsedInput<F> | undefined {
  const specs: FlagSpecs = {...definition.flags, ...GLOBAL_FLAGS}
  const byChar = new Map(
    Object.entries(specs)
      .filter(([, s]) => s.char)
      .map(([name, s]) => [s.char!, name]),
  )
  const namesFlag = (token: string) =>
    token.startsWith('--') ? token.slice(2) in specs : token.startsWith('-') && byChar.has(token[1])
  const flags: Record<string, unknown> = {}
  const positional: string[] = []
  const raw: Record<string, string[]> = {}
  const bools = new Set<string>()

  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]
    if (token === '--') {
      positional.push(...argv.slice(i + 1))
      break
    }
    let name: string | undefined
    let inline: string | undefined
    if (token.startsWith('--')) {
      const eq = token.indexOf('=')
      name = eq === -1 ? token.slice(2) : token.slice(2, eq)
      inline = eq === -1 ? undefined : token.slice(eq + 1)
    } else if (token.startsWith('-') && token.length > 1) {
      name = byChar.get(token[1])
      if (!name) return undefined
      inline = token.length > 2 ? token.slice(2) : undefined
    } else {
      positional.push(token)
      continue
    }
    const spec = specs[name]
    if (!spec || name === 'help') return undefined
    if (spec.kind === 'boolean') {
      if (inline !== undefined) return undefined
      bools.add(name)
      continue
    }
    const value = inline ?? argv[++i]
    // oclif takes a value that names one of the command's flags (`--exec --json`, `--exec=--json`)
    // for a missing value and refuses the line: hand such a line over rather than run it.
    if (value === undefined || namesFlag(value)) return undefined
    ;(raw[name] ??= []).push(value)
  }

  const args = definition.args ?? []
  const variadic = args.some((arg) => arg.variadic)
  if (!variadic && positional.length > args.length) return undefined

  for (const [name, spec] of Object.entries(specs)) {
    const values = raw[name]
    if (spec.kind === 'boolean') flags[name] = bools.has(name)
    else if (spec.kind === 'multiple')
      flags[name] = values // absent: [] (execute fills it in, for both parsers)
    else {
      if (values && values.length > 1) return undefined
      const text = values?.[0] ?? (spec.env ? env[spec.env] : undefined)
      if (text === undefined) flags[name] = defaultOf(spec)
      else {
        try {
          flags[name] = convertFlag(name, spec, text)
        } catch {
          return undefined
        }
      }
    }
  }
  // Like oclif, a variadic argument's name holds its first value (commands read them all from argv).
  const named = Object.fromEntries(args.map((arg, index) => [arg.name, positional[index]]))
  return {args: named, argv: positional, flags: flags as ParsedInput<F>['flags']}
}

function defaultOf(spec: FlagSpec): unknown {
  return 'default' in spec ? spec.default : undefined
}
