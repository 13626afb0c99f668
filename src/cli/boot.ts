import {mkdirSync, readFileSync, statSync} from 'node:fs'
import * as nodeModule from 'node:module'
import {basename, dirname, join} from 'node:path'
import * as vm from 'node:vm'

import {readCacheFile, writeCacheFile} from '../core/cache-file.js'
import {requireLazily} from '../core/lazy-require.js'

/**
 * Where the compiled code of the fast launcher is kept, next to its bundle: only whoever may
 * change the bundle may write there (a read-only installation simply has no cache).
 */
export const CACHE_FOLDER = '.cache'

/** What `loadBundle` returns: the bundle's exports, and a way to keep its compiled code for next time. */
export interface LoadedBundle<T> {
  exports: T
  /** Node 20: whether the code came from a valid cache (undefined where Node's own cache or none is used). */
  cached?: boolean
  /** Writes the code cache if there was none (or it did not fit); never throws. Call before exiting. */
  saveCache(): void
}

type ModuleWrapper = (
  exports: unknown,
  require: NodeJS.Require,
  module: {exports: unknown},
  filename: string,
  dirname: string,
  mqctlImport: (specifier: string) => Promise<unknown>,
) => void

/**
 * Loads a CommonJS bundle (dist/fast/launcher.cjs) with a V8 code cache, so a one-shot command
 * does not compile the launcher's code again on every start (ARCHITECTURE.md, "Two ways in").
 *
 * - Node 22 and later: Node's own compile cache (`module.enableCompileCache`), which checks the
 *   source and the cache itself.
 * - Node 20: the bundle is compiled with `vm.Script` and `cachedData`. The cache file names the
 *   bundle it was made from (size, times and inode: any rewrite of the bundle changes them), the
 *   Node version and architecture, and carries a CRC-32 of its payload: V8 checks its own version
 *   and flags but neither the payload nor that the source is the same. A cache that is missing,
 *   stale, corrupt, foreign (another owner than the bundle's) or rejected by V8 is ignored and
 *   written anew after the command; any failure to read or write it only costs the compile.
 *
 * `NODE_DISABLE_COMPILE_CACHE` (Node's own switch) turns both off.
 */
export function loadBundle<T>(bundle: string): LoadedBundle<T> {
  const folder = join(dirname(bundle), CACHE_FOLDER)
  const node = nodeModule as {
    enableCompileCache?: (directory?: string) => unknown
    flushCompileCache?: () => void
  }
  if (node.enableCompileCache) {
    node.enableCompileCache(folder)
    return {exports: requireLazily(bundle) as T, saveCache: () => node.flushCompileCache?.()}
  }
  const uncached = () => ({exports: requireLazily(bundle) as T, saveCache: () => {}})
  if (process.env.NODE_DISABLE_COMPILE_CACHE) return uncached()
  // zlib.crc32 is there from Node 20.15.
  const crc32 = (requireLazily('node:zlib') as {crc32?: (data: Uint8Array) => number}).crc32
  if (!crc32) return uncached()

  // Stat first: if the bundle is rewritten between the two, the cache made now carries the older
  // identity and is never used.
  const stats = statSync(bundle)
  const source = readFileSync(bundle, 'utf8')
  const cacheFile = join(folder, `${basename(bundle)}.v8`)
  const identity = {
    bundle: [stats.size, stats.mtimeMs, stats.ctimeMs, stats.ino],
    node: process.version,
    arch: process.arch,
  }
  // Only a cache written by the bundle's owner is trusted.
  const cachedData = readCacheFile(cacheFile, identity, stats.uid, crc32)
  // __mqctlImport: compiled code from a cache cannot run import() on Node 20 (it loses its loader),
  // so the bundle imports packages through this module's import() (importLazily, src/core/lazy-require.ts).
  const wrapped = `(function (exports, require, module, __filename, __dirname, __mqctlImport) {${source}\n})`
  const script = new vm.Script(wrapped, {
    filename: bundle,
    cachedData,
  })
  const module = {exports: {} as unknown}
  const wrapper = script.runInThisContext() as ModuleWrapper
  wrapper.call(
    module.exports,
    module.exports,
    nodeModule.createRequire(bundle),
    module,
    bundle,
    dirname(bundle),
    (specifier) => import(specifier),
  )
  const cached = cachedData !== undefined && script.cachedDataRejected !== true
  let save = !cached
  return {
    exports: module.exports as T,
    cached,
    saveCache() {
      if (!save) return
      save = false
      try {
        mkdirSync(folder, {mode: 0o755})
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return
      }
      writeCacheFile(cacheFile, identity, () => script.createCachedData(), crc32, 0o644)
    },
  }
}
