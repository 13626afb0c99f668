import type {ChildProcess} from 'node:child_process'
import {requireLazily} from './lazy-require.js'

/** Grace between SIGTERM and SIGKILL when a command is stopped. */
export const KILL_GRACE_MS = 2_000

/**
 * Stops a command started with `detached: true` (its own process group): SIGTERM to the whole
 * group, so `sh -c 'sleep 100'` takes its children with it, then SIGKILL after a grace period.
 */
export function stopGroup(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const group = -child.pid
  try {
    process.kill(group, 'SIGTERM')
  } catch {
    return
  }
  setTimeout(() => {
    try {
      process.kill(group, 'SIGKILL')
    } catch {
      // already gone
    }
  }, KILL_GRACE_MS).unref()
}

/** Keeps the last `max` characters of a stream's output. */
export class OutputTail {
  private text = ''
  constructor(private readonly max = 2_000) {}
  add(chunk: Buffer | string): void {
    this.text = (this.text + chunk.toString()).slice(-this.max)
  }
  toString(): string {
    return this.text
  }
}

/** Where a child's stdout or stderr goes: through to ours, or chunk by chunk to a function. */
export type ChildOutput = 'inherit' | 'ignore' | ((chunk: Buffer) => void)

export interface ChildRunOptions {
  /** The program and its arguments, run without a shell (pass `['sh', '-c', command]` for one). */
  argv: string[]
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** Written to the child's stdin, which is then closed; absent, the child gets no stdin. */
  stdin?: string
  stdout?: ChildOutput
  stderr?: ChildOutput
  /** Keeps the last `max` characters of the named piped streams for {@link ChildEnd.tail}. */
  tail?: {max: number; of: ('stdout' | 'stderr')[]}
  /** Stop the child (and its group) after this long. */
  timeoutMs?: number
  /** Stop the child (and its group) when aborted: shutdown. */
  signal?: AbortSignal
  /**
   * When the child exits, kill what it left running in its group, and cut its pipes after this
   * grace (a grandchild that left the group may hold them open): for probes that must not leave
   * processes behind.
   */
  reapAfterExitMs?: number
}

/** How a child run ended. */
export type ChildEnd =
  /** spawn() itself threw (e.g. a NUL byte in an argument or the environment). */
  | {started: false; error: Error}
  | {
      started: true
      /** The 'error' event (e.g. the program does not exist): code and signal are then null. */
      error?: Error
      code: number | null
      signal: NodeJS.Signals | null
      /** Stopped because `timeoutMs` passed. */
      timedOut: boolean
      /** Stopped because `signal` was aborted while it ran. */
      aborted: boolean
      tail: string
    }

/**
 * The one child-process runner of mqctl (`--exec`, exec actions, poll-command sources): the child
 * runs in its own process group (`detached`), so a Ctrl-C at the terminal reaches mq (which
 * drains), not the commands, and a stop reaches the command's own children too; it is stopped on
 * timeout or abort with {@link stopGroup}; the end of its output is kept for error messages.
 * Resolves once, on the child's 'close' (its pipes drained) or its 'error'.
 */
export function runChild(options: ChildRunOptions): Promise<ChildEnd> {
  const stdio = (output: ChildOutput | undefined) =>
    output === 'inherit' ? 'inherit' : output === undefined || output === 'ignore' ? 'ignore' : 'pipe'
  let child: ChildProcess
  try {
    // node:child_process loads when a command first runs one (consume without --exec never does).
    const {spawn} = requireLazily('node:child_process') as typeof import('node:child_process')
    child = spawn(options.argv[0], options.argv.slice(1), {
      cwd: options.cwd,
      env: options.env,
      stdio: [options.stdin === undefined ? 'ignore' : 'pipe', stdio(options.stdout), stdio(options.stderr)],
      detached: true,
    })
  } catch (error) {
    return Promise.resolve({started: false, error: error as Error})
  }
  const tail = new OutputTail(options.tail?.max)
  const follow = (name: 'stdout' | 'stderr', output: ChildOutput | undefined) => {
    if (typeof output !== 'function') return
    const tailed = options.tail?.of.includes(name) ?? false
    child[name]!.on('data', (chunk: Buffer) => {
      output(chunk)
      if (tailed) tail.add(chunk)
    })
  }
  follow('stdout', options.stdout)
  follow('stderr', options.stderr)
  if (options.stdin !== undefined) {
    child.stdin!.on('error', () => {}) // a command that ignores its stdin may close it early
    child.stdin!.end(options.stdin)
  }

  let timedOut = false
  let aborted = false
  const timer =
    options.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true
          stopGroup(child)
        }, options.timeoutMs)
  const onAbort = () => {
    aborted = true
    stopGroup(child)
  }
  options.signal?.addEventListener('abort', onAbort, {once: true})
  if (options.signal?.aborted) onAbort()

  let grace: NodeJS.Timeout | undefined
  if (options.reapAfterExitMs !== undefined) {
    const graceMs = options.reapAfterExitMs
    child.on('exit', () => {
      killLeftovers(child)
      grace = setTimeout(() => {
        child.stdout?.destroy()
        child.stderr?.destroy()
      }, graceMs)
    })
  }

  return new Promise<ChildEnd>((resolve) => {
    const finish = (end: {code: number | null; signal: NodeJS.Signals | null; error?: Error}) => {
      clearTimeout(timer)
      clearTimeout(grace)
      options.signal?.removeEventListener('abort', onAbort)
      resolve({started: true, ...end, timedOut, aborted, tail: tail.toString()})
    }
    child.on('error', (error) => finish({code: null, signal: null, error}))
    child.on('close', (code, signal) => finish({code, signal}))
  })
}

/** Kills what an ended command left running in its process group ({@link stopGroup} only stops running commands). */
function killLeftovers(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, 'SIGKILL')
  } catch {
    // Nothing left (the usual case), or no process groups here.
  }
}
