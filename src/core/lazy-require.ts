import {createRequire} from 'node:module'

/**
 * `require` for modules a command may not need, loaded synchronously on first use: one-shot
 * commands start faster when what they never touch is never loaded (ARCHITECTURE.md, "Two ways
 * in"). For Node built-ins and CommonJS packages (better-sqlite3); types come from `import type`.
 */
export const requireLazily = createRequire(import.meta.url)

let crypto: typeof import('node:crypto') | undefined

/** node:crypto, loaded on first use (loading it costs a few milliseconds at start-up). */
export function lazyCrypto(): typeof import('node:crypto') {
  return (crypto ??= requireLazily('node:crypto') as typeof import('node:crypto'))
}
