import {lstatSync, mkdirSync, readFileSync, statSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import type * as V8 from 'node:v8'

import {type Crc32, readCacheFile, writeCacheFile} from '../cache-file.js'
import {lazyCrypto, requireLazily} from '../lazy-require.js'
import {type IndexState, type MatchedRule, RuleMatcher} from './matcher.js'
import {type CompiledPattern, compileLazily, parsePattern} from './pattern.js'
import {type LoadedRules, readRules, rulesFromText} from './rules-file.js'
import type {RulesDocument} from './rules.js'

/**
 * The rule index cache (README.md, "Events and rules"; ARCHITECTURE.md, the `mq trigger`
 * walk-through). Reading, validating and indexing a large rules document costs a one-shot command
 * more than matching thousands of events (most of it V8 compiling the build code): `mq rule match`
 * keeps the built index in the broker folder (`cache/`, private to the user) and reads it back
 * while the document is the same.
 *
 * A cache is used only if it was made from the same bytes of the rules document (their size and
 * SHA-256), by the same code (the identity of the file mqctl runs from: size, times, inode; the
 * fast launcher's bundle holds all of it, and a reinstall or `npm run build` rewrites every
 * compiled module), the same Node and architecture, and this {@link FORMAT}; and if it is intact
 * (src/core/cache-file.ts: length and CRC-32, owner, not writable by others). Anything else builds
 * the index from the document, which is then validated as always, and writes the cache anew.
 */

/** Changed whenever what the payload holds, or how the index reads it, changes. */
const FORMAT = 1
/** The folder of the broker folder that holds caches. */
export const CACHE_FOLDER = 'cache'

export interface RuleIndex {
  /** The names of the document's rules, in order (enabled or not). */
  names: readonly string[]
  matcher: RuleMatcher<MatchedRule>
  /** Whether the index was read from the cache. */
  cached: boolean
}

interface Payload {
  names: string[]
  state: IndexState
}

/**
 * The index of the rules document at `rulesPath`, from the cache in `home` (the broker folder) when
 * it was made from this very document; undefined `home`: no cache. Errors are those of reading the
 * document (readRules): a document that is not there is no rules.
 */
export async function ruleIndex(rulesPath: string, home: string | undefined): Promise<RuleIndex> {
  let bytes: Buffer
  try {
    bytes = readFileSync(rulesPath)
  } catch {
    return built(await readRules(rulesPath))
  }
  const crc32 = (requireLazily('node:zlib') as {crc32?: Crc32}).crc32 // Node 20.15 and later
  const folder = home === undefined || crc32 === undefined ? undefined : cacheFolder(home)
  // Everything below reads these bytes only: the cache and the index are made from the same document.
  if (folder === undefined || crc32 === undefined) return built(rulesFromText(bytes.toString('utf8'), rulesPath))
  const identity = {
    format: FORMAT,
    code: codeIdentity(),
    node: process.version,
    arch: process.arch,
    rules: {size: bytes.length, sha256: sha256(bytes)},
  }
  const file = join(folder, `rules-${sha256(rulesPath).slice(0, 16)}.index`)
  const v8 = requireLazily('node:v8') as typeof V8
  const payload = readCacheFile(file, identity, process.getuid?.() ?? -1, crc32)
  if (payload !== undefined) {
    try {
      const {names, state} = v8.deserialize(payload) as Payload
      const document = new DocumentRules(bytes)
      const rules = names.map((_, index) => new CachedRule(document, index))
      return {names, matcher: new RuleMatcher(rules, state), cached: true}
    } catch {
      // Not what this code writes after all: build it anew.
    }
  }
  const index = built(rulesFromText(bytes.toString('utf8'), rulesPath))
  const made: Payload = {names: index.names as string[], state: index.matcher.state()}
  writeCacheFile(file, identity, () => v8.serialize(made), crc32, 0o600)
  return index
}

function built(loaded: LoadedRules): RuleIndex {
  const {rules} = loaded.validated
  return {names: rules.map((rule) => rule.name), matcher: new RuleMatcher(rules), cached: false}
}

/**
 * The broker folder's cache folder, made private (0700) if missing; undefined when the broker
 * folder does not exist (rule match does not make one) or the cache folder is not a folder of this
 * user that only this user can write to.
 */
function cacheFolder(home: string): string | undefined {
  const folder = join(home, CACHE_FOLDER)
  try {
    if (!statSync(home).isDirectory()) return undefined
    try {
      mkdirSync(folder, {mode: 0o700})
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return undefined
    }
    const stats = lstatSync(folder)
    if (!stats.isDirectory() || stats.uid !== (process.getuid?.() ?? stats.uid) || (stats.mode & 0o022) !== 0)
      return undefined
    return folder
  } catch {
    return undefined
  }
}

/** The file mqctl's code runs from (the fast launcher's bundle, or this module) as size, times and inode. */
function codeIdentity(): number[] {
  // In the bundle import.meta.url is the bundle's path (scripts/bundle.ts); elsewhere a file URL.
  const here = import.meta.url
  const stats = statSync(here.startsWith('file:') ? fileURLToPath(here) : here)
  return [stats.size, stats.mtimeMs, stats.ctimeMs, stats.ino]
}

function sha256(data: string | Buffer): string {
  return lazyCrypto().createHash('sha256').update(data).digest('hex')
}

/** The document's rules, parsed from the cached document's bytes the first time a rule needs its pattern. */
class DocumentRules {
  private rules: RulesDocument['rules'] | undefined

  constructor(private readonly bytes: Buffer) {}

  pattern(index: number): unknown {
    this.rules ??= (JSON.parse(this.bytes.toString('utf8')) as RulesDocument).rules
    return this.rules[index].pattern
  }
}

/**
 * A rule of a cached index: its reference matcher (for what the index leaves to it) is made from
 * the document only if an event needs it. The document was valid when the cache was made from it.
 */
class CachedRule implements MatchedRule {
  private compiled: CompiledPattern | undefined

  constructor(
    private readonly document: DocumentRules,
    private readonly index: number,
  ) {}

  get pattern(): CompiledPattern {
    return (this.compiled ??= compileLazily(parsePattern(this.document.pattern(this.index))))
  }
}
