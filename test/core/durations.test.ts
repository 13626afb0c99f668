import {expect} from 'chai'

import {parseSchedule} from '../../src/core/engine/cron.js'
import {isDuration, parseDuration} from '../../src/core/units.js'
import {thrown} from '../helpers.js'

describe('durations', () => {
  it('reads single and compound durations, largest unit first', () => {
    const cases: [string, number][] = [
      ['250ms', 250],
      ['5', 5_000],
      ['1.5s', 1_500],
      ['1h30m', 5_400_000],
      ['2d12h', 216_000_000],
      ['1m30.5s', 90_500],
      ['1h0m5s', 3_605_000],
      [' 10m ', 600_000],
    ]
    for (const [text, ms] of cases) expect(parseDuration(text), text).to.equal(ms)
    expect(parseSchedule('every 1h30m')).to.deep.include({kind: 'interval', everyMs: 5_400_000})
    expect(parseSchedule('2h15m')).to.deep.include({kind: 'interval', everyMs: 8_100_000})
  })

  it('refuses parts out of order, repeated units and anything else, with the compound form in the hint', () => {
    for (const text of ['30m1h', '1h1h', '1h 30m', '1x', 'h', '', '-1s', '1ms5s']) {
      expect(isDuration(text), text).to.equal(false)
      expect(thrown(() => parseDuration(text, '--wait')).line).to.match(
        /^invalid --wait ".*"; use a number with a unit: 250ms, 5s, 2m, 1h30m, 2d12h$/,
      )
    }
  })
})
