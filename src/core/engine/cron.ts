import {InvalidInputError} from '../errors.js'
import {printable} from '../names.js'
import {isDuration, parseDuration} from '../units.js'

/** Which clock a cron expression is read against. */
export type TimeZone = 'local' | 'utc'

const MINUTE = 60_000
const DAY = 86_400_000

const MONTH_NAMES = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC']
const DAY_NAMES = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT']

const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
}

const FIELDS_HINT =
  'fields are minute (0-59) hour (0-23) day-of-month (1-31) month (1-12 or JAN-DEC) day-of-week (0-7 or SUN-SAT)'

interface FieldSpec {
  name: string
  min: number
  max: number
  /** Upper end of `*`: day-of-week allows 7 as a second Sunday, but `*` should not count Sunday twice. */
  starMax: number
  /** Names in value order, starting at `min`'s name (JAN = 1, SUN = 0). */
  names?: readonly string[]
  namesStart?: number
  hint: string
}

const FIELDS: readonly FieldSpec[] = [
  {name: 'minute', min: 0, max: 59, starMax: 59, hint: 'minutes are 0-59'},
  {name: 'hour', min: 0, max: 23, starMax: 23, hint: 'hours are 0-23'},
  {name: 'day-of-month', min: 1, max: 31, starMax: 31, hint: 'days of the month are 1-31'},
  {name: 'month', min: 1, max: 12, starMax: 12, names: MONTH_NAMES, namesStart: 1, hint: 'months are 1-12 or JAN-DEC'},
  {
    name: 'day-of-week',
    min: 0,
    max: 7,
    starMax: 6,
    names: DAY_NAMES,
    namesStart: 0,
    hint: 'days of the week are 0-7 (0 and 7 are Sunday) or SUN-SAT',
  },
]

interface ParsedField {
  /** Sorted, without duplicates. */
  values: number[]
  /** Whether the field starts with `*`: Vixie cron uses exactly this test for the day-of-month/day-of-week rule. */
  star: boolean
}

type Fail = (message: string, hint?: string) => never

/**
 * A parsed 5-field cron expression. Build one with {@link parseCron}.
 *
 * Daylight-saving changes (`timeZone: 'local'` only) follow Vixie cron: a job at a fixed minute and hour
 * that falls in a skipped hour runs when the clock jumps; in a repeated hour it runs once. Jobs whose
 * minute or hour field starts with `*` simply keep running by the clock, so they also run in the repeated hour.
 */
export class CronSchedule {
  private readonly minutes: number[]
  private readonly hours: number[]
  private readonly months: number[]
  private readonly daysOfMonth: Set<number>
  private readonly daysOfWeek: Set<number>
  /** Both day fields restricted: a day matches if either matches (otherwise both must). */
  private readonly dayEither: boolean
  /** Neither minute nor hour starts with `*` (Vixie's "fixed-time job"), which changes DST handling. */
  private readonly fixedTime: boolean

  /** @internal use {@link parseCron} */
  constructor(
    /** The expression as written (trimmed), e.g. `*\/15 * * * *` or `@daily`. */
    readonly expression: string,
    fields: ParsedField[],
  ) {
    const [minute, hour, dom, month, dow] = fields
    this.minutes = minute.values
    this.hours = hour.values
    this.daysOfMonth = new Set(dom.values)
    this.months = month.values
    this.daysOfWeek = new Set(dow.values)
    this.dayEither = !dom.star && !dow.star
    this.fixedTime = !minute.star && !hour.star
  }

  /**
   * The first fire time strictly after `after`, with seconds and milliseconds zero.
   * @param timeZone whose wall clock the fields describe; `local` is the process's time zone (TZ)
   */
  next(after: Date, timeZone: TimeZone = 'local'): Date {
    const start = after.getTime()
    if (Number.isNaN(start)) {
      throw new InvalidInputError('invalid start time for a cron schedule', {hint: 'pass a valid date'})
    }
    let cur = Math.floor(start / MINUTE) * MINUTE + MINUTE
    if (timeZone === 'utc') return new Date(this.nextWall(cur))

    if (this.fixedTime) cur = skipRepeatedHour(cur)
    // Each round either returns or moves `cur` past one offset change, so this only loops at DST changes.
    for (let round = 0; round < 10_000; round++) {
      const offset = localOffset(cur)
      const wall = this.nextWall(cur + offset)
      const fire = wall - offset
      const change = nextOffsetChange(cur, fire)
      if (change === undefined) return new Date(fire)
      const newOffset = localOffset(change)
      if (newOffset > offset) {
        // Clocks jumped forward: wall times in [change + offset, change + newOffset) never happen.
        if (this.fixedTime && wall < change + newOffset) return new Date(Math.ceil(change / MINUTE) * MINUTE)
        cur = change
      } else {
        // Clocks went back: wall times in [change + newOffset, change + offset) happen twice.
        cur = this.fixedTime ? change + (offset - newOffset) : change
      }
    }
    throw new InvalidInputError(`cron expression "${printable(this.expression)}" found no fire time`, {
      hint: 'the local time zone changes offset too often; use UTC',
    })
  }

  /** The first matching wall-clock minute at or after `from` (both as UTC-based milliseconds). */
  private nextWall(from: number): number {
    const date = new Date(Math.ceil(from / MINUTE) * MINUTE)
    let year = date.getUTCFullYear()
    let month = date.getUTCMonth() + 1
    let day = date.getUTCDate()
    let hour = date.getUTCHours()
    let minute = date.getUTCMinutes()
    // parseCron rejects schedules that never fire, and the Gregorian calendar repeats every 400 years
    // (a whole number of weeks), so a match always exists within 401 years.
    const lastYear = year + 401
    while (year <= lastYear) {
      if (!this.months.includes(month)) {
        const nextMonth = firstAtLeast(this.months, month)
        if (nextMonth === undefined) {
          year++
          month = this.months[0]
        } else {
          month = nextMonth
        }
        day = 1
        hour = 0
        minute = 0
        continue
      }
      if (day > daysInMonth(year, month)) {
        month++
        if (month > 12) {
          year++
          month = 1
        }
        day = 1
        hour = 0
        minute = 0
        continue
      }
      if (!this.dayMatches(year, month, day)) {
        day++
        hour = 0
        minute = 0
        continue
      }
      const nextHour = firstAtLeast(this.hours, hour)
      if (nextHour === undefined) {
        day++
        hour = 0
        minute = 0
        continue
      }
      if (nextHour !== hour) {
        hour = nextHour
        minute = 0
      }
      const nextMinute = firstAtLeast(this.minutes, minute)
      if (nextMinute === undefined) {
        hour++
        minute = 0
        if (hour > 23) {
          day++
          hour = 0
        }
        continue
      }
      return Date.UTC(year, month - 1, day, hour, nextMinute)
    }
    throw new InvalidInputError(`cron expression "${printable(this.expression)}" never fires`, {
      hint: 'check the day-of-month and month fields',
    })
  }

  private dayMatches(year: number, month: number, day: number): boolean {
    const dom = this.daysOfMonth.has(day)
    const dow = this.daysOfWeek.has(new Date(Date.UTC(year, month - 1, day)).getUTCDay())
    return this.dayEither ? dom || dow : dom && dow
  }
}

/**
 * Parses a standard 5-field cron expression (minute hour day-of-month month day-of-week) or a macro
 * such as `@daily`. Fields take `*`, lists `1,2`, ranges `1-5`, steps `*\/15`, `10-50/5` and `5/15`
 * (from 5 to the end), and JAN–DEC / SUN–SAT names in any case; 0 and 7 are both Sunday.
 * When day-of-month and day-of-week are both restricted (neither starts with `*`), a day matches if either does.
 * @throws InvalidInputError naming the field and token, or when the schedule can never fire (e.g. `0 0 30 2 *`)
 */
export function parseCron(expr: string): CronSchedule {
  const expression = expr.trim()
  const fail: Fail = (message, hint = FIELDS_HINT) => {
    throw new InvalidInputError(`invalid cron expression "${printable(expr)}": ${message}`, {
      code: 'bad_schedule',
      hint,
    })
  }
  let text = expression
  if (text.startsWith('@')) {
    const macro = MACROS[text.toLowerCase()]
    if (macro === undefined) {
      fail(`unknown macro ${printable(text)}`, `use one of ${Object.keys(MACROS).join(' ')}, or 5 fields`)
    }
    text = macro
  }
  const tokens = text === '' ? [] : text.split(/\s+/)
  if (tokens.length !== FIELDS.length) {
    fail(
      `expected 5 fields (minute hour day-of-month month day-of-week), got ${tokens.length}`,
      'e.g. "*/15 * * * *" or @hourly',
    )
  }
  const fields = tokens.map((token, index) => parseField(token, FIELDS[index], fail))
  checkCanFire(tokens, fields, fail)
  return new CronSchedule(expression, fields)
}

function parseField(token: string, spec: FieldSpec, fail: Fail): ParsedField {
  const values = new Set<number>()
  for (const item of token.split(',')) {
    if (item === '')
      fail(
        `${spec.name} "${printable(token)}" has an empty list entry`,
        'separate values with single commas, e.g. 1,15',
      )
    const [rangeText, stepText, ...extra] = item.split('/')
    if (extra.length > 0) fail(`${spec.name} "${printable(item)}" has more than one step`, 'write one step, e.g. */15')
    let step = 1
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText))
        fail(`${spec.name} step "${printable(stepText)}" is not a number`, 'write a step as */15 or 10-50/5')
      step = Number(stepText)
      if (step < 1) fail(`${spec.name} step ${stepText} must be at least 1`, 'write a step as */15 or 10-50/5')
    }
    let low: number
    let high: number
    if (rangeText === '*') {
      low = spec.min
      high = spec.starMax
    } else if (rangeText.includes('-')) {
      const ends = rangeText.split('-')
      if (ends.length !== 2 || ends[0] === '' || ends[1] === '') {
        fail(`${spec.name} range "${printable(rangeText)}" is not of the form low-high`, 'e.g. 1-5 or MON-FRI')
      }
      low = fieldValue(ends[0], spec, fail)
      high = fieldValue(ends[1], spec, fail)
      // FRI-SUN reads naturally with Sunday as the end of the week.
      if (spec.name === 'day-of-week' && high === 0 && low > 0) high = 7
      if (low > high)
        fail(`${spec.name} range "${printable(rangeText)}" runs backwards`, 'write the smaller value first, e.g. 1-5')
    } else {
      low = fieldValue(rangeText, spec, fail)
      // `5/15` has no end; like most crons, read it as 5 to the end of the field.
      high = stepText === undefined ? low : spec.starMax
    }
    for (let value = low; value <= high; value += step)
      values.add(spec.name === 'day-of-week' && value === 7 ? 0 : value)
  }
  return {values: [...values].sort((a, b) => a - b), star: token.startsWith('*')}
}

function fieldValue(text: string, spec: FieldSpec, fail: Fail): number {
  if (/^\d+$/.test(text)) {
    const value = Number(text)
    if (value < spec.min || value > spec.max)
      fail(`${spec.name} ${text} is out of range ${spec.min}-${spec.max}`, spec.hint)
    return value
  }
  if (spec.names) {
    const index = spec.names.indexOf(text.toUpperCase())
    if (index >= 0) return index + (spec.namesStart ?? 0)
    fail(`${spec.name} "${printable(text)}" is not a number or name`, spec.hint)
  }
  if (text === '?') fail(`${spec.name} "?" is not supported`, 'use * (this is standard cron, not Quartz)')
  return fail(`${spec.name} "${printable(text)}" is not a number`, spec.hint)
}

/**
 * Rejects schedules that can never fire, so `next` always terminates. Only day-of-month against month
 * can be impossible: every month has every weekday, and every day-of-month falls on every weekday
 * over the years, so day-of-week never makes an otherwise possible schedule impossible.
 */
function checkCanFire(tokens: string[], fields: ParsedField[], fail: Fail): void {
  const [, , dom, month, dow] = fields
  if (!dom.star && !dow.star) return // either day field may match, and day-of-week always can
  const longestMonth = Math.max(...month.values.map((m) => daysInMonth(2000, m))) // 2000: a leap year
  if (dom.values[0] > longestMonth) {
    fail(
      `day-of-month "${printable(tokens[2])}" never occurs in month "${printable(tokens[3])}"`,
      `choose days that exist in those months (February has at most 29)`,
    )
  }
}

function firstAtLeast(sorted: number[], value: number): number | undefined {
  for (const candidate of sorted) if (candidate >= value) return candidate
  return undefined
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate()
}

/** Milliseconds to add to a UTC instant to get the local wall clock. */
function localOffset(instant: number): number {
  return Math.round(-new Date(instant).getTimezoneOffset() * MINUTE)
}

/**
 * The first instant in (from, until] where the local offset differs from the one at `from`.
 * Steps a day at a time, which assumes no zone changes offset twice within 24 hours.
 */
function nextOffsetChange(from: number, until: number): number | undefined {
  const offset = localOffset(from)
  for (let low = from; low < until;) {
    const high = Math.min(low + DAY, until)
    if (localOffset(high) !== offset) return firstChange(low, high, offset)
    low = high
  }
  return undefined
}

/** Binary search for the first instant in (low, high] whose offset is not `offset`. */
function firstChange(low: number, high: number, offset: number): number {
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2)
    if (localOffset(middle) === offset) low = middle
    else high = middle
  }
  return high
}

/** Moves an instant inside the second pass of a repeated (fall-back) hour to its end. */
function skipRepeatedHour(instant: number): number {
  const offset = localOffset(instant)
  const before = localOffset(instant - DAY)
  if (before <= offset) return instant
  const change = firstChange(instant - DAY, instant, before)
  const end = change + (before - offset)
  return instant < end ? end : instant
}

interface ScheduleBase {
  /** The first fire time strictly after `after`. `timeZone` only matters for cron schedules. */
  next(after: Date, timeZone?: TimeZone): Date
}

/** Fires every `everyMs`, counted from the previous fire (or from start-up). */
export interface IntervalSchedule extends ScheduleBase {
  kind: 'interval'
  everyMs: number
}

/** Fires when the cron expression matches the wall clock. */
export interface CronScheduleSpec extends ScheduleBase {
  kind: 'cron'
  cron: CronSchedule
  expression: string
}

/** What `parseSchedule` returns: an interval or a cron expression. */
export type Schedule = IntervalSchedule | CronScheduleSpec

/**
 * Parses a schedule: an interval (`every 5m`, or a bare duration such as `30s`, `1h`, `1d`) or a
 * cron expression (`*\/15 * * * *`, `@daily`).
 * @throws InvalidInputError when it is neither, naming the bad part
 */
export function parseSchedule(spec: string): Schedule {
  const text = spec.trim()
  const every = /^every\s+(.*)$/i.exec(text)
  if (every || isDuration(text)) {
    const everyMs = parseDuration(every ? every[1] : text, 'interval')
    if (everyMs <= 0) {
      throw new InvalidInputError(`interval "${printable(text)}" must be longer than zero`, {
        code: 'bad_schedule',
        hint: 'e.g. every 5m',
      })
    }
    return {kind: 'interval', everyMs, next: (after) => new Date(after.getTime() + everyMs)}
  }
  if (!text.startsWith('@') && !/\s/.test(text)) {
    throw new InvalidInputError(`invalid schedule "${printable(spec)}"`, {
      code: 'bad_schedule',
      hint: 'use an interval (every 5m, 30s) or a 5-field cron expression ("*/15 * * * *", @daily)',
    })
  }
  const cron = parseCron(text)
  return {kind: 'cron', cron, expression: cron.expression, next: (after, timeZone) => cron.next(after, timeZone)}
}
