import {type ChildProcess, spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {constants, type FSWatcher, watch} from 'node:fs'
import {type FileHandle, open, stat} from 'node:fs/promises'
import {basename, dirname, resolve} from 'node:path'

import {OutputTail, stopGroup} from '../process-group.js'
import {sleep} from '../rate-limiter.js'
import {buildEvent, type CloudEvent} from './cloudevents.js'
import {type IntervalSchedule, parseSchedule, type Schedule} from './cron.js'
import type {EventTemplate, SourceSpec} from './rules.js'

/**
 * The event sources of `mq engine run`: schedules, files followed like `tail -F`, and commands
 * polled for changes. Each source runs its own loop until stopped; progress is kept in a
 * {@link SourceStateStore} so a restart neither repeats nor (for files and commands) misses events.
 */

/** Where sources keep their progress between runs, one JSON-able value per source name. */
export interface SourceStateStore {
  /** Last saved state of a source, or undefined. */
  load(name: string): Promise<unknown>
  save(name: string, state: unknown): Promise<void>
}

/** What sources need from the engine that runs them. */
export interface SourceContext {
  /** Hands one event to the engine; resolves once it is journalled (may throw: log it and go on). */
  emit(event: CloudEvent, source: string): Promise<void>
  state: SourceStateStore
  /** Aborted to stop every source. */
  signal: AbortSignal
  /** One diagnostic line (errors, rotations). */
  log(line: string): void
  /** Folder that relative `path`s in watch-file sources are resolved against (the rules file's folder). */
  baseDir: string
}

/** Sources started by {@link startSources}. */
export interface RunningSources {
  /** Stops every source; idempotent; resolves when every source has stopped (in-flight emits included). */
  stop(): Promise<void>
}

/** Longest line a watch-file source emits, and most output a poll-command source reads. */
export const MAX_LINE_BYTES = 1024 * 1024
export const MAX_OUTPUT_BYTES = 1024 * 1024
/** Output text kept in a poll-command's saved state (its hash covers the whole output). */
export const SAVED_OUTPUT_BYTES = 64 * 1024
/** How often a watched file is re-checked when no notification arrives (lost events, no inotify). */
export const FILE_FALLBACK_POLL_MS = 1_000

/** Longest single timer: re-reading the clock this often notices suspends and clock changes. */
const MAX_TIMER_MS = 60_000
const READ_CHUNK_BYTES = 64 * 1024
/** End of a command's stderr kept for the log line when it fails. */
const STDERR_KEPT_BYTES = 500
/** Time an ended command's pipes get to close (a grandchild that left its process group may hold them) before they are cut. */
const PIPE_GRACE_MS = 1_000

/**
 * Starts every enabled source; each runs until `stop()` or until `ctx.signal` aborts. A source
 * that cannot start (bad schedule) or fails later is logged; the others carry on.
 */
export function startSources(sources: SourceSpec[], schedules: Map<string, Schedule>, ctx: SourceContext): RunningSources {
  const controller = new AbortController()
  const abort = () => controller.abort()
  ctx.signal.addEventListener('abort', abort, {once: true})
  if (ctx.signal.aborted) abort()

  const tasks = sources
    .filter((spec) => spec.enabled !== false)
    .map((spec) => {
      const run = new SourceRun(spec, ctx, controller.signal)
      return runSource(run, schedules).catch((error: unknown) => run.log(`stopped: ${describe(error)}`))
    })

  let stopped: Promise<void> | undefined
  return {
    stop() {
      stopped ??= (async () => {
        abort()
        await Promise.all(tasks)
        ctx.signal.removeEventListener('abort', abort)
      })()
      return stopped
    },
  }
}

async function runSource(run: SourceRun, schedules: Map<string, Schedule>): Promise<void> {
  const spec = run.spec
  switch (spec.type) {
    case 'schedule':
      // Rules validation fills the map; parsing here too keeps callers that build specs by hand working.
      return runSchedule(run, schedules.get(spec.name) ?? parseSchedule(spec.every !== undefined ? `every ${spec.every}` : String(spec.cron)))
    case 'watch-file':
      return new FileTail(run, spec.path).run()
    case 'poll-command':
      // "every X" parses to an interval or throws, never to a cron schedule.
      return runPollCommand(run, spec.command, parseSchedule(`every ${spec.every}`) as IntervalSchedule)
  }
}

/** One source's link to the engine: events, state and log lines, all labelled with its name. */
class SourceRun {
  private lastProblem?: string

  constructor(
    readonly spec: SourceSpec,
    readonly ctx: SourceContext,
    readonly signal: AbortSignal,
  ) {}

  get name(): string {
    return this.spec.name
  }

  get template(): EventTemplate {
    return this.spec.event
  }

  log(message: string): void {
    this.ctx.log(`source ${this.name}: ${message}`)
  }

  /** Logs a problem unless it is the one logged last, so a condition that lasts is one line, not one per poll. */
  problem(message: string): void {
    if (message === this.lastProblem) return
    this.lastProblem = message
    this.log(message)
  }

  /** The condition behind the last {@link problem} is over: the next one is logged again. */
  recovered(): void {
    this.lastProblem = undefined
  }

  /** Builds and hands over one event; a failure is logged, never thrown, so one bad event stops nothing. */
  async emit(data: unknown, subject = this.template.subject): Promise<void> {
    try {
      const event = buildEvent({type: this.template.type, source: this.template.source ?? `mqctl://sources/${this.name}`, subject, data})
      await this.ctx.emit(event, this.name)
    } catch (error) {
      this.log(`could not emit an event: ${describe(error)}`)
    }
  }

  /** The saved state if `parse` accepts it; unreadable or foreign state counts as none. */
  async load<T>(parse: (raw: unknown) => T | undefined): Promise<T | undefined> {
    let raw: unknown
    try {
      raw = await this.ctx.state.load(this.name)
    } catch (error) {
      this.log(`could not load saved state, starting afresh: ${describe(error)}`)
      return undefined
    }
    if (raw === undefined) return undefined
    const state = parse(raw)
    if (state === undefined) this.log('ignoring saved state of an unexpected shape')
    return state
  }

  async save(state: unknown): Promise<void> {
    try {
      await this.ctx.state.save(this.name, state)
    } catch (error) {
      this.log(`could not save state: ${describe(error)}`)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Schedules

/** Saved state of a schedule source. */
interface ScheduleState {
  /** The slot last fired (when it was due, not when it ran), ISO 8601. */
  lastFireAt: string
}

/**
 * The first slot of `schedule` after `previous` that is not already past at `now`. Slots missed
 * while stopped or asleep are skipped, not caught up; interval slots keep their phase
 * (`previous` + n × interval), so timer lateness never accumulates.
 */
export function nextSlot(schedule: Schedule, previous: Date, now: Date = new Date()): Date {
  if (schedule.kind === 'interval') {
    const steps = Math.max(1, Math.ceil((now.getTime() - previous.getTime()) / schedule.everyMs))
    return new Date(previous.getTime() + steps * schedule.everyMs)
  }
  // A slot due exactly now still counts; cron slots are whole minutes, so 1 ms earlier finds it.
  return schedule.next(new Date(Math.max(previous.getTime(), now.getTime() - 1)))
}

async function runSchedule(run: SourceRun, schedule: Schedule): Promise<void> {
  const saved = await run.load(parseScheduleState)
  // Counting from the saved slot is what stops a quick restart from firing that slot again.
  let previous = saved ? new Date(saved.lastFireAt) : new Date()
  while (!run.signal.aborted) {
    const slot = nextSlot(schedule, previous)
    const due = schedule.next(previous)
    if (slot.getTime() !== due.getTime()) run.log(`skipped the slot(s) missed since ${due.toISOString()}; next at ${slot.toISOString()}`)
    await sleepUntil(slot.getTime(), run.signal)
    if (run.signal.aborted) return
    await run.emit(scheduledData(run.template.data, slot))
    await run.save({lastFireAt: slot.toISOString()} satisfies ScheduleState)
    previous = slot
  }
}

function parseScheduleState(raw: unknown): ScheduleState | undefined {
  if (!isObject(raw) || typeof raw.lastFireAt !== 'string' || Number.isNaN(Date.parse(raw.lastFireAt))) return undefined
  return {lastFireAt: raw.lastFireAt}
}

/** The template's data with the slot's time added, when it is an object (or absent) to add it to. */
function scheduledData(data: unknown, slot: Date): unknown {
  const scheduledAt = slot.toISOString()
  if (data === undefined) return {scheduledAt}
  return isObject(data) ? {...data, scheduledAt} : data
}

/** Sleeps until the wall-clock time `when`, in bounded steps so a suspend or clock change is noticed. */
async function sleepUntil(when: number, signal: AbortSignal): Promise<void> {
  for (let left = when - Date.now(); left > 0 && !signal.aborted; left = when - Date.now()) {
    await sleep(Math.min(left, MAX_TIMER_MS), signal)
  }
}

// ---------------------------------------------------------------------------------------------
// Files

/** Saved state of a watch-file source. */
interface FileState {
  /** `dev:ino` of the file the offset is in, to tell the same file from a replacement. */
  file: string
  /** Byte offset just past the last line handed over. */
  offset: number
}

interface OpenFile {
  handle: FileHandle
  id: string
  /** Where the next read starts; bytes before it are emitted or held as an unfinished line. */
  readPos: number
  /** Offset last saved. */
  savedOffset: number
}

/** A line of a followed file and the offset just past it (where reading resumes after it). */
interface Line {
  text: string
  end: number
  /** Longer than {@link MAX_LINE_BYTES}: the rest, up to the newline, was dropped. */
  cut?: boolean
}

/**
 * Splits bytes appended to a file into lines. An unfinished last line is held until its newline
 * arrives; a line longer than the limit is cut there and its remainder dropped.
 */
export class LineSplitter {
  private pending: Buffer[] = []
  private pendingBytes = 0
  /** Dropping the rest of a cut line, up to its newline. */
  private skipping = false
  /** Offset just past the last byte that is not part of an unfinished line. */
  committed = 0

  constructor(private readonly maxLineBytes = MAX_LINE_BYTES) {}

  /** Forgets any unfinished line; the next bytes pushed start at `offset`. */
  reset(offset: number): void {
    this.pending = []
    this.pendingBytes = 0
    this.skipping = false
    this.committed = offset
  }

  /** Complete lines in `chunk`, whose last byte is just before file offset `end`. */
  push(chunk: Buffer, end: number): Line[] {
    const base = end - chunk.length
    const lines: Line[] = []
    for (let start = 0; start < chunk.length; ) {
      const newline = chunk.indexOf(0x0a, start)
      const stop = newline === -1 ? chunk.length : newline
      if (!this.skipping) this.collect(chunk.subarray(start, stop), base + start, lines)
      if (newline === -1) break
      if (this.skipping) {
        this.skipping = false
        this.committed = base + newline + 1
      } else {
        lines.push(this.finish(base + newline + 1))
      }
      start = newline + 1
    }
    if (this.skipping) this.committed = end
    return lines
  }

  /** The unfinished line as a line of its own (its file is finished), if there is one. */
  flush(): Line | undefined {
    if (this.pendingBytes === 0) return undefined
    return this.finish(this.committed + this.pendingBytes)
  }

  private collect(piece: Buffer, offset: number, lines: Line[]): void {
    const room = this.maxLineBytes - this.pendingBytes
    if (piece.length <= room) {
      if (piece.length > 0) this.hold(piece)
      return
    }
    const keep = utf8Boundary(piece, room)
    this.hold(piece.subarray(0, keep))
    lines.push({...this.finish(offset + keep), cut: true})
    this.skipping = true
  }

  private hold(piece: Buffer): void {
    // Copied: the caller reuses its read buffer.
    this.pending.push(Buffer.from(piece))
    this.pendingBytes += piece.length
  }

  private finish(end: number): Line {
    let bytes = Buffer.concat(this.pending, this.pendingBytes)
    this.pending = []
    this.pendingBytes = 0
    this.committed = end
    if (bytes.at(-1) === 0x0d) bytes = bytes.subarray(0, -1)
    return {text: bytes.toString('utf8'), end}
  }
}

/** The largest length ≤ `at` that does not split a UTF-8 character of `bytes`. */
function utf8Boundary(bytes: Buffer, at: number): number {
  if (at >= bytes.length) return bytes.length
  // Continuation bytes are 10xxxxxx; a cut must land before the lead byte of their character,
  // at most 3 bytes back (longer runs are not UTF-8 anyway).
  let index = at
  while (index > 0 && at - index < 3 && (bytes[index] & 0xc0) === 0x80) index--
  return (bytes[index] & 0xc0) === 0x80 ? at : index
}

/**
 * Follows one file like `tail -F`: appended lines become events, and renames, replacements and
 * truncations are followed. Waits on notifications for the file's folder (so creation and
 * rotation are seen), with a slow fallback poll for lost ones.
 */
class FileTail {
  private readonly path: string
  private readonly folder: FolderWatch
  private readonly splitter = new LineSplitter()
  private file?: OpenFile
  /** Used by the first open only: a later open is always of a new file. */
  private saved?: FileState
  private firstOpen = true

  constructor(
    private readonly source: SourceRun,
    private readonly shownPath: string,
  ) {
    this.path = resolve(source.ctx.baseDir, shownPath)
    this.folder = new FolderWatch(dirname(this.path), basename(this.path))
  }

  async run(): Promise<void> {
    this.saved = await this.source.load(parseFileState)
    try {
      while (!this.source.signal.aborted) {
        this.folder.arm()
        try {
          await this.poll()
        } catch (error) {
          // Keep the file and offset: a passing error (a stale NFS handle, EIO) is retried at the next poll.
          this.source.problem(`cannot read ${this.shownPath}: ${describe(error)}`)
        }
        await this.folder.wait(FILE_FALLBACK_POLL_MS, this.source.signal)
      }
    } finally {
      this.folder.close()
      await this.file?.handle.close().catch(() => {})
    }
  }

  /** Reads everything new, following a truncation or a replacement of the file. */
  private async poll(): Promise<void> {
    while (!this.source.signal.aborted) {
      const file = this.file ?? (await this.open())
      if (!file) return
      if (Number((await file.handle.stat({bigint: true})).size) < file.readPos) await this.restart(file, 'was truncated')
      await this.drain(file)
      if (this.source.signal.aborted || !(await this.replaced(file))) return
      await this.retire(file)
    }
  }

  private async open(): Promise<OpenFile | undefined> {
    const [first, saved] = [this.firstOpen, this.saved]
    this.firstOpen = false
    this.saved = undefined
    // The file is missing or was replaced: its folder may have been too.
    if (!first) this.folder.renew()
    let handle: FileHandle
    try {
      // Non-blocking, or opening a FIFO would wait (and hold up stop()) until a writer came.
      handle = await open(this.path, constants.O_RDONLY | constants.O_NONBLOCK)
    } catch (error) {
      this.source.problem(isMissing(error) ? `waiting for ${this.shownPath} to appear` : `cannot open ${this.shownPath}: ${describe(error)}`)
      return undefined
    }
    const stats = await handle.stat({bigint: true}).catch(async (error: unknown) => {
      await handle.close()
      throw error
    })
    if (!stats.isFile()) {
      await handle.close()
      this.source.problem(`${this.shownPath} is not a regular file`)
      return undefined
    }
    this.source.recovered()
    const id = `${stats.dev}:${stats.ino}`
    const size = Number(stats.size)
    // Like tail -F: resume where the last run stopped when it is the same file; skip what was there before
    // the first run ever; read all of a file that appeared (or was replaced) since.
    const resumed = saved?.file === id && size >= saved.offset
    const start = resumed ? saved.offset : saved === undefined && first ? size : 0
    if (!resumed && !(saved === undefined && first)) this.source.log(`reading ${this.shownPath} from the start (new file)`)
    const file: OpenFile = {handle, id, readPos: start, savedOffset: -1}
    this.file = file
    this.splitter.reset(start)
    await this.saveOffset(file, start)
    return file
  }

  private async restart(file: OpenFile, why: string): Promise<void> {
    this.source.log(`${this.shownPath} ${why}; reading it from the start`)
    file.readPos = 0
    this.splitter.reset(0)
    await this.saveOffset(file, 0)
  }

  /** Reads to the end of the file, handing over each chunk's lines, until done or stopped. */
  private async drain(file: OpenFile): Promise<void> {
    const buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES)
    while (!this.source.signal.aborted) {
      const {bytesRead} = await file.handle.read(buffer, 0, buffer.length, file.readPos)
      if (bytesRead === 0) return
      file.readPos += bytesRead
      await this.emitLines(file, this.splitter.push(buffer.subarray(0, bytesRead), file.readPos))
    }
  }

  /** Emits lines in order, then saves the offset past them: only after the emits, so delivery is at-least-once. */
  private async emitLines(file: OpenFile, lines: Line[]): Promise<void> {
    let offset = file.savedOffset
    for (const line of lines) {
      // Stopping mid-batch saves what was handed over; the rest is read again next run.
      if (this.source.signal.aborted) return this.saveOffset(file, offset)
      if (line.cut) this.source.log(`a line of ${this.shownPath} ending at byte ${line.end} is longer than ${MAX_LINE_BYTES} bytes: cut`)
      await this.source.emit({line: line.text, path: this.shownPath}, this.source.template.subject ?? this.shownPath)
      offset = line.end
    }
    await this.saveOffset(file, this.splitter.committed)
  }

  private async saveOffset(file: OpenFile, offset: number): Promise<void> {
    if (offset === file.savedOffset || offset < 0) return
    file.savedOffset = offset
    await this.source.save({file: file.id, offset} satisfies FileState)
  }

  /** Whether the path now names another file than the one open (rotated or replaced). A missing path is not: writers may still use the open one. */
  private async replaced(file: OpenFile): Promise<boolean> {
    try {
      const stats = await stat(this.path, {bigint: true})
      return `${stats.dev}:${stats.ino}` !== file.id
    } catch {
      // Gone, perhaps with its folder: a new watch hears the folder made again.
      this.folder.renew()
      return false
    }
  }

  /** Finishes a rotated file: its last lines, even one without a newline, then closes it. */
  private async retire(file: OpenFile): Promise<void> {
    this.source.log(`${this.shownPath} was replaced (rotated)`)
    await this.drain(file)
    const last = this.splitter.flush()
    if (last && !this.source.signal.aborted) await this.emitLines(file, [last])
    this.file = undefined
    await file.handle.close().catch(() => {})
  }
}

function parseFileState(raw: unknown): FileState | undefined {
  if (!isObject(raw) || typeof raw.file !== 'string' || !Number.isSafeInteger(raw.offset) || (raw.offset as number) < 0) return undefined
  return {file: raw.file, offset: raw.offset as number}
}

/**
 * Notifications for one name in a folder. Watching the folder, not the file, is what reports
 * creation, rename and replacement; if the folder is missing or the watch fails, waiting simply
 * falls back to the timeout, and the next {@link arm} tries again.
 */
class FolderWatch {
  private watcher?: FSWatcher
  private changed = false
  private wake?: () => void

  constructor(
    private readonly folder: string,
    private readonly name: string,
  ) {}

  /** Forgets earlier changes: a change from now on ends the next {@link wait} at once. */
  arm(): void {
    this.changed = false
    this.start()
  }

  /** Watches afresh, keeping changes seen: a watch on a folder that was deleted (and maybe made again) hears nothing more. */
  renew(): void {
    this.close()
    this.start()
  }

  private start(): void {
    if (this.watcher) return
    try {
      this.watcher = watch(this.folder, {persistent: false}, (_event, file) => {
        if (file === null || file === this.name) this.notify()
      })
      this.watcher.on('error', () => this.close())
    } catch {
      // The folder may not exist yet; the fallback poll goes on and the next arm() or renew() retries.
    }
  }

  /** Resolves on a change since {@link arm}, after `ms`, or on abort. */
  async wait(ms: number, signal: AbortSignal): Promise<void> {
    if (this.changed || signal.aborted) return
    const wakeup = new AbortController()
    const stop = () => wakeup.abort()
    signal.addEventListener('abort', stop, {once: true})
    this.wake = stop
    try {
      await sleep(ms, wakeup.signal)
    } finally {
      signal.removeEventListener('abort', stop)
      this.wake = undefined
    }
  }

  close(): void {
    this.watcher?.close()
    this.watcher = undefined
  }

  private notify(): void {
    this.changed = true
    this.wake?.()
  }
}

// ---------------------------------------------------------------------------------------------
// Commands

/** Saved state of a poll-command source. */
interface CommandState {
  /** `sha256:` hex of the whole (captured) output: what changes are detected by. */
  hash: string
  /** The output, cut to {@link SAVED_OUTPUT_BYTES}: `previousOutput` of the first event after a restart. */
  output: string
  exitCode: number | null
}

type CommandOutcome = {ok: true; output: string; exitCode: number; stderr: string; cut: boolean} | {ok: false; problem: string}

async function runPollCommand(run: SourceRun, argv: string[], every: IntervalSchedule): Promise<void> {
  let previous = await run.load(parseCommandState)
  let slot = new Date()
  let cutLogged = false
  while (!run.signal.aborted) {
    const outcome = await runCommand(argv, run.ctx.baseDir, every.everyMs, run.signal)
    if (run.signal.aborted) return
    if (outcome.ok) {
      if (outcome.cut && !cutLogged) run.log(`output of ${argv[0]} is longer than ${MAX_OUTPUT_BYTES} bytes: only the start is compared`)
      cutLogged ||= outcome.cut
      if (outcome.exitCode !== 0) run.problem(`${argv[0]} exited with ${outcome.exitCode}${outcome.stderr ? `: ${outcome.stderr}` : ''}`)
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
async function compareOutput(run: SourceRun, previous: CommandState | undefined, output: string, exitCode: number): Promise<CommandState> {
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
function runCommand(argv: string[], cwd: string, timeoutMs: number, signal: AbortSignal): Promise<CommandOutcome> {
  return new Promise((done) => {
    let child: ChildProcess
    try {
      // Own process group, so a kill reaches the command's children too (e.g. a script's curl).
      child = spawn(argv[0], argv.slice(1), {cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true})
    } catch (error) {
      done({ok: false, problem: `could not start ${argv[0]}: ${describe(error)}`})
      return
    }
    const stdout = new Capture(MAX_OUTPUT_BYTES)
    const stderr = new OutputTail(STDERR_KEPT_BYTES)
    child.stdout!.on('data', (chunk: Buffer) => stdout.add(chunk))
    child.stderr!.on('data', (chunk: Buffer) => stderr.add(chunk))

    let killedFor: string | undefined
    const kill = (why: string) => {
      killedFor ??= why
      stopGroup(child)
    }
    const timer = setTimeout(() => kill(`timed out after ${timeoutMs}ms`), timeoutMs)
    const onAbort = () => kill('stopped')
    signal.addEventListener('abort', onAbort, {once: true})
    let grace: NodeJS.Timeout | undefined
    const finish = (outcome: CommandOutcome) => {
      clearTimeout(timer)
      clearTimeout(grace)
      signal.removeEventListener('abort', onAbort)
      done(outcome)
    }

    child.on('error', (error) => finish({ok: false, problem: `could not start ${argv[0]}: ${describe(error)}`}))
    // What the command left running in the background would hold the pipes open (and outlive a stop):
    // a probe has no business leaving processes behind, so they go too.
    child.on('exit', () => {
      killLeftovers(child)
      grace = setTimeout(() => {
        child.stdout!.destroy()
        child.stderr!.destroy()
      }, PIPE_GRACE_MS)
    })
    child.on('close', (code, exitSignal) => {
      if (killedFor !== undefined) return finish({ok: false, problem: `${argv[0]} ${killedFor}`})
      if (code === null) return finish({ok: false, problem: `${argv[0]} was killed by ${exitSignal}`})
      finish({ok: true, output: stdout.text(), exitCode: code, stderr: oneLine(stderr.toString()), cut: stdout.overflowed})
    })
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

// ---------------------------------------------------------------------------------------------
// Helpers

/** `text` cut to at most `maxBytes` of UTF-8, on a character boundary. */
function cutUtf8(text: string, maxBytes: number): string {
  if (text.length <= maxBytes / 3) return text
  const bytes = Buffer.from(text, 'utf8')
  return bytes.length <= maxBytes ? text : bytes.subarray(0, utf8Boundary(bytes, maxBytes)).toString('utf8')
}

function oneLine(text: string): string {
  return text.trim().split(/\r?\n/).slice(-3).join(' | ')
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code
  return code === 'ENOENT' || code === 'ENOTDIR'
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
