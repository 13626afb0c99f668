import {expect} from 'chai'

import {resolveHome} from '../../src/core/config.js'
import {validateEvent} from '../../src/core/engine/cloudevents.js'
import {compilePattern} from '../../src/core/engine/pattern.js'
import {validateDocument} from '../../src/core/engine/rules.js'
import {messageEnvironment} from '../../src/core/exec-worker.js'
import {FileBroker} from '../../src/core/file-broker/index.js'
import {MAX_HEADERS_BYTES, messageSize, newHeaders, validateHeaders} from '../../src/core/headers.js'
import {checkJsonDepth, findTooDeep, MAX_JSON_DEPTH, tooShortToNestTooDeep} from '../../src/core/json-depth.js'
import {parsePriority} from '../../src/core/units.js'
import {tempHome, thrown} from '../helpers.js'

/** A value `levels` objects or arrays deep, built without recursion. */
function deep(levels: number, array = false): unknown {
  let value: unknown = 'leaf'
  for (let i = 0; i < levels; i++) value = array ? [value] : {a: value}
  return value
}

describe('input limits (core)', () => {
  describe('depth', () => {
    it('finds the first value nested past the limit, without overflowing on 100,000 levels', () => {
      expect(findTooDeep(deep(MAX_JSON_DEPTH))).to.equal(undefined)
      expect(findTooDeep(deep(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH)).to.match(/^\$\.a\.a/)
      expect(findTooDeep(deep(3, true), 2)).to.equal('$[0][0]')
      expect(findTooDeep({ok: 1, 'odd key': {x: {}}}, 2, '$.data')).to.equal('$.data["odd key"].x')
      const path = findTooDeep(deep(100_000))!
      expect(path.length).to.be.below(130) // shortened to stay on one line
      expect(thrown(() => checkJsonDepth(deep(100_000, true), 'event data', '$.data')).message).to.match(
        /^event data is nested deeper than 256 levels \(at \$\.data\[0\]/,
      )
    })

    it('a text shorter than the shortest one nested past the limit is known to be within it', () => {
      const shortest = '['.repeat(MAX_JSON_DEPTH + 1) + ']'.repeat(MAX_JSON_DEPTH + 1)
      expect(findTooDeep(JSON.parse(shortest))).to.match(/^\$\[0\]/)
      expect(tooShortToNestTooDeep(shortest.length)).to.equal(false)
      expect(tooShortToNestTooDeep(shortest.length - 1)).to.equal(true)
      // Events parsed from a line: data nested too deep is refused whatever the line's length says.
      const event = {specversion: '1.0', id: '1', source: 's', type: 't', data: JSON.parse(shortest)}
      const line = JSON.stringify(event)
      expect(thrown(() => validateEvent(JSON.parse(line), line.length)).message).to.match(/"data" is nested deeper/)
    })

    it('a pattern past the limit is a PatternError naming its path, not a stack overflow', () => {
      expect(thrown(() => compilePattern(deep(50_000))).message).to.match(
        /^invalid pattern at \$\.a\.a.*: nested deeper than 256 levels/,
      )
      expect(thrown(() => compilePattern(null)).message).to.match(
        /^invalid pattern at \$: a pattern must be a JSON object/,
      )
    })

    it('a pattern past the limit is refused as such whatever else is wrong, and one at the limit is accepted', () => {
      /** `levels` pattern objects, the innermost holding `leaf` under the key "x". */
      const nested = (levels: number, leaf: unknown): unknown => {
        let value: unknown = {x: leaf}
        for (let i = 1; i < levels; i++) value = {a: value}
        return value
      }
      const tooDeep = /^invalid pattern at \$\.a\.a.*: nested deeper than 256 levels/
      // The deepest array: the leaf array (+1), an operator object (+2), anything-but's object (+3), its list (+4).
      const anythingBut = [{'anything-but': {prefix: ['a', 'b']}}]
      expect(() => compilePattern(nested(MAX_JSON_DEPTH - 4, anythingBut))).not.to.throw()
      expect(thrown(() => compilePattern(nested(MAX_JSON_DEPTH - 3, anythingBut))).message).to.match(tooDeep)
      expect(() => compilePattern(nested(MAX_JSON_DEPTH - 1, ['v']))).not.to.throw()
      expect(thrown(() => compilePattern(nested(MAX_JSON_DEPTH, ['v']))).message).to.match(tooDeep)
      // Depth is reported before any other problem, also one met earlier in the pattern.
      expect(thrown(() => compilePattern({bad: 'x', a: deep(300)})).message).to.match(tooDeep)
      expect(thrown(() => compilePattern({x: [{prefix: deep(300)}]})).message).to.match(
        /^invalid pattern at \$\.x\[0\]\.prefix\.a.*: nested deeper than 256 levels/,
      )
      expect(thrown(() => compilePattern(nested(MAX_JSON_DEPTH - 1, 'bad'))).message).to.match(/expected an array/)
    })
  })

  describe('headers', () => {
    it('counts headers as stored in a message size', () => {
      expect(messageSize({body: 'héllo'})).to.equal(6)
      expect(messageSize({body: 'x', headers: {}})).to.equal(1)
      expect(messageSize({body: 'x', headers: {k: 'v'}})).to.equal(1 + '{"k":"v"}'.length)
    })

    it('queue bytes count headers as stored, also after dead-lettering adds x-* headers', async () => {
      const broker = new FileBroker(tempHome())
      try {
        const message = {body: 'body', headers: {k: 'v'}}
        await broker.publish('q', [message])
        expect((await broker.queueStats('q')).bytes).to.equal(messageSize(message))
        const [delivery] = await broker.receive('q', {max: 1, autoAck: false})
        await broker.nack([delivery.receipt!], {deadLetter: true, error: 'boom'})
        expect((await broker.queueStats('q')).bytes).to.equal(0)
        const [dead] = await broker.peek('q.dlq', 1)
        expect(Object.keys(dead.headers)).to.include.members(['k', 'x-dead-letter-reason', 'x-last-error'])
        expect((await broker.queueStats('q.dlq')).bytes).to.equal(messageSize(dead))
      } finally {
        await broker.close()
      }
    })

    it('limits the count, the names and the total size, and keeps __proto__', () => {
      const many = Object.fromEntries(Array.from({length: 65}, (_, i) => [`h${i}`, 'v']))
      expect(thrown(() => validateHeaders(many)).message).to.equal('65 headers, over the limit of 64 per message')
      expect(thrown(() => validateHeaders({['n'.repeat(129)]: 'v'})).message).to.match(/^header name "n+…" is invalid/)
      expect(thrown(() => validateHeaders({k: 'v'.repeat(MAX_HEADERS_BYTES)})).message).to.match(
        /^headers take 65544 bytes, over the limit of 65536/,
      )
      expect(thrown(() => validateHeaders({k: 'a\0b'})).message).to.match(/without NUL/)
      validateHeaders({k: 'v'.repeat(MAX_HEADERS_BYTES - 8)}) // exactly 64 KiB stored
      const headers = newHeaders()
      headers['__proto__'] = 'kept'
      validateHeaders(headers)
      expect(JSON.stringify(headers)).to.equal('{"__proto__":"kept"}')
    })

    it('--exec gets MQ_HEADERS, and no MQ_HEADER_ variable two headers would share', () => {
      const env = messageEnvironment({
        id: '1',
        body: '',
        headers: {'a.b': '1', a_b: '2', Trace: 't', trace: 'u', kind: 'k'},
        attempt: 1,
        publishedAt: 0,
        queue: 'q',
      })
      expect(JSON.parse(env.MQ_HEADERS)).to.deep.equal({'a.b': '1', a_b: '2', Trace: 't', trace: 'u', kind: 'k'})
      expect(Object.keys(env).filter((name) => name.startsWith('MQ_HEADER_'))).to.deep.equal(['MQ_HEADER_KIND'])
    })
  })

  it('a priority given as text is one digit; empty is refused, not 0', () => {
    expect(parsePriority('7')).to.equal(7)
    for (const text of ['', ' ', '10', '-1', '1.5', '0x3', '1e0'])
      expect(thrown(() => parsePriority(text)).message).to.match(/must be a whole number from 0 to 9/)
  })

  it('an empty --home or MQ_HOME is refused, never the default folder', () => {
    expect(thrown(() => resolveHome('', {})).message).to.equal('--home is empty')
    expect(thrown(() => resolveHome(undefined, {MQ_HOME: ''})).message).to.equal('--home or MQ_HOME is empty')
    expect(resolveHome('/tmp/b', {MQ_HOME: ''})).to.equal('/tmp/b')
    expect(resolveHome(undefined, {MQ_HOME: '/tmp/a'})).to.equal('/tmp/a')
  })

  it('rules: a zero action timeout or poll interval is refused', () => {
    const rule = (action: object) => ({rules: [{name: 'r', pattern: {type: ['t']}, actions: [action]}]})
    expect(
      thrown(() => validateDocument(rule({type: 'exec', command: ['true'], timeout: '0s'}), 'rules.json')).message,
    ).to.match(/timeout.*must be longer than zero/)
    expect(
      thrown(() => validateDocument(rule({type: 'http', url: 'http://127.0.0.1:1/x', timeout: '0ms'}), 'rules.json'))
        .message,
    ).to.match(/must be longer than zero/)
    const poll = {
      rules: [],
      sources: [{name: 's', type: 'poll-command', command: ['true'], every: '0s', event: {type: 't'}}],
    }
    expect(thrown(() => validateDocument(poll, 'rules.json')).message).to.match(/every.*must be longer than zero/)
  })
})
