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
 * Only the selective conditions are counted. The others are decided for that alternative only,
 * once the counted ones have all found a value:
 * - conditions many rules share (the same condition at the same path), unless the alternative has
 *   nothing more selective: otherwise every event carrying that value would count them all. Such a
 *   condition is filed once for all the alternatives that share it (a group), so an event finds it
 *   once, and an alternative reads whether it was found;
 * - conditions no index serves (`wildcard`, `anything-but`, `cidr`): they are counted when the
 *   field holds any value, then checked on the event;
 * - conditions that accept a missing field (`exists: false`): they cannot be counted at all, and are
 *   checked on the event; an alternative made only of those is tried on every event (so they cost
 *   per rule, like before).
 * The reference matcher ({@link compilePattern}) decides, for that rule only, when values found
 * inside an array of objects may come from different elements (a nested pattern must hold within
 * one element), and for a rule whose `$or`s would expand into more than {@link MAX_ALTERNATIVES}
 * alternatives (tried on every event).
 * test/core/engine/matcher.test.ts checks this against the reference on a generated corpus.
 */

import {
  type Affix,
  type LeafSpec,
  leafTest,
  type NumericRange,
  type ParsedPattern,
  parsePattern,
  type Scalar,
  type ValueTest,
} from './pattern.js'
import type {Rule} from './rules.js'

/** Beyond this many `$or` alternatives a rule is matched the straightforward way. */
export const MAX_ALTERNATIVES = 256
/** A condition that this many others share (the same value at the same path) is not counted when its alternative has a more selective one. */
const SHARED = 16

// The state of conditions and alternatives is packed in typed arrays, a few numbers each, so that
// an event touches few cache lines however many rules there are.
/** Per condition: its alternative (or {@link GROUP}), the generation of the last event that found it. */
const CONDITION_FIELDS = 2
const GROUP = -1
/**
 * Per alternative: the generation of the last event that found one of its conditions, how many it
 * found, how many it needs, flags, its rule, its groups (a run of the group list), its checks (a
 * position in the list of checks, or -1).
 */
const ALTERNATIVE_FIELDS = 8
const SEEN = 0
const COUNT = 1
const NEEDS = 2
const FLAGS = 3
const RULE = 4
const GROUPS = 5
const GROUPS_END = 6
const CHECKS = 7
/** A value found for the alternative came from inside an array of objects (this event). */
const IN_ARRAY = 1
/** The counted conditions decide the alternative: nothing else to look at. */
const EXACT = 2

/** Where found conditions are reported; one condition is a number, several an array. */
export type Conditions = number | number[]

/** What matching needs of a rule: its reference matcher (for what the index leaves to it). */
export type MatchedRule = Pick<Rule, 'pattern'>
/** What building the index needs of a rule. */
export type IndexedRule = Pick<Rule, 'enabled' | 'parsed' | 'pattern'>

/**
 * A built index as plain data (numbers, strings, arrays, typed arrays, maps), for the index cache
 * (index-cache.ts): {@link RuleMatcher.state}, and the matcher's constructor given it. Only valid
 * with the very rules it was built from, by the same code.
 */
export interface IndexState {
  root: PathState
  everyEvent: number[]
  conditions: Int32Array<ArrayBuffer>
  alternatives: Int32Array<ArrayBuffer>
  groups: Int32Array<ArrayBuffer>
  checks: CheckState[][]
}
interface PathState {
  keys: string[]
  children: PathState[]
  index: FieldState | undefined
}
interface FieldState {
  exact: Map<Scalar, Conditions>
  lowered: Map<string, Conditions> | undefined
  affixes: (TrieState | undefined)[]
  ranges: RangeState | undefined
  present: number[]
}
interface TrieState {
  fromEnd: boolean
  nodes: Int32Array<ArrayBuffer>
  codes: Uint16Array<ArrayBuffer>
  targets: Int32Array<ArrayBuffer>
  conditions: Int32Array<ArrayBuffer>
}
interface RangeState {
  bounds: Float64Array<ArrayBuffer>
  size: number
  starts: Int32Array<ArrayBuffer>
  conditions: Int32Array<ArrayBuffer>
}
interface CheckState {
  path: readonly string[]
  /** The field's array as written in the pattern. */
  items: unknown[]
  ifPresent: boolean
  ifAbsent: boolean
}

/** The enabled rules that match an event, in document order. */
export class RuleMatcher<R extends MatchedRule = Rule> {
  private root = new PathNode()
  /** Rules tried on every event (see the module comment). */
  private readonly everyEvent: number[] = []
  // Filled while building, packed by finish().
  private readonly conditionAlternatives: number[] = []
  private readonly alternativeFields: number[] = []
  private readonly groupConditions: number[] = []
  private build: Build | undefined = new Build()

  private conditions = new Int32Array(0)
  private alternatives = new Int32Array(0)
  /** The groups of every alternative (condition numbers), read once its counted conditions all found a value. */
  private groups = new Int32Array(0)
  /** Lists of the conditions the index does not decide, checked on the event. */
  private readonly checks: (readonly Check[])[] = []
  /** Per group (by condition number): whether the value that found it came from inside an array of objects. */
  private groupInArray = new Uint8Array(0)

  // Scratch state of one match(), reset by bumping the generation instead of clearing.
  private generation = 0
  private ruleSeen = new Int32Array(0)
  /** The alternatives whose counted conditions have all found a value (each at most once per event). */
  private complete = new Int32Array(0)
  private completeCount = 0
  private matched = new Int32Array(0)

  private readonly rules: readonly R[]

  /** Builds the index of the rules. */
  constructor(rules: readonly (R & IndexedRule)[])
  /** The index {@link state} gave, built from these very rules (the same document). */
  constructor(rules: readonly R[], state: IndexState)
  constructor(rules: readonly R[], state?: IndexState) {
    this.rules = rules
    if (state !== undefined) {
      this.restore(state)
      return
    }
    // File every condition while counting how many conditions share each value; then, per
    // alternative, keep only the selective ones filed (the others become groups or checks), and
    // take the others out of the index.
    const indexed = rules as readonly (R & IndexedRule)[]
    for (let rule = 0; rule < indexed.length; rule++) {
      if (indexed[rule].enabled) this.file(expand(indexed[rule].parsed, this.root), rule)
    }
    this.decideAll()
    this.finish()
  }

  /**
   * The index as plain data, for the index cache: only before the first event (the per-event state
   * in the same arrays is then all zero). It shares the index's arrays and maps: serialise it, and
   * change nothing in it.
   */
  state(): IndexState {
    if (this.generation !== 0) throw new Error('RuleMatcher.state() is only for an index that has matched nothing yet')
    return {
      root: this.root.state(),
      everyEvent: this.everyEvent,
      conditions: this.conditions,
      alternatives: this.alternatives,
      groups: this.groups,
      checks: this.checks.map((checks) => checks.map((check) => check.state())),
    }
  }

  private restore(state: IndexState): void {
    this.build = undefined
    this.root = PathNode.restore(state.root, [])
    for (const rule of state.everyEvent) this.everyEvent.push(rule)
    for (const checks of state.checks) this.checks.push(checks.map((check) => Check.restore(check)))
    this.conditions = state.conditions
    this.alternatives = state.alternatives
    this.groups = state.groups
    this.groupInArray = new Uint8Array(this.conditions.length / CONDITION_FIELDS)
    this.ruleSeen = new Int32Array(this.rules.length)
    this.matched = new Int32Array(this.rules.length)
    this.complete = new Int32Array(this.alternatives.length / ALTERNATIVE_FIELDS)
  }

  /** The enabled rules whose pattern matches the event, in the order of the document. */
  match(event: unknown): R[] {
    const count = this.matchCount(event)
    const rules: R[] = []
    for (let i = 0; i < count; i++) rules.push(this.rules[this.matched[i]])
    return rules
  }

  /** After {@link matchCount}: the positions of the rules that matched come first, until the next call. */
  get matches(): Int32Array {
    return this.matched
  }

  /**
   * How many enabled rules match the event; their positions (in the rules given), in ascending
   * order, are that many first entries of {@link matches}. Nothing is allocated per event.
   */
  matchCount(event: unknown): number {
    const generation = this.nextGeneration()
    // Scratch lists in typed arrays, refilled from the start: no allocation per event.
    this.completeCount = 0
    if (isObject(event)) this.visit(event, this.root, false)
    const matched = this.matched
    let count = 0
    const ruleSeen = this.ruleSeen
    const complete = this.complete
    for (let i = 0; i < this.completeCount; i++) {
      const alternative = complete[i]
      const rule = this.alternatives[alternative * ALTERNATIVE_FIELDS + RULE]
      if (ruleSeen[rule] === generation) continue
      // A false alternative leaves the rule's other alternatives to decide; the reference decides them all.
      const decided = this.decide(alternative, event as Record<string, unknown>)
      if (decided === false) continue
      ruleSeen[rule] = generation
      if (decided || this.rules[rule].pattern.matches(event)) matched[count++] = rule
    }
    for (const rule of this.everyEvent) {
      if (ruleSeen[rule] === generation) continue
      ruleSeen[rule] = generation
      if (this.rules[rule].pattern.matches(event)) matched[count++] = rule
    }
    if (count > 1) sortStart(matched, count)
    return count
  }

  /**
   * Whether a complete alternative matches, or undefined when only the reference matcher can say:
   * values from an array of objects may come from different elements (one condition alone cannot
   * mix them), and a group or a check that meets an array of objects on its way needs the same care.
   */
  private decide(alternative: number, event: Record<string, unknown>): boolean | undefined {
    const at = alternative * ALTERNATIVE_FIELDS
    const flags = this.alternatives[at + FLAGS]
    if ((flags & IN_ARRAY) !== 0 && this.alternatives[at + NEEDS] > 1) return undefined
    if ((flags & EXACT) !== 0) return true
    let result: boolean | undefined = true
    for (let i = this.alternatives[at + GROUPS]; i < this.alternatives[at + GROUPS_END]; i++) {
      const group = this.groups[i]
      // A group no value found is a necessary condition unmet, wherever the others were found.
      if (this.conditions[group * CONDITION_FIELDS + 1] !== this.generation) return false
      if (this.groupInArray[group] === 1) result = undefined
    }
    if (this.alternatives[at + CHECKS] === -1) return result
    for (const check of this.checks[this.alternatives[at + CHECKS]]) {
      const holds = check.holds(event)
      if (holds === false) return false
      if (holds === undefined) result = undefined
    }
    return result
  }

  private nextGeneration(): number {
    if (++this.generation === 0x7fffffff) {
      this.generation = 1
      for (let i = 1; i < this.conditions.length; i += CONDITION_FIELDS) this.conditions[i] = 0
      for (let i = SEEN; i < this.alternatives.length; i += ALTERNATIVE_FIELDS) this.alternatives[i] = 0
      this.ruleSeen.fill(0)
    }
    return this.generation
  }

  // --- building ------------------------------------------------------------------------------

  /** First pass: files every condition of a rule's alternatives. */
  private file(alternatives: Condition[][] | undefined, rule: number): void {
    if (alternatives === undefined) {
      this.everyEvent.push(rule)
      return
    }
    const build = this.build!
    // Indexed loops here and in FieldIndex's build methods: they run per condition of every rule,
    // mostly before V8 optimises them (as in expand()).
    for (let a = 0; a < alternatives.length; a++) {
      const conditions = alternatives[a]
      const alternative = build.rules.length
      const first = this.conditionAlternatives.length
      let absent: Check[] | undefined
      for (let c = 0; c < conditions.length; c++) {
        const condition = conditions[c]
        // A condition that accepts a missing field is not a necessary one: leave it to the check.
        if (condition.leaf.ifAbsent) {
          ;(absent ??= []).push(Check.of(condition))
          continue
        }
        const index = condition.node.field()
        index.count(condition.leaf)
        const id = this.newCondition(alternative)
        build.leaves.push(condition.leaf)
        build.indexes.push(index)
        // The index only tells that the field holds a value: the check confirms it.
        build.checks.push(index.add(condition.leaf, id) ? undefined : Check.of(condition))
      }
      build.rules.push(rule)
      build.firsts.push(first)
      build.ends.push(this.conditionAlternatives.length)
      build.absent.push(absent)
    }
  }

  /**
   * Second pass: in each alternative, a condition many rules share (one of its values, at its
   * path) would make every event carrying that value count all of them. Unless nothing in the
   * alternative is more selective, it is taken out of the index and filed once for all the
   * alternatives that have it (a group), or checked on the event when the index cannot decide it.
   */
  private decideAll(): void {
    const build = this.build!
    const moved = new Uint8Array(this.conditionAlternatives.length)
    const costs: number[] = []
    for (let alternative = 0; alternative < build.rules.length; alternative++) {
      const first = build.firsts[alternative]
      const end = build.ends[alternative]
      let cheapest = -1
      for (let id = first; id < end; id++) {
        costs[id - first] = build.indexes[id].cost(build.leaves[id])
        if (cheapest === -1 || costs[id - first] < costs[cheapest - first]) cheapest = id
      }
      let needs = 0
      const groups = this.groupConditions.length
      let checks = build.absent[alternative]
      for (let id = first; id < end; id++) {
        const leaf = build.leaves[id]
        const check = build.checks[id]
        if (costs[id - first] > SHARED && id !== cheapest) {
          moved[id] = 1
          if (check === undefined) {
            this.groupConditions.push(build.indexes[id].group(leaf, () => this.newCondition(GROUP)))
            continue
          }
        } else {
          needs++
        }
        if (check !== undefined) (checks ??= []).push(check)
      }
      const rule = build.rules[alternative]
      const exact = groups === this.groupConditions.length && checks === undefined
      this.alternativeFields.push(0, 0, needs, exact ? EXACT : 0, rule, groups, this.groupConditions.length, -1)
      if (checks !== undefined) {
        this.alternativeFields[alternative * ALTERNATIVE_FIELDS + CHECKS] = this.checks.length
        this.checks.push(checks)
      }
      if (needs === 0) this.everyEvent.push(rule)
    }
    this.root.prune(moved)
    this.build = undefined
  }

  private newCondition(alternative: number): number {
    return this.conditionAlternatives.push(alternative) - 1
  }

  private finish(): void {
    const conditions = this.conditionAlternatives.length
    this.conditions = new Int32Array(conditions * CONDITION_FIELDS)
    for (let i = 0; i < conditions; i++) this.conditions[i * CONDITION_FIELDS] = this.conditionAlternatives[i]
    this.groupInArray = new Uint8Array(conditions)
    this.alternatives = new Int32Array(this.alternativeFields)
    this.groups = new Int32Array(this.groupConditions)
    this.ruleSeen = new Int32Array(this.rules.length)
    this.matched = new Int32Array(this.rules.length)
    this.complete = new Int32Array(this.alternatives.length / ALTERNATIVE_FIELDS)
    this.conditionAlternatives.length = 0
    this.alternativeFields.length = 0
    this.groupConditions.length = 0
    this.root.finish()
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

  /** Called by the indexes for the conditions a value satisfies. */
  found(conditions: Conditions, inArray: boolean): void {
    if (typeof conditions === 'number') this.foundOne(conditions, inArray)
    else for (let i = 0; i < conditions.length; i++) this.foundOne(conditions[i], inArray)
  }

  /** The same for conditions[start .. end). */
  foundIn(conditions: Int32Array, start: number, end: number, inArray: boolean): void {
    for (let i = start; i < end; i++) this.foundOne(conditions[i], inArray)
  }

  private foundOne(condition: number, inArray: boolean): void {
    const generation = this.generation
    const state = this.conditions
    const at = condition * CONDITION_FIELDS
    if (state[at + 1] === generation) return
    state[at + 1] = generation
    const alternative = state[at]
    if (alternative === GROUP) {
      this.groupInArray[condition] = inArray ? 1 : 0
      return
    }
    const alternatives = this.alternatives
    const base = alternative * ALTERNATIVE_FIELDS
    let count: number
    if (alternatives[base + SEEN] === generation) {
      count = ++alternatives[base + COUNT]
      if (inArray) alternatives[base + FLAGS] |= IN_ARRAY
    } else {
      alternatives[base + SEEN] = generation
      alternatives[base + COUNT] = count = 1
      alternatives[base + FLAGS] = inArray
        ? alternatives[base + FLAGS] | IN_ARRAY
        : alternatives[base + FLAGS] & ~IN_ARRAY
    }
    if (count === alternatives[base + NEEDS]) this.complete[this.completeCount++] = alternative
  }
}

/** What the first pass of the build leaves for the second, per condition and per alternative. */
class Build {
  // Per filed condition, by number (the alternatives' conditions are runs of numbers):
  readonly leaves: LeafSpec[] = []
  readonly indexes: FieldIndex[] = []
  /** The check that confirms a condition the index cannot decide. */
  readonly checks: (Check | undefined)[] = []
  // Per alternative:
  readonly rules: number[] = []
  readonly firsts: number[] = []
  readonly ends: number[] = []
  /** Its conditions that accept a missing field. */
  readonly absent: (Check[] | undefined)[] = []
}

interface Condition {
  /** The field path. */
  node: PathNode
  leaf: LeafSpec
}

/**
 * The pattern's alternatives without `$or`, each a list of leaf conditions with their paths;
 * undefined when there would be more than {@link MAX_ALTERNATIVES}.
 */
function expand(parsed: ParsedPattern, node: PathNode): Condition[][] | undefined {
  // Indexed loops and no spreads: this runs once per rule, mostly before V8 optimises it.
  let result: Condition[][] = [[]]
  for (let f = 0; f < parsed.length; f++) {
    const field = parsed[f]
    if (field.kind === 'leaf') {
      // The same condition object in every alternative: it is only read.
      const condition = {node: node.child(field.key), leaf: field.leaf}
      for (let i = 0; i < result.length; i++) result[i].push(condition)
      continue
    }
    let options: Condition[][] | undefined
    if (field.kind === 'or') {
      options = []
      for (let a = 0; a < field.alternatives.length; a++) {
        const expanded = expand(field.alternatives[a], node)
        if (expanded === undefined) return undefined
        for (let i = 0; i < expanded.length; i++) options.push(expanded[i])
      }
    } else {
      options = expand(field.object, node.child(field.key))
      if (options === undefined) return undefined
    }
    if (result.length * options.length > MAX_ALTERNATIVES) return undefined
    if (options.length === 1) {
      const only = options[0]
      for (let i = 0; i < result.length; i++) for (let j = 0; j < only.length; j++) result[i].push(only[j])
    } else {
      const product: Condition[][] = []
      for (let i = 0; i < result.length; i++)
        for (let j = 0; j < options.length; j++) product.push(result[i].concat(options[j]))
      result = product
    }
  }
  return result
}

/** One condition tested on the event directly, with the reference matcher's semantics for one field. */
class Check {
  /** Compiled the first time the check runs. */
  private test: ValueTest | undefined

  /**
   * @param items the field's array as written in the pattern
   * @param leaf its analysis; undefined in a restored index until the check first runs
   */
  private constructor(
    private readonly path: readonly string[],
    private readonly guarded: readonly boolean[],
    private readonly items: unknown[],
    private readonly ifPresent: boolean,
    private readonly ifAbsent: boolean,
    private leaf: LeafSpec | undefined,
  ) {}

  static of({node, leaf}: Condition): Check {
    return new Check(node.path, node.guardedPath, leaf.items, leaf.ifPresent, leaf.ifAbsent, leaf)
  }

  static restore({path, items, ifPresent, ifAbsent}: CheckState): Check {
    return new Check(path, guardedOf(path), items, ifPresent, ifAbsent, undefined)
  }

  state(): CheckState {
    return {path: this.path, items: this.items, ifPresent: this.ifPresent, ifAbsent: this.ifAbsent}
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
    // The same analysis as the rule's (the field's array as a pattern of its own).
    this.leaf ??= (parsePattern({value: this.items})[0] as {leaf: LeafSpec}).leaf
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

  /** After finish(): the paths matching walks, as plain data. */
  state(): PathState {
    return {
      keys: this.keys.slice(),
      children: this.childList.map((child) => child.state()),
      index: this.index?.state(),
    }
  }

  static restore(state: PathState, path: readonly string[]): PathNode {
    const node = new PathNode(path, guardedOf(path))
    for (let i = 0; i < state.keys.length; i++) {
      const key = state.keys[i]
      const child = PathNode.restore(state.children[i], [...path, key])
      node.children.set(key, child)
      node.keys.push(key)
      node.childList.push(child)
      node.guarded.push(key in Object.prototype)
    }
    if (state.index !== undefined) node.index = FieldIndex.restore(state.index)
    return node
  }

  field(): FieldIndex {
    return (this.index ??= new FieldIndex())
  }

  /** Takes the conditions marked out of the indexes of this path and the paths below. */
  prune(moved: Uint8Array): void {
    this.index?.prune(moved)
    for (const child of this.children.values()) child.prune(moved)
  }

  /** Fills the arrays of the hot loop, leaving out paths with no index below them; whether this one has any. */
  finish(): boolean {
    for (const [key, child] of this.children) {
      if (!child.finish()) continue
      this.keys.push(key)
      this.childList.push(child)
      this.guarded.push(key in Object.prototype)
    }
    if (this.index !== undefined && !this.index.finish()) this.index = undefined
    return this.index !== undefined || this.keys.length > 0
  }
}

/** Per key of a path, whether it names something on Object.prototype (read only as an own property). */
function guardedOf(path: readonly string[]): boolean[] {
  return path.map((key) => key in Object.prototype)
}

/** The conditions on one field path, filed by kind. */
class FieldIndex {
  private exact = new Map<Scalar, Conditions>()
  private lowered: Map<string, Conditions> | undefined
  /** Prefixes and suffixes, plain and ignoring case (lower-cased), by {@link affixKind}. */
  private readonly affixes: (Trie | undefined)[] = [undefined, undefined, undefined, undefined]
  private ranges: RangeIndex | undefined
  /** Conditions any value satisfies: `exists: true`, and the presence part of unindexed ones. */
  private present: number[] = []
  private needsLower = false
  // What the first pass notes to estimate what indexing a condition costs (with the sizes of lists).
  /** How many conditions have each string, by kind of affix ({@link affixKind}). */
  private readonly textCounts: (Map<string, number> | undefined)[] = [undefined, undefined, undefined, undefined]
  private readonly lows: number[] = []
  private readonly highs: number[] = []
  private sorted = false
  /** Shared conditions filed once for all the alternatives that have them, by their JSON. */
  private groups: Map<string, number> | undefined

  /**
   * First pass: notes what {@link cost} cannot read from the lists a condition is filed in (the
   * strings of the tries and the bounds of the ranges).
   */
  count(leaf: LeafSpec): void {
    if (leaf.ifPresent || leaf.residual.length > 0) return
    const {affixes, numeric} = leaf
    for (let i = 0; i < affixes.length; i++)
      increment((this.textCounts[affixKind(affixes[i])] ??= new Map()), affixes[i].text)
    for (let i = 0; i < numeric.length; i++) {
      this.lows.push(numeric[i].low)
      this.highs.push(numeric[i].high)
    }
  }

  /** Roughly how many conditions an event value that satisfies this one also finds. */
  cost(leaf: LeafSpec): number {
    if (leaf.ifPresent || leaf.residual.length > 0) return this.present.length
    let cost = 0
    const {exact, ignoreCase, affixes, numeric} = leaf
    for (let i = 0; i < exact.length; i++) cost += sizeOf(this.exact.get(exact[i]))
    for (let i = 0; i < ignoreCase.length; i++) cost += sizeOf(this.lowered?.get(ignoreCase[i]))
    for (let i = 0; i < affixes.length; i++) cost += this.textCounts[affixKind(affixes[i])]?.get(affixes[i].text) ?? 0
    if (numeric.length > 0) {
      if (!this.sorted) {
        this.lows.sort((a, b) => a - b)
        this.highs.sort((a, b) => a - b)
        this.sorted = true
      }
      // Ranges overlapping [low, high]: all but those ending before it or starting after it.
      for (let i = 0; i < numeric.length; i++) {
        const {low, high} = numeric[i]
        cost += this.lows.length - countBelow(this.highs, low) - (this.lows.length - countBelow(this.lows, high, true))
      }
    }
    return cost
  }

  /** Files a condition; false when the index only tells that the field is there (to be confirmed). */
  add(leaf: LeafSpec, condition: number): boolean {
    if (leaf.ifPresent || leaf.residual.length > 0) {
      this.present.push(condition)
      return leaf.ifPresent
    }
    const {exact, ignoreCase, affixes, numeric} = leaf
    for (let i = 0; i < exact.length; i++) push(this.exact, exact[i], condition)
    for (let i = 0; i < ignoreCase.length; i++) push((this.lowered ??= new Map()), ignoreCase[i], condition)
    for (let i = 0; i < affixes.length; i++) {
      const affix = affixes[i]
      ;(this.affixes[affixKind(affix)] ??= new Trie(affix.operator === 'suffix')).add(affix.text, condition)
    }
    for (let i = 0; i < numeric.length; i++) (this.ranges ??= new RangeIndex()).add(numeric[i], condition)
    return true
  }

  /** Takes the conditions marked out (before finish()). */
  prune(moved: Uint8Array): void {
    pruneMap(this.exact, moved)
    if (this.lowered !== undefined) pruneMap(this.lowered, moved)
    for (const trie of this.affixes) trie?.prune(moved)
    this.ranges?.prune(moved)
    const present = this.present.filter((condition) => moved[condition] !== 1)
    this.present.length = 0
    for (const condition of present) this.present.push(condition)
  }

  /** The condition filed for all conditions equal to this one (the index decides them alone). */
  group(leaf: LeafSpec, create: () => number): number {
    const key = JSON.stringify(leaf.items)
    this.groups ??= new Map()
    let group = this.groups.get(key)
    if (group === undefined) {
      group = create()
      this.groups.set(key, group)
      this.add(leaf, group)
    }
    return group
  }

  private noteLower(): void {
    this.needsLower = this.lowered !== undefined || this.affixes[PREFIX_IGNORE_CASE] !== undefined
    this.needsLower ||= this.affixes[SUFFIX_IGNORE_CASE] !== undefined
  }

  /** Whether anything is filed here (after pruning); lets go of what only the build needed. */
  finish(): boolean {
    if (this.lowered?.size === 0) this.lowered = undefined
    for (let kind = 0; kind < this.affixes.length; kind++) {
      if (this.affixes[kind]?.empty) this.affixes[kind] = undefined
      this.affixes[kind]?.finish()
    }
    if (this.ranges?.empty) this.ranges = undefined
    this.ranges?.finish()
    this.noteLower()
    this.textCounts.fill(undefined)
    this.lows.length = 0
    this.highs.length = 0
    this.groups = undefined
    return (
      this.present.length > 0 ||
      this.exact.size > 0 ||
      this.needsLower ||
      this.affixes[PREFIX] !== undefined ||
      this.affixes[SUFFIX] !== undefined ||
      this.ranges !== undefined
    )
  }

  /** After finish(): what lookups read, as plain data. */
  state(): FieldState {
    return {
      exact: this.exact,
      lowered: this.lowered,
      affixes: this.affixes.map((trie) => trie?.state()),
      ranges: this.ranges?.state(),
      present: this.present,
    }
  }

  static restore(state: FieldState): FieldIndex {
    const index = new FieldIndex()
    index.exact = state.exact
    index.lowered = state.lowered
    for (let kind = 0; kind < state.affixes.length; kind++) {
      const trie = state.affixes[kind]
      if (trie !== undefined) index.affixes[kind] = Trie.restore(trie)
    }
    if (state.ranges !== undefined) index.ranges = RangeIndex.restore(state.ranges)
    index.present = state.present
    index.noteLower()
    return index
  }

  lookup(value: Scalar, matcher: RuleMatcher<MatchedRule>, inArray: boolean): void {
    if (this.present.length > 0) matcher.found(this.present, inArray)
    const exact = this.exact.size > 0 ? this.exact.get(value) : undefined
    if (exact !== undefined) matcher.found(exact, inArray)
    if (typeof value === 'string') {
      this.affixes[PREFIX]?.walk(value, matcher, inArray)
      this.affixes[SUFFIX]?.walk(value, matcher, inArray)
      if (this.needsLower) {
        const lower = value.toLowerCase()
        const lowered = this.lowered?.get(lower)
        if (lowered !== undefined) matcher.found(lowered, inArray)
        this.affixes[PREFIX_IGNORE_CASE]?.walk(lower, matcher, inArray)
        this.affixes[SUFFIX_IGNORE_CASE]?.walk(lower, matcher, inArray)
      }
    } else if (typeof value === 'number') {
      this.ranges?.stab(value, matcher, inArray)
    }
  }
}

const PREFIX = 0
const SUFFIX = 1
const PREFIX_IGNORE_CASE = 2
const SUFFIX_IGNORE_CASE = 3

function affixKind({operator, ignoreCase}: Affix): number {
  return (operator === 'prefix' ? PREFIX : SUFFIX) + (ignoreCase ? 2 : 0)
}

/** How many conditions a list holds. */
function sizeOf(conditions: Conditions | undefined): number {
  return conditions === undefined ? 0 : typeof conditions === 'number' ? 1 : conditions.length
}

function increment<K>(counts: Map<K, number>, key: K): void {
  counts.set(key, (counts.get(key) ?? 0) + 1)
}

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

/** The map's lists without the conditions marked; a list left empty goes. */
function pruneMap<K>(map: Map<K, Conditions>, moved: Uint8Array): void {
  map.forEach((conditions, key) => {
    if (typeof conditions === 'number') {
      if (moved[conditions] === 1) map.delete(key)
      return
    }
    if (!conditions.some((condition) => moved[condition] === 1)) return
    const kept = conditions.filter((condition) => moved[condition] !== 1)
    if (kept.length === 0) map.delete(key)
    else map.set(key, kept.length === 1 ? kept[0] : kept)
  })
}

function push<K>(map: Map<K, Conditions>, key: K, condition: number): void {
  const conditions = map.get(key)
  // A list already in the map grows in place.
  if (typeof conditions === 'object') conditions.push(condition)
  else map.set(key, adding(conditions, condition))
}

/** Conditions with one more: most values are filed for one condition, kept as a number. */
function adding(conditions: Conditions | undefined, condition: number): Conditions {
  if (conditions === undefined) return condition
  if (typeof conditions === 'number') return [conditions, condition]
  conditions.push(condition)
  return conditions
}

/** The string's UTF-16 code units in reverse order. */
function backwards(text: string): string {
  let reversed = ''
  for (let i = text.length - 1; i >= 0; i--) reversed += text[i]
  return reversed
}

/**
 * What a trie or a range index holds while the rules are filed: items (strings, ranges), each with
 * the condition it was filed for, until the index is laid out by its finish().
 */
class Filing<T> {
  protected items: T[] = []
  protected filed: number[] = []

  add(item: T, condition: number): void {
    this.items.push(item)
    this.filed.push(condition)
  }

  /** Takes the conditions marked out. */
  prune(moved: Uint8Array): void {
    let kept = 0
    for (let i = 0; i < this.filed.length; i++) {
      if (moved[this.filed[i]] === 1) continue
      this.items[kept] = this.items[i]
      this.filed[kept++] = this.filed[i]
    }
    this.items.length = kept
    this.filed.length = kept
  }

  /** Before finish(): whether nothing is filed. */
  get empty(): boolean {
    return this.filed.length === 0
  }

  /** Lets go of the items once laid out. */
  protected release(): void {
    this.items = []
    this.filed = []
  }
}

/**
 * Strings by UTF-16 code unit, from the start (prefixes) or from the end (suffixes): a trie laid
 * out in flat arrays once all strings are in (few objects to build, few cache lines to walk).
 */
class Trie extends Filing<string> {
  /** Per node: its first edge, its end of edges, its first condition, its end of conditions. */
  private nodes = new Int32Array(0)
  /** Per edge, ascending within a node: the code unit, and the node it leads to. */
  private codes = new Uint16Array(0)
  private targets = new Int32Array(0)
  private conditions = new Int32Array(0)

  constructor(private readonly fromEnd: boolean) {
    super()
  }

  override add(text: string, condition: number): void {
    // Spelt in walk order: backwards for suffixes.
    super.add(this.fromEnd ? backwards(text) : text, condition)
  }

  finish(): void {
    const byText = new Map<string, Conditions>()
    for (let i = 0; i < this.items.length; i++) {
      byText.set(this.items[i], adding(byText.get(this.items[i]), this.filed[i]))
    }
    // Sorted by code unit (the default order), the strings below a node are a run; each node is a
    // range of strings at a depth.
    const texts = [...byText.keys()].sort()
    const nodes: number[] = [0, 0, 0, 0]
    const codes: number[] = []
    const targets: number[] = []
    const conditions: number[] = []
    // Depth-first with an explicit stack (a string may be long): node, first, end, depth.
    const stack = [0, 0, texts.length, 0]
    while (stack.length > 0) {
      const depth = stack.pop()!
      const end = stack.pop()!
      let first = stack.pop()!
      const node = stack.pop()!
      const base = node * 4
      nodes[base + 2] = conditions.length
      // The string that ends here, if any, comes first in the run.
      if (first < end && texts[first].length === depth) {
        const filed = byText.get(texts[first++])!
        if (typeof filed === 'number') conditions.push(filed)
        else for (const condition of filed) conditions.push(condition)
      }
      nodes[base + 3] = conditions.length
      nodes[base] = codes.length
      while (first < end) {
        const code = texts[first].charCodeAt(depth)
        let next = first + 1
        while (next < end && texts[next].charCodeAt(depth) === code) next++
        const child = nodes.length / 4
        nodes.push(0, 0, 0, 0)
        codes.push(code)
        targets.push(child)
        stack.push(child, first, next, depth + 1)
        first = next
      }
      nodes[base + 1] = codes.length
    }
    this.nodes = new Int32Array(nodes)
    this.codes = new Uint16Array(codes)
    this.targets = new Int32Array(targets)
    this.conditions = new Int32Array(conditions)
    this.release()
  }

  state(): TrieState {
    const {fromEnd, nodes, codes, targets, conditions} = this
    return {fromEnd, nodes, codes, targets, conditions}
  }

  static restore(state: TrieState): Trie {
    return Object.assign(new Trie(state.fromEnd), state)
  }

  /** Reports the conditions of every stored string that starts (ends) the value. */
  walk(value: string, matcher: RuleMatcher<MatchedRule>, inArray: boolean): void {
    const {nodes, codes} = this
    const last = value.length - 1
    let node = 0
    for (let i = 0; ; i++) {
      const base = node * 4
      if (nodes[base + 2] < nodes[base + 3]) matcher.foundIn(this.conditions, nodes[base + 2], nodes[base + 3], inArray)
      if (i > last) return
      const code = value.charCodeAt(this.fromEnd ? last - i : i)
      // The edges of a node are sorted by code unit.
      let low = nodes[base]
      let high = nodes[base + 1]
      while (low < high) {
        const middle = (low + high) >>> 1
        if (codes[middle] < code) low = middle + 1
        else high = middle
      }
      if (low === nodes[base + 1] || codes[low] !== code) return
      node = this.targets[low]
    }
  }
}

/**
 * Numeric ranges over the elementary intervals their bounds cut the number line into (each bound
 * itself, and the open gaps between): each interval lists the ranges that cover it, unless that
 * would take much more room than the ranges themselves (many long, overlapping ranges); then the
 * lists are those of a segment tree over the intervals, and a value finds its ranges in
 * O(log n + k) all the same. The lists are laid out in one flat array.
 */
class RangeIndex extends Filing<NumericRange> {
  private bounds = new Float64Array(0)
  /** 0 when each interval has its own list; else the number of leaves of the segment tree. */
  private size = 0
  /** List n (an interval, or a tree node) is conditions[starts[n] .. starts[n + 1]). */
  private starts = new Int32Array(0)
  private conditions = new Int32Array(0)

  finish(): void {
    const ranges = this.items
    const bounds = new Set<number>()
    for (const range of ranges) {
      if (Number.isFinite(range.low)) bounds.add(range.low)
      if (Number.isFinite(range.high)) bounds.add(range.high)
    }
    this.bounds = new Float64Array([...bounds]).sort()
    const slots = 2 * this.bounds.length + 1
    const firsts = new Int32Array(ranges.length)
    const lasts = new Int32Array(ranges.length)
    let covered = 0
    for (let i = 0; i < ranges.length; i++) {
      const range = ranges[i]
      firsts[i] = range.low === -Infinity ? 0 : 2 * this.boundIndex(range.low) + (range.lowInclusive ? 1 : 2)
      lasts[i] = range.high === Infinity ? slots - 1 : 2 * this.boundIndex(range.high) + (range.highInclusive ? 1 : 0)
      covered += lasts[i] - firsts[i] + 1
    }
    if (covered <= 4 * (ranges.length + slots)) this.fileBySlot(slots, firsts, lasts)
    else this.fileInTree(slots, firsts, lasts)
    this.release()
  }

  private fileBySlot(slots: number, firsts: Int32Array, lasts: Int32Array): void {
    const counts = new Int32Array(slots + 1)
    for (let i = 0; i < firsts.length; i++) for (let slot = firsts[i]; slot <= lasts[i]; slot++) counts[slot + 1]++
    for (let slot = 1; slot <= slots; slot++) counts[slot] += counts[slot - 1]
    this.starts = counts.slice()
    this.conditions = new Int32Array(counts[slots])
    for (let i = 0; i < firsts.length; i++) {
      for (let slot = firsts[i]; slot <= lasts[i]; slot++) this.conditions[counts[slot]++] = this.filed[i]
    }
  }

  private fileInTree(slots: number, firsts: Int32Array, lasts: Int32Array): void {
    this.size = 1
    while (this.size < slots) this.size *= 2
    // Twice over the same decomposition of each range into tree nodes: count per node, then place.
    const counts = new Int32Array(2 * this.size + 1)
    for (let i = 0; i < firsts.length; i++) {
      for (let l = firsts[i] + this.size, r = lasts[i] + this.size + 1; l < r; l >>= 1, r >>= 1) {
        if (l & 1) counts[l++ + 1]++
        if (r & 1) counts[--r + 1]++
      }
    }
    for (let node = 1; node < counts.length; node++) counts[node] += counts[node - 1]
    this.starts = counts.slice()
    this.conditions = new Int32Array(counts[counts.length - 1])
    for (let i = 0; i < firsts.length; i++) {
      for (let l = firsts[i] + this.size, r = lasts[i] + this.size + 1; l < r; l >>= 1, r >>= 1) {
        if (l & 1) this.conditions[counts[l++]++] = this.filed[i]
        if (r & 1) this.conditions[counts[--r]++] = this.filed[i]
      }
    }
  }

  state(): RangeState {
    const {bounds, size, starts, conditions} = this
    return {bounds, size, starts, conditions}
  }

  static restore(state: RangeState): RangeIndex {
    return Object.assign(new RangeIndex(), state)
  }

  stab(value: number, matcher: RuleMatcher<MatchedRule>, inArray: boolean): void {
    // Slot 2i is the gap below bounds[i], slot 2i+1 is bounds[i] itself.
    const i = this.boundIndex(value)
    const slot = i < this.bounds.length && this.bounds[i] === value ? 2 * i + 1 : 2 * i
    const starts = this.starts
    if (this.size === 0) {
      if (starts[slot] < starts[slot + 1]) matcher.foundIn(this.conditions, starts[slot], starts[slot + 1], inArray)
      return
    }
    for (let node = slot + this.size; node >= 1; node >>= 1) {
      if (starts[node] < starts[node + 1]) matcher.foundIn(this.conditions, starts[node], starts[node + 1], inArray)
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

/** Sorts the first `count` numbers in place (few, as a rule: by insertion). */
function sortStart(numbers: Int32Array, count: number): void {
  if (count > 16) {
    numbers.subarray(0, count).sort()
    return
  }
  for (let i = 1; i < count; i++) {
    const value = numbers[i]
    let j = i - 1
    for (; j >= 0 && numbers[j] > value; j--) numbers[j + 1] = numbers[j]
    numbers[j + 1] = value
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isScalar(value: unknown): value is Scalar {
  const type = typeof value
  return type === 'string' || type === 'number' || type === 'boolean' || value === null
}
