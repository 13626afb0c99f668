import {parseDuration, parseSize} from '../core/units.js'
import {InvalidInputError} from '../core/errors.js'

/**
 * Command definitions in a form that needs no oclif at load time: the oclif adapter turns them
 * into oclif commands (help, manifest, completion), and the fast launcher parses the common case
 * of the hot commands directly from the same specs.
 */

interface FlagBase {
  summary: string
  char?: string
  helpValue?: string
  hidden?: boolean
  /** Environment variable the value falls back to (flags > env > default). */
  env?: string
}

export interface StringFlag extends FlagBase {
  kind: 'string'
  default?: string
  options?: readonly string[]
}
export interface MultipleFlag extends FlagBase {
  kind: 'multiple'
}
export interface BooleanFlag extends FlagBase {
  kind: 'boolean'
}
export interface IntegerFlag extends FlagBase {
  kind: 'integer'
  default?: number
  min?: number
  max?: number
}
export interface DurationFlag extends FlagBase {
  kind: 'duration'
  /** Zero makes no sense (a timeout, a lease, an interval): refuse it with exit 2. */
  positive?: boolean
}
/** A byte size such as `1MiB`; the value is a number of bytes. */
export interface SizeFlag extends FlagBase {
  kind: 'size'
}

export type FlagSpec = StringFlag | MultipleFlag | BooleanFlag | IntegerFlag | DurationFlag | SizeFlag
export type FlagSpecs = Record<string, FlagSpec>

export interface ArgSpec {
  name: string
  summary: string
  /** Takes every remaining positional argument (e.g. receipts). */
  variadic?: boolean
}

type FlagValue<F extends FlagSpec> = F extends BooleanFlag
  ? boolean
  : F extends MultipleFlag
    ? string[]
    : F extends IntegerFlag
      ? F extends {default: number}
        ? number
        : number | undefined
      : F extends DurationFlag | SizeFlag
        ? number | undefined
        : F extends {default: string}
          ? string
          : string | undefined

export type FlagValues<F extends FlagSpecs> = {[K in keyof F]: FlagValue<F[K]>}

export interface GlobalOptions {
  home?: string
  broker?: string
  prefix?: string
  json: boolean
  noColor: boolean
  nonInteractive: boolean
}

/**
 * Global flags, on every command (README.md, "Command reference"). --home, --broker and --prefix
 * fall back to MQ_HOME, MQ_URL and MQ_PREFIX in `selectBroker` (not here): their precedence spans
 * flags and variables together.
 */
export const GLOBAL_FLAGS = {
  home: {kind: 'string', summary: 'Broker folder (env MQ_HOME; default: the per-user data folder).', helpValue: 'DIR'},
  broker: {
    kind: 'string',
    summary:
      'Broker URL: nats://HOST:PORT[,HOST:PORT…], amqp://USER:PASS@HOST:5672/VHOST or file:DIR (env MQ_URL; default: the --home folder).',
    helpValue: 'URL',
  },
  prefix: {
    kind: 'string',
    summary: 'With a nats:// broker: namespace every stream and subject (env MQ_PREFIX).',
    helpValue: 'NAME',
  },
  json: {kind: 'boolean', summary: 'Print JSON: one object per result, one line per streamed item.'},
  'no-color': {kind: 'boolean', summary: 'No colours (also NO_COLOR).'},
  'non-interactive': {kind: 'boolean', summary: 'Never prompt (implied without a terminal or when CI is set).'},
} as const satisfies FlagSpecs

export interface ParsedInput<F extends FlagSpecs> {
  args: Record<string, string | undefined>
  /** Every positional argument, for variadic commands. */
  argv: string[]
  flags: FlagValues<F>
}

/** Converts one raw flag value; throws InvalidInputError naming the flag. */
export function convertFlag(name: string, spec: FlagSpec, raw: string): string | number {
  switch (spec.kind) {
    case 'integer': {
      if (!/^-?\d+$/.test(raw.trim())) throw new InvalidInputError(`--${name} expects a whole number, got "${raw}"`)
      const value = Number(raw)
      if (spec.min !== undefined && value < spec.min)
        throw new InvalidInputError(`--${name} must be at least ${spec.min}`)
      if (spec.max !== undefined && value > spec.max)
        throw new InvalidInputError(`--${name} must be at most ${spec.max}`)
      return value
    }
    case 'duration': {
      const ms = parseDuration(raw, `--${name}`)
      if (spec.positive && ms <= 0)
        throw new InvalidInputError(`--${name} must be longer than zero, got "${raw}"`, {hint: 'e.g. 250ms, 30s or 5m'})
      return ms
    }
    case 'size': {
      return parseSize(raw, `--${name}`)
    }
    case 'string': {
      if (spec.options && !spec.options.includes(raw)) {
        throw new InvalidInputError(`--${name} must be one of ${spec.options.join(', ')}, got "${raw}"`)
      }
      return raw
    }
    default:
      return raw
  }
}

export function globalOptions(flags: Record<string, unknown>): GlobalOptions {
  return {
    home: flags.home as string | undefined,
    broker: flags.broker as string | undefined,
    prefix: flags.prefix as string | undefined,
    json: Boolean(flags.json),
    noColor: Boolean(flags['no-color']),
    nonInteractive: Boolean(flags['non-interactive']),
  }
}
