import {InvalidInputError} from '../errors.js'
import {validateName} from '../names.js'
import {parseDuration} from '../units.js'
import {type CompiledPattern, compileLazily, type ParsedPattern, parsePattern, PatternError} from './pattern.js'
import {parseSchedule, type Schedule} from './cron.js'
import {urlTemplateProblem} from './template.js'

/**
 * The rules document (`rules.json`): rules that turn events into actions, and the sources that
 * produce events. Hand-editable JSON; everything is validated on load, with errors that name the
 * rule and the path inside it. Durations are strings such as "500ms", "30s", "5m".
 */

export type ExecAction = {
  type: 'exec'
  /** argv; with `shell: true` a single string run by `sh -c` (no templates allowed in it). */
  command: string[] | string
  shell?: boolean
  /** Extra environment; values may use templates. */
  env?: Record<string, string>
  cwd?: string
  timeout?: string
}
export type PublishAction = {
  type: 'publish'
  /** Queue or topic name (templates allowed). */
  to: string
  /** Body template; default: the whole event as JSON. */
  body?: string
  headers?: Record<string, string>
  topic?: boolean
}
export type HttpAction = {
  type: 'http'
  url: string
  /** CloudEvents HTTP binding: the whole event as JSON (structured), or data as body with ce-* headers (binary). */
  mode?: 'structured' | 'binary'
  method?: 'POST' | 'PUT'
  headers?: Record<string, string>
  timeout?: string
}
export type FileAction = {
  type: 'file'
  /** Appended to, one JSON line per event; relative to the rules file's folder. */
  path: string
}
export type LogAction = {type: 'log'}
export type ActionSpec = ExecAction | PublishAction | HttpAction | FileAction | LogAction

export interface RetryPolicy {
  /** Attempts in all (default 3). */
  maxAttempts: number
  /** First backoff; doubles per attempt with jitter (default 1s). */
  backoffMs: number
  maxBackoffMs: number
  /** Give up once the first attempt is this old (default 10m). */
  maxAgeMs: number
}

export type Concurrency = 'parallel' | 'serial' | 'drop'

export interface RuleSpec {
  name: string
  description?: string
  enabled?: boolean
  pattern: Record<string, unknown>
  actions: ActionSpec[]
  retry?: {maxAttempts?: number; backoff?: string; maxBackoff?: string; maxAge?: string}
  concurrency?: Concurrency
}

export type SourceSpec =
  | {name: string; type: 'schedule'; every?: string; cron?: string; event: EventTemplate; enabled?: boolean}
  | {name: string; type: 'watch-file'; path: string; event: EventTemplate; enabled?: boolean}
  | {name: string; type: 'poll-command'; command: string[]; every: string; event: EventTemplate; enabled?: boolean}

/** What a source's events look like: `type` is required, the rest is optional. */
export interface EventTemplate {
  type: string
  source?: string
  subject?: string
  data?: unknown
}

export interface RulesDocument {
  rules: RuleSpec[]
  sources?: SourceSpec[]
  settings?: {dedupWindow?: string}
}

/** A validated rule, ready to match. */
export interface Rule {
  spec: RuleSpec
  name: string
  enabled: boolean
  /** The validated pattern, as the rule index reads it (matcher.ts). */
  parsed: ParsedPattern
  /** The reference matcher of the pattern, compiled on first use. */
  pattern: CompiledPattern
  actions: ActionSpec[]
  retry: Readonly<RetryPolicy>
  concurrency: Concurrency
}

export const DEFAULT_RETRY: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 3,
  backoffMs: 1_000,
  maxBackoffMs: 30_000,
  maxAgeMs: 10 * 60_000,
})
export const DEFAULT_DEDUP_WINDOW_MS = 60 * 60_000

export interface ValidatedDocument {
  document: RulesDocument
  rules: Rule[]
  sources: SourceSpec[]
  /** Parsed schedules of schedule sources, by source name. */
  schedules: Map<string, Schedule>
  dedupWindowMs: number
}

/** Validates a whole document; the first problem is reported with the file, rule and path. */
export function validateDocument(raw: unknown, file: string): ValidatedDocument {
  const fail = (where: string, why: string): never => {
    throw new InvalidInputError(`${file}: ${where}: ${why}`, {
      code: 'bad_rules',
      hint: 'fix the rules document (see README: Rules)',
    })
  }
  if (!isObject(raw)) fail('the document', 'must be a JSON object with a "rules" array')
  const doc = raw as Record<string, unknown>
  for (const key of Object.keys(doc))
    if (!['rules', 'sources', 'settings', '$schema'].includes(key))
      fail(`"${key}"`, 'unknown top-level key (expected rules, sources, settings)')
  const rawRules = doc.rules ?? []
  if (!Array.isArray(rawRules)) fail('"rules"', 'must be an array')
  const names = new Set<string>()
  const rules = (rawRules as unknown[]).map((value, index) => {
    const rule = validateRule(value, (where, why) => fail(ruleLabel(value, index) + (where ? ` at ${where}` : ''), why))
    if (names.has(rule.name)) fail(ruleLabel(value, index), `the name "${rule.name}" is used twice`)
    names.add(rule.name)
    return rule
  })
  const rawSources = doc.sources ?? []
  if (!Array.isArray(rawSources)) fail('"sources"', 'must be an array')
  const schedules = new Map<string, Schedule>()
  const sourceNames = new Set<string>()
  const sources = (rawSources as unknown[]).map((value, index) => {
    const label = `source ${isObject(value) && typeof value.name === 'string' ? `"${value.name}"` : `#${index + 1}`}`
    const source = validateSource(value, schedules, (where, why) => fail(`${label}${where ? ` at ${where}` : ''}`, why))
    if (sourceNames.has(source.name)) fail(label, `the name "${source.name}" is used twice`)
    sourceNames.add(source.name)
    return source
  })
  let dedupWindowMs = DEFAULT_DEDUP_WINDOW_MS
  if (doc.settings !== undefined) {
    if (!isObject(doc.settings)) fail('"settings"', 'must be an object')
    const settings = doc.settings as Record<string, unknown>
    if (settings.dedupWindow !== undefined)
      dedupWindowMs = duration(settings.dedupWindow, (why) => fail('settings.dedupWindow', why))
  }
  return {document: raw as RulesDocument, rules, sources, schedules, dedupWindowMs}
}

function ruleLabel(value: unknown, index: number): string {
  return `rule ${isObject(value) && typeof value.name === 'string' ? `"${value.name}"` : `#${index + 1}`}`
}

type Fail = (where: string, why: string) => never

/** Validates one rule (also used by `rule add` before writing). */
export function validateRule(value: unknown, fail: Fail): Rule {
  if (!isObject(value)) return fail('', 'must be an object')
  const spec = value as Record<string, unknown>
  // Indexed loops: this runs for every rule of a document, mostly before V8 optimises it.
  const keys = Object.keys(spec)
  for (let i = 0; i < keys.length; i++) if (!RULE_FIELDS.has(keys[i])) fail(keys[i], 'unknown field')
  if (typeof spec.name !== 'string') fail('name', 'must be a string')
  try {
    validateName(spec.name as string, 'rule name')
  } catch (error) {
    fail('name', (error as Error).message)
  }
  if (spec.enabled !== undefined && typeof spec.enabled !== 'boolean') fail('enabled', 'must be true or false')
  if (spec.description !== undefined && typeof spec.description !== 'string') fail('description', 'must be a string')
  let parsed: ParsedPattern
  try {
    parsed = parsePattern(spec.pattern)
  } catch (error) {
    if (error instanceof PatternError) fail(`pattern${error.path.slice(1)}`, error.reason)
    throw error
  }
  if (!Array.isArray(spec.actions) || spec.actions.length === 0) fail('actions', 'must be a non-empty array')
  // validateAction only checks: the rule keeps the document's array (one copy per rule less, when
  // thousands are loaded at once).
  const actions = spec.actions as ActionSpec[]
  for (let index = 0; index < actions.length; index++)
    validateAction(actions[index], (where, why) => fail(`actions[${index}]${where ? `.${where}` : ''}`, why))
  // The defaults are one object shared by the rules that keep them.
  const retry = spec.retry === undefined ? DEFAULT_RETRY : retryPolicy(spec.retry, fail)
  const concurrency = (spec.concurrency ?? 'parallel') as Concurrency
  if (!CONCURRENCY.has(concurrency)) fail('concurrency', 'must be parallel, serial or drop')
  return {
    spec: value as unknown as RuleSpec,
    name: spec.name as string,
    enabled: spec.enabled !== false,
    parsed: parsed!,
    pattern: compileLazily(parsed!),
    actions,
    retry,
    concurrency,
  }
}

const RULE_FIELDS = new Set(['name', 'description', 'enabled', 'pattern', 'actions', 'retry', 'concurrency'])
const CONCURRENCY = new Set(['parallel', 'serial', 'drop'])

/** A rule's own retry policy, the defaults filled in. */
function retryPolicy(value: unknown, fail: Fail): RetryPolicy {
  if (!isObject(value)) fail('retry', 'must be an object')
  const retry = {...DEFAULT_RETRY}
  const r = value as Record<string, unknown>
  for (const key of Object.keys(r))
    if (!['maxAttempts', 'backoff', 'maxBackoff', 'maxAge'].includes(key)) fail(`retry.${key}`, 'unknown field')
  if (r.maxAttempts !== undefined) {
    if (!Number.isInteger(r.maxAttempts) || (r.maxAttempts as number) < 1 || (r.maxAttempts as number) > 100)
      fail('retry.maxAttempts', 'must be a whole number from 1 to 100')
    retry.maxAttempts = r.maxAttempts as number
  }
  if (r.backoff !== undefined) retry.backoffMs = duration(r.backoff, (why) => fail('retry.backoff', why))
  if (r.maxBackoff !== undefined) retry.maxBackoffMs = duration(r.maxBackoff, (why) => fail('retry.maxBackoff', why))
  if (r.maxAge !== undefined) retry.maxAgeMs = duration(r.maxAge, (why) => fail('retry.maxAge', why))
  if (retry.maxBackoffMs < retry.backoffMs) fail('retry.maxBackoff', 'must be at least retry.backoff')
  return retry
}

const TEMPLATE = /\{\{\s*([^}]*?)\s*\}\}/

function validateAction(value: unknown, fail: Fail): void {
  if (!isObject(value)) fail('', 'must be an object with a "type"')
  const a = value as Record<string, unknown>
  switch (a.type) {
    case 'exec': {
      allowedFields(a, ['command', 'shell', 'env', 'cwd', 'timeout'], fail)
      if (a.shell !== undefined && typeof a.shell !== 'boolean') fail('shell', 'must be true or false')
      if (a.shell === true) {
        if (typeof a.command !== 'string' || a.command.trim() === '')
          fail('command', 'with shell: true, must be a non-empty string')
        // Event values never reach a shell string: they are in MQ_EVENT_* variables instead.
        if (TEMPLATE.test(a.command as string))
          fail(
            'command',
            'templates are not allowed in a shell command; read $MQ_EVENT_* variables (or use an argv array)',
          )
      } else if (
        !Array.isArray(a.command) ||
        a.command.length === 0 ||
        a.command.some((item) => typeof item !== 'string') ||
        (a.command[0] as string) === ''
      ) {
        fail(
          'command',
          'must be a non-empty array of strings (argv), e.g. ["./deploy.sh", "{{data.env}}"]; or set shell: true with a string',
        )
      } else if (TEMPLATE.test((a.command as string[])[0])) {
        // Event data may fill in arguments, never choose the program.
        fail('command[0]', 'the program cannot be a template; put templates in the arguments')
      }
      checkStringMap(a, 'env', fail)
      if (a.cwd !== undefined && typeof a.cwd !== 'string') fail('cwd', 'must be a string')
      if (a.timeout !== undefined) positiveDuration(a.timeout, (why) => fail('timeout', why))
      break
    }
    case 'publish': {
      allowedFields(a, ['to', 'body', 'headers', 'topic'], fail)
      if (typeof a.to !== 'string' || a.to === '') fail('to', 'must be a queue or topic name')
      if (!TEMPLATE.test(a.to as string)) {
        try {
          validateName(a.to as string, 'destination')
        } catch (error) {
          fail('to', (error as Error).message)
        }
      }
      if (a.body !== undefined && typeof a.body !== 'string') fail('body', 'must be a string template')
      if (a.topic !== undefined && typeof a.topic !== 'boolean') fail('topic', 'must be true or false')
      checkStringMap(a, 'headers', fail)
      break
    }
    case 'http': {
      allowedFields(a, ['url', 'mode', 'method', 'headers', 'timeout'], fail)
      if (typeof a.url !== 'string' || !/^https?:\/\/\S+$/.test(a.url.replace(TEMPLATE, 'x')))
        fail('url', 'must be an http:// or https:// URL')
      const urlProblem = urlTemplateProblem(a.url as string)
      if (urlProblem) fail('url', urlProblem)
      if (a.mode !== undefined && a.mode !== 'structured' && a.mode !== 'binary')
        fail('mode', 'must be structured or binary')
      if (a.method !== undefined && a.method !== 'POST' && a.method !== 'PUT') fail('method', 'must be POST or PUT')
      checkStringMap(a, 'headers', fail)
      if (a.timeout !== undefined) positiveDuration(a.timeout, (why) => fail('timeout', why))
      break
    }
    case 'file': {
      allowedFields(a, ['path'], fail)
      if (typeof a.path !== 'string' || a.path === '') fail('path', 'must be a file path')
      break
    }
    case 'log':
      allowedFields(a, [], fail)
      break
    default:
      fail('type', 'must be exec, publish, http, file or log')
  }
}

/** Refuses an action's fields other than `type` and `keys`. */
function allowedFields(action: Record<string, unknown>, keys: readonly string[], fail: Fail): void {
  const present = Object.keys(action)
  for (let i = 0; i < present.length; i++) {
    const key = present[i]
    if (key !== 'type' && !keys.includes(key)) fail(key, `unknown field for a ${action.type as string} action`)
  }
}

function checkStringMap(action: Record<string, unknown>, key: string, fail: Fail): void {
  const map = action[key]
  if (map === undefined) return
  if (!isObject(map) || Object.values(map).some((v) => typeof v !== 'string')) fail(key, 'must be an object of strings')
}

function validateSource(value: unknown, schedules: Map<string, Schedule>, fail: Fail): SourceSpec {
  if (!isObject(value)) return fail('', 'must be an object')
  const s = value as Record<string, unknown>
  if (typeof s.name !== 'string') fail('name', 'must be a string')
  try {
    validateName(s.name as string, 'source name')
  } catch (error) {
    fail('name', (error as Error).message)
  }
  if (s.enabled !== undefined && typeof s.enabled !== 'boolean') fail('enabled', 'must be true or false')
  if (
    !isObject(s.event) ||
    typeof (s.event as Record<string, unknown>).type !== 'string' ||
    (s.event as Record<string, string>).type === ''
  ) {
    fail('event', 'must be an object with a "type", e.g. {"type": "nightly.tick"}')
  }
  const allowed = (keys: string[]) => {
    for (const key of Object.keys(s))
      if (!['name', 'type', 'event', 'enabled', ...keys].includes(key))
        fail(key, `unknown field for a ${s.type} source`)
  }
  switch (s.type) {
    case 'schedule': {
      allowed(['every', 'cron'])
      if ((s.every === undefined) === (s.cron === undefined))
        fail('', 'give exactly one of "every" (e.g. "5m") or "cron" (e.g. "0 3 * * *")')
      try {
        schedules.set(s.name as string, parseSchedule(s.every !== undefined ? `every ${s.every}` : String(s.cron)))
      } catch (error) {
        fail(s.every !== undefined ? 'every' : 'cron', (error as Error).message)
      }
      break
    }
    case 'watch-file':
      allowed(['path'])
      if (typeof s.path !== 'string' || s.path === '') fail('path', 'must be a file path')
      break
    case 'poll-command':
      allowed(['command', 'every'])
      if (!Array.isArray(s.command) || s.command.length === 0 || s.command.some((c) => typeof c !== 'string'))
        fail('command', 'must be a non-empty array of strings (argv)')
      positiveDuration(s.every, (why) => fail('every', why))
      break
    default:
      fail('type', 'must be schedule, watch-file or poll-command')
  }
  return value as unknown as SourceSpec
}

function duration(value: unknown, fail: (why: string) => never): number {
  if (typeof value !== 'string') return fail('must be a duration string such as "30s"')
  try {
    return parseDuration(value, 'duration')
  } catch (error) {
    return fail((error as Error).message)
  }
}

/** A timeout or an interval: zero would time out at once or spin, so it is refused. */
function positiveDuration(value: unknown, fail: (why: string) => never): number {
  const ms = duration(value, fail)
  return ms > 0 ? ms : fail('must be longer than zero, e.g. "30s"')
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
