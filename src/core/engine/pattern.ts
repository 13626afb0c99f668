/**
 * The EventBridge / aws/event-ruler pattern language, compiled once into closures and matched
 * against whole CloudEvents objects (`{"type": …, "source": …, "data": {…}}`).
 *
 * A pattern is a JSON object that mirrors the event. Sibling fields are ANDed; a field's value is
 * either a nested object (descend into the event) or a non-empty array whose elements are ORed.
 * An array element is an exact value (string, number, boolean, null) or a one-key operator object:
 *
 * | condition                                    | matches a present value when                          |
 * | -------------------------------------------- | ----------------------------------------------------- |
 * | `"x"`, `35`, `true`, `null`                  | equal; numbers by value (35 = 35.0 = 3.5e1), no coercion between strings and numbers |
 * | `{"prefix": "x"}`, `{"suffix": "x"}`         | string starts / ends with x                            |
 * | `{"prefix": {"equals-ignore-case": "x"}}`    | same, ignoring case (also for `suffix`)               |
 * | `{"equals-ignore-case": "x"}`                | string equal ignoring case                             |
 * | `{"wildcard": "a*b"}`                        | string matches; `*` is any run, `\*` a literal star, `\\` a backslash |
 * | `{"numeric": [">", 0, "<=", 5]}`             | JSON number inside every bound (`=`, `<`, `<=`, `>`, `>=`); never a string |
 * | `{"cidr": "10.0.0.0/24"}`                    | string IPv4 / IPv6 address inside the block           |
 * | `{"anything-but": …}`                        | value is none of a string, number or list of either, or does not start / end with, equal ignoring case, or match the wildcard given as `{"prefix" \| "suffix" \| "equals-ignore-case" \| "wildcard": x \| [x, …]}` |
 * | `{"exists": true}` / `{"exists": false}`     | see below                                              |
 *
 * `"$or": [{…}, {…}, …]` (at least two non-empty objects) may appear at any object level; the
 * object matches when its other fields match and at least one alternative matches at that level.
 *
 * Missing fields. A field is *present* when the event holds at least one leaf value there: a
 * string, number, boolean or `null`, directly or inside (nested) arrays. A missing key, an empty
 * array, or an object (not a leaf, as in event-ruler) count as *missing*:
 *
 * | operator                                              | on a missing field |
 * | ----------------------------------------------------- | ------------------ |
 * | exact value (including `null` and `""`)               | no match           |
 * | `prefix`, `suffix` (with or without ignore-case)      | no match           |
 * | `equals-ignore-case`, `wildcard`                      | no match           |
 * | `numeric`, `cidr`                                     | no match           |
 * | `anything-but` (every form)                           | no match: it only judges values that are there, like EventBridge; pair it with `{"exists": false}` in the same array to also accept a missing field |
 * | `{"exists": true}`                                    | no match (it matches any present leaf, `null` included) |
 * | `{"exists": false}`                                   | match; and it only matches a missing field |
 *
 * Arrays in events: a leaf condition matches when any element matches (so `anything-but "a"`
 * matches `["a", "b"]`). A nested object pattern over an array of objects must be satisfied by a
 * single element, which is event-ruler's array-consistent `rulesForJSONEvent` behaviour.
 *
 * Malformed patterns throw {@link PatternError} naming the JSON path inside the pattern.
 */

import {InvalidInputError} from '../errors.js'
import {findTooDeep, MAX_JSON_DEPTH} from '../json-depth.js'

/** A pattern that cannot be compiled; `path` points into the pattern, e.g. `$.data.total[0].numeric`. */
export class PatternError extends InvalidInputError {
  /** JSON path of the offending part of the pattern. */
  readonly path: string
  /** What is wrong there, without the path. */
  readonly reason: string

  constructor(path: string | Where, reason: string) {
    super(`invalid pattern at ${String(path)}: ${reason}`, {code: 'bad_pattern'})
    this.path = String(path)
    this.reason = reason
  }
}

/** A place in a pattern being validated, spelled out (`$.data.total[0]`) only when an error names it. */
class Where {
  static readonly ROOT = new Where(undefined, '$')

  private constructor(
    private readonly parent: Where | undefined,
    private readonly step: string | number,
  ) {}

  /** The field `step` (a key), or the element `step` (an index) of this place. */
  at(step: string | number): Where {
    return new Where(this, step)
  }

  toString(): string {
    if (this.parent === undefined) return String(this.step)
    const base = this.parent.toString()
    return typeof this.step === 'number' ? `${base}[${this.step}]` : child(base, this.step)
  }
}

/** Why an event does not match: the first failing condition in pattern order. */
export interface MismatchExplanation {
  /** JSON path inside the event, e.g. `$.data.order.total` or `$.items[1].sku`. */
  path: string
  /** The pattern's condition for that field, as compact (possibly shortened) JSON. */
  expected: string
  /** The event's value there as compact (possibly shortened) JSON, or `missing`. */
  actual: string
  /** One line for people, e.g. `35.5 does not match [{"numeric":[">",100]}]`. */
  reason: string
}

/** A compiled pattern; build it with {@link compilePattern} once and reuse it for every event. */
export interface CompiledPattern {
  /** True when the event matches. */
  matches(event: unknown): boolean
  /** Undefined when the event matches; otherwise the first condition that failed. */
  explain(event: unknown): MismatchExplanation | undefined
}

/**
 * Compiles an EventBridge-style pattern (an already parsed JSON object).
 * @throws PatternError when the pattern is malformed; nothing is silently left unmatchable.
 */
export function compilePattern(pattern: unknown): CompiledPattern {
  return compileParsed(parsePattern(pattern))
}

/**
 * A validated pattern object: its fields in pattern order, each a leaf (the field's array of
 * conditions), a nested pattern object, or a `$or`. Both matchers read this form: the reference
 * ({@link compileParsed}) and the rule index (matcher.ts).
 */
export type ParsedPattern = readonly PatternField[]

// Every field object has all the properties (one shape for the engine), the unused ones undefined.
export type PatternField =
  | {
      readonly kind: 'leaf'
      readonly key: string
      readonly leaf: LeafSpec
      readonly object?: undefined
      readonly alternatives?: undefined
    }
  | {
      readonly kind: 'object'
      readonly key: string
      readonly leaf?: undefined
      readonly object: ParsedPattern
      readonly alternatives?: undefined
    }
  | {
      readonly kind: 'or'
      readonly key: string
      readonly leaf?: undefined
      readonly object?: undefined
      readonly alternatives: readonly ParsedPattern[]
    }

/**
 * Validates a pattern without compiling it: the errors are those of {@link compilePattern}, which
 * is this followed by {@link compileParsed}.
 * @throws PatternError naming the JSON path inside the pattern
 */
export function parsePattern(pattern: unknown): ParsedPattern {
  const parser = new Parser(pattern)
  try {
    return parser.object(pattern, Where.ROOT, 1)
  } catch (error) {
    // A pattern nested too deep is refused as such, whatever else is wrong with it.
    if (error instanceof PatternError) parser.checkDepth()
    throw error
  }
}

/**
 * The reference matcher of a parsed pattern, compiled the first time it is used: loading many rules
 * validates them all, and the rule index decides most of them without it (matcher.ts).
 */
export function compileLazily(parsed: ParsedPattern): CompiledPattern {
  return new LazyPattern(parsed)
}

/** Small: one per rule. Call its methods on it (they are not bound). */
class LazyPattern implements CompiledPattern {
  private compiled: CompiledPattern | undefined

  constructor(private readonly parsed: ParsedPattern) {}

  matches(event: unknown): boolean {
    return (this.compiled ??= compileParsed(this.parsed)).matches(event)
  }

  explain(event: unknown): MismatchExplanation | undefined {
    return (this.compiled ??= compileParsed(this.parsed)).explain(event)
  }
}

/** The reference matcher: closures that follow the pattern field by field, rule by rule. */
export function compileParsed(parsed: ParsedPattern): CompiledPattern {
  const root = compileObject(parsed)
  return {
    matches: (event) => root.match(asObject(event)),
    explain: (event) => root.explain(asObject(event), '$'),
  }
}

export type Scalar = string | number | boolean | null
export type ValueTest = (value: Scalar) => boolean
type EventObject = Record<string, unknown>

interface Condition {
  match(object: EventObject): boolean
  explain(object: EventObject, base: string): MismatchExplanation | undefined
}

const EMPTY: EventObject = Object.freeze({}) as EventObject
const OPERATORS = ['prefix', 'suffix', 'equals-ignore-case', 'wildcard', 'anything-but', 'numeric', 'exists', 'cidr']

function asObject(value: unknown): EventObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as EventObject) : EMPTY
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isScalar(value: unknown): value is Scalar {
  const type = typeof value
  return type === 'string' || type === 'number' || type === 'boolean' || value === null
}

/** Dotted segments where readable (`detail-type` included), JSON-quoted brackets otherwise. */
function child(base: string, key: string): string {
  return /^[A-Za-z_$][\w$-]*$/.test(key) ? `${base}.${key}` : `${base}[${JSON.stringify(key)}]`
}

/** Compact one-line JSON, shortened so reasons stay on one line. */
function preview(value: unknown, max = 80): string {
  const text = JSON.stringify(value) ?? String(value)
  return text.length > max ? `${text.slice(0, max - 1)}…` : text
}

// ---------------------------------------------------------------------------------------------
// Validation: the pattern's objects, "$or"s and leaves, in pattern order.

/**
 * Below a pattern object at depth d, a valid pattern nests at most this many levels more (a leaf
 * array, an operator object, an `anything-but` object, its list).
 */
const LEVELS_BELOW_OBJECT = 4

class Parser {
  private depthChecked = false

  constructor(private readonly root: unknown) {}

  /**
   * Refuses a pattern nested deeper than {@link MAX_JSON_DEPTH}, before anything else is said
   * about it. Walking it is only needed when the parse came near the limit or met an error: a
   * pattern parsed without either nests at most {@link LEVELS_BELOW_OBJECT} levels below objects
   * that are all well within the limit.
   */
  checkDepth(): void {
    if (this.depthChecked) return
    this.depthChecked = true
    const tooDeep = findTooDeep(this.root)
    if (tooDeep !== undefined)
      throw new PatternError(tooDeep, `nested deeper than ${MAX_JSON_DEPTH} levels (the limit)`)
  }

  /** A pattern object: fields ANDed in pattern order, "$or" as one more condition among them. */
  object(pattern: unknown, path: Where, depth: number): ParsedPattern {
    if (depth + LEVELS_BELOW_OBJECT > MAX_JSON_DEPTH) this.checkDepth()
    if (!isPlainObject(pattern)) {
      throw new PatternError(
        path,
        `a pattern must be a JSON object such as {"type": ["order.created"]}, got ${preview(pattern)}`,
      )
    }
    const keys = Object.keys(pattern)
    if (keys.length === 0) throw new PatternError(path, 'empty object; a pattern object needs at least one field')
    return keys.map((key) => this.field(key, pattern[key], path.at(key), depth))
  }

  private field(key: string, value: unknown, path: Where, depth: number): PatternField {
    if (key === '$or') {
      return {kind: 'or', key, leaf: undefined, object: undefined, alternatives: this.or(value, path, depth)}
    }
    if (Array.isArray(value)) {
      return {kind: 'leaf', key, leaf: analyzeLeaf(value, path), object: undefined, alternatives: undefined}
    }
    if (isPlainObject(value)) {
      const object = this.object(value, path, depth + 1)
      return {kind: 'object', key, leaf: undefined, object, alternatives: undefined}
    }
    if (OPERATORS.includes(key)) {
      throw new PatternError(
        path,
        `"${key}" is an operator and must sit inside the field's array: [{"${key}": ${preview(value, 40)}}]`,
      )
    }
    throw new PatternError(
      path,
      `expected an array of values such as ["abc"] or a nested object, got ${preview(value)}`,
    )
  }

  private or(value: unknown, path: Where, depth: number): ParsedPattern[] {
    if (!Array.isArray(value) || value.length < 2) {
      throw new PatternError(
        path,
        '"$or" expects an array of at least 2 pattern objects, such as [{"a": [1]}, {"b": [2]}]',
      )
    }
    return value.map((alternative, i) => this.object(alternative, path.at(i), depth + 2))
  }
}

// ---------------------------------------------------------------------------------------------
// The reference matcher, compiled from a parsed pattern.

function compileObject(parsed: ParsedPattern): Condition {
  const conditions = parsed.map((field) =>
    field.kind === 'or'
      ? compileOr(field.alternatives)
      : field.kind === 'leaf'
        ? leafCondition(field.key, field.leaf)
        : nestedCondition(field.key, compileObject(field.object)),
  )
  return {
    match(object) {
      for (let i = 0; i < conditions.length; i++) if (!conditions[i].match(object)) return false
      return true
    },
    explain(object, base) {
      for (const condition of conditions) {
        const why = condition.explain(object, base)
        if (why) return why
      }
      return undefined
    },
  }
}

function compileOr(parsed: readonly ParsedPattern[]): Condition {
  const alternatives = parsed.map(compileObject)
  return {
    match(object) {
      for (let i = 0; i < alternatives.length; i++) if (alternatives[i].match(object)) return true
      return false
    },
    explain(object, base) {
      const whys: MismatchExplanation[] = []
      for (const alternative of alternatives) {
        const why = alternative.explain(object, base)
        if (!why) return undefined
        whys.push(why)
      }
      const detail = whys.map((why, i) => `(${i + 1}) ${why.path}: ${why.reason}`).join('; ')
      return {
        path: base,
        expected: `any of ${alternatives.length} "$or" alternatives`,
        actual: 'none matched',
        reason: `none of the ${alternatives.length} "$or" alternatives matched: ${detail}`,
      }
    },
  }
}

/** Reads own fields only: a key like `constructor` must not find Object.prototype's function. */
function reader(key: string): (object: EventObject) => unknown {
  if (!(key in Object.prototype)) return (object) => object[key]
  return (object) => (Object.prototype.hasOwnProperty.call(object, key) ? object[key] : undefined)
}

function nestedCondition(key: string, sub: Condition): Condition {
  const read = reader(key)
  // 0: no elements, 1: elements but none matched, 2: one matched. A sub-pattern must hold within
  // one element, or fields from different array elements could combine into a false match.
  const scan = (items: unknown[]): number => {
    let state = 0
    for (const item of items) {
      if (Array.isArray(item)) {
        const inner = scan(item)
        if (inner === 2) return 2
        if (inner === 1) state = 1
      } else {
        if (sub.match(asObject(item))) return 2
        state = 1
      }
    }
    return state
  }
  const explainItems = (items: unknown[], base: string): MismatchExplanation | undefined => {
    let first: MismatchExplanation | undefined
    for (let i = 0; i < items.length; i++) {
      const item = items[i]
      const why = Array.isArray(item)
        ? explainItems(item, `${base}[${i}]`)
        : sub.explain(asObject(item), `${base}[${i}]`)
      if (!why) return undefined
      first ??= why
    }
    return first
  }
  return {
    match(object) {
      const value = read(object)
      if (!Array.isArray(value)) return sub.match(asObject(value))
      const state = scan(value)
      return state === 2 || (state === 0 && sub.match(EMPTY))
    },
    explain(object, base) {
      const value = read(object)
      const path = child(base, key)
      if (!Array.isArray(value)) return sub.explain(asObject(value), path)
      if (scan(value) === 0) return sub.explain(EMPTY, path)
      return explainItems(value, path)
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Leaf level: the field's array of values and operators, ORed.

function leafCondition(key: string, leaf: LeafSpec): Condition {
  const read = reader(key)
  const {ifPresent, ifAbsent} = leaf
  const test = leafTest(leaf) ?? (() => false)
  // `expected` is only read to explain a mismatch: not worth a JSON.stringify per field of every rule.
  const expected = () => preview(leaf.items)
  // 0: no leaf values, 1: values but none matched, 2: matched.
  const scan = (items: unknown[]): number => {
    let state = 0
    for (let i = 0; i < items.length; i++) {
      const item = items[i]
      if (isScalar(item)) {
        if (ifPresent || test(item)) return 2
        state = 1
      } else if (Array.isArray(item)) {
        const inner = scan(item)
        if (inner === 2) return 2
        if (inner === 1) state = 1
      }
    }
    return state
  }
  const match = (value: unknown): boolean => {
    if (isScalar(value)) return ifPresent || test(value)
    if (Array.isArray(value)) {
      const state = scan(value)
      return state === 2 || (state === 0 && ifAbsent)
    }
    return ifAbsent
  }
  return {
    match: (object) => match(read(object)),
    explain(object, base) {
      const value = read(object)
      if (match(value)) return undefined
      const path = child(base, key)
      const actual = value === undefined ? 'missing' : preview(value, 60)
      const absent = !isScalar(value) && !(Array.isArray(value) && scan(value) !== 0)
      let reason: string
      if (!absent) reason = `${actual} does not match ${expected()}`
      else if (value === undefined) reason = `field is missing; expected ${expected()}`
      else if (Array.isArray(value)) reason = `${actual} holds no leaf values; expected ${expected()}`
      else reason = `an object is not a leaf value; expected ${expected()}`
      return {path, expected: expected(), actual, reason}
    },
  }
}

/**
 * A field's array of conditions, sorted by kind so that the rule index (matcher.ts) can file each
 * kind where it is looked up fastest; {@link leafTest} turns it back into one test. The lists a
 * leaf does not use are one shared empty array (many rules are loaded at once).
 */
export interface LeafSpec {
  /** The field's array as written in the pattern. */
  items: unknown[]
  /** Distinct exact values, including `{"numeric": ["=", x]}` as the number x (maybe `items` itself). */
  exact: readonly Scalar[]
  /** Distinct `equals-ignore-case` strings, lower-cased. */
  ignoreCase: readonly string[]
  /** `prefix` / `suffix`, plain or ignoring case (then lower-cased). */
  affixes: readonly Affix[]
  /** Numeric ranges other than `=`. */
  numeric: readonly NumericRange[]
  /** Conditions no index serves (wildcard, anything-but, cidr): tried value by value. */
  residual: readonly ValueTest[]
  /** `{"exists": true}`: any leaf value matches. */
  ifPresent: boolean
  /** `{"exists": false}`: a missing field matches. */
  ifAbsent: boolean
}

export interface Affix {
  operator: 'prefix' | 'suffix'
  text: string
  ignoreCase: boolean
}

export interface NumericRange {
  low: number
  lowInclusive: boolean
  high: number
  highInclusive: boolean
}

/** Never changed (see {@link adding}); not frozen, so that every list has the same kind of array. */
const NONE: readonly never[] = []

/** A list grown by {@link adding} without the room kept for more (rules are many, and kept). */
function trimmed<T>(list: readonly T[]): readonly T[] {
  return list.length > 1 ? list.slice() : list
}

/** `list` with `item` added: a new array in place of the shared empty one. */
function adding<T>(list: readonly T[], item: T, distinct = false): readonly T[] {
  if (list === NONE) return [item]
  if (!distinct || !list.includes(item)) (list as T[]).push(item)
  return list
}

/**
 * Validates and sorts a field's array of conditions.
 * @throws PatternError naming the offending element
 */
function analyzeLeaf(items: unknown[], path: Where): LeafSpec {
  if (items.length === 0) throw new PatternError(path, 'empty array; list at least one value or operator')
  let exact: readonly Scalar[] = NONE
  let ignoreCase: readonly string[] = NONE
  let affixes: readonly Affix[] = NONE
  let numeric: readonly NumericRange[] = NONE
  let residual: readonly ValueTest[] = NONE
  let ifPresent = false
  let ifAbsent = false
  let scalars = 0
  for (let i = 0; i < items.length; i++) {
    const item = items[i]
    if (isScalar(item)) {
      if (typeof item === 'number' && !Number.isFinite(item))
        throw new PatternError(path.at(i), `numbers must be finite, got ${item}`)
      exact = adding(exact, item, true)
      scalars++
      continue
    }
    const at = path.at(i)
    if (Array.isArray(item))
      throw new PatternError(at, "nested arrays are not allowed; list values directly in the field's array")
    if (!isPlainObject(item)) throw new PatternError(at, `expected a value or an operator object, got ${preview(item)}`)
    const keys = Object.keys(item)
    if (keys.length !== 1) {
      throw new PatternError(
        at,
        `an operator object needs exactly one key, such as {"prefix": "abc"}, got ${keys.length}`,
      )
    }
    const operator = keys[0]
    const argument = item[operator]
    const where = at.at(operator)
    switch (operator) {
      case 'prefix':
      case 'suffix':
        affixes = adding(affixes, parseAffix(operator, argument, where))
        break
      case 'equals-ignore-case':
        ignoreCase = adding(ignoreCase, requireString(argument, where, operator).toLowerCase(), true)
        break
      case 'wildcard':
        residual = adding(residual, compileWildcard(requireString(argument, where, operator), where))
        break
      case 'anything-but':
        residual = adding(residual, compileAnythingBut(argument, where))
        break
      case 'numeric': {
        const range = parseNumeric(argument, where)
        if (typeof range === 'number') exact = adding(exact, range, true)
        else numeric = adding(numeric, range)
        break
      }
      case 'cidr':
        residual = adding(residual, compileCidr(argument, where))
        break
      case 'exists':
        if (typeof argument !== 'boolean')
          throw new PatternError(where, `exists expects true or false, got ${preview(argument)}`)
        if (argument) ifPresent = true
        else ifAbsent = true
        break
      default:
        throw new PatternError(where, `unknown operator "${operator}"; expected one of ${OPERATORS.join(', ')}`)
    }
  }
  return {
    items,
    // A field of distinct values only (the most common kind) keeps its own array.
    exact: scalars === items.length && exact.length === scalars ? (items as Scalar[]) : trimmed(exact),
    ignoreCase: trimmed(ignoreCase),
    affixes: trimmed(affixes),
    numeric: trimmed(numeric),
    residual: trimmed(residual),
    ifPresent,
    ifAbsent,
  }
}

/** One test of a leaf value for the whole spec (except exists, which the caller handles). */
export function leafTest(spec: LeafSpec): ValueTest | undefined {
  const tests: ValueTest[] = []
  const {exact, ignoreCase} = spec
  if (exact.length === 1) {
    const [only] = exact
    tests.push((value) => value === only)
  } else if (exact.length > 1) {
    const values = new Set(exact)
    tests.push((value) => values.has(value))
  }
  for (const affix of spec.affixes) tests.push(affixTest(affix))
  for (const range of spec.numeric) tests.push(numericTest(range))
  tests.push(...spec.residual)
  if (ignoreCase.length > 0) {
    const lowered = new Set(ignoreCase)
    tests.push((value) => typeof value === 'string' && lowered.has(value.toLowerCase()))
  }
  return anyOf(tests)
}

function anyOf(tests: ValueTest[]): ValueTest | undefined {
  if (tests.length <= 1) return tests[0]
  if (tests.length === 2) {
    const [a, b] = tests
    return (value) => a(value) || b(value)
  }
  return (value) => {
    for (let i = 0; i < tests.length; i++) if (tests[i](value)) return true
    return false
  }
}

function requireString(argument: unknown, path: Where, operator: string): string {
  if (typeof argument !== 'string')
    throw new PatternError(path, `${operator} expects a string, got ${preview(argument)}`)
  return argument
}

// ---------------------------------------------------------------------------------------------
// Operators. Each returns a test of one leaf value; strings-only operators reject other types.

function parseAffix(operator: 'prefix' | 'suffix', argument: unknown, path: Where): Affix {
  if (typeof argument === 'string') return {operator, text: argument, ignoreCase: false}
  if (isPlainObject(argument) && Object.keys(argument).length === 1 && 'equals-ignore-case' in argument) {
    const text = requireString(
      argument['equals-ignore-case'],
      path.at('equals-ignore-case'),
      'equals-ignore-case',
    ).toLowerCase()
    return {operator, text, ignoreCase: true}
  }
  throw new PatternError(path, `${operator} expects a string or {"equals-ignore-case": "…"}, got ${preview(argument)}`)
}

function affixTest({operator, text, ignoreCase}: Affix): ValueTest {
  if (operator === 'prefix') {
    return ignoreCase
      ? (value) => typeof value === 'string' && value.toLowerCase().startsWith(text)
      : (value) => typeof value === 'string' && value.startsWith(text)
  }
  return ignoreCase
    ? (value) => typeof value === 'string' && value.toLowerCase().endsWith(text)
    : (value) => typeof value === 'string' && value.endsWith(text)
}

/**
 * `*` matches any run of characters. Matching is split on the stars and found with
 * startsWith/indexOf/endsWith rather than a regex, so no pattern can backtrack exponentially.
 */
function compileWildcard(text: string, path: Where): ValueTest {
  const segments: string[] = []
  let current = ''
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c === '\\') {
      const next = text[i + 1]
      if (next !== '*' && next !== '\\') {
        throw new PatternError(path, `wildcard "${text}": a backslash may only escape * or \\ (at character ${i + 1})`)
      }
      current += next
      i++
    } else if (c === '*') {
      if (text[i + 1] === '*') throw new PatternError(path, `wildcard "${text}": consecutive * are not allowed`)
      segments.push(current)
      current = ''
    } else {
      current += c
    }
  }
  segments.push(current)
  if (segments.length === 1) return (value) => value === current
  const first = segments[0]
  const last = segments[segments.length - 1]
  const middle = segments.slice(1, -1).filter((segment) => segment !== '')
  const minimum = first.length + last.length
  return (value) => {
    if (typeof value !== 'string' || value.length < minimum || !value.startsWith(first) || !value.endsWith(last))
      return false
    let at = first.length
    const end = value.length - last.length
    for (let i = 0; i < middle.length; i++) {
      const found = value.indexOf(middle[i], at)
      if (found === -1 || found + middle[i].length > end) return false
      at = found + middle[i].length
    }
    return true
  }
}

function compileAnythingBut(argument: unknown, path: Where): ValueTest {
  if (typeof argument === 'string' || (typeof argument === 'number' && Number.isFinite(argument))) {
    return (value) => value !== argument
  }
  if (Array.isArray(argument)) {
    const allStrings = argument.every((item) => typeof item === 'string')
    const allNumbers = argument.every((item) => typeof item === 'number' && Number.isFinite(item))
    if (argument.length === 0 || !(allStrings || allNumbers)) {
      throw new PatternError(path, 'anything-but expects a non-empty list of only strings or only numbers')
    }
    if (argument.length === 1) {
      const only = argument[0] as Scalar
      return (value) => value !== only
    }
    const excluded = new Set<Scalar>(argument as Scalar[])
    return (value) => !excluded.has(value)
  }
  if (isPlainObject(argument)) {
    const keys = Object.keys(argument)
    const operator = keys[0]
    if (keys.length !== 1 || !['prefix', 'suffix', 'equals-ignore-case', 'wildcard'].includes(operator)) {
      throw new PatternError(
        path,
        'anything-but takes an object with exactly one of prefix, suffix, equals-ignore-case or wildcard',
      )
    }
    const where = path.at(operator)
    const raw = argument[operator]
    const list = Array.isArray(raw) ? raw : [raw]
    if (list.length === 0)
      throw new PatternError(where, `anything-but ${operator} expects a string or a non-empty list of strings`)
    const texts = list.map((item, i) => {
      const at = Array.isArray(raw) ? where.at(i) : where
      const text = requireString(item, at, `anything-but ${operator}`)
      // An empty prefix or suffix would exclude every string, leaving a rule that never matches one.
      if (text === '' && (operator === 'prefix' || operator === 'suffix')) {
        throw new PatternError(at, `anything-but ${operator} must not be empty; it would exclude every string`)
      }
      return text
    })
    let excluded: ValueTest
    if (operator === 'prefix' || operator === 'suffix') {
      excluded = anyOf(texts.map((text) => affixTest({operator, text, ignoreCase: false})))!
    } else if (operator === 'wildcard') {
      excluded = anyOf(texts.map((text, i) => compileWildcard(text, Array.isArray(raw) ? where.at(i) : where)))!
    } else {
      const lowered = new Set(texts.map((text) => text.toLowerCase()))
      excluded = (value) => typeof value === 'string' && lowered.has(value.toLowerCase())
    }
    // Only strings can be excluded by a string operator; a number or boolean is "anything but" it.
    return (value) => !excluded(value)
  }
  throw new PatternError(
    path,
    `anything-but expects a string, a number, a list of either, or {"prefix" | "suffix" | "equals-ignore-case" | "wildcard": …}, got ${preview(argument)}`,
  )
}

/** A range, or the number itself for `["=", x]`. */
function parseNumeric(argument: unknown, path: Where): NumericRange | number {
  const pairsHint = 'numeric expects operator/value pairs such as [">", 0] or [">", 0, "<=", 5]'
  if (!Array.isArray(argument) || argument.length === 0 || argument.length % 2 !== 0)
    throw new PatternError(path, pairsHint)
  if (argument.length > 4) throw new PatternError(path, 'numeric takes at most one lower and one upper bound')
  let low = -Infinity
  let lowInclusive = false
  let high = Infinity
  let highInclusive = false
  let lowSet = false
  let highSet = false
  for (let i = 0; i < argument.length; i += 2) {
    const operator = argument[i]
    const bound = argument[i + 1]
    if (typeof operator !== 'string' || !['=', '<', '<=', '>', '>='].includes(operator)) {
      throw new PatternError(path.at(i), `unknown numeric operator ${preview(operator)}; use =, <, <=, >, >=`)
    }
    if (typeof bound !== 'number' || !Number.isFinite(bound)) {
      throw new PatternError(path.at(i + 1), `numeric bound must be a number, got ${preview(bound)}`)
    }
    if (operator === '=') {
      if (argument.length !== 2) throw new PatternError(path, '"=" cannot be combined with other comparisons')
      return bound
    }
    if (operator[0] === '>') {
      if (lowSet) throw new PatternError(path, 'numeric has two lower bounds (> or >=)')
      low = bound
      lowInclusive = operator === '>='
      lowSet = true
    } else {
      if (highSet) throw new PatternError(path, 'numeric has two upper bounds (< or <=)')
      high = bound
      highInclusive = operator === '<='
      highSet = true
    }
  }
  if (low > high || (low === high && !(lowInclusive && highInclusive))) {
    throw new PatternError(path, `numeric range is empty; no number is ${preview(argument)}`)
  }
  return {low, lowInclusive, high, highInclusive}
}

function numericTest({low, lowInclusive, high, highInclusive}: NumericRange): ValueTest {
  return (value) =>
    typeof value === 'number' &&
    (value > low || (lowInclusive && value === low)) &&
    (value < high || (highInclusive && value === high))
}

// ---------------------------------------------------------------------------------------------
// CIDR. IPv4 addresses are compared as numbers in [first, last]; IPv6 as eight 16-bit groups,
// each within its masked range (independent per group because the mask is a prefix).

function compileCidr(argument: unknown, path: Where): ValueTest {
  const usage = 'cidr expects an IPv4 or IPv6 block with a prefix length, such as "10.0.0.0/24" or "2001:db8::/32"'
  if (typeof argument !== 'string') throw new PatternError(path, `${usage}, got ${preview(argument)}`)
  const match = /^([^/]+)\/(\d{1,3})$/.exec(argument)
  if (!match) throw new PatternError(path, `${usage}, got ${preview(argument)}`)
  const bits = Number(match[2])
  const v4 = parseIPv4(match[1])
  if (v4 !== -1) {
    if (bits > 32) throw new PatternError(path, `IPv4 prefix length must be 0 to 32, got ${bits}`)
    const size = 2 ** (32 - bits)
    const first = Math.floor(v4 / size) * size
    const last = first + size - 1
    return (value) => {
      if (typeof value !== 'string') return false
      let ip = parseIPv4(value)
      if (ip === -1 && value.includes(':')) ip = mappedIPv4(parseIPv6(value))
      return ip >= first && ip <= last
    }
  }
  const v6 = parseIPv6(match[1])
  if (!v6) throw new PatternError(path, `"${match[1]}" is not an IPv4 or IPv6 address`)
  if (bits > 128) throw new PatternError(path, `IPv6 prefix length must be 0 to 128, got ${bits}`)
  const low: number[] = []
  const high: number[] = []
  for (let g = 0; g < 8; g++) {
    const kept = Math.max(0, Math.min(16, bits - g * 16))
    const mask = (0xffff << (16 - kept)) & 0xffff
    low.push(v6[g] & mask)
    high.push((v6[g] & mask) | (~mask & 0xffff))
  }
  return (value) => {
    if (typeof value !== 'string' || !value.includes(':')) return false
    const ip = parseIPv6(value)
    if (!ip) return false
    for (let g = 0; g < 8; g++) if (ip[g] < low[g] || ip[g] > high[g]) return false
    return true
  }
}

/** Dotted quad to an unsigned number, or -1. Leading zeros are refused: some tools read them as octal. */
function parseIPv4(text: string): number {
  let value = 0
  let part = 0
  let digits = 0
  let dots = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1
      value = value * 256 + part
      part = 0
      digits = 0
      dots++
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return -1
      part = part * 10 + c - 48
      digits++
      if (part > 255) return -1
    } else {
      return -1
    }
  }
  return dots === 3 && digits > 0 ? value * 256 + part : -1
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/

/** Eight 16-bit groups, accepting `::` compression and a trailing dotted quad; no zone ids. */
function parseIPv6(text: string): number[] | undefined {
  if (text.length < 2 || text.length > 45) return undefined
  const gap = text.indexOf('::')
  if (gap !== -1 && text.indexOf('::', gap + 1) !== -1) return undefined
  const groups = (part: string, tail: boolean): number[] | undefined => {
    if (part === '') return []
    const pieces = part.split(':')
    const out: number[] = []
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]
      if (tail && i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIPv4(piece)
        if (v4 === -1) return undefined
        out.push(Math.floor(v4 / 65536), v4 % 65536)
      } else if (HEX_GROUP.test(piece)) {
        out.push(parseInt(piece, 16))
      } else {
        return undefined
      }
    }
    return out
  }
  if (gap === -1) {
    const all = groups(text, true)
    return all?.length === 8 ? all : undefined
  }
  const head = groups(text.slice(0, gap), false)
  const tail = groups(text.slice(gap + 2), true)
  if (!head || !tail || head.length + tail.length > 7) return undefined
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail]
}

/** `::ffff:10.0.0.7` is an IPv4 address in IPv6 clothing (event-ruler reads it as IPv4 too). */
function mappedIPv4(groups: number[] | undefined): number {
  if (!groups || groups[5] !== 0xffff) return -1
  for (let g = 0; g < 5; g++) if (groups[g] !== 0) return -1
  return groups[6] * 65536 + groups[7]
}
