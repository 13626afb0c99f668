import type {CloudEvent} from '../cloudevents.js'
import {type IntervalSchedule, parseSchedule, type Schedule} from '../cron.js'
import type {SourceSpec} from '../rules.js'
import {describe} from './helpers.js'
import {runPollCommand} from './poll-command.js'
import {runSchedule} from './schedule.js'
import {SourceRun} from './source-run.js'
import {FileTail} from './watch-file.js'

export {nextSlot} from './schedule.js'
export {FILE_FALLBACK_POLL_MS, LineSplitter, MAX_LINE_BYTES} from './watch-file.js'
export {MAX_OUTPUT_BYTES, SAVED_OUTPUT_BYTES} from './poll-command.js'

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

/**
 * Starts every enabled source; each runs until `stop()` or until `ctx.signal` aborts. A source
 * that cannot start (bad schedule) or fails later is logged; the others carry on.
 */
export function startSources(
  sources: SourceSpec[],
  schedules: Map<string, Schedule>,
  ctx: SourceContext,
): RunningSources {
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
      return runSchedule(
        run,
        schedules.get(spec.name) ?? parseSchedule(spec.every !== undefined ? `every ${spec.every}` : String(spec.cron)),
      )
    case 'watch-file':
      return new FileTail(run, spec.path).run()
    case 'poll-command':
      // "every X" parses to an interval or throws, never to a cron schedule.
      return runPollCommand(run, spec.command, parseSchedule(`every ${spec.every}`) as IntervalSchedule)
  }
}
