import {expect} from 'chai'

import {InvalidInputError} from '../../src/core/errors.js'
import {compileTopicPattern, validateName} from '../../src/core/names.js'

describe('topic patterns (* one segment, # zero or more)', () => {
  const table: [pattern: string, topic: string, matches: boolean][] = [
    // exact
    ['orders', 'orders', true],
    ['orders', 'orders.created', false],
    ['orders.created', 'orders.created', true],
    // * is exactly one segment
    ['orders.*', 'orders.created', true],
    ['orders.*', 'orders', false],
    ['orders.*', 'orders.created.eu', false],
    ['*.created', 'orders.created', true],
    ['*.created', 'created', false],
    ['*', 'orders', true],
    ['*', 'orders.created', false],
    ['*.*', 'a.b', true],
    ['*.*', 'a', false],
    // # at the end: zero or more
    ['orders.#', 'orders', true],
    ['orders.#', 'orders.created', true],
    ['orders.#', 'orders.created.eu.west', true],
    ['orders.#', 'ordersx', false],
    ['orders.#', 'shipments.orders', false],
    // # at the start
    ['#.error', 'error', true],
    ['#.error', 'app.error', true],
    ['#.error', 'app.db.error', true],
    ['#.error', 'app.error.retry', false],
    ['#.error', 'errors', false],
    // # in the middle
    ['app.#.error', 'app.error', true],
    ['app.#.error', 'app.db.error', true],
    ['app.#.error', 'app.db.pool.error', true],
    ['app.#.error', 'app.db.warning', false],
    ['app.#.error', 'web.db.error', false],
    // # alone matches everything
    ['#', 'anything', true],
    ['#', 'a.b.c', true],
    // * versus #
    ['a.*.c', 'a.b.c', true],
    ['a.*.c', 'a.c', false],
    ['a.#.c', 'a.c', true],
    ['a.*.#', 'a', false],
    ['a.*.#', 'a.b', true],
    ['a.*.#', 'a.b.c.d', true],
    ['#.*', 'a', true],
    ['#.*', 'a.b.c', true],
    ['*.#.*', 'a', false],
    ['*.#.*', 'a.b', true],
    // names that must not match: prefixes, case, partial segments
    ['orders.*', 'Orders.created', false],
    ['log', 'logs', false],
    ['logs.#', 'logsx.a', false],
    ['a.b', 'a.b.c', false],
  ]
  for (const [pattern, topic, expected] of table) {
    it(`${pattern} ${expected ? 'matches' : 'does not match'} ${topic}`, () => {
      expect(compileTopicPattern(pattern).matches(topic)).to.equal(expected)
    })
  }

  const malformed: [pattern: string, position: number][] = [
    ['', 1],
    ['orders..created', 8],
    ['.orders', 1],
    ['orders.', 8],
    ['orders.cre*', 11],
    ['#orders', 1],
    ['a.b c', 4],
    ['a.ü', 3],
  ]
  for (const [pattern, position] of malformed) {
    it(`rejects ${JSON.stringify(pattern)}, naming position ${position}`, () => {
      expect(() => compileTopicPattern(pattern))
        .to.throw(InvalidInputError)
        .with.property('message')
        .that.includes(`at position ${position}`)
    })
  }

  it('marks literal patterns', () => {
    expect(compileTopicPattern('a.b').literal).to.equal(true)
    expect(compileTopicPattern('a.*').literal).to.equal(false)
  })

  it('validates names: segments, characters, length', () => {
    expect(validateName('a-b_c.D9')).to.equal('a-b_c.D9')
    expect(() => validateName('x'.repeat(201))).to.throw(/201 characters/)
    expect(() => validateName('a..b')).to.throw(/empty segment/)
    expect(() => validateName('a*')).to.throw(/invalid character "\*"/)
  })

  it('accepts exactly the names whose segments are all non-empty runs of [A-Za-z0-9_-]', () => {
    let state = 5
    const next = (n: number) => (state = (state * 1103515245 + 12345) % 2147483648) % n
    const alphabet = 'aZ09_-..*/ é\n'
    let valid = 0
    for (let i = 0; i < 5000; i++) {
      const name = Array.from({length: 1 + next(8)}, () => alphabet[next(alphabet.length)]).join('')
      const expected = name.split('.').every((segment) => /^[A-Za-z0-9_-]+$/.test(segment))
      let accepted = true
      try {
        validateName(name)
      } catch {
        accepted = false
      }
      expect(accepted, JSON.stringify(name)).to.equal(expected)
      valid += expected ? 1 : 0
    }
    expect(valid).to.be.within(250, 4750)
  })
})

describe('topic pattern matching cost', () => {
  // A backtracking matcher takes hours on this (the test would time out); the DP takes microseconds.
  it('stays polynomial with many # and * segments', () => {
    const topic = Array.from({length: 60}, () => 'a').join('.')
    for (const source of ['#.#.#.#.#.#.#.#.#.#.#.#.z', '#.*.#.*.#.*.#.*.#.*.#.*.z', '*.#.*.#.*.#.*.#.*.#.*.#.*.#.z']) {
      const pattern = compileTopicPattern(source)
      expect(pattern.matches(topic), source).to.equal(false)
      expect(pattern.matches(`${topic}.z`), source).to.equal(true)
    }
  })
})
