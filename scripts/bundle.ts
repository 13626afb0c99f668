/**
 * Bundles the fast launcher (ARCHITECTURE.md, "Two ways in"): dist/cli/launcher.js and the hot
 * command definitions it loads into one CommonJS file, dist/fast/launcher.cjs, and its loader
 * (src/cli/boot.ts, the code cache) into dist/fast/boot.cjs. Run by `npm run build` after tsc.
 *
 * better-sqlite3's JavaScript goes into the bundle (loading it file by file costs a one-shot
 * command several milliseconds); its version is written in too, so that a bundle meeting another
 * installed version loads the installed one instead (src/core/store/database.ts, loadSqlite).
 * Packages only some commands use stay outside and load on first use.
 *
 * Usage: tsx scripts/bundle.ts
 */
import {build} from 'esbuild'
import {readFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const sqlite = JSON.parse(readFileSync(join(root, 'node_modules', 'better-sqlite3', 'package.json'), 'utf8')) as {
  version: string
}

await build({
  absWorkingDir: root,
  entryPoints: ['dist/cli/launcher.js', 'dist/cli/boot.js'],
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  outdir: 'dist/fast',
  outExtension: {'.js': '.cjs'},
  // The sources are ES modules, which use import.meta.url only to make a require (createRequire,
  // src/core/lazy-require.ts): in the bundle it is the bundle's own path, which createRequire
  // takes too and which costs nothing to make (a file URL costs a one-shot command a millisecond).
  banner: {js: "'use strict'; var __import_meta_url = __filename;"},
  define: {
    'import.meta.url': '__import_meta_url',
    __BUNDLED_BETTER_SQLITE3__: JSON.stringify(sqlite.version),
  },
  external: ['@oclif/core', 'chalk', 'ora', '@inquirer/*', '@nats-io/*', 'amqplib', 'bindings'],
  logLevel: 'warning',
})

// A path is not a URL: any other use of import.meta.url in the bundle would be wrong, but for the
// rule index cache's, which takes either (src/core/engine/index-cache.ts, codeIdentity).
for (const file of ['launcher.cjs', 'boot.cjs']) {
  const text = readFileSync(join(root, 'dist', 'fast', file), 'utf8')
  const uses = text.split('__import_meta_url').length - 2 // less the banner's
  const inCreateRequire = text.split('createRequire)(__import_meta_url)').length - 1
  const inCodeIdentity = text.split('const here = __import_meta_url;').length - 1
  if (uses !== inCreateRequire + inCodeIdentity) {
    console.error(`dist/fast/${file}: import.meta.url is used other than in createRequire; see scripts/bundle.ts`)
    process.exit(1)
  }
}
