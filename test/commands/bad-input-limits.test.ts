import {expect} from 'chai'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {expectOneLineError, mq, tempHome} from '../helpers.js'

/** `{"a":{"a":…[leaf]…}}`, `levels` objects deep. */
function nested(levels: number, leaf = '["x"]'): string {
  return '{"a":'.repeat(levels) + leaf + '}'.repeat(levels)
}

describe('bad input: depth limits of patterns and events (CLI)', () => {
  let home: string
  beforeEach(() => {
    home = tempHome()
  })

  it('a pattern that is not an object is exit 2 naming the path, not an unexpected failure', async () => {
    for (const pattern of ['null', '[1]', '"type"', '3']) {
      expectOneLineError(await mq(['rule', 'add', 'r', '--pattern', pattern, '--log'], {home}), 2, /invalid pattern at \$: a pattern must be a JSON object/)
    }
  })

  it('a 3,000-deep pattern is exit 2 with its path; one at the limit works end to end', async () => {
    expectOneLineError(await mq(['rule', 'add', 'deep', '--pattern', nested(3000), '--log'], {home}), 2, /--pattern is nested deeper than 256 levels \(at \$\.a\.a\.a.*…/)
    // 254 objects, the array and the top: within the 256 levels, stored, listed and matched.
    const file = join(home, 'seen.jsonl')
    const added = await mq(['rule', 'add', 'ok', '--pattern', `{"data":${nested(254)}}`, '--file', file], {home})
    expect(added.code, added.stderr).to.equal(0)
    expect((await mq(['rule', 'list'], {home})).code).to.equal(0)
    const fired = await mq(['trigger', 't.deep', '--data', nested(254, '"x"'), '--wait'], {home})
    expect(fired.code, fired.stderr).to.equal(0)
    expect(readFileSync(file, 'utf8').trim().split('\n')).to.have.length(1)
  })

  it('a rules.json holding a 20,000-deep pattern: rule list and trigger are exit 2 naming the file and path', async () => {
    const document = `{"rules":[{"name":"deep","pattern":${nested(20_000)},"actions":[{"type":"log"}]}]}`
    writeFileSync(join(home, 'rules.json'), document)
    expectOneLineError(await mq(['rule', 'list'], {home}), 2, /rules\.json: nested deeper than 256 levels at \$\.rules\[0\]\.pattern\.a\.a/)
    expectOneLineError(await mq(['trigger', 't.x', '--data', '{}'], {home}), 2, /rules\.json: nested deeper than 256 levels/)
    expectOneLineError(await mq(['rule', 'add', 'other', '--type', 't.x', '--log'], {home}), 2, /nested deeper than 256 levels/)
    expect(readFileSync(join(home, 'rules.json'), 'utf8')).to.equal(document) // left as it was
  })

  it('event data deeper than the limit is exit 2 before anything is journalled', async () => {
    expectOneLineError(await mq(['trigger', 't.x', '--data', nested(20_000)], {home}), 2, /"data" is nested deeper than 256 levels \(at \$\.data\.a\.a/)
    expectOneLineError(await mq(['trigger', 't.x'], {home, input: nested(3000)}), 2, /"data" is nested deeper than 256 levels/)
    const envelope = `{"specversion":"1.0","id":"1","source":"s","type":"t.x","data":${nested(3000)}}`
    expectOneLineError(await mq(['trigger', '--envelope', envelope], {home}), 2, /"data" is nested deeper than 256 levels/)
    const journal = await mq(['events', 'list', '--json'], {home})
    expect(JSON.parse(journal.stdout)).to.deep.equal([])
  })
})

describe('bad input: durations that make no sense at zero (CLI)', () => {
  let home: string
  beforeEach(() => {
    home = tempHome()
  })

  it('a zero or negative timeout, lease, interval or lifetime is exit 2; nothing is consumed', async function () {
    this.timeout(120_000) // a dozen CLI runs on a busy runner
    await mq(['publish', 'q', 'kept'], {home})
    for (const [args, flag] of [
      [['consume', 'q', '--exec', 'true', '--exec-timeout', '0s'], '--exec-timeout'],
      [['consume', 'q', '--exec', 'true', '--exec-timeout=0.1ms'], '--exec-timeout'],
      [['consume', 'q', '--poll-interval', '0'], '--poll-interval'],
      [['consume', 'q', '--ack', 'manual', '--visibility-timeout', '0ms'], '--visibility-timeout'],
      [['subscribe', 't', '--exec', 'true', '--exec-timeout', '0s'], '--exec-timeout'],
      [['queue', 'update', 'q', '--visibility-timeout', '0s'], '--visibility-timeout'],
      [['queue', 'update', 'q', '--default-ttl', '0s'], '--default-ttl'],
      [['topic', 'create', 't', '--max-age', '0m'], '--max-age'],
      [['publish', 'q', 'x', '--ttl', '0s'], '--ttl'],
      [['daemon', 'stop', '--timeout', '0s'], '--timeout'],
    ] as const) {
      expectOneLineError(await mq([...args], {home}), 2, new RegExp(`${flag} must be longer than zero`))
    }
    expectOneLineError(await mq(['consume', 'q', '--exec', 'true', '--exec-timeout=-5s'], {home}), 2, /invalid --exec-timeout "-5s"/)
    // Zero still means "now" where it does: no delay, no wait.
    expect((await mq(['publish', 'q', 'now', '--delay', '0s'], {home})).code).to.equal(0)
    const taken = await mq(['consume', 'q', '-n', '2', '--wait', '0s'], {home})
    expect(taken.stdout.trim().split('\n')).to.deep.equal(['kept', 'now'])
  })
})
