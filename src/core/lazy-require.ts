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

// The fast launcher's loader (src/cli/boot.ts) may run its bundle from cached compiled code, where
// Node 20 cannot run import() (the cached code forgets which loader to use); it then hands the
// bundle an import() of its own as this variable. Elsewhere it does not exist.
declare const __mqctlImport: ((specifier: string) => Promise<unknown>) | undefined

/**
 * import() of a package loaded only when needed (chalk, ora, the prompt library, the NATS and
 * AMQP clients); `T` is its module type, e.g. `importLazily<typeof import('chalk')>('chalk')`.
 */
export function importLazily<T>(specifier: string): Promise<T> {
  return (typeof __mqctlImport === 'function' ? __mqctlImport(specifier) : import(specifier)) as Promise<T>
}
