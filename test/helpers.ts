import Database from 'better-sqlite3'
import {expect} from 'chai'
import {AsyncLocalStorage} from 'node:async_hooks'
import {type ChildProcess, spawn} from 'node:child_process'
import {chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {basename, dirname, join} from 'node:path'
import {Readable, Writable} from 'node:stream'
import {fileURLToPath} from 'node:url'

import type {CommandDefinition} from '../src/cli/definition.js'
import {execute} from '../src/cli/definition.js'
import {parseFast} from '../src/cli/fast.js'
import {globalFlagsLast} from '../src/cli/launcher.js'
import * as ackDefs from '../src/cli/defs/ack.js'
import * as brokerDefs from '../src/cli/defs/broker.js'
import * as consumeDefs from '../src/cli/defs/consume.js'
import * as daemonDefs from '../src/cli/defs/daemon.js'
import * as dlqDefs from '../src/cli/defs/dlq.js'
import * as engineDefs from '../src/cli/defs/engine.js'
import * as eventsDefs from '../src/cli/defs/events.js'
import * as extendDefs from '../src/cli/defs/extend.js'
import * as nackDefs from '../src/cli/defs/nack.js'
import * as publishDefs from '../src/cli/defs/publish.js'
import * as queueDefs from '../src/cli/defs/queue.js'
import * as ruleDefs from '../src/cli/defs/rule.js'
import * as ruleMatchDefs from '../src/cli/defs/rule-match.js'
import * as settleDefs from '../src/cli/defs/settle.js'
import * as subscribeDefs from '../src/cli/defs/subscribe.js'
import * as subscriptionDefs from '../src/cli/defs/subscription.js'
import * as topDefs from '../src/cli/defs/top.js'
import * as topicDefs from '../src/cli/defs/topic.js'
import * as triggerDefs from '../src/cli/defs/trigger.js'

import {reportError} from '../src/cli/errors.js'
import {oclifCommand, parseErrorFor} from '../src/cli/oclif-adapter.js'
import type {ParsedInput} from '../src/cli/spec.js'
import type {DaemonStatus} from '../src/core/daemon/client.js'
import {InvalidInputError} from '../src/core/errors.js'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
export const BIN = join(ROOT, 'bin', 'run.js')

/** The test running the code that calls a helper (its body, and whatever that body started). */
interface RunningTest {
  title: string
  /** When the test's own timeout runs out (Date.now() scale). */
  deadline: number
  ended: boolean
}

const currentTest = new AsyncLocalStorage<RunningTest>()

/**
 * Runs `test`'s body with the test as its owner (the root beforeEach calls this), so the helpers
 * know which test calls them: a body that goes on after its test ended (a timeout, or a
 * `Promise.all` that failed while other branches still run) can start nothing more, and waits
 * last as long as the test has time left. Returns the function to call when the test ends.
 */
export function ownTest(test: Mocha.Test): () => void {
  const fn = test.fn
  const state: RunningTest = {title: test.fullTitle(), deadline: Number.POSITIVE_INFINITY, ended: false}
  if (fn) {
    const timed = () => {
      const ms = test.timeout()
      state.deadline = ms > 0 ? Date.now() + ms : Number.POSITIVE_INFINITY
    }
    // mocha reads `fn.length` to tell a done-callback test from a promise one: keep it.
    test.fn =
      fn.length > 0
        ? function (this: Mocha.Context, done: Mocha.Done) {
            timed()
            return currentTest.run(state, () => (fn as Mocha.Func).call(this, done))
          }
        : function (this: Mocha.Context) {
            timed()
            return currentTest.run(state, () => (fn as Mocha.AsyncFunc).call(this))
          }
  }
  return () => {
    state.ended = true
    test.fn = fn
  }
}

/** Refuses to go on for a test that has already ended: what it would start, nobody would stop. */
function refuseAfterEnd(what: string): void {
  const test = currentTest.getStore()
  if (test?.ended) throw new Error(`${what}: its test ("${test.title}") has already ended`)
}

/** What is left of the current test's time (less a margin to report in), or `fallbackMs` outside a test. */
function timeLeftMs(fallbackMs: number): number {
  const test = currentTest.getStore()
  if (!test || test.deadline === Number.POSITIVE_INFINITY) return fallbackMs
  return Math.max(1_000, test.deadline - Date.now() - 1_000)
}

const homes: string[] = []

/** A fresh, empty broker folder for one test. */
export function tempHome(prefix = 'mq-test-'): string {
  const home = mkdtempSync(join(tmpdir(), prefix))
  homes.push(home)
  return home
}

export function removeTempHomes(): void {
  for (const home of homes.splice(0)) {
    try {
      rmSync(home, {recursive: true, force: true})
    } catch (error) {
      // a folder a test made unremovable must not fail the run: report it and go on
      console.error(`could not remove ${home}: ${(error as Error).message}`)
    }
  }
}

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface RunOptions {
  home?: string
  input?: string | Buffer
  env?: NodeJS.ProcessEnv
  /** Kill the process (SIGKILL) after this long; by default it may run as long as its test. */
  timeoutMs?: number
  uid?: number
  gid?: number
  /** Leave stdin open for the test to write to (default: closed at once, or after `input`). */
  openStdin?: boolean
  /** The CLI to run (default: this checkout's bin/run.js). */
  bin?: string
  /** The folder to run in (default: this process's). */
  cwd?: string
}

const running = new Set<ChildProcess>()

/** The environment the CLI runs with in tests: the test's folder, no colours, not CI, plus `options.env`. */
function cliEnv(options: RunOptions): NodeJS.ProcessEnv {
  return {
    ...process.env,
    MQ_HOME: options.home,
    NO_COLOR: '1',
    FORCE_COLOR: undefined,
    CI: '',
    DEBUG: '',
    ...options.env,
  }
}

/** Starts the built CLI; tracked so a test that leaks a process fails. */
export function start(args: string[], options: RunOptions = {}): MqProcess {
  refuseAfterEnd(`mq ${args.join(' ')}`)
  const child = spawn(process.execPath, [options.bin ?? BIN, ...args], {
    env: cliEnv(options),
    stdio: ['pipe', 'pipe', 'pipe'],
    cwd: options.cwd,
    uid: options.uid,
    gid: options.gid,
  })
  running.add(child)
  return new MqProcess(child, options)
}

/**
 * Runs a shell script in which `MQ ` starts the built CLI, for what arguments cannot carry from
 * Node (raw bytes such as `"$(printf 'ok\\377')"`) or redirections; tracked like {@link start}.
 */
export async function shell(script: string, options: RunOptions = {}): Promise<RunResult> {
  refuseAfterEnd(script)
  const child = spawn('sh', ['-c', script.replaceAll('MQ ', `"${process.execPath}" "${BIN}" `)], {
    env: cliEnv(options),
    stdio: ['pipe', 'pipe', 'pipe'],
    cwd: options.cwd,
  })
  running.add(child)
  return new MqProcess(child, options).done
}

let readableCli: string | undefined

/**
 * A copy of the built CLI that any user can run (bin, dist and the one native module the hot
 * commands load), for tests that run it as another user: the checkout itself may sit in a
 * folder only its owner can enter (CI clones into a private temp folder).
 */
export function worldReadableCli(): string {
  if (readableCli) return readableCli
  const root = copyCli()
  chmodSync(root, 0o755)
  readableCli = join(root, 'bin', 'run.js')
  return readableCli
}

/**
 * A private copy of the built CLI with what the hot commands load (bin, dist, better-sqlite3 and
 * its loader), removed after the run; returns its root (run it as `<root>/bin/run.js`).
 */
export function copyCli(): string {
  const root = mkdtempSync(join(tmpdir(), 'mq-cli-'))
  homes.push(root)
  const copy = (path: string) => cpSync(join(ROOT, path), join(root, path), {recursive: true})
  for (const path of [
    'package.json',
    'oclif.manifest.json',
    'bin',
    'dist',
    'node_modules/bindings',
    'node_modules/file-uri-to-path',
  ])
    copy(path)
  for (const path of ['package.json', 'lib', 'build/Release/better_sqlite3.node'])
    copy(`node_modules/better-sqlite3/${path}`)
  return root
}

/** Runs the built CLI to completion and returns its exit status and output. */
export async function mq(args: string[], options: RunOptions = {}): Promise<RunResult> {
  return start(args, options).done
}

export class MqProcess {
  stdout = ''
  stderr = ''
  readonly done: Promise<RunResult>

  constructor(
    readonly child: ChildProcess,
    options: RunOptions,
  ) {
    child.stdout!.setEncoding('utf8').on('data', (text: string) => (this.stdout += text))
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (this.stderr += text))
    child.stdin!.on('error', () => {})
    if (options.input !== undefined) child.stdin!.end(options.input)
    else if (!options.openStdin) child.stdin!.end()
    // No guessed limit by default: a process that hangs fails its test by the test's timeout, and
    // the root afterEach kills it.
    const timer =
      options.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs)
    this.done = new Promise((resolve) => {
      // 'close' waits for stdout to end, which an orphaned grandchild holding the pipe can delay
      // forever (after a SIGKILL); so settle on 'exit', giving the pipes a moment to drain.
      child.on('exit', (code, signal) => {
        clearTimeout(timer)
        running.delete(child)
        const finish = () => resolve({code, signal, stdout: this.stdout, stderr: this.stderr})
        const grace = setTimeout(finish, 500)
        child.on('close', () => {
          clearTimeout(grace)
          finish()
        })
      })
    })
  }

  get pid(): number {
    return this.child.pid!
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.child.kill(signal)
  }

  /** Lines of stdout so far. */
  lines(): string[] {
    return this.stdout.split('\n').filter((line) => line !== '')
  }

  /**
   * Resolves once the process watches the broker folder for commits (or has exited): a consumer
   * sets up that wake-up when its first receive found nothing, and receives once more before it
   * waits, so whatever is committed from then on reaches it, through that receive or the wake-up.
   */
  async watching(): Promise<void> {
    await waitFor(
      () => watchesAFolder(this.pid) || this.child.exitCode !== null,
      `${this.child.spawnargs.slice(2).join(' ')} to wait for commits`,
    )
  }

  /** Resolves once the process has the broker database open (or has exited). */
  async openedBroker(): Promise<void> {
    await waitFor(
      () => hasOpen(this.pid, (path) => basename(path) === 'broker.db') || this.child.exitCode !== null,
      `${this.child.spawnargs.slice(2).join(' ')} to open the broker`,
    )
  }
}

/** True once `pid` has an inotify instance (Linux): node makes one at its first `fs.watch`. */
function watchesAFolder(pid: number): boolean {
  return hasOpen(pid, (target) => target === 'anon_inode:inotify')
}

/** Whether one of the open files of `pid` is one `matches` accepts (Linux: /proc/PID/fd). */
function hasOpen(pid: number, matches: (target: string) => boolean): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return matches(readlinkSync(`/proc/${pid}/fd/${fd}`))
      } catch {
        return false // closed meanwhile
      }
    })
  } catch {
    return false // not started yet, or gone
  }
}

/**
 * Polls `check` until it returns a truthy value (returned), or fails after `timeoutMs` naming
 * `what` it waited for (a function: described as things are when it fails). By default it waits as long as the test has time left: how long something
 * takes on a busy machine is not a test's business, only that it happens.
 */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  what: string | (() => string),
  timeoutMs = timeLeftMs(10_000),
  intervalMs = 25,
): Promise<Exclude<T, undefined | null | false | 0 | ''>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value as Exclude<T, undefined | null | false | 0 | ''>
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${typeof what === 'string' ? what : what()}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

/**
 * Kills every CLI process still running (a test leaked it, or timed out while it ran) and
 * describes them, or returns undefined when none was left. Never throws: the root hook turns the
 * description into a failure of the test that leaked, and the run goes on.
 */
export async function killLeakedProcesses(): Promise<string | undefined> {
  const leaked = [...running]
  running.clear()
  if (leaked.length === 0) return undefined
  for (const child of leaked) child.kill('SIGKILL')
  // 'exit', not 'close': a grandchild still holding the pipes must not hang the hook.
  const exited = (child: ChildProcess) =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve(null)
      child.once('exit', resolve)
      setTimeout(resolve, 5_000).unref()
    })
  await Promise.all(leaked.map(exited))
  return `test leaked ${leaked.length} mq process(es): ${leaked.map((c) => c.spawnargs.slice(2).join(' ')).join('; ')}`
}

/** Daemons started in a test (broker folder → environment), stopped when it ends (root afterEach). */
const testDaemons = new Map<string, NodeJS.ProcessEnv | undefined>()

/**
 * Runs `mq daemon start` for `home`. Started in a test, the daemon is stopped when the test ends
 * (also when it fails); started in a hook, the hook's counterpart stops it (`stopDaemon`).
 */
export async function daemonStart(
  home: string,
  options: {env?: NodeJS.ProcessEnv; args?: string[]} = {},
): Promise<RunResult> {
  if (currentTest.getStore()) testDaemons.set(home, options.env)
  return mq(['daemon', 'start', ...(options.args ?? [])], {home, env: options.env})
}

/**
 * Starts the daemon of `home` and returns its status. A daemon that runs but did not answer
 * `daemon start` in time (a loaded machine) is waited for through `daemon status`, as the error
 * tells a user to do.
 */
export async function startDaemon(
  home: string,
  options: {env?: NodeJS.ProcessEnv; args?: string[]} = {},
): Promise<DaemonStatus> {
  const result = await daemonStart(home, {...options, args: ['--json', ...(options.args ?? [])]})
  if (result.code === 1 && /runs but did not answer/.test(result.stdout + result.stderr))
    return waitFor(
      () => daemonStatus(home, options.env),
      () => `the daemon to answer \`daemon status\`; its log:\n${readFileSync(join(home, 'daemon.log'), 'utf8')}`,
    )
  expect(result.code, result.stderr).to.equal(0)
  return JSON.parse(result.stdout) as DaemonStatus
}

/** The daemon's status, or undefined when none answers. */
export async function daemonStatus(home: string, env?: NodeJS.ProcessEnv): Promise<DaemonStatus | undefined> {
  const result = await run(['daemon', 'status', '--json'], {home, env})
  return result.code === 0 ? (JSON.parse(result.stdout) as DaemonStatus) : undefined
}

/** Kills the daemon named in the pid file of `home` (SIGKILL, as a crash); returns its pid. */
export function killDaemon(home: string): number | undefined {
  const file = join(home, 'daemon.pid')
  if (!existsSync(file)) return undefined
  let pid: number | undefined
  try {
    pid = (JSON.parse(readFileSync(file, 'utf8')) as {pid: number}).pid
    process.kill(pid, 'SIGKILL')
  } catch {
    // not a pid file (a test wrote garbage), or already gone
  }
  return pid
}

/** Stops the daemon of `home` (forced), and kills it if it would not stop. */
export async function stopDaemon(home: string, env?: NodeJS.ProcessEnv): Promise<void> {
  try {
    await run(['daemon', 'stop', '--force'], {home, env})
  } finally {
    killDaemon(home)
  }
}

/** Stops the daemons the ending test started; never throws (a folder may be gone). */
export async function stopTestDaemons(): Promise<void> {
  const started = [...testDaemons]
  testDaemons.clear()
  for (const [home, env] of started) await stopDaemon(home, env).catch(() => {})
}

/**
 * A client of the daemon's HTTP endpoint: sends the bearer token of `home` unless `token` says
 * otherwise (false: none).
 */
export function daemonHttp(home: string, status: DaemonStatus) {
  const token = readFileSync(join(home, 'daemon.token'), 'utf8').trim()
  return (path: string, init: RequestInit & {token?: string | false} = {}) => {
    const headers = new Headers(init.headers)
    const sent = init.token === undefined ? token : init.token
    if (sent) headers.set('authorization', `Bearer ${sent}`)
    return fetch(`http://127.0.0.1:${status.http!.port}${path}`, {...init, headers})
  }
}

/**
 * Every module of command definitions. Imported statically, not by a dynamic import() over the
 * folder: that can load a second copy of src/ (tsx's CommonJS and ESM loaders), whose error
 * classes would then fail the instanceof checks that choose exit codes. A test checks this list
 * against the folder.
 */
export const DEFINITION_MODULES: Record<string, Record<string, unknown>> = {
  ack: ackDefs,
  broker: brokerDefs,
  consume: consumeDefs,
  daemon: daemonDefs,
  dlq: dlqDefs,
  engine: engineDefs,
  events: eventsDefs,
  extend: extendDefs,
  nack: nackDefs,
  publish: publishDefs,
  queue: queueDefs,
  rule: ruleDefs,
  'rule-match': ruleMatchDefs,
  settle: settleDefs,
  subscribe: subscribeDefs,
  subscription: subscriptionDefs,
  top: topDefs,
  topic: topicDefs,
  trigger: triggerDefs,
}

let definitions: Map<string, CommandDefinition> | undefined

/** Every command definition, by oclif id and alias. */
function commandDefinitions(): Map<string, CommandDefinition> {
  if (definitions) return definitions
  const found = new Map<string, CommandDefinition>()
  for (const module of Object.values(DEFINITION_MODULES)) {
    for (const value of Object.values(module)) {
      const definition = value as CommandDefinition
      if (typeof definition?.id !== 'string' || typeof definition.run !== 'function') continue
      for (const id of [definition.id, ...(definition.aliases ?? [])]) found.set(id, definition)
    }
  }
  definitions = found
  return found
}

/** Help is oclif's: a process. */
const HELP = new Set(['--help', '-h'])

/**
 * What runs only in a process once its command line is read: `--exec` (its commands write to the
 * process's own stdout), followers and terminals (they run until a signal).
 */
const PROCESS_ONLY = new Set(['--exec', '-f', '--follow', '--interactive'])

/** Commands that start or are the daemon or the engine: a process of their own. */
const PROCESS_COMMANDS = new Set(['daemon:start', 'engine:run'])

/**
 * Runs a command in this process, as the built CLI would: global flags moved last, the fast
 * parser over a hot command's definition, and for the other commands or where the fast parser
 * hands the command line over (a bad flag value, an unknown flag), oclif's parser and error
 * report, as the oclif adapter does; then `execute` with the command's own stdin, stdout, stderr
 * and environment. The in-process tier of the command tests, without the cost of starting node.
 * What only a process can show (help, `--exec`, followers, terminals, the daemon, the engine,
 * another user, an open stdin, another TMPDIR) runs the built CLI in a process instead (`mq`),
 * once its command line reads well, so the result is the same either way
 * (test/commands/in-process.test.ts checks that).
 */
export async function run(args: string[], options: RunOptions = {}): Promise<RunResult> {
  refuseAfterEnd(`mq ${args.join(' ')}`)
  const env = cliEnv(options)
  const argv = globalFlagsLast(args)
  const inProcess =
    options.uid === undefined &&
    options.gid === undefined &&
    !options.bin &&
    !options.openStdin &&
    !env.MQ_NO_FAST &&
    // node itself reads TMPDIR (os.tmpdir(), where a deep folder's daemon socket goes), not `env`
    options.env?.TMPDIR === undefined &&
    !argv.some((arg) => HELP.has(arg))
  const all = inProcess ? commandDefinitions() : undefined
  const id = all && [argv.slice(0, 2).join(':'), argv[0]].find((candidate) => all.has(candidate))
  const definition = id && !PROCESS_COMMANDS.has(all!.get(id)!.id) ? all!.get(id) : undefined
  if (!definition) return mq(args, options)
  const rest = argv.slice(id!.split(':').length)

  let stdout = ''
  let stderr = ''
  const collect = (append: (text: string) => void) =>
    new Writable({
      write(chunk: Buffer | string, _encoding, done) {
        append(chunk.toString())
        done()
      },
    })
  const io = {
    stdin: Readable.from(pipeChunks(options.input)),
    stdout: collect((text) => (stdout += text)),
    stderr: collect((text) => (stderr += text)),
    env,
    cwd: options.cwd,
  }
  // The launcher's own parser reads only the hot commands (`fast: true`); oclif reads the rest.
  let input: ParsedInput<typeof definition.flags> | undefined = definition.fast
    ? parseFast(definition, rest, env)
    : undefined
  if (!input) {
    // oclif reads a flag's environment fallback from this process's environment, not `env`.
    if (Object.values(definition.flags).some((spec) => spec.env && env[spec.env] !== process.env[spec.env]))
      return mq(args, options)
    const parsed = await parseWithOclif(definition, rest)
    if ('error' in parsed) {
      const code = reportError(parseErrorFor(parsed.error, definition), {
        json: rest.includes('--json'),
        commandId: definition.id,
        stderr: io.stderr,
        env,
      })
      return {code, signal: null, stdout, stderr}
    }
    input = parsed.input
  }
  if (argv.some((arg) => PROCESS_ONLY.has(arg))) return mq(args, options)
  const code = await execute(definition, input, io)
  return {code, signal: null, stdout, stderr}
}

/** `input` as a pipe delivers it: in reads of at most 64 KiB (commands batch per read). */
function pipeChunks(input: string | Buffer | undefined): Buffer[] {
  if (input === undefined) return []
  const bytes = Buffer.from(input)
  const chunks: Buffer[] = []
  for (let at = 0; at < bytes.length; at += 65_536) chunks.push(bytes.subarray(at, at + 65_536))
  return chunks
}

/** What the oclif adapter's `this.parse` gives the command, or the error it reports. */
async function parseWithOclif(
  definition: CommandDefinition,
  argv: string[],
): Promise<{input: ParsedInput<CommandDefinition['flags']>} | {error: unknown}> {
  const {Parser} = await import('@oclif/core')
  const command = oclifCommand(definition) as unknown as {flags: never; args: never; strict: boolean}
  try {
    const {
      args,
      argv: positional,
      flags,
    } = await Parser.parse(argv, {flags: command.flags, args: command.args, strict: command.strict})
    return {input: {args, argv: positional as string[], flags} as unknown as ParsedInput<CommandDefinition['flags']>}
  } catch (error) {
    return {error}
  }
}

export function jsonLines<T = Record<string, unknown>>(text: string): T[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as T)
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Catches the error `fn` throws, so tests can check its class, message and hint together. */
export function thrown(fn: () => unknown): InvalidInputError {
  try {
    fn()
  } catch (error) {
    expect(error).to.be.instanceOf(InvalidInputError)
    return error as InvalidInputError
  }
  expect.fail('expected an InvalidInputError')
}

/** One clear line on stderr starting `error: `, no stack trace, and the documented exit code. */
export function expectOneLineError(result: RunResult, code: number, pattern: RegExp): void {
  expect(result.code, result.stderr).to.equal(code)
  const lines = result.stderr.trim().split('\n')
  expect(lines, result.stderr).to.have.length(1)
  expect(lines[0]).to.match(/^error: /)
  expect(lines[0]).to.match(pattern)
  expect(result.stderr).to.not.match(/\n\s+at /)
}

export interface WaiterRow {
  id: number
  pid: number
  max: number
  alive_until: number
  handed: string | null
  /** Handed messages not counted in the queue's totals yet (counted when the row is removed). */
  uncounted: number
  /** The last band-0 id given to handed messages, not yet folded into the counter. */
  last_id: number | null
}

/**
 * The consumers registered as waiting on queues of the broker in `home`
 * (src/core/file-broker/waiters.ts), read through a connection of its own, as another process would.
 */
export function waiterRows(home: string): WaiterRow[] {
  const db = new Database(join(home, 'broker.db'), {fileMustExist: true, timeout: 5_000})
  try {
    return db
      .prepare('SELECT id, pid, max, alive_until, handed, uncounted, last_id FROM waiters ORDER BY id')
      .all() as WaiterRow[]
  } finally {
    db.close()
  }
}
