import {expect} from 'chai'
import {
  chmodSync,
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import {join} from 'node:path'
import * as zlib from 'node:zlib'

import {CACHE_FOLDER, type RuleIndex, ruleIndex} from '../../../src/core/engine/index-cache.js'
import {validateDocument} from '../../../src/core/engine/rules.js'
import {InvalidInputError} from '../../../src/core/errors.js'
import {tempHome} from '../../helpers.js'

const crc32 = (zlib as {crc32?: (data: Uint8Array) => number}).crc32

/** Rules whose events need every part of a restored index: exact values, a check, arrays of objects, a missing field. */
const document = (type = 'order.created') => ({
  rules: [
    {name: 'exact', pattern: {type: [type]}, actions: [{type: 'log'}]},
    {name: 'but', pattern: {type: ['t'], source: [{'anything-but': ['x']}]}, actions: [{type: 'log'}]},
    {name: 'nested', pattern: {data: {sku: ['a'], qty: [2]}}, actions: [{type: 'log'}]},
    {name: 'absent', pattern: {type: ['t'], subject: [{exists: false}]}, actions: [{type: 'log'}]},
    {name: 'range', pattern: {data: {n: [{numeric: ['>', 1, '<=', 5]}]}}, actions: [{type: 'log'}]},
    {name: 'off', enabled: false, pattern: {type: [type]}, actions: [{type: 'log'}]},
  ],
})

const EVENTS: unknown[] = [
  {type: 'order.created'},
  {type: 'order.updated'},
  {type: 't', source: 'y'},
  {type: 't', source: 'x', subject: 's'},
  {
    data: [
      {sku: 'a', qty: 1},
      {sku: 'b', qty: 2},
    ],
  },
  {data: [{sku: 'a', qty: 2}]},
  {data: [{sku: 'a', qty: 2}], type: 't', source: 'x'},
  {data: {n: 5}},
  {data: {n: 1}},
]

/** Under the Node 20 releases without zlib.crc32 there is no cache (and nothing to test here). */
describe('the rule index cache', function () {
  let home: string
  let rules: string
  const cacheFolder = () => join(home, CACHE_FOLDER)
  const cacheFile = () => {
    const files = readdirSync(cacheFolder()).filter((file) => file.endsWith('.index'))
    expect(files).to.have.length(1)
    return join(cacheFolder(), files[0])
  }
  const write = (doc: unknown) => writeFileSync(rules, JSON.stringify(doc))
  const load = () => ruleIndex(rules, home)
  /** The names matched per event, with the index given and with every rule tried by the reference. */
  const agree = (index: RuleIndex) => {
    const {rules: validated} = validateDocument(JSON.parse(readFileSync(rules, 'utf8')), rules)
    for (const event of EVENTS) {
      const count = index.matcher.matchCount(event)
      const names = Array.from(index.matcher.matches.subarray(0, count), (rule) => index.names[rule])
      const expected = validated.filter((rule) => rule.enabled && rule.pattern.matches(event)).map((rule) => rule.name)
      expect(names, JSON.stringify(event)).to.deep.equal(expected)
    }
  }
  /** Rewrites the cache file's header (what it was made from), leaving the payload as it is. */
  const editIdentity = (edit: (identity: Record<string, unknown>) => void) => {
    const data = readFileSync(cacheFile())
    const end = data.indexOf(10)
    const header = JSON.parse(data.toString('utf8', 0, end)) as {identity: Record<string, unknown>}
    edit(header.identity)
    writeFileSync(cacheFile(), Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), data.subarray(end + 1)]))
  }

  beforeEach(function () {
    if (!crc32) this.skip()
    home = tempHome()
    rules = join(home, 'rules.json')
    write(document())
  })

  it('builds the index, keeps it privately, and reads it back while the document is the same', async () => {
    const first = await load()
    expect(first.cached).to.equal(false)
    agree(first)
    expect(statSync(cacheFolder()).mode & 0o777).to.equal(0o700)
    expect(statSync(cacheFile()).mode & 0o777).to.equal(0o600)
    const second = await load()
    expect(second.cached).to.equal(true)
    expect(second.names).to.deep.equal(['exact', 'but', 'nested', 'absent', 'range', 'off'])
    agree(second)
  })

  it('builds anew when the document changes, even to the same size with the same times', async () => {
    await load()
    const before = statSync(rules)
    write(document('order.updated'))
    utimesSync(rules, before.atime, before.mtime)
    expect(statSync(rules).size).to.equal(before.size)
    const changed = await load()
    expect(changed.cached).to.equal(false)
    agree(changed)
    const count = changed.matcher.matchCount({type: 'order.updated'})
    expect(changed.names[changed.matcher.matches[0]]).to.equal('exact')
    expect(count).to.equal(1)
    expect((await load()).cached).to.equal(true)
  })

  for (const [what, edit] of [
    ['other code (another mqctl, or a rebuild)', (identity: Record<string, unknown>) => (identity.code = [1, 2, 3, 4])],
    ['another Node', (identity: Record<string, unknown>) => (identity.node = 'v0.0.0')],
    ['another format', (identity: Record<string, unknown>) => (identity.format = 0)],
  ] as const) {
    it(`ignores a cache made by ${what}`, async () => {
      await load()
      editIdentity(edit)
      const index = await load()
      expect(index.cached).to.equal(false)
      agree(index)
      expect((await load()).cached).to.equal(true)
    })
  }

  for (const [what, damage] of [
    ['a changed byte', (data: Buffer) => ((data[data.length - 10] ^= 0xff), data)],
    ['cut short', (data: Buffer) => data.subarray(0, data.length - 100)],
    ['its header only', (data: Buffer) => data.subarray(0, data.indexOf(10) + 1)],
    ['empty', () => Buffer.alloc(0)],
    ['garbage', () => Buffer.from('not a cache at all')],
  ] as const) {
    it(`builds anew over a corrupt cache: ${what}`, async () => {
      await load()
      writeFileSync(cacheFile(), damage(readFileSync(cacheFile())))
      const index = await load()
      expect(index.cached).to.equal(false)
      agree(index)
      expect((await load()).cached).to.equal(true)
    })
  }

  it('ignores a cache others may write to, a cache folder others may write to, and a link', async () => {
    await load()
    chmodSync(cacheFile(), 0o622)
    expect((await load()).cached).to.equal(false) // and made anew, private
    expect((await load()).cached).to.equal(true)
    // A link in its place, to a copy that would do, is not followed.
    const file = cacheFile()
    const copy = join(home, 'copy.index')
    renameSync(file, copy)
    symlinkSync(copy, file)
    expect((await load()).cached).to.equal(false) // and the link replaced by a cache file
    expect(lstatSync(file).isFile()).to.equal(true)
    expect((await load()).cached).to.equal(true)
    chmodSync(cacheFolder(), 0o777)
    expect((await load()).cached).to.equal(false)
    const index = await load()
    expect(index.cached).to.equal(false)
    agree(index)
  })

  it('refuses a broken document as always, also once its former version is cached', async () => {
    await load()
    writeFileSync(rules, '{"rules": [')
    const notJson = await load().catch((error: unknown) => error)
    expect(notJson).to.be.instanceOf(InvalidInputError)
    expect((notJson as InvalidInputError).code).to.equal('bad_rules')
    write({rules: [{name: 'x', pattern: {type: []}, actions: [{type: 'log'}]}]})
    const invalid = await load().catch((error: unknown) => error)
    expect((invalid as Error).message).to.include('rule "x" at pattern.type')
  })

  it('makes no broker folder, and keeps nothing without one; a missing document is no rules', async () => {
    const absent = join(home, 'absent')
    const index = await ruleIndex(rules, absent)
    expect(index.cached).to.equal(false)
    agree(index)
    expect(existsSync(absent)).to.equal(false)
    expect((await ruleIndex(rules, absent)).cached).to.equal(false)
    const none = await ruleIndex(join(home, 'none.json'), home)
    expect(none.names).to.deep.equal([])
    expect(none.matcher.matchCount({type: 'order.created'})).to.equal(0)
  })
})
