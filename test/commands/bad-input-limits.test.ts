import {expect} from 'chai'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {expectOneLineError, jsonLines, run, shell, tempHome} from '../helpers.js'

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
      expectOneLineError(
        await run(['rule', 'add', 'r', '--pattern', pattern, '--log'], {home}),
        2,
        /invalid pattern at \$: a pattern must be a JSON object/,
      )
    }
  })

  it('a 3,000-deep pattern is exit 2 with its path; one at the limit works end to end', async () => {
    expectOneLineError(
      await run(['rule', 'add', 'deep', '--pattern', nested(3000), '--log'], {home}),
      2,
      /--pattern is nested deeper than 256 levels \(at \$\.a\.a\.a.*…/,
    )
    // 254 objects, the array and the top: within the 256 levels, stored, listed and matched.
    const file = join(home, 'seen.jsonl')
    const added = await run(['rule', 'add', 'ok', '--pattern', `{"data":${nested(254)}}`, '--file', file], {home})
    expect(added.code, added.stderr).to.equal(0)
    expect((await run(['rule', 'list'], {home})).code).to.equal(0)
    const fired = await run(['trigger', 't.deep', '--data', nested(254, '"x"'), '--wait'], {home})
    expect(fired.code, fired.stderr).to.equal(0)
    expect(readFileSync(file, 'utf8').trim().split('\n')).to.have.length(1)
  })

  it('a rules.json holding a 20,000-deep pattern: rule list and trigger are exit 2 naming the file and path', async () => {
    const document = `{"rules":[{"name":"deep","pattern":${nested(20_000)},"actions":[{"type":"log"}]}]}`
    writeFileSync(join(home, 'rules.json'), document)
    expectOneLineError(
      await run(['rule', 'list'], {home}),
      2,
      /rules\.json: nested deeper than 256 levels at \$\.rules\[0\]\.pattern\.a\.a/,
    )
    expectOneLineError(
      await run(['trigger', 't.x', '--data', '{}'], {home}),
      2,
      /rules\.json: nested deeper than 256 levels/,
    )
    expectOneLineError(
      await run(['rule', 'add', 'other', '--type', 't.x', '--log'], {home}),
      2,
      /nested deeper than 256 levels/,
    )
    expect(readFileSync(join(home, 'rules.json'), 'utf8')).to.equal(document) // left as it was
  })

  it('event data deeper than the limit is exit 2 before anything is journalled', async () => {
    expectOneLineError(
      await run(['trigger', 't.x', '--data', nested(20_000)], {home}),
      2,
      /"data" is nested deeper than 256 levels \(at \$\.data\.a\.a/,
    )
    expectOneLineError(
      await run(['trigger', 't.x', '--data', '-'], {home, input: nested(3000)}),
      2,
      /"data" is nested deeper than 256 levels/,
    )
    const envelope = `{"specversion":"1.0","id":"1","source":"s","type":"t.x","data":${nested(3000)}}`
    expectOneLineError(
      await run(['trigger', '--envelope', envelope], {home}),
      2,
      /"data" is nested deeper than 256 levels/,
    )
    const journal = await run(['events', 'list', '--json'], {home})
    expect(JSON.parse(journal.stdout)).to.deep.equal([])
  })

  it('rule match: a line whose data is nested past the limit is exit 2 naming the line; data at the limit matches', async () => {
    await run(['rule', 'add', 'all', '--pattern', '{"type":["t.x"]}', '--log'], {home})
    const event = (data: string) => `{"specversion":"1.0","id":"1","source":"s","type":"t.x","data":${data}}`
    expectOneLineError(
      await run(['rule', 'match'], {home, input: `${event('{}')}\n${event(nested(257, '1'))}\n`}),
      2,
      /line 2 of stdin: .*"data" is nested deeper than 256 levels/,
    )
    const atLimit = await run(['rule', 'match'], {home, input: `${event(nested(255, '[1]'))}\n`})
    expect(atLimit.code, atLimit.stderr).to.equal(0)
    expect(atLimit.stdout).to.equal('all\n')
  })
})

describe('bad input: durations that make no sense at zero (CLI)', () => {
  let home: string
  beforeEach(() => {
    home = tempHome()
  })

  it('a zero or negative timeout, lease, interval or lifetime is exit 2; nothing is consumed', async function () {
    this.timeout(120_000) // a dozen CLI runs on a busy runner
    await run(['publish', 'q', 'kept'], {home})
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
      expectOneLineError(await run([...args], {home}), 2, new RegExp(`${flag} must be longer than zero`))
    }
    expectOneLineError(
      await run(['consume', 'q', '--exec', 'true', '--exec-timeout=-5s'], {home}),
      2,
      /invalid --exec-timeout "-5s"/,
    )
    // Zero still means "now" where it does: no delay, no wait.
    expect((await run(['publish', 'q', 'now', '--delay', '0s'], {home})).code).to.equal(0)
    const taken = await run(['consume', 'q', '-n', '2', '--wait', '0s'], {home})
    expect(taken.stdout.trim().split('\n')).to.deep.equal(['kept', 'now'])
  })
})

describe('bad input: headers count toward limits and are never lost (CLI)', () => {
  let home: string
  beforeEach(() => {
    home = tempHome()
  })

  const stats = async (queue: string) =>
    JSON.parse((await run(['queue', 'stats', queue, '--json'], {home})).stdout) as {depth: number; bytes: number}

  it('--max-body-size, --max-bytes and stats bytes count headers; a huge header is exit 2', async function () {
    this.timeout(90_000)
    await run(['queue', 'create', 'small', '--max-body-size', '1KiB', '--max-bytes', '4KiB'], {home})
    const huge = JSON.stringify({body: 'x', headers: {big: 'v'.repeat(2 * 1024 * 1024)}})
    expectOneLineError(
      await run(['publish', 'small', '--envelopes'], {home, input: `${huge}\n`}),
      2,
      /headers take 2097\d{3} bytes, over the limit of 65536 per message/,
    )
    expectOneLineError(
      await run(['publish', 'small', 'x', '-H', `k=${'v'.repeat(1100)}`], {home}),
      2,
      /message is 1109 bytes \(body 1, headers 1108\), over the 1024-byte limit of small/,
    )
    // Each message: a 4-byte body and 908 bytes of headers ({"k":"v…"}); four fit in 4 KiB, a fifth does not.
    const header = `k=${'v'.repeat(900)}`
    for (let i = 0; i < 4; i++) expect((await run(['publish', 'small', 'body', '-H', header], {home})).code).to.equal(0)
    expectOneLineError(await run(['publish', 'small', 'body', '-H', header], {home}), 4, /small is full/)
    expect(await stats('small')).to.include({depth: 4, bytes: 4 * (4 + 908)})
  })

  it('more than 64 headers, or a name over 128 characters, is exit 2 from -H and --envelopes', async function () {
    this.timeout(90_000)
    const many = (n: number) => Array.from({length: n}, (_, i) => `h${i}=v`).flatMap((pair) => ['-H', pair])
    expectOneLineError(
      await run(['publish', 'q', 'x', ...many(65)], {home}),
      2,
      /65 headers, over the limit of 64 per message/,
    )
    const envelope = JSON.stringify({
      body: 'x',
      headers: Object.fromEntries(Array.from({length: 65}, (_, i) => [`h${i}`, 'v'])),
    })
    expectOneLineError(
      await run(['publish', 'q', '--envelopes'], {home, input: envelope}),
      2,
      /line 1: 65 headers, over the limit of 64/,
    )
    expectOneLineError(
      await run(['publish', 'q', 'x', '-H', `${'n'.repeat(129)}=v`], {home}),
      2,
      /header name "n+…?" is invalid/,
    )
    expect((await run(['publish', 'q', 'x', ...many(63), '-H', `${'n'.repeat(128)}=v`], {home})).code).to.equal(0)
    expect(await stats('q')).to.include({depth: 1})
  })

  it('a header named __proto__ is kept, from -H and from an envelope; a name given twice is exit 2', async () => {
    expect((await run(['publish', 'q', 'a', '-H', '__proto__=x', '-H', 'k=v'], {home})).code).to.equal(0)
    const envelope = JSON.stringify({body: 'b', headers: {['__proto__']: 'y', k: 'w'}})
    expect(envelope).to.include('__proto__')
    expect((await run(['publish', 'q', '--envelopes'], {home, input: envelope})).code).to.equal(0)
    const out = await run(['consume', 'q', '-n', '2', '--json'], {home})
    expect(
      out.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.stringify(JSON.parse(line).headers)),
    ).to.deep.equal(['{"__proto__":"x","k":"v"}', '{"__proto__":"y","k":"w"}'])
    expectOneLineError(
      await run(['publish', 'q', 'x', '-H', 'a=1', '-H', 'a=2'], {home}),
      2,
      /header "a" is given twice/,
    )
  })

  it('--exec gets every header in MQ_HEADERS; a variable two headers would share is left unset', async () => {
    const file = join(home, 'env.txt')
    await run(
      ['publish', 'q', 'x', '-H', 'a.b=dot', '-H', 'a_b=underscore', '-H', '__proto__=p', '-H', 'trace-id=t1'],
      {home},
    )
    const consumed = await run(['consume', 'q', '--exec', 'env | grep "^MQ_HEADER" | sort > "$OUT"'], {
      home,
      env: {OUT: file},
    })
    expect(consumed.code, consumed.stderr).to.equal(0)
    const lines = readFileSync(file, 'utf8').trim().split('\n')
    const headers = lines.find((line) => line.startsWith('MQ_HEADERS='))!.slice('MQ_HEADERS='.length)
    expect(JSON.parse(headers)).to.deep.equal(
      JSON.parse('{"a.b":"dot","a_b":"underscore","__proto__":"p","trace-id":"t1"}'),
    )
    expect(lines.filter((line) => !line.startsWith('MQ_HEADERS='))).to.deep.equal([
      'MQ_HEADER_TRACE_ID=t1',
      'MQ_HEADER___PROTO__=p',
    ])
  })
})

describe('bad input: one rule for text from arguments and stdin (CLI)', () => {
  let home: string
  beforeEach(() => {
    home = tempHome()
  })

  it('invalid UTF-8 in a body or header argument is exit 2, as on stdin; a real U+FFFD passes', async () => {
    expectOneLineError(
      await shell(`MQ publish q "$(printf 'ok\\377')"`, {home}),
      2,
      /the body argument is not valid UTF-8 text/,
    )
    expectOneLineError(
      await shell(`MQ publish q x -H "k=$(printf 'v\\377')"`, {home}),
      2,
      /header "k" is not valid UTF-8 text/,
    )
    expectOneLineError(await shell(`MQ_NO_FAST=1 MQ publish q "$(printf 'ok\\377')"`, {home}), 2, /not valid UTF-8/)
    expectOneLineError(
      await shell(`MQ trigger t.x --data "$(printf '"ok\\377"')"`, {home}),
      2,
      /--data is not valid UTF-8 text/,
    )
    const genuine = await shell(`MQ publish q "$(printf 'ok\\357\\277\\275')"`, {home})
    expect(genuine.code, genuine.stderr).to.equal(0)
    const [envelope] = jsonLines((await run(['consume', 'q', '--json'], {home})).stdout)
    expect(envelope.body).to.equal('ok\uFFFD')
  })

  it("--home '' and MQ_HOME='' are exit 2, never another broker", async () => {
    const other = tempHome()
    expectOneLineError(await run(['publish', 'q', 'x', '--home', ''], {home: other}), 2, /--home is empty/)
    expectOneLineError(await run(['queue', 'list', '--home='], {home: other}), 2, /--home is empty/)
    expectOneLineError(await run(['publish', 'q', 'x'], {env: {MQ_HOME: ''}}), 2, /--home or MQ_HOME is empty/)
    expectOneLineError(await run(['queue', 'list'], {env: {MQ_HOME: ''}}), 2, /--home or MQ_HOME is empty/)
    expect((await run(['queue', 'list', '--json'], {home: other})).stdout).to.equal('')
    // An explicit --home still wins over an empty MQ_HOME.
    expect((await run(['publish', 'q', 'x', '--home', home], {env: {MQ_HOME: ''}})).code).to.equal(0)
  })
})
