import {expect} from 'chai'
import {chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import * as nodeModule from 'node:module'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {CACHE_FOLDER, loadBundle} from '../../src/cli/boot.js'
import {copyCli, mq, tempHome} from '../helpers.js'

/**
 * The fast launcher's code cache (src/cli/boot.ts): whatever state the cache is in, the bundle
 * runs as written. On Node 20 the cache is ours (vm.Script + cachedData) and `cached` tells
 * whether it was used; on Node 22+ Node's own compile cache is used and only the results count.
 */
describe('the launcher code cache', () => {
  const ours = !(nodeModule as {enableCompileCache?: unknown}).enableCompileCache
  let folder: string
  let bundle: string
  let cacheFile: string
  const write = (answer: string) =>
    writeFileSync(
      bundle,
      // Like a bundle's importLazily (src/core/lazy-require.ts): the loader's import() when it gives one.
      `exports.answer = () => '${answer}'\n` +
        `exports.imported = () => (typeof __mqctlImport === 'function' ? __mqctlImport : (s) => import(s))('node:path').then((p) => typeof p.join)\n`,
    )
  const load = () => loadBundle<{answer(): string; imported(): Promise<string>}>(bundle)

  beforeEach(() => {
    folder = mkdtempSync(join(tmpdir(), 'mq-boot-'))
    bundle = join(folder, 'bundle.cjs')
    cacheFile = join(folder, CACHE_FOLDER, 'bundle.cjs.v8')
    write('one')
  })
  afterEach(() => rmSync(folder, {recursive: true, force: true}))

  it('runs the bundle, keeps its code, and uses it next time', async () => {
    const first = load()
    expect(first.exports.answer()).to.equal('one')
    expect(await first.exports.imported()).to.equal('function') // import() works inside the bundle
    first.saveCache()
    const second = load()
    expect(second.exports.answer()).to.equal('one')
    expect(await second.exports.imported()).to.equal('function') // and from cached code
    if (ours) {
      expect(first.cached).to.equal(false)
      expect(second.cached).to.equal(true)
    }
  })

  it('ignores the cache of an older bundle, even of the same length', () => {
    load().saveCache()
    write('two') // same length, new content (and new times)
    const loaded = load()
    expect(loaded.exports.answer()).to.equal('two')
    if (ours) expect(loaded.cached).to.equal(false)
    loaded.saveCache()
    if (ours) expect(load().cached).to.equal(true)
  })

  for (const [what, damage] of [
    ['a flipped byte in the code', (data: Buffer) => (data[data.length - 20] ^= 0x55)],
    ['a truncated file', (data: Buffer) => data.subarray(0, data.length - 100)],
    ['garbage', () => Buffer.from('not a cache at all')],
    ['an empty file', () => Buffer.alloc(0)],
  ] as const) {
    it(`ignores a corrupt cache: ${what}`, function () {
      if (!ours) this.skip() // Node's own cache checks itself
      load().saveCache()
      const data = readFileSync(cacheFile)
      const damaged = damage(data) ?? data
      writeFileSync(cacheFile, typeof damaged === 'number' ? data : damaged)
      const loaded = load()
      expect(loaded.exports.answer()).to.equal('one')
      expect(loaded.cached).to.equal(false)
      loaded.saveCache() // and writes a good one again
      expect(load().cached).to.equal(true)
    })
  }

  it('ignores a cache others may write to', function () {
    if (!ours) this.skip()
    load().saveCache()
    chmodSync(cacheFile, 0o666)
    expect(load().cached).to.equal(false)
  })

  it('runs without a cache where none can be written', () => {
    writeFileSync(join(folder, CACHE_FOLDER), 'a file where the cache folder would be')
    const loaded = load()
    loaded.saveCache() // does not throw
    expect(load().exports.answer()).to.equal('one')
  })
})

describe('the bundle and the installed better-sqlite3', () => {
  it('uses its own copy of the JavaScript only with an addon of the same version, else the installed package', async () => {
    const root = copyCli()
    const bin = join(root, 'bin', 'run.js')
    const env = {NODE_DEBUG: 'module'} // Node names every module it loads on stderr
    const home = tempHome()
    const same = await mq(['publish', 'q', 'one'], {home, bin, env})
    expect(same.code).to.equal(0)
    expect(same.stderr).to.not.include('better-sqlite3/lib/database.js')
    // An update installed next to a bundle made with the older version.
    const manifest = join(root, 'node_modules', 'better-sqlite3', 'package.json')
    writeFileSync(manifest, JSON.stringify({...JSON.parse(readFileSync(manifest, 'utf8')), version: '0.0.0-other'}))
    const other = await mq(['publish', 'q', 'two'], {home, bin, env})
    expect(other.code).to.equal(0)
    expect(other.stderr).to.include('better-sqlite3/lib/database.js')
    expect((await mq(['consume', 'q', '-n', '2'], {home, bin})).stdout).to.equal('one\ntwo\n')
  })
})
