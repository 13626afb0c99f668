import {sleep} from '../../rate-limiter.js'
import type {Schedule} from '../cron.js'
import {isObject} from './helpers.js'
import type {SourceRun} from './source-run.js'

// Schedule sources: an event at each slot of a cron or interval schedule.

/** Longest single timer: re-reading the clock this often notices suspends and clock changes. */
const MAX_TIMER_MS = 60_000

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

export async function runSchedule(run: SourceRun, schedule: Schedule): Promise<void> {
  const saved = await run.load(parseScheduleState)
  // Counting from the saved slot is what stops a quick restart from firing that slot again.
  let previous = saved ? new Date(saved.lastFireAt) : new Date()
  while (!run.signal.aborted) {
    const slot = nextSlot(schedule, previous)
    const due = schedule.next(previous)
    if (slot.getTime() !== due.getTime())
      run.log(`skipped the slot(s) missed since ${due.toISOString()}; next at ${slot.toISOString()}`)
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
export async function sleepUntil(when: number, signal: AbortSignal): Promise<void> {
  for (let left = when - Date.now(); left > 0 && !signal.aborted; left = when - Date.now()) {
    await sleep(Math.min(left, MAX_TIMER_MS), signal)
  }
}
