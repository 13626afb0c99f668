import {expect} from 'chai'
import {deserialize, serialize} from 'node:v8'

import {RuleMatcher} from '../../../src/core/engine/matcher.js'
import {InvalidInputError} from '../../../src/core/errors.js'
import {type Rule, validateDocument} from '../../../src/core/engine/rules.js'

/** mulberry32: a small seeded generator, so a failure reproduces from its seed. */
function random(seed: number) {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number) => Math.floor(next() * n)
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]
  return {next, int, pick, chance: (p: number) => next() < p}
}
type Random = ReturnType<typeof random>

const STRINGS = [
  '',
  'a',
  'ab',
  'abc',
  'Abc',
  'ABC',
  'b',
  'ba',
  'cab',
  'order.created',
  'order.paid',
  'Order.Created',
  'svc1.crashed',
  '10.0.0.1',
  '10.0.1.7',
  '192.168.1.1',
  '2001:db8::1',
  '::ffff:10.0.0.7',
  'x*y',
  'xay',
  'İx',
  'ß',
]
const NUMBERS = [-5, -1, 0, 0.5, 1, 2, 3, 10, 35, 100, 1e6]
const PREFIXES = ['', 'a', 'ab', 'A', 'order.', 'ORDER.', 'svc', '10.', 'x']
const SUFFIXES = ['', 'c', 'bc', 'BC', '.created', 'a', '1', 'y']
const WILDCARDS = ['a*', '*c', 'a*c', '*', 'order.*', 'x\\*y', '*.*', '*a*b*']
const CIDRS = ['10.0.0.0/24', '10.0.0.0/8', '2001:db8::/32', '0.0.0.0/0', '192.168.1.1/32']
/** Field names per depth; `constructor` also names something on Object.prototype. */
const KEYS = [
  ['type', 'source', 'a', 'data', 'constructor'],
  ['x', 'y', 'n'],
  ['p', 'q'],
]
const OPERATORS = [
  'exact',
  'prefix',
  'prefix-ignore-case',
  'suffix',
  'suffix-ignore-case',
  'equals-ignore-case',
  'wildcard',
  'anything-but',
  'anything-but-list',
  'anything-but-prefix',
  'anything-but-suffix',
  'anything-but-ignore-case',
  'anything-but-wildcard',
  'numeric',
  'numeric-equals',
  'cidr',
  'exists-true',
  'exists-false',
  '$or',
  'nested',
]

function scalar(r: Random): unknown {
  const roll = r.next()
  if (roll < 0.55) return r.pick(STRINGS)
  if (roll < 0.9) return r.pick(NUMBERS)
  return r.pick([true, false, null])
}

function condition(r: Random, used: Set<string>): unknown {
  const kind = r.pick(OPERATORS.filter((o) => o !== '$or' && o !== 'nested'))
  used.add(kind)
  switch (kind) {
    case 'exact':
      return scalar(r)
    case 'prefix':
      return {prefix: r.pick(PREFIXES)}
    case 'prefix-ignore-case':
      return {prefix: {'equals-ignore-case': r.pick(PREFIXES)}}
    case 'suffix':
      return {suffix: r.pick(SUFFIXES)}
    case 'suffix-ignore-case':
      return {suffix: {'equals-ignore-case': r.pick(SUFFIXES)}}
    case 'equals-ignore-case':
      return {'equals-ignore-case': r.pick(STRINGS)}
    case 'wildcard':
      return {wildcard: r.pick(WILDCARDS)}
    case 'anything-but':
      return {'anything-but': r.chance(0.5) ? r.pick(STRINGS) : r.pick(NUMBERS)}
    case 'anything-but-list':
      return {'anything-but': r.chance(0.5) ? [r.pick(STRINGS), r.pick(STRINGS)] : [r.pick(NUMBERS), r.pick(NUMBERS)]}
    case 'anything-but-prefix':
      return {'anything-but': {prefix: r.pick(PREFIXES.filter(Boolean))}}
    case 'anything-but-suffix':
      return {
        'anything-but': {
          suffix: r.chance(0.5) ? r.pick(SUFFIXES.filter(Boolean)) : [r.pick(SUFFIXES.filter(Boolean)), 'b'],
        },
      }
    case 'anything-but-ignore-case':
      return {'anything-but': {'equals-ignore-case': r.pick(STRINGS)}}
    case 'anything-but-wildcard':
      return {'anything-but': {wildcard: r.pick(WILDCARDS)}}
    case 'numeric': {
      const [a, b] = [r.pick(NUMBERS), r.pick(NUMBERS)].sort((x, y) => x - y)
      const bounds = r.int(3)
      if (bounds === 0) return {numeric: [r.pick(['>', '>=']), a]}
      if (bounds === 1) return {numeric: [r.pick(['<', '<=']), b]}
      return {numeric: [r.pick(['>', '>=']), a, r.pick(['<', '<=']), b]}
    }
    case 'numeric-equals':
      return {numeric: ['=', r.pick(NUMBERS)]}
    case 'cidr':
      return {cidr: r.pick(CIDRS)}
    case 'exists-true':
      return {exists: true}
    default:
      return {exists: false}
  }
}

function pattern(r: Random, depth: number, used: Set<string>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  const keys = KEYS[Math.min(depth, KEYS.length - 1)]
  const count = 1 + r.int(3)
  for (let i = 0; i < count; i++) {
    const key = r.pick(keys)
    if (depth < 2 && r.chance(0.3)) {
      used.add('nested')
      out[key] = pattern(r, depth + 1, used)
    } else {
      out[key] = Array.from({length: 1 + r.int(3)}, () => condition(r, used))
    }
  }
  if (depth < 2 && r.chance(0.2)) {
    used.add('$or')
    out.$or = Array.from({length: 2 + r.int(2)}, () => pattern(r, depth, used))
  }
  return out
}

function value(r: Random, depth: number): unknown {
  const roll = r.next()
  if (roll < 0.45 || depth >= 3) return scalar(r)
  if (roll < 0.6) return Array.from({length: r.int(4)}, () => (r.chance(0.15) ? [scalar(r), scalar(r)] : scalar(r)))
  if (roll < 0.8)
    return Array.from({length: r.int(3)}, () =>
      r.chance(0.1) ? [object(r, depth + 1)] : r.chance(0.1) ? scalar(r) : object(r, depth + 1),
    )
  return object(r, depth + 1)
}

function object(r: Random, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const key of KEYS[Math.min(depth, KEYS.length - 1)]) if (r.chance(0.6)) out[key] = value(r, depth)
  return out
}

function rulesFrom(patterns: unknown[], r: Random): Rule[] {
  const rules = patterns.map((p, i) => ({name: `r${i}`, enabled: r.chance(0.9), pattern: p, actions: [{type: 'log'}]}))
  return validateDocument({rules}, 'generated').rules
}

/**
 * `count` patterns from `generate` (given how many are kept so far) that a rules document accepts:
 * the generators only feed valid patterns to the matcher, and may make an invalid one (e.g. an
 * empty numeric range), which is left out. With each pattern, what `generate` noted of it.
 */
function validPatterns<Note>(
  count: number,
  r: Random,
  generate: (kept: number) => {pattern: unknown; note: Note},
): {patterns: unknown[]; notes: Note[]} {
  const patterns: unknown[] = []
  const notes: Note[] = []
  while (patterns.length < count) {
    const {pattern, note} = generate(patterns.length)
    try {
      rulesFrom([pattern], r)
    } catch (error) {
      if (error instanceof InvalidInputError) continue
      throw error
    }
    patterns.push(pattern)
    notes.push(note)
  }
  return {patterns, notes}
}

/** The matcher read back from its state as the index cache stores it (index-cache.ts). */
const restored = (rules: Rule[], matcher: RuleMatcher) =>
  new RuleMatcher(rules, deserialize(serialize(matcher.state())) as ReturnType<RuleMatcher['state']>)

/** The straightforward matcher: every enabled rule tried in order. */
const reference = (rules: Rule[], event: unknown) =>
  rules.filter((rule) => rule.enabled && rule.pattern.matches(event)).map((rule) => rule.name)

describe('rule matcher (index over field values)', function () {
  // Half a million pairs: seconds on an idle machine, much more on a loaded CI runner.
  this.timeout(180_000)

  it('agrees with the straightforward matcher on every pair of a generated corpus', () => {
    const r = random(12)
    const used = new Set<string>()
    const usedInMatches = new Set<string>()
    let pairs = 0
    let matches = 0
    for (let round = 0; round < 240; round++) {
      // Some rounds hold enough rules for values to be shared widely, which the index files differently.
      const size = round % 4 === 3 ? 160 : 40
      const {patterns, notes: ops} = validPatterns(size, r, () => {
        const note = new Set<string>()
        return {pattern: pattern(r, 0, note), note}
      })
      for (const opsOfThis of ops) for (const op of opsOfThis) used.add(op)
      const rules = rulesFrom(patterns, r)
      const built = new RuleMatcher(rules)
      // Half the rounds match with the index as built, half with it read back from its state.
      const matcher = round % 2 === 0 ? built : restored(rules, built)
      for (let e = 0; e < 25; e++) {
        const event = r.chance(0.02) ? scalar(r) : object(r, 0)
        const expected = reference(rules, event)
        const actual = matcher.match(event).map((rule) => rule.name)
        if (JSON.stringify(actual) !== JSON.stringify(expected)) {
          const differing = rules.find((rule) => expected.includes(rule.name) !== actual.includes(rule.name))!
          expect.fail(
            `round ${round}${matcher === built ? '' : ' (restored)'}: rule ${differing.name} ${JSON.stringify(differing.spec.pattern)} on event ${JSON.stringify(event)}: reference ${expected.includes(differing.name)}, index ${actual.includes(differing.name)}`,
          )
        }
        pairs += rules.length
        matches += expected.length
        for (const name of expected) for (const op of ops[Number(name.slice(1))]) usedInMatches.add(op)
      }
    }
    expect(pairs).to.be.at.least(10_000)
    // The corpus must exercise every operator, in matching pairs too, and both outcomes.
    expect([...used].sort()).to.deep.equal([...OPERATORS].sort())
    expect([...usedInMatches].sort()).to.deep.equal([...OPERATORS].sort())
    expect(matches).to.be.within(pairs * 0.02, pairs * 0.98)
  })

  it('agrees with it where many rules share a condition of any kind beside a selective one', () => {
    // The index files a condition shared this widely once for all the rules that have it (or checks
    // it on the event when no index serves it): every kind of condition, at the top and nested, next
    // to the selective one, with events holding arrays of objects there, so that the two may come
    // from different elements.
    const r = random(34)
    let pairs = 0
    let matches = 0
    for (let round = 0; round < 150; round++) {
      const shared = [condition(r, new Set()), ...(r.chance(0.3) ? [condition(r, new Set())] : [])]
      const base = r.pick([[], ['data'], ['data', 'y']])
      const key = r.pick(['type', 'x', 'constructor'])
      const at = (fields: Record<string, unknown>): Record<string, unknown> =>
        base.reduceRight<Record<string, unknown>>((inner, step) => ({[step]: inner}), fields)
      const {patterns} = validPatterns(60, r, (kept) => {
        const selective = at({q: [kept % 30], [key]: shared})
        return {pattern: r.chance(0.3) ? {...pattern(r, 1, new Set()), ...selective} : selective, note: undefined}
      })
      const rules = rulesFrom(patterns, r)
      const built = new RuleMatcher(rules)
      const matcher = round % 2 === 0 ? built : restored(rules, built)
      for (let e = 0; e < 40; e++) {
        const element = () => {
          const fields: Record<string, unknown> = {q: r.int(30)}
          if (r.chance(0.7)) fields[key] = r.chance(0.7) ? scalar(r) : value(r, 1)
          return fields
        }
        const fields = r.chance(0.4) ? Array.from({length: 1 + r.int(3)}, element) : element()
        const event = {...object(r, 0), ...at(fields as Record<string, unknown>)}
        const expected = reference(rules, event)
        const actual = matcher.match(event).map((rule) => rule.name)
        if (JSON.stringify(actual) !== JSON.stringify(expected)) {
          expect.fail(
            `round ${round}${matcher === built ? '' : ' (restored)'}: ${JSON.stringify(patterns[0])}…, event ${JSON.stringify(event)}: reference ${JSON.stringify(expected)}, index ${JSON.stringify(actual)}`,
          )
        }
        pairs += rules.length
        matches += expected.length
      }
    }
    expect(matches).to.be.within(pairs * 0.002, pairs * 0.5)
  })

  it('keeps a nested pattern within one element of an array of objects', () => {
    const rules = rulesFrom([{data: {sku: ['a'], qty: [2]}}, {data: {sku: ['a']}, type: ['t']}], random(1))
    rules.forEach((rule) => (rule.enabled = true))
    const matcher = new RuleMatcher(rules)
    const names = (event: unknown) => matcher.match(event).map((rule) => rule.name)
    expect(
      names({
        type: 't',
        data: [
          {sku: 'a', qty: 1},
          {sku: 'b', qty: 2},
        ],
      }),
    ).to.deep.equal(['r1'])
    expect(
      names({
        type: 't',
        data: [
          {sku: 'b', qty: 1},
          {sku: 'a', qty: 2},
        ],
      }),
    ).to.deep.equal(['r0', 'r1'])
  })

  it('decides from the index, without trying rules one by one', () => {
    const patterns = Array.from(
      {length: 2000},
      (_, i) =>
        [
          {type: [`order.${i}.created`]},
          {type: [{prefix: `svc${i}.`}], data: {level: ['error', 'fatal']}},
          {type: ['payment.settled'], data: {amount: [{numeric: ['>', i * 10, '<=', i * 10 + 100]}]}},
          {source: [{'anything-but': [`src-${i}`]}], type: [`audit.${i}`]},
        ][i % 4],
    )
    const rules = rulesFrom(patterns, random(2))
    rules.forEach((rule) => (rule.enabled = true))
    let tried = 0
    for (const rule of rules) {
      const original = rule.pattern
      rule.pattern = {
        matches: (event) => (tried++, original.matches(event)),
        explain: (event) => original.explain(event),
      }
    }
    const matcher = new RuleMatcher(rules)
    const event = {type: 'payment.settled', source: 'src-3', data: {amount: 555, level: 'error'}}
    expect(matcher.match(event).map((rule) => rule.name)).to.deep.equal(reference(rules, event))
    expect(matcher.match({type: 'audit.3', source: 'src-4'}).map((rule) => rule.name)).to.deep.equal(['r3'])
    tried = 0
    matcher.match(event)
    matcher.match({type: 'svc5.crashed', data: {level: 'fatal'}})
    matcher.match({type: 'audit.3', source: 'src-4'})
    // The index narrows 2,000 rules down to the few whose most selective field matched (the
    // numeric ranges holding 555, the svc5. prefix, audit.3); their other fields (the shared
    // type, the level, anything-but) are checked on the event: no rule is tried one by one.
    expect(tried).to.equal(0)
  })
})
