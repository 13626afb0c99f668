import {existsSync} from 'node:fs'
import type {Readable, Writable} from 'node:stream'

import type {Broker, ReceiptHolder} from '../core/broker.js'
import {DaemonClient, type DaemonReceiptHolder, DaemonUnavailableError} from '../core/daemon/client.js'
import {daemonPaths} from '../core/daemon/files.js'
import {InterruptedError, InvalidInputError} from '../core/errors.js'
import {FileBroker} from '../core/file-broker/index.js'
import {importLazily, lazyCrypto} from '../core/lazy-require.js'
import {isLockedError, LockWaiter} from '../core/lock-wait.js'
import {lockedError} from '../core/store/database.js'
import {type BrokerTarget, openBroker, selectBroker} from '../core/open-broker.js'
import {Output, PLAIN, type Style} from './output.js'
import {NO_PROGRESS, type Progress, ProgressBar} from './progress.js'
import type {GlobalOptions} from './spec.js'

type Releaser = () => unknown

/** Batches larger than this are published straight to the folder even with a daemon running. */
const DAEMON_BATCH_LIMIT = 1_000

export interface Interrupts {
  /** Aborted by the first SIGINT/SIGTERM: stop taking work, finish what is running. */
  drain: AbortSignal
  /** Aborted by the second: stop now. */
  force: AbortSignal
}

/**
 * The streams and environment a command runs with: the process's own, or, for commands run
 * in-process by the tests, a test's (see `run` in test/helpers.ts).
 */
export interface Io {
  stdin: Readable & {isTTY?: boolean}
  stdout: Writable & {isTTY?: boolean}
  stderr: Writable & {isTTY?: boolean}
  env: NodeJS.ProcessEnv
  /** The folder the command runs in (relative paths a user types mean this folder). */
  cwd: string
}

export interface Spinner {
  update(text: string): void
  stop(): void
}

/**
 * What a command needs from its surroundings: the broker, output streams, whether a person is
 * at the terminal, and resources released in reverse order when the command ends.
 */
export class Context {
  /** The local folder: the file broker's, and on any broker the rules, event journal and daemon files. */
  readonly home: string
  /** The broker commands use (`--broker`, `MQ_URL`, else the folder). */
  readonly target: BrokerTarget
  readonly json: boolean
  readonly interactive: boolean
  /** Colours on stdout. */
  readonly color: boolean
  readonly stdoutIsTTY: boolean
  readonly stdout: Io['stdout']
  readonly stderr: Io['stderr']
  readonly env: NodeJS.ProcessEnv
  readonly cwd: string
  readonly out: Output
  exitCode = 0
  private readonly noColorFlag: boolean

  private readonly releasers: Releaser[] = []
  private openedBroker?: Broker
  private openedLocal?: FileBroker
  /** false once we know no daemon answers. */
  private daemonClient?: DaemonClient | false
  private interrupts?: Interrupts
  private waiter?: LockWaiter
  private loadedStyle?: Style
  private givenStdin?: Io['stdin']
  /** The command reads the process's own stdin (not a test's stream). */
  private readonly processStdin: boolean

  constructor(globals: GlobalOptions, io: Partial<Io> = {}) {
    this.givenStdin = io.stdin
    this.processStdin = io.stdin === undefined
    this.stdout = io.stdout ?? process.stdout
    this.stderr = io.stderr ?? process.stderr
    const env = (this.env = io.env ?? process.env)
    this.cwd = io.cwd ?? process.cwd()
    this.out = new Output(this.stdout)
    const selected = selectBroker({brokerFlag: globals.broker, homeFlag: globals.home, prefix: globals.prefix}, env)
    this.home = selected.home
    this.target = selected.target
    this.json = globals.json
    this.stdoutIsTTY = Boolean(this.stdout.isTTY)
    // stdout first: a command whose output goes to a pipe or file never sets up stdin for this.
    this.interactive = !globals.nonInteractive && !env.CI && this.stdoutIsTTY && this.stdinIsTTY
    this.noColorFlag = globals.noColor
    this.color = colorWanted(this.noColorFlag, env, this.stdoutIsTTY) && !this.json
  }

  /**
   * Standard input, set up on first use: process.stdin costs a stream (and its modules) that a
   * command with its body in the arguments never needs.
   */
  get stdin(): Io['stdin'] {
    return (this.givenStdin ??= process.stdin)
  }

  get stdinIsTTY(): boolean {
    return Boolean(this.stdin.isTTY)
  }

  /**
   * 0 when the command reads the process's own stdin, which a regular file is then read from
   * directly, without a stream (stdinLineBatches); undefined for a stream given by a test.
   */
  get stdinFd(): number | undefined {
    return this.processStdin ? 0 : undefined
  }

  /** Stops reading stdin (the first Ctrl-C of a stream), if a stream was set up for it. */
  stopStdin(): void {
    this.givenStdin?.destroy()
  }

  /** The broker for this command, opened once (a nats:// broker connects on first use). */
  broker(): Broker {
    if (!this.openedBroker) {
      if (this.target.kind === 'file') return this.local()
      const broker = openBroker(this.target)
      this.openedBroker = broker
      this.release(() => broker.close())
    }
    return this.openedBroker
  }

  /** The broker as the daemon and messages name it: `file:HOME`, or its address with the password hidden. */
  get brokerName(): string {
    return this.target.kind === 'file' ? `file:${this.home}` : this.target.display
  }

  /**
   * What receives with manual acks and settles receipts (`consume --ack manual`, `ack`, `nack`,
   * `extend`). On brokers whose receipts any process can settle, the broker itself. On amqp://,
   * where a delivery tag belongs to the channel that received it, the daemon of this folder holds
   * the leases (ARCHITECTURE.md, "The daemon as receipt holder"); without one, exit 2 with the
   * command that starts it. Work that settles in-process (`--exec`, `--interactive`) needs neither.
   */
  async receiptHolder(): Promise<ReceiptHolder | DaemonReceiptHolder> {
    if (this.target.kind !== 'amqp') return this.broker()
    const client = await this.daemon()
    if (client) return client.receiptHolder(this.brokerName)
    const flag = this.env.MQ_URL ? '' : ` --broker '${this.target.display}'`
    throw new InvalidInputError(
      `receipts on ${this.target.display} are held by the daemon, and none runs for ${this.home}`,
      {
        code: 'unsupported',
        hint: `start it with \`mq daemon start${flag}\` (an AMQP delivery tag can only be settled by the connection that received it); --exec and --ack auto work without it`,
      },
    )
  }

  /** The file broker of the local folder (the broker itself unless --broker/MQ_URL names another). */
  local(): FileBroker {
    if (!this.openedLocal) {
      const broker = new FileBroker(this.home)
      this.openedLocal = broker
      if (this.target.kind === 'file') this.openedBroker = broker
      this.release(() => broker.close())
    }
    return this.openedLocal
  }

  /** Environment for child processes (--exec, actions): the same broker and folder as this command. */
  childEnv(base: NodeJS.ProcessEnv = this.env): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {...base, MQ_HOME: this.home}
    if (this.target.kind !== 'file') {
      env.MQ_URL = this.brokerUrlForChildren()
      delete env.MQ_PREFIX
    }
    return env
  }

  private brokerUrlForChildren(): string {
    const t = this.target
    if (t.kind === 'amqp') return `${t.url}${t.management ? `?management=${encodeURIComponent(t.management)}` : ''}`
    if (t.kind !== 'nats') return ''
    const auth =
      t.user !== undefined
        ? `${encodeURIComponent(t.user)}:${encodeURIComponent(t.pass ?? '')}@`
        : t.token !== undefined
          ? `${encodeURIComponent(t.token)}@`
          : ''
    const params = new URLSearchParams()
    if (t.credsFile) params.set('creds', t.credsFile)
    if (t.prefix) params.set('prefix', t.prefix)
    const query = params.toString()
    return `nats://${auth}${t.servers.join(',')}${query ? `?${query}` : ''}`
  }

  /**
   * For long-running commands (followers, `--exec` workers, `--lines` streams): from now on the
   * broker waits out outages instead of failing — another process's write lock on the folder, a
   * networked broker that stops answering after it was reached (a leader election, a restart) —
   * says so once per episode on stderr, and gives up only on a second interrupt. Returns the
   * waiter, for work done through the daemon.
   */
  waitOutLocks(): LockWaiter {
    if (!this.waiter) {
      const waiter = new LockWaiter({
        signal: this.handleInterrupts().force,
        onWait: (error) =>
          this.warn(
            isLockedError(error)
              ? 'broker locked by another process; waiting…'
              : `${(error as Error)?.message ?? error}; waiting for the broker to answer again (Ctrl-C twice to give up)…`,
          ),
      })
      this.waiter = waiter
      this.broker().waitOutOutages?.(waiter)
    }
    return this.waiter
  }

  /**
   * A connection to the daemon of this folder when one runs, else undefined. Commands use it
   * where it helps and fall back to the folder if it goes away (DaemonUnavailableError).
   */
  async daemon(): Promise<DaemonClient | undefined> {
    if (this.daemonClient !== undefined) return this.daemonClient || undefined
    // The socket file is only there while a daemon runs (or after a crash): skip the connect otherwise.
    const client = existsSync(daemonPaths(this.home).socket) ? await DaemonClient.connect(this.home) : undefined
    this.daemonClient = client ?? false
    if (client) this.release(() => client.close())
    return client
  }

  /**
   * Publishing through the daemon when it runs (group commit for many small publishers), else
   * straight to the folder. Big batches (a whole file) gain nothing from it and go straight.
   */
  async publisher(): Promise<Pick<Broker, 'publish'>> {
    // The folder's daemon group-commits into the folder's broker, not into a nats:// one.
    if (this.target.kind !== 'file') return this.broker()
    const client = await this.daemon()
    if (!client) return this.broker()
    return {
      publish: async (name, given, options = {}) => {
        if (given.length > DAEMON_BATCH_LIMIT) return this.broker().publish(name, given, options)
        const {signal, ...rest} = options
        // Dedup ids make the fallback below safe if the daemon committed but died before answering.
        const nonce = lazyCrypto().randomBytes(8).toString('base64url')
        const messages = given.map((m, i) => (m.dedupId === undefined ? {...m, dedupId: `~${nonce}.${i}`} : m))
        const started = Date.now()
        try {
          const reply = client.publish(name, messages, rest)
          if (!signal) return await reply
          return await new Promise((resolve, reject) => {
            const onAbort = () => {
              client.close() // the daemon drops a blocked publish whose client went away
              reject(new InterruptedError())
            }
            signal.addEventListener('abort', onAbort, {once: true})
            reply.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
          })
        } catch (error) {
          if (!(error instanceof DaemonUnavailableError)) throw error
          this.daemonClient = false
          const results = await this.broker()
            .publish(name, messages, options)
            .catch((fallbackError: unknown) => {
              // The daemon may have been waiting for the same lock when it stopped answering: the
              // error says how long this publish waited in all.
              throw isLockedError(fallbackError)
                ? lockedError(this.home, Date.now() - started, fallbackError)
                : fallbackError
            })
          // What the daemon stored before it went away comes back as "duplicate": not the user's doing.
          return results.map((r, i) =>
            r.duplicate && given[i].dedupId === undefined ? {...r, duplicate: undefined} : r,
          )
        }
      },
    }
  }

  /** Registers a release to run when the command ends (reverse order, each even if another fails). */
  release(releaser: Releaser): void {
    this.releasers.push(releaser)
  }

  async close(): Promise<void> {
    await this.out.close()
    while (this.releasers.length > 0) {
      const releaser = this.releasers.pop()!
      try {
        await releaser()
      } catch (error) {
        if (this.env.DEBUG) console.error(error)
      }
    }
  }

  /** Starts handling SIGINT/SIGTERM: the first drains, the second forces. Long-running commands only. */
  handleInterrupts(): Interrupts {
    if (this.interrupts) return this.interrupts
    const drain = new AbortController()
    const force = new AbortController()
    const onSignal = () => {
      if (!drain.signal.aborted) drain.abort()
      else force.abort()
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    this.out.whenBroken(() => {
      drain.abort()
      force.abort()
    })
    this.release(() => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    })
    this.interrupts = {drain: drain.signal, force: force.signal}
    return this.interrupts
  }

  /** chalk when colours are on, plain text otherwise (chalk is only loaded when needed). */
  async style(stream: 'stdout' | 'stderr' = 'stdout'): Promise<Style> {
    const wanted = stream === 'stdout' ? this.color : this.stderrColor()
    if (!wanted) return PLAIN
    if (!this.loadedStyle) {
      const {Chalk} = await importLazily<typeof import('chalk')>('chalk')
      const chalk = new Chalk({level: 1})
      this.loadedStyle = chalk as unknown as Style
    }
    return this.loadedStyle
  }

  /** Colours on stderr (error lines, warnings): the same rule as stdout, for stderr's terminal. */
  stderrColor(): boolean {
    return colorWanted(this.noColorFlag, this.env, Boolean(this.stderr.isTTY)) && !this.json
  }

  /** A spinner on stderr for a person at a terminal; a no-op otherwise. */
  async spinner(text: string): Promise<Spinner> {
    if (!this.interactive || !this.stderr.isTTY || this.json) return {update() {}, stop() {}}
    const {default: ora} = await importLazily<typeof import('ora')>('ora')
    const spinner = ora({text, stream: this.stderr, discardStdin: false}).start()
    const stop = () => spinner.stop()
    this.release(stop)
    return {update: (next) => (spinner.text = next), stop}
  }

  /**
   * A progress bar on stderr for a long operation (README.md, "Progress"): only when stderr is a
   * terminal and not with --json; `stdoutBusy` commands that print as they go to the same
   * terminal get none (the bar would tear their output). A no-op otherwise.
   */
  progress(label: string, options: {unit?: string; stdoutBusy?: boolean} = {}): Progress {
    if (!this.stderr.isTTY || this.json || (options.stdoutBusy && this.stdoutIsTTY)) return NO_PROGRESS
    const bar = new ProgressBar(this.stderr, label, options.unit)
    this.release(() => bar.stop())
    return bar
  }

  /** One diagnostic line on stderr. */
  warn(line: string): void {
    this.stderr.write(`${line}\n`)
  }
}

/**
 * Whether to colour a stream (README.md, "Output"): `--no-color` always wins; then `FORCE_COLOR`
 * (any value but `0` or `false` turns colours on, even in a pipe; `0`/`false` off); then
 * `NO_COLOR` (set, and not empty, turns them off); otherwise colours when the stream is a terminal.
 */
export function colorWanted(noColorFlag: boolean, env: NodeJS.ProcessEnv, isTTY: boolean): boolean {
  if (noColorFlag) return false
  const force = env.FORCE_COLOR
  if (force !== undefined) return force !== '0' && force.toLowerCase() !== 'false'
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false
  return isTTY
}
