import {expect} from 'chai'

import {parseCron, parseSchedule} from '../../../src/core/engine/cron.js'
import {InvalidInputError} from '../../../src/core/errors.js'
import {thrown} from '../../helpers.js'

describe('parseCron', () => {
  // [expression, after, expected next] — all UTC. 2024-01-01 is a Monday; 2024 is a leap year.
  const cases: Array<[string, string, string]> = [
    ['* * * * *', '2024-01-01T00:00:00Z', '2024-01-01T00:01:00Z'],
    ['* * * * *', '2024-01-01T00:00:59.999Z', '2024-01-01T00:01:00Z'],
    ['*/15 * * * *', '2024-01-01T00:07:00Z', '2024-01-01T00:15:00Z'],
    ['*/15 * * * *', '2024-01-01T00:15:00Z', '2024-01-01T00:30:00Z'],
    ['*/15 * * * *', '2024-01-01T00:45:00Z', '2024-01-01T01:00:00Z'],
    ['10-50/20 * * * *', '2024-01-01T00:31:00Z', '2024-01-01T00:50:00Z'],
    ['10-50/20 * * * *', '2024-01-01T00:50:00Z', '2024-01-01T01:10:00Z'],
    ['5/20 * * * *', '2024-01-01T00:46:00Z', '2024-01-01T01:05:00Z'],
    ['*/60 * * * *', '2024-01-01T00:01:00Z', '2024-01-01T01:00:00Z'],
    ['0,30 9,17 * * *', '2024-01-01T09:30:00Z', '2024-01-01T17:00:00Z'],
    ['0 9-17/4 * * *', '2024-01-01T13:00:00Z', '2024-01-01T17:00:00Z'],
    ['0 9-17/4 * * *', '2024-01-01T17:00:00Z', '2024-01-02T09:00:00Z'],
    ['15 1,3-5 * * *', '2024-01-01T01:15:00Z', '2024-01-01T03:15:00Z'],
    ['0 0 * * *', '2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z'],
    // month and year rollover
    ['0 0 1 * *', '2024-01-31T12:00:00Z', '2024-02-01T00:00:00Z'],
    ['0 0 31 * *', '2024-01-31T00:00:00Z', '2024-03-31T00:00:00Z'],
    ['59 23 * * *', '2024-02-29T23:59:00Z', '2024-03-01T23:59:00Z'],
    ['30 23 31 12 *', '2024-12-31T23:30:00Z', '2025-12-31T23:30:00Z'],
    ['0 0 1 1 *', '2024-06-15T08:00:00Z', '2025-01-01T00:00:00Z'],
    ['0 0 31 1,4 *', '2024-02-01T00:00:00Z', '2025-01-31T00:00:00Z'],
    // names, in any case
    ['0 9 * * mon-fri', '2024-01-05T09:00:00Z', '2024-01-08T09:00:00Z'],
    ['0 9 * * MON-FRI', '2024-01-05T08:59:00Z', '2024-01-05T09:00:00Z'],
    ['0 12 * JAN,jul Mon', '2024-01-31T00:00:00Z', '2024-07-01T12:00:00Z'],
    ['0 0 1 JAN-MAR/2 *', '2024-01-01T00:00:00Z', '2024-03-01T00:00:00Z'],
    ['0 0 * * FRI-SUN', '2024-01-01T00:00:00Z', '2024-01-05T00:00:00Z'],
    ['0 0 * * FRI-SUN', '2024-01-06T00:00:00Z', '2024-01-07T00:00:00Z'],
    // 0 and 7 are both Sunday
    ['0 0 * * 0', '2024-01-01T00:00:00Z', '2024-01-07T00:00:00Z'],
    ['0 0 * * 7', '2024-01-01T00:00:00Z', '2024-01-07T00:00:00Z'],
    ['0 0 * * SUN', '2024-01-01T00:00:00Z', '2024-01-07T00:00:00Z'],
    ['0 0 * * 6-7', '2024-01-06T00:00:00Z', '2024-01-07T00:00:00Z'],
    // day-of-month and day-of-week both restricted: either matches (Friday the 12th, then Saturday the 13th)
    ['0 0 13 * FRI', '2024-01-01T00:00:00Z', '2024-01-05T00:00:00Z'],
    ['0 0 13 * FRI', '2024-01-06T00:00:00Z', '2024-01-12T00:00:00Z'],
    ['0 0 13 * FRI', '2024-01-12T00:00:00Z', '2024-01-13T00:00:00Z'],
    ['0 0 30 2 MON', '2024-01-01T00:00:00Z', '2024-02-05T00:00:00Z'],
    // a field starting with * counts as unrestricted (Vixie), so both must match: odd-numbered Mondays
    ['0 0 */2 * MON', '2024-01-01T00:00:00Z', '2024-01-15T00:00:00Z'],
    ['0 0 29 2 */7', '2024-03-01T00:00:00Z', '2032-02-29T00:00:00Z'],
    // leap day
    ['0 0 29 2 *', '2024-02-28T12:00:00Z', '2024-02-29T00:00:00Z'],
    ['0 0 29 2 *', '2024-02-29T00:00:00Z', '2028-02-29T00:00:00Z'],
    ['0 0 29 2 *', '2096-03-01T00:00:00Z', '2104-02-29T00:00:00Z'],
    // macros
    ['@hourly', '2024-01-01T10:20:00Z', '2024-01-01T11:00:00Z'],
    ['@daily', '2024-01-01T10:20:00Z', '2024-01-02T00:00:00Z'],
    ['@midnight', '2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z'],
    ['@DAILY', '2024-01-01T10:20:00Z', '2024-01-02T00:00:00Z'],
    ['@weekly', '2024-01-01T00:00:00Z', '2024-01-07T00:00:00Z'],
    ['@monthly', '2024-01-15T00:00:00Z', '2024-02-01T00:00:00Z'],
    ['@yearly', '2024-01-01T00:00:00Z', '2025-01-01T00:00:00Z'],
    ['@annually', '2024-03-01T00:00:00Z', '2025-01-01T00:00:00Z'],
    // extra whitespace
    ['  0   12  *  *  * ', '2024-01-01T12:00:00Z', '2024-01-02T12:00:00Z'],
  ]
  for (const [expression, after, expected] of cases) {
    it(`${expression} after ${after} -> ${expected}`, () => {
      const next = parseCron(expression).next(new Date(after), 'utc')
      expect(next.toISOString()).to.equal(new Date(expected).toISOString())
    })
  }

  it('keeps the expression as written, trimmed', () => {
    expect(parseCron(' @daily ').expression).to.equal('@daily')
    expect(parseCron('*/5 * * * *').expression).to.equal('*/5 * * * *')
  })

  it('chains next() through a sequence of fire times', () => {
    const cron = parseCron('0 0 31 * *')
    const seen: string[] = []
    let at = new Date('2024-01-01T00:00:00Z')
    for (let i = 0; i < 4; i++) {
      at = cron.next(at, 'utc')
      seen.push(at.toISOString().slice(0, 10))
    }
    expect(seen).to.deep.equal(['2024-01-31', '2024-03-31', '2024-05-31', '2024-07-31'])
  })

  it('is fast for schedules that fire rarely', () => {
    // The search jumps by field instead of minute by minute: eight years ahead in one call (a
    // slow search shows as a mocha timeout; its speed is not asserted here).
    expect(parseCron('0 0 29 2 */7').next(new Date('2024-03-01T00:00:00Z'), 'utc').toISOString()).to.equal(
      '2032-02-29T00:00:00.000Z',
    )
  })

  it('rejects an invalid start date', () => {
    thrown(() => parseCron('* * * * *').next(new Date('nope'), 'utc'))
  })

  // [expression, the part of the message after the expression]
  const errors: Array<[string, string]> = [
    ['', 'expected 5 fields (minute hour day-of-month month day-of-week), got 0'],
    ['* * * *', 'expected 5 fields (minute hour day-of-month month day-of-week), got 4'],
    ['0 * * * * *', 'expected 5 fields (minute hour day-of-month month day-of-week), got 6'],
    ['61 * * * *', 'minute 61 is out of range 0-59'],
    ['* 24 * * *', 'hour 24 is out of range 0-23'],
    ['* * 0 * *', 'day-of-month 0 is out of range 1-31'],
    ['* * 32 * *', 'day-of-month 32 is out of range 1-31'],
    ['* * * 0 *', 'month 0 is out of range 1-12'],
    ['* * * 13 *', 'month 13 is out of range 1-12'],
    ['* * * * 8', 'day-of-week 8 is out of range 0-7'],
    ['0-60 * * * *', 'minute 60 is out of range 0-59'],
    ['* * * FOO *', 'month "FOO" is not a number or name'],
    ['* * * * MONDAY', 'day-of-week "MONDAY" is not a number or name'],
    ['* * * * MON-FRIDAY', 'day-of-week "FRIDAY" is not a number or name'],
    ['MON * * * *', 'minute "MON" is not a number'],
    ['1.5 * * * *', 'minute "1.5" is not a number'],
    ['* * L * *', 'day-of-month "L" is not a number'],
    ['* * ? * *', 'day-of-month "?" is not supported'],
    ['*/0 * * * *', 'minute step 0 must be at least 1'],
    ['*/x * * * *', 'minute step "x" is not a number'],
    ['*/ * * * *', 'minute step "" is not a number'],
    ['*/5/2 * * * *', 'minute "*/5/2" has more than one step'],
    ['5-2 * * * *', 'minute range "5-2" runs backwards'],
    ['* * * DEC-JAN *', 'month range "DEC-JAN" runs backwards'],
    ['1- * * * *', 'minute range "1-" is not of the form low-high'],
    ['1-2-3 * * * *', 'minute range "1-2-3" is not of the form low-high'],
    ['1,,2 * * * *', 'minute "1,,2" has an empty list entry'],
    ['@reboot', 'unknown macro @reboot'],
    ['@daily 5', 'unknown macro @daily 5'],
    ['0 0 30 2 *', 'day-of-month "30" never occurs in month "2"'],
    ['0 0 31 2,4,6,9,11 *', 'day-of-month "31" never occurs in month "2,4,6,9,11"'],
    ['0 0 31 APR *', 'day-of-month "31" never occurs in month "APR"'],
    ['0 0 30-31 FEB */2', 'day-of-month "30-31" never occurs in month "FEB"'],
  ]
  for (const [expression, reason] of errors) {
    it(`rejects "${expression}": ${reason}`, () => {
      const error = thrown(() => parseCron(expression))
      expect(error.message).to.equal(`invalid cron expression "${expression}": ${reason}`)
      expect(error.exitCode).to.equal(2)
      expect(error.hint).to.be.a('string').and.not.equal('')
      expect(error.message).not.to.include('\n')
    })
  }

  describe('in the local time zone', () => {
    const saved = process.env.TZ
    before(() => {
      process.env.TZ = 'America/New_York'
    })
    after(() => {
      if (saved === undefined) delete process.env.TZ
      else process.env.TZ = saved
    })

    // 2024-03-10 07:00Z: 02:00 EST becomes 03:00 EDT. 2024-11-03 06:00Z: 02:00 EDT becomes 01:00 EST.
    const local: Array<[string, string, string, string]> = [
      ['reads the fields as local wall time', '0 9 * * *', '2024-07-01T00:00:00Z', '2024-07-01T13:00:00Z'],
      [
        'runs a fixed time skipped by the jump when the clock jumps',
        '30 2 * * *',
        '2024-03-10T05:00:00Z',
        '2024-03-10T07:00:00Z',
      ],
      ['runs it at 02:30 again the next day', '30 2 * * *', '2024-03-10T07:00:00Z', '2024-03-11T06:30:00Z'],
      ['runs 03:00 at the jump', '0 3 * * *', '2024-03-10T05:00:00Z', '2024-03-10T07:00:00Z'],
      [
        'keeps wildcard jobs on the clock across the jump',
        '*/15 * * * *',
        '2024-03-10T06:50:00Z',
        '2024-03-10T07:00:00Z',
      ],
      [
        'runs a fixed time in the repeated hour on its first pass',
        '30 1 * * *',
        '2024-11-03T05:00:00Z',
        '2024-11-03T05:30:00Z',
      ],
      ['does not run it again on the second pass', '30 1 * * *', '2024-11-03T05:30:00Z', '2024-11-04T06:30:00Z'],
      [
        'does not run it when starting inside the second pass',
        '45 1 * * *',
        '2024-11-03T06:10:00Z',
        '2024-11-04T06:45:00Z',
      ],
      ['runs wildcard jobs in both passes', '*/30 * * * *', '2024-11-03T05:31:00Z', '2024-11-03T06:00:00Z'],
      ['and keeps going through the second pass', '*/30 * * * *', '2024-11-03T06:00:00Z', '2024-11-03T06:30:00Z'],
    ]
    for (const [title, expression, after, expected] of local) {
      it(`${title} (${expression} after ${after})`, () => {
        expect(parseCron(expression).next(new Date(after)).toISOString()).to.equal(new Date(expected).toISOString())
      })
    }
  })

  it('agrees with a brute-force search on random expressions', () => {
    let seed = 12345
    const random = (n: number) => {
      // mulberry32: a small deterministic generator, so failures reproduce
      seed = (seed + 0x6d2b79f5) | 0
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
      return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n)
    }
    const field = (min: number, max: number): {text: string; values: Set<number>} => {
      const pick = random(5)
      if (pick === 0) return {text: '*', values: range(min, max, 1)}
      if (pick === 1) {
        const step = 1 + random(max - min + 1)
        return {text: `*/${step}`, values: range(min, max, step)}
      }
      if (pick === 2) {
        const low = min + random(max - min + 1)
        const high = low + random(max - low + 1)
        return {text: `${low}-${high}`, values: range(low, high, 1)}
      }
      const values = new Set<number>()
      for (let i = 0; i <= random(3); i++) values.add(min + random(max - min + 1))
      return {text: [...values].join(','), values}
    }
    for (let round = 0; round < 300; round++) {
      const fields = [field(0, 59), field(0, 23), field(1, 31), field(1, 12), field(0, 6)]
      const expression = fields.map((f) => f.text).join(' ')
      const after = Date.UTC(2020 + random(10), random(12), 1 + random(28), random(24), random(60), random(60))
      const expected = bruteForce(fields, after)
      let actual: number | undefined
      try {
        actual = parseCron(expression).next(new Date(after), 'utc').getTime()
      } catch (error) {
        expect(error, expression).to.be.instanceOf(InvalidInputError)
      }
      if (expected === undefined) {
        if (actual !== undefined) expect(actual - after, expression).to.be.above(9 * 366 * 86_400_000)
      } else {
        expect(
          actual && new Date(actual).toISOString(),
          `${expression} after ${new Date(after).toISOString()}`,
        ).to.equal(new Date(expected).toISOString())
      }
    }
  })
})

function range(low: number, high: number, step: number): Set<number> {
  const values = new Set<number>()
  for (let v = low; v <= high; v += step) values.add(v)
  return values
}

/** Independent oracle: walks day by day for nine years and checks each minute of a matching day. */
function bruteForce(fields: Array<{text: string; values: Set<number>}>, after: number): number | undefined {
  const [minute, hour, dom, month, dow] = fields
  const either = !dom.text.startsWith('*') && !dow.text.startsWith('*')
  const firstDay = Math.floor(after / 86_400_000) * 86_400_000
  for (let day = firstDay; day < firstDay + 9 * 366 * 86_400_000; day += 86_400_000) {
    const date = new Date(day)
    if (!month.values.has(date.getUTCMonth() + 1)) continue
    const domMatch = dom.values.has(date.getUTCDate())
    const dowMatch = dow.values.has(date.getUTCDay())
    if (either ? !(domMatch || dowMatch) : !(domMatch && dowMatch)) continue
    for (let m = 0; m < 1440; m++) {
      const at = day + m * 60_000
      if (at > after && hour.values.has(Math.floor(m / 60)) && minute.values.has(m % 60)) return at
    }
  }
  return undefined
}

describe('parseSchedule', () => {
  const at = new Date('2024-01-01T00:00:00Z')

  const intervals: Array<[string, number]> = [
    ['every 5m', 300_000],
    ['EVERY 2h', 7_200_000],
    ['every 1.5s', 1500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['250ms', 250],
    [' 10 ', 10_000],
  ]
  for (const [spec, everyMs] of intervals) {
    it(`reads "${spec}" as an interval of ${everyMs}ms`, () => {
      const schedule = parseSchedule(spec)
      expect(schedule.kind).to.equal('interval')
      if (schedule.kind !== 'interval') return
      expect(schedule.everyMs).to.equal(everyMs)
      expect(schedule.next(at).getTime()).to.equal(at.getTime() + everyMs)
    })
  }

  it('reads a cron expression', () => {
    const schedule = parseSchedule('*/15 * * * *')
    expect(schedule.kind).to.equal('cron')
    if (schedule.kind !== 'cron') return
    expect(schedule.expression).to.equal('*/15 * * * *')
    expect(schedule.cron.next(at, 'utc').toISOString()).to.equal('2024-01-01T00:15:00.000Z')
    expect(schedule.next(at, 'utc').toISOString()).to.equal('2024-01-01T00:15:00.000Z')
  })

  it('reads a macro', () => {
    const schedule = parseSchedule('@hourly')
    expect(schedule.kind).to.equal('cron')
    expect(schedule.next(new Date('2024-01-01T10:20:00Z'), 'utc').toISOString()).to.equal('2024-01-01T11:00:00.000Z')
  })

  const bad: Array<[string, RegExp]> = [
    ['every 0s', /^interval "every 0s" must be longer than zero$/],
    ['0', /^interval "0" must be longer than zero$/],
    ['every soon', /^invalid interval "soon"$/],
    ['every 5 minutes', /^invalid interval "5 minutes"$/],
    ['tomorrow', /^invalid schedule "tomorrow"$/],
    ['', /^invalid schedule ""$/],
    ['61 * * * *', /^invalid cron expression "61 \* \* \* \*": minute 61 is out of range 0-59$/],
    ['5m 10', /^invalid cron expression "5m 10": expected 5 fields/],
    ['@never', /^invalid cron expression "@never": unknown macro @never$/],
  ]
  for (const [spec, message] of bad) {
    it(`rejects "${spec}"`, () => {
      const error = thrown(() => parseSchedule(spec))
      expect(error.message).to.match(message)
      expect(error.exitCode).to.equal(2)
      expect(error.hint).to.be.a('string').and.not.equal('')
    })
  }
})
