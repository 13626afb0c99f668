import {type ChildProcess, spawn} from 'node:child_process'
import {accessSync, constants, mkdtempSync, rmSync} from 'node:fs'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import {delimiter, join} from 'node:path'

/**
 * Real nats-server processes for the NATS driver's tests, each on a free loopback port with its
 * own store, stopped by pid. Without a server binary the tests skip with a reason locally, and
 * fail under CI (`CI` set): .ci/run installs Debian's nats-server.
 */

export function natsServerBinary(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/usr/local/bin']
  for (const dir of dirs) {
    const candidate = join(dir, 'nats-server')
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not there (or not executable): try the next folder
    }
  }
  return undefined
}

const MISSING = 'nats-server is not installed (apt-get install nats-server)'

/** In a `before` hook: the binary, or this suite skipped (locally) / failed (CI) with the reason. */
export function requireNatsServer(context: Mocha.Context): string {
  const binary = natsServerBinary()
  if (binary) return binary
  if (process.env.CI) throw new Error(`${MISSING}: CI must run the NATS tests`)
  console.log(`      (skipped: ${MISSING})`)
  context.skip()
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const {port} = server.address() as {port: number}
      server.close(() => resolve(port))
    })
  })
}

export interface NatsServer {
  name?: string
  port: number
  url: string
  pid: number
  store: string
  stop(signal?: NodeJS.Signals): Promise<void>
}

/** Starts `nats-server -js` and resolves once it accepts clients (its "ready" log line). */
export async function startNatsServer(
  options: {binary?: string; args?: string[]; port?: number; store?: string; name?: string; jetstream?: boolean} = {},
): Promise<NatsServer> {
  const binary = options.binary ?? natsServerBinary()
  if (!binary) throw new Error(MISSING)
  const port = options.port ?? (await freePort())
  const store = options.store ?? mkdtempSync(join(tmpdir(), 'mq-nats-'))
  const args = [
    '-a',
    '127.0.0.1',
    '-p',
    String(port),
    ...(options.jetstream === false ? [] : ['-js', '-sd', store]),
    ...(options.name ? ['-n', options.name] : []),
    ...(options.args ?? []),
  ]
  const child: ChildProcess = spawn(binary, args, {stdio: ['ignore', 'ignore', 'pipe']})
  let log = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`nats-server did not get ready in 60 s: ${log.slice(-500)}`)),
      60_000,
    )
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString()
      if (log.includes('Server is ready')) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`nats-server exited (${code}): ${log.slice(-500)}`))
    })
  })
  child.stderr!.resume()
  let stopped: Promise<void> | undefined
  return {
    name: options.name,
    port,
    url: `nats://127.0.0.1:${port}`,
    pid: child.pid!,
    store,
    stop(signal: NodeJS.Signals = 'SIGTERM') {
      stopped ??= new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve()
        child.once('exit', () => resolve())
        process.kill(child.pid!, signal)
      }).then(() => {
        if (!options.store) rmSync(store, {recursive: true, force: true})
      })
      return stopped
    },
  }
}
