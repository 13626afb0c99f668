import {createHash} from 'node:crypto'

import {runChild} from '../../process-group.js'
import type {IntervalSchedule} from '../cron.js'
import {cutUtf8, describe, isObject, oneLine, utf8Boundary} from './helpers.js'
import {nextSlot, sleepUntil} from './schedule.js'
import type {SourceRun} from './source-run.js'

// Poll-command sources: a command run at an interval, an event when its output changes.

/** Most output a poll-command source reads. */
export const MAX_OUTPUT_BYTES = 1024 * 1024
/** Output text kept in a poll-command's saved state (its hash covers the whole output). */
export const SAVED_OUTPUT_BYTES = 64 * 1024
/** End of a command's stderr kept for the log line when it fails. */
const STDERR_KEPT_BYTES = 500
/** Time an ended command's pipes get to close (a grandchild that left its process group may hold them) before they are cut. */
const PIPE_GRACE_MS = 1_000

/** Saved state of a poll-command source. */
interface CommandState {
  /** `sha256:` hex of the whole (captured) output: what changes are detected by. */
  hash: string
  /** The output, cut to {@link SAVED_OUTPUT_BYTES}: `previousOutput` of the first event after a restart. */
  output: string
  exitCode: number | null
}

type CommandOutcome =
  {ok: true; output: string; exitCode: number; stderr: string; cut: boolean} | {ok: false; problem: string}

export async function runPollCommand(run: SourceRun, argv: string[], every: IntervalSchedule): Promise<void> {
  let previous = await run.load(parseCommandState)
  let slot = new Date()
  let cutLogged = false
  while (!run.signal.aborted) {
    const outcome = await runCommand(argv, run.ctx.baseDir, every.everyMs, run.signal)
    if (run.signal.aborted) return
    if (outcome.ok) {
      if (outcome.cut && !cutLogged)
        run.log(`output of ${argv[0]} is longer than ${MAX_OUTPUT_BYTES} bytes: only the start is compared`)
      cutLogged ||= outcome.cut
      if (outcome.exitCode !== 0)
        run.problem(`${argv[0]} exited with ${outcome.exitCode}${outcome.stderr ? `: ${outcome.stderr}` : ''}`)
      else run.recovered()
      previous = await compareOutput(run, previous, outcome.output, outcome.exitCode)
    } else {
      run.problem(outcome.problem)
    }
    slot = nextSlot(every, slot)
    await sleepUntil(slot.getTime(), run.signal)
  }
}

/** Emits an event when the output differs from the last seen; the first output ever is only recorded. */
async function compareOutput(
  run: SourceRun,
  previous: CommandState | undefined,
  output: string,
  exitCode: number,
): Promise<CommandState> {
  const hash = `sha256:${createHash('sha256').update(output).digest('hex')}`
  if (previous?.hash === hash) return previous
  // In memory the whole output is kept, so previousOutput is only cut after a restart.
  const current: CommandState = {hash, output, exitCode}
  if (previous) await run.emit({output, previousOutput: previous.output, exitCode})
  await run.save({...current, output: cutUtf8(output, SAVED_OUTPUT_BYTES)})
  return current
}

function parseCommandState(raw: unknown): CommandState | undefined {
  if (!isObject(raw) || typeof raw.hash !== 'string' || typeof raw.output !== 'string') return undefined
  return {hash: raw.hash, output: raw.output, exitCode: typeof raw.exitCode === 'number' ? raw.exitCode : null}
}

/**
 * Runs argv (no shell) and captures its stdout, up to {@link MAX_OUTPUT_BYTES}. Killed, with
 * anything it started, after `timeoutMs` or on abort; a run that did not end by itself has no
 * trustworthy output, so it is a problem rather than a result.
 */
async function runCommand(
  argv: string[],
  cwd: string,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<CommandOutcome> {
  const stdout = new Capture(MAX_OUTPUT_BYTES)
  // What the command left running in the background would hold the pipes open (and outlive a stop):
  // a probe has no business leaving processes behind, so they go too.
  const end = await runChild({
    argv,
    cwd,
    stdout: (chunk) => stdout.add(chunk),
    stderr: () => {},
    tail: {max: STDERR_KEPT_BYTES, of: ['stderr']},
    timeoutMs,
    signal,
    reapAfterExitMs: PIPE_GRACE_MS,
  })
  if (!end.started || end.error) return {ok: false, problem: `could not start ${argv[0]}: ${describe(end.error)}`}
  if (end.timedOut) return {ok: false, problem: `${argv[0]} timed out after ${timeoutMs}ms`}
  if (end.aborted) return {ok: false, problem: `${argv[0]} stopped`}
  if (end.code === null) return {ok: false, problem: `${argv[0]} was killed by ${end.signal}`}
  return {ok: true, output: stdout.text(), exitCode: end.code, stderr: oneLine(end.tail), cut: stdout.overflowed}
}

/** Collects a stream's bytes up to a cap, noting whether more came. */
class Capture {
  private chunks: Buffer[] = []
  private bytes = 0
  overflowed = false

  constructor(private readonly cap: number) {}

  add(chunk: Buffer): void {
    if (this.overflowed) return
    const room = this.cap - this.bytes
    if (chunk.length > room) {
      this.overflowed = true
      chunk = chunk.subarray(0, utf8Boundary(chunk, room))
    }
    this.chunks.push(chunk)
    this.bytes += chunk.length
  }

  text(): string {
    return Buffer.concat(this.chunks, this.bytes).toString('utf8')
  }
}
