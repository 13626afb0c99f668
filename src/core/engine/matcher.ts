/**
 * Matches an event against many rules at once, at a cost that depends on the event rather than on
 * the number of rules (the approach of aws/event-ruler's state machine).
 *
 * Each rule's pattern is expanded into alternatives without `$or` (the `$or`s distribute over the
 * fields around them, also inside nested objects, since "some array element matches A or B" is
 * "some element matches A, or some element matches B"). Each alternative is a list of conditions,
 * one per field path. The conditions are filed in a tree of field paths; at each path, by kind:
 * a map from exact values, a map from lower-cased values (`equals-ignore-case`), prefix and suffix
 * tries, a segment tree of numeric ranges, and a list for `exists: true`. Matching walks only the
 * parts of the event that some pattern names, looks each leaf value up in its path's index, and
 * counts, per alternative, the conditions that found a value. An alternative whose conditions have
 * all found one matches.
 *
 * Only the selective conditions are counted. The others are checked on the event, for that
 * alternative only, once the counted ones have all found a value:
 * - conditions many rules share (the same value at the same path), unless the alternative has
 *   nothing more selective: otherwise every event carrying that value would count them all;
 * - conditions no index serves (`wildcard`, `anything-but`, `cidr`): they are counted when the
 *   field holds any value, then checked;
 * - conditions that accept a missing field (`exists: false`): they cannot be counted at all; an
 *   alternative made only of those is tried on every event (so they cost per rule, like before).
 * The reference matcher ({@link compilePattern}) decides, for that rule only, when values found
 * inside an array of objects may come from different elements (a nested pattern must hold within
 * one element), and for a rule whose `$or`s would expand into more than {@link MAX_ALTERNATIVES}
 * alternatives (tried on every event).
 * test/core/engine/matcher.test.ts checks this against the reference on a generated corpus.
 */

import {type LeafSpec, leafTest, type NumericRange, type ParsedPattern, type Scalar, type ValueTest} from './pattern.js'
import type {Rule} from './rules.js'

/** Beyond this many `$or` alternatives a rule is matched the straightforward way. */
export const MAX_ALTERNATIVES = 256
/** A condition that this many others share (the same value at the same path) is not indexed when its alternative has a more selective one. */
const SHARED = 16

/** The enabled rules that match an event, in document order. */
export class RuleMatcher {
  private readonly root = new PathNode()
  /** Per condition: its alternative. */
  private readonly conditionAlternative: number[] = []
  /** Per alternative: its rule (index into `rules`), how many conditions it needs, whether a count is exact. */
  private readonly alternativeRule: number[] = []
  private readonly alternativeNeeds: number[] = []
  private readonly alternativeExact: boolean[] = []
  /** Per alternative: the conditions the index does not decide, checked on the event once the others matched. */
  private readonly alternativeChecks: Check[][] = []
  /** Rules tried on every event (see the module comment). */
  private readonly everyEvent: number[] = []

  // Scratch state of one match(), reset by bumping the generation instead of clearing.
  private generation = 0
  private conditionSeen = new Uint32Array(0)
  private alternativeSeen = new Uint32Array(0)
  private alternativeCount = new Uint32Array(0)
  private alternativeInArray = new Uint8Array(0)
  private ruleSeen = new Uint32Array(0)
  private complete: number[] = []
  private readonly matched: number[] = []
  /** Scratch of the build: the cost of each condition of one alternative. */
  private readonly costs: number[] = []

  constructor(private readonly rules: readonly Rule[]) {
    // Two passes: first learn how many conditions share each value, then file each alternative
    // under its selective conditions only.
    const expanded: (Condition[][] | undefined)[] = new Array(rules.length)
    for (let rule = 0; rule < rules.length; rule++) {
      if (!rules[rule].enabled) continue
      const alternatives = expand(rules[rule].parsed, this.root)
      expanded[rule] = alternatives
      if (alternatives === undefined) continue
      for (const conditions of alternatives) {
        for (const condition of conditions) if (!condition.leaf.ifAbsent) condition.node.field().count(condition.leaf)
      }
    }
    for (let rule = 0; rule < rules.length; rule++) if (rules[rule].enabled) this.add(expanded[rule], rule)
    this.conditionSeen = new Uint32Array(this.conditionAlternative.length)
    this.alternativeSeen = new Uint32Array(this.alternativeRule.length)
    this.alternativeCount = new Uint32Array(this.alternativeRule.length)
    this.alternativeInArray = new Uint8Array(this.alternativeRule.length)
    this.ruleSeen = new Uint32Array(rules.length)
    this.root.finish()
  }

  /** The enabled rules whose pattern matches the event, in the order of the document. */
  match(event: unknown): Rule[] {
    return this.matchIndexes(event).map((index) => this.rules[index])
  }

  /**
   * The positions (in the rules given) of the enabled rules whose pattern matches the event, in
   * ascending order. The array is reused by the next call: copy what you keep.
   */
  matchIndexes(event: unknown): readonly number[] {
    const generation = this.nextGeneration()
    this.complete.length = 0
    if (isObject(event)) this.visit(event, this.root, false)
    const matched = this.matched
    matched.length = 0
    const ruleSeen = this.ruleSeen
    for (const alternative of this.complete) {
      const rule = this.alternativeRule[alternative]
      if (ruleSeen[rule] === generation) continue
      // A false alternative leaves the rule's other alternatives to decide; the reference decides them all.
      const decided = this.decide(alternative, event as Record<string, unknown>)
      if (decided === false) continue
      ruleSeen[rule] = generation
      if (decided || this.rules[rule].pattern.matches(event)) matched.push(rule)
    }
    for (const rule of this.everyEvent) {
      if (ruleSeen[rule] === generation) continue
      ruleSeen[rule] = generation
      if (this.rules[rule].pattern.matches(event)) matched.push(rule)
    }
    if (matched.length > 1) matched.sort((a, b) => a - b)
    return matched
  }

  /**
   * Whether a complete alternative matches, or undefined when only the reference matcher can say:
   * values from an array of objects may come from different elements (one condition alone cannot
   * mix them), and a check that meets an array of objects on its way needs the same care.
   */
  private decide(alternative: number, event: Record<string, unknown>): boolean | undefined {
    if (this.alternativeInArray[alternative] === 1 && this.alternativeNeeds[alternative] > 1) return undefined
    if (this.alternativeExact[alternative]) return true
    for (const check of this.alternativeChecks[alternative]) {
      const result = check.holds(event)
      if (result !== true) return result
    }
    return true
  }

  private nextGeneration(): number {
    if (++this.generation === 0xffffffff) {
      this.generation = 1
      for (const array of [this.conditionSeen, this.alternativeSeen, this.ruleSeen]) array.fill(0)
    }
    return this.generation
  }

  // --- building ------------------------------------------------------------------------------

  private add(alternatives: Condition[][] | undefined, rule: number): void {
    if (alternatives === undefined) {
      this.everyEvent.push(rule)
      return
    }
    const costs = this.costs
    for (const conditions of alternatives) {
      const alternative = this.alternativeRule.length
      // A condition that accepts a missing field is not a necessary one: leave it to the check.
      let cheapest = -1
      for (let i = 0; i < conditions.length; i++) {
        const {node, leaf} = conditions[i]
        if (leaf.ifAbsent) continue
        costs[i] = node.index!.cost(leaf)
        if (cheapest === -1 || costs[i] < costs[cheapest]) cheapest = i
      }
      let needs = 0
      let checks: Check[] | undefined
      for (let i = 0; i < conditions.length; i++) {
        const condition = conditions[i]
        // A value many rules share would make every event carrying it count all of them: such a
        // condition is checked afterwards, unless the alternative has nothing more selective.
        if (condition.leaf.ifAbsent || (costs[i] > SHARED && i !== cheapest)) {
          ;(checks ??= []).push(new Check(condition))
          continue
        }
        const id = this.conditionAlternative.length
        this.conditionAlternative.push(alternative)
        needs++
        if (!condition.node.index!.add(condition.leaf, id)) (checks ??= []).push(new Check(condition))
      }
      this.alternativeRule.push(rule)
      this.alternativeNeeds.push(needs)
      this.alternativeExact.push(checks === undefined)
      this.alternativeChecks.push(checks ?? NO_CHECKS)
      if (needs === 0) this.everyEvent.push(rule)
    }
  }

  // --- matching ------------------------------------------------------------------------------

  private visit(object: Record<string, unknown>, node: PathNode, inArray: boolean): void {
    const keys = node.keys
    const children = node.childList
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]
      const value = node.guarded[i] && !Object.prototype.hasOwnProperty.call(object, key) ? undefined : object[key]
      if (value !== undefined) this.value(value, children[i], inArray)
    }
  }

  private value(value: unknown, node: PathNode, inArray: boolean): void {
    if (typeof value === 'object' && value !== null) {
      if (Array.isArray(value)) {
        // Nested arrays are flattened; an object element starts a context of its own.
        for (let i = 0; i < value.length; i++) {
          const item = value[i]
          if (isObject(item)) {
            if (node.keys.length > 0) this.visit(item, node, true)
          } else if (item !== undefined) this.value(item, node, inArray)
        }
      } else if (node.keys.length > 0) {
        this.visit(value as Record<string, unknown>, node, inArray)
      }
      return
    }
    const field = node.index
    if (field !== undefined && isScalar(value)) field.lookup(value, this, inArray)
  }

  /** Called by the indexes for every condition a value satisfies. */
  found(conditions: number[], inArray: boolean): void {
    const generation = this.generation
    for (let i = 0; i < conditions.length; i++) {
      const condition = conditions[i]
      if (this.conditionSeen[condition] === generation) continue
      this.conditionSeen[condition] = generation
      const alternative = this.conditionAlternative[condition]
      let count: number
      if (this.alternativeSeen[alternative] === generation) {
        count = ++this.alternativeCount[alternative]
        if (inArray) this.alternativeInArray[alternative] = 1
      } else {
        this.alternativeSeen[alternative] = generation
        this.alternativeCount[alternative] = count = 1
        this.alternativeInArray[alternative] = inArray ? 1 : 0
      }
      if (count === this.alternativeNeeds[alternative]) this.complete.push(alternative)
    }
  }
}

interface Condition {
  /** The field path. */
  node: PathNode
  leaf: LeafSpec
}

const NO_CHECKS: Check[] = []

/**
 * The pattern's alternatives without `$or`, each a list of leaf conditions with their paths;
 * undefined when there would be more than {@link MAX_ALTERNATIVES}.
 */
function expand(parsed: ParsedPattern, node: PathNode): Condition[][] | undefined {
  let result: Condition[][] = [[]]
  for (const field of parsed) {
    if (field.kind === 'leaf') {
      // The same condition object in every alternative: it is only read.
      const condition = {node: node.child(field.key), leaf: field.leaf}
      for (const conditions of result) conditions.push(condition)
      continue
    }
    let options: Condition[][] | undefined
    if (field.kind === 'or') {
      options = []
      for (const alternative of field.alternatives) {
        const expanded = expand(alternative, node)
        if (expanded === undefined) return undefined
        options.push(...expanded)
      }
    } else {
      options = expand(field.object, node.child(field.key))
      if (options === undefined) return undefined
    }
    if (result.length * options.length > MAX_ALTERNATIVES) return undefined
    if (options.length === 1) for (const conditions of result) conditions.push(...options[0])
    else result = result.flatMap((conditions) => options.map((option) => [...conditions, ...option]))
  }
  return result
}

/** One condition tested on the event directly, with the reference matcher's semantics for one field. */
class Check {
  private readonly path: readonly string[]
  private readonly guarded: readonly boolean[]
  private readonly leaf: LeafSpec
  /** Compiled the first time the check runs. */
  private test: ValueTest | undefined
  private readonly ifPresent: boolean
  private readonly ifAbsent: boolean

  constructor({node, leaf}: Condition) {
    this.path = node.path
    this.guarded = node.guardedPath
    this.leaf = leaf
    this.ifPresent = leaf.ifPresent
    this.ifAbsent = leaf.ifAbsent
  }

  /** Undefined when an array of objects lies on the way (then the reference matcher decides). */
  holds(event: Record<string, unknown>): boolean | undefined {
    let value: unknown = event
    for (let i = 0; i < this.path.length; i++) {
      if (typeof value !== 'object' || value === null) return this.ifAbsent // a scalar parent holds no fields
      if (Array.isArray(value)) return undefined
      const object = value as Record<string, unknown>
      const key = this.path[i]
      value = this.guarded[i] && !Object.prototype.hasOwnProperty.call(object, key) ? undefined : object[key]
    }
    if (isScalar(value)) return this.ifPresent || this.valueTest()(value)
    if (Array.isArray(value)) {
      const state = this.scan(value)
      return state === 2 || (state === 0 && this.ifAbsent)
    }
    return this.ifAbsent
  }

  private valueTest(): ValueTest {
    return (this.test ??= leafTest(this.leaf) ?? (() => false))
  }

  /** 0: no leaf values, 1: values but none matched, 2: matched (nested arrays flattened, objects skipped). */
  private scan(items: unknown[]): number {
    let state = 0
    for (const item of items) {
      if (isScalar(item)) {
        if (this.ifPresent || this.valueTest()(item)) return 2
        state = 1
      } else if (Array.isArray(item)) {
        const inner = this.scan(item)
        if (inner === 2) return 2
        if (inner === 1) state = 1
      }
    }
    return state
  }
}

/** One field path: the index of its leaf values, and the paths below it. */
class PathNode {
  readonly children = new Map<string, PathNode>()
  index: FieldIndex | undefined
  // Arrays for the hot loop, filled by finish().
  keys: string[] = []
  childList: PathNode[] = []
  /** Keys that also name something on Object.prototype, read only as own properties. */
  guarded: boolean[] = []

  /**
   * @param path the keys from the event's root
   * @param guardedPath per key of the path, whether it names something on Object.prototype
   */
  constructor(
    readonly path: readonly string[] = [],
    readonly guardedPath: readonly boolean[] = [],
  ) {}

  child(key: string): PathNode {
    let next = this.children.get(key)
    if (!next) {
      next = new PathNode([...this.path, key], [...this.guardedPath, key in Object.prototype])
      this.children.set(key, next)
    }
    return next
  }

  field(): FieldIndex {
    return (this.index ??= new FieldIndex())
  }

  /** Fills the arrays of the hot loop, leaving out paths with no index below them; whether this one has any. */
  finish(): boolean {
    for (const [key, child] of this.children) {
      if (!child.finish()) continue
      this.keys.push(key)
      this.childList.push(child)
      this.guarded.push(key in Object.prototype)
    }
    this.index?.finish()
    return this.index !== undefined || this.keys.length > 0
  }
}

/** The conditions on one field path, filed by kind. */
class FieldIndex {
  private readonly exact = new Map<Scalar, number[]>()
  private readonly lowered = new Map<string, number[]>()
  private readonly prefixes = new Trie()
  private readonly lowerPrefixes = new Trie()
  private readonly suffixes = new Trie()
  private readonly lowerSuffixes = new Trie()
  private readonly ranges = new RangeIndex()
  /** Conditions any value satisfies: `exists: true`, and the presence part of unindexed ones. */
  private readonly present: number[] = []
  private needsLower = false
  // How many conditions share each value (first pass), to estimate what indexing one costs.
  private readonly exactCounts = new Map<Scalar, number>()
  private readonly textCounts = new Map<string, number>()
  private presentCount = 0
  private readonly lows: number[] = []
  private readonly highs: number[] = []
  private sorted = false

  /** First pass: notes the values a condition will be filed under. */
  count(leaf: LeafSpec): void {
    if (leaf.ifPresent || leaf.residual.length > 0) {
      this.presentCount++
      return
    }
    for (const value of leaf.exact) this.exactCounts.set(value, (this.exactCounts.get(value) ?? 0) + 1)
    for (const key of textKeys(leaf)) this.textCounts.set(key, (this.textCounts.get(key) ?? 0) + 1)
    for (const range of leaf.numeric) {
      this.lows.push(range.low)
      this.highs.push(range.high)
    }
  }

  /** Roughly how many conditions an event value that satisfies this one also finds. */
  cost(leaf: LeafSpec): number {
    if (leaf.ifPresent || leaf.residual.length > 0) return this.presentCount
    let cost = 0
    for (const value of leaf.exact) cost += this.exactCounts.get(value) ?? 0
    for (const key of textKeys(leaf)) cost += this.textCounts.get(key) ?? 0
    if (leaf.numeric.length > 0) {
      if (!this.sorted) {
        this.lows.sort((a, b) => a - b)
        this.highs.sort((a, b) => a - b)
        this.sorted = true
      }
      // Ranges overlapping [low, high]: all but those ending before it or starting after it.
      for (const {low, high} of leaf.numeric)
        cost += this.lows.length - countBelow(this.highs, low) - (this.lows.length - countBelow(this.lows, high, true))
    }
    return cost
  }

  /** Files a condition; false when the index only tells that the field is there (to be confirmed). */
  add(leaf: LeafSpec, condition: number): boolean {
    if (leaf.ifPresent || leaf.residual.length > 0) {
      this.present.push(condition)
      return leaf.ifPresent
    }
    for (const value of leaf.exact) push(this.exact, value, condition)
    for (const value of leaf.ignoreCase) push(this.lowered, value, condition)
    for (const affix of leaf.affixes) {
      const trie =
        affix.operator === 'prefix'
          ? affix.ignoreCase
            ? this.lowerPrefixes
            : this.prefixes
          : affix.ignoreCase
            ? this.lowerSuffixes
            : this.suffixes
      trie.add(affix.text, affix.operator === 'suffix', condition)
    }
    for (const range of leaf.numeric) this.ranges.add(range, condition)
    return true
  }

  finish(): void {
    this.needsLower = this.lowered.size > 0 || !this.lowerPrefixes.empty || !this.lowerSuffixes.empty
    this.ranges.finish()
  }

  lookup(value: Scalar, matcher: RuleMatcher, inArray: boolean): void {
    if (this.present.length > 0) matcher.found(this.present, inArray)
    const exact = this.exact.size > 0 ? this.exact.get(value) : undefined
    if (exact !== undefined) matcher.found(exact, inArray)
    if (typeof value === 'string') {
      this.prefixes.walk(value, false, matcher, inArray)
      this.suffixes.walk(value, true, matcher, inArray)
      if (this.needsLower) {
        const lower = value.toLowerCase()
        const lowered = this.lowered.get(lower)
        if (lowered !== undefined) matcher.found(lowered, inArray)
        this.lowerPrefixes.walk(lower, false, matcher, inArray)
        this.lowerSuffixes.walk(lower, true, matcher, inArray)
      }
    } else if (typeof value === 'number') {
      this.ranges.stab(value, matcher, inArray)
    }
  }
}

/** The text buckets a condition is filed in, tagged by kind so they cannot collide. */
function textKeys(leaf: LeafSpec): string[] {
  if (leaf.ignoreCase.length === 0 && leaf.affixes.length === 0) return NO_KEYS
  const keys: string[] = []
  for (const value of leaf.ignoreCase) keys.push(`i${value}`)
  for (const affix of leaf.affixes)
    keys.push(`${affix.operator === 'prefix' ? 'p' : 's'}${affix.ignoreCase ? 'i' : 'c'}${affix.text}`)
  return keys
}
const NO_KEYS: string[] = []

/** How many sorted values are below `value` (or at most `value` with `inclusive`). */
function countBelow(sorted: number[], value: number, inclusive = false): number {
  let low = 0
  let high = sorted.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (sorted[middle] < value || (inclusive && sorted[middle] === value)) low = middle + 1
    else high = middle
  }
  return low
}

function push<K>(map: Map<K, number[]>, key: K, condition: number): void {
  const list = map.get(key)
  if (list) list.push(condition)
  else map.set(key, [condition])
}

interface TrieNode {
  next: Map<number, TrieNode> | undefined
  conditions: number[] | undefined
}

/** Strings by UTF-16 code unit, from the start (prefixes) or from the end (suffixes). */
class Trie {
  private readonly root: TrieNode = {next: undefined, conditions: undefined}
  empty = true

  add(text: string, fromEnd: boolean, condition: number): void {
    this.empty = false
    let node = this.root
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(fromEnd ? text.length - 1 - i : i)
      node.next ??= new Map()
      let next = node.next.get(code)
      if (!next) node.next.set(code, (next = {next: undefined, conditions: undefined}))
      node = next
    }
    ;(node.conditions ??= []).push(condition)
  }

  /** Reports the conditions of every stored string that starts (ends) the value. */
  walk(value: string, fromEnd: boolean, matcher: RuleMatcher, inArray: boolean): void {
    if (this.empty) return
    let node: TrieNode | undefined = this.root
    const last = value.length - 1
    for (let i = 0; ; i++) {
      if (node.conditions !== undefined) matcher.found(node.conditions, inArray)
      if (i > last || node.next === undefined) return
      node = node.next.get(value.charCodeAt(fromEnd ? last - i : i))
      if (node === undefined) return
    }
  }
}

/**
 * Numeric ranges in a segment tree over the elementary intervals their bounds cut the number line
 * into (each bound itself, and the open gaps between): a value finds its ranges in O(log n + k).
 */
class RangeIndex {
  private ranges: {range: NumericRange; condition: number}[] = []
  private bounds: number[] = []
  private size = 0
  private nodes: (number[] | undefined)[] = []

  add(range: NumericRange, condition: number): void {
    this.ranges.push({range, condition})
  }

  finish(): void {
    if (this.ranges.length === 0) return
    const bounds = new Set<number>()
    for (const {range} of this.ranges) {
      if (Number.isFinite(range.low)) bounds.add(range.low)
      if (Number.isFinite(range.high)) bounds.add(range.high)
    }
    this.bounds = [...bounds].sort((a, b) => a - b)
    const slots = 2 * this.bounds.length + 1
    this.size = 1
    while (this.size < slots) this.size *= 2
    this.nodes = new Array(2 * this.size)
    for (const {range, condition} of this.ranges) {
      const first = range.low === -Infinity ? 0 : 2 * this.boundIndex(range.low) + (range.lowInclusive ? 1 : 2)
      const last = range.high === Infinity ? slots - 1 : 2 * this.boundIndex(range.high) + (range.highInclusive ? 1 : 0)
      for (let l = first + this.size, r = last + this.size + 1; l < r; l >>= 1, r >>= 1) {
        if (l & 1) (this.nodes[l++] ??= []).push(condition)
        if (r & 1) (this.nodes[--r] ??= []).push(condition)
      }
    }
  }

  stab(value: number, matcher: RuleMatcher, inArray: boolean): void {
    if (this.size === 0) return
    // Slot 2i is the gap below bounds[i], slot 2i+1 is bounds[i] itself.
    const i = this.boundIndex(value)
    const slot = i < this.bounds.length && this.bounds[i] === value ? 2 * i + 1 : 2 * i
    for (let node = slot + this.size; node >= 1; node >>= 1) {
      const conditions = this.nodes[node]
      if (conditions !== undefined) matcher.found(conditions, inArray)
    }
  }

  /** The index of the first bound ≥ value. */
  private boundIndex(value: number): number {
    let low = 0
    let high = this.bounds.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (this.bounds[middle] < value) low = middle + 1
      else high = middle
    }
    return low
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isScalar(value: unknown): value is Scalar {
  const type = typeof value
  return type === 'string' || type === 'number' || type === 'boolean' || value === null
}
