import {expect} from 'chai'
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {jsonLines, mq, run, start, tempHome, waitFor} from '../helpers.js'

describe('trigger, rules and the journal (CLI)', function () {
  this.timeout(30_000)
  let home: string
  let rules: string
  beforeEach(() => {
    home = tempHome()
    rules = join(home, 'rules.json')
  })
  const writeRules = (doc: unknown) => writeFileSync(rules, JSON.stringify(doc, null, 2))

  it('trigger runs matching actions and exits 0; --json prints a summary', async () => {
    writeRules({
      rules: [
        {
          name: 'to-file',
          pattern: {type: ['order.created'], data: {total: [{numeric: ['>', 100]}]}},
          actions: [{type: 'file', path: 'big.jsonl'}],
        },
      ],
    })
    const small = await run(['trigger', 'order.created', '--data', '{"total": 5}', '--json'], {home})
    expect(small.code).to.equal(0)
    expect(JSON.parse(small.stdout)).to.deep.include({matched: [], ok: true})
    const big = await run(['trigger', 'order.created', '--data', '{"total": 250}', '--subject', 'orders/1', '--json'], {
      home,
    })
    expect(big.code, big.stderr).to.equal(0)
    const summary = JSON.parse(big.stdout)
    expect(summary.matched).to.deep.equal(['to-file'])
    expect(summary.actions[0]).to.include({rule: 'to-file', type: 'file', outcome: 'ok', attempts: 1})
    const event = JSON.parse(readFileSync(join(home, 'big.jsonl'), 'utf8'))
    expect(event).to.deep.include({specversion: '1.0', type: 'order.created', subject: 'orders/1', data: {total: 250}})
    expect(event.source).to.match(/^mqctl:\/\/.+@.+/)
    expect(Date.parse(event.time)).to.be.closeTo(Date.now(), 10_000)
  })

  it('exit 1 when an action failed after its retries; exit 3 with --require-match and no match', async () => {
    writeRules({
      rules: [
        {
          name: 'broken',
          pattern: {type: ['x']},
          actions: [{type: 'exec', command: ['false']}],
          retry: {maxAttempts: 2, backoff: '10ms'},
        },
      ],
    })
    const failed = await run(['trigger', 'x'], {home})
    expect(failed.code).to.equal(1)
    expect(failed.stderr).to.match(/rule broken action 1 .* failed after 2 attempts: exit 1/)
    const unmatched = await run(['trigger', 'y', '--require-match'], {home})
    expect(unmatched.code).to.equal(3)
    expect((await run(['trigger', 'y'], {home})).code).to.equal(0)
  })

  it('reads data from stdin, and a whole CloudEvent with --envelope (validated)', async () => {
    writeRules({rules: [{name: 'log', pattern: {source: ['ci']}, actions: [{type: 'file', path: 'out.jsonl'}]}]})
    await run(['trigger', 'piped', '--source', 'ci', '--data', '-'], {home, input: '{"from":"stdin"}'})
    const envelope = {specversion: '1.0', id: 'e-1', source: 'ci', type: 'whole', data: {n: 1}, traceparent: '00-abc'}
    expect((await run(['trigger', '--envelope'], {home, input: JSON.stringify(envelope)})).code).to.equal(0)
    const lines = readFileSync(join(home, 'out.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(lines[0].data).to.deep.equal({from: 'stdin'})
    expect(lines[1]).to.deep.equal(envelope)
    for (const [bad, why] of [
      [{specversion: '1.0', id: 'x', type: 't'}, /"source"/],
      [{specversion: '0.3', id: 'x', source: 's', type: 't'}, /specversion/],
      [{specversion: '1.0', id: 'x', source: 's', type: 't', traceId: 'x'}, /extension attribute "traceId"/],
      [{specversion: '1.0', id: '', source: 's', type: 't'}, /"id"/],
    ] as const) {
      const result = await run(['trigger', '--envelope', JSON.stringify(bad)], {home})
      expect(result.code, result.stderr).to.equal(2)
      expect(result.stderr).to.match(why)
    }
    expect((await run(['trigger', '--envelope'], {home, input: '{not json'})).code).to.equal(2)
    const badData = await run(['trigger', 't', '--data', 'hello'], {home})
    expect(badData.code).to.equal(2)
    expect(badData.stderr).to.match(/--data is not valid JSON/)
  })

  it('rule add, list, show, disable, enable, remove edit rules.json', async () => {
    expect(
      (await run(['rule', 'add', 'audit', '--type', 'order.created', '--file', 'audit.jsonl'], {home})).code,
    ).to.equal(0)
    expect(
      (
        await run(
          [
            'rule',
            'add',
            'notify',
            '--pattern',
            '{"type":[{"prefix":"build."}]}',
            '--exec',
            'cat > /dev/null',
            '--retry',
            '5',
            '--concurrency',
            'serial',
          ],
          {home},
        )
      ).code,
    ).to.equal(0)
    expect((await run(['rule', 'list'], {home})).stdout).to.equal('audit\nnotify\n')
    const shown = JSON.parse((await run(['rule', 'show', 'notify', '--json'], {home})).stdout)
    expect(shown).to.deep.include({concurrency: 'serial', retry: {maxAttempts: 5}})
    expect((await run(['rule', 'add', 'audit', '--type', 'x', '--log'], {home})).code).to.equal(2)
    await run(['rule', 'disable', 'audit'], {home})
    await run(['trigger', 'order.created'], {home})
    expect(JSON.parse((await run(['rule', 'list', '--json'], {home})).stdout)[0].enabled).to.equal(false)
    await run(['rule', 'enable', 'audit'], {home})
    await run(['trigger', 'order.created'], {home})
    expect(readFileSync(join(home, 'audit.jsonl'), 'utf8').trim().split('\n')).to.have.length(1)
    await run(['rule', 'remove', 'audit'], {home})
    expect((await run(['rule', 'list'], {home})).stdout).to.equal('notify\n')
    expect((await run(['rule', 'remove', 'audit'], {home})).code).to.equal(2)
    expect((await run(['rule', 'add', 'bad', '--type', 'x', '--exec', 'echo {{data.x}}'], {home})).code).to.equal(2)
    expect((await run(['rule', 'add', 'nothing', '--type', 'x'], {home})).stderr).to.match(/missing action/)
  })

  it('--rules and MQ_RULES point at a document kept elsewhere (e.g. in a repository)', async () => {
    const repo = join(home, 'repo', 'ci')
    mkdirSync(repo, {recursive: true})
    const file = join(repo, 'rules.json')
    writeFileSync(
      file,
      JSON.stringify({rules: [{name: 'r', pattern: {type: ['x']}, actions: [{type: 'file', path: 'hits.jsonl'}]}]}),
    )
    await run(['trigger', 'x', '--rules', file], {home})
    await run(['trigger', 'x'], {home, env: {MQ_RULES: file}})
    // relative action paths resolve against the document's folder
    expect(readFileSync(join(repo, 'hits.jsonl'), 'utf8').trim().split('\n')).to.have.length(2)
  })

  it('a hand-edited invalid document is refused with the rule and the path', async () => {
    writeRules({
      rules: [
        {name: 'ok', pattern: {type: ['x']}, actions: [{type: 'log'}]},
        {name: 'typo', pattern: {data: {n: [{numeric: ['>>', 1]}]}}, actions: [{type: 'log'}]},
      ],
    })
    const result = await run(['trigger', 'x'], {home})
    expect(result.code).to.equal(2)
    expect(result.stderr).to.match(
      /rules\.json: rule "typo" at pattern\.data\.n\[0\]\.numeric\[0\]: unknown numeric operator/,
    )
    writeFileSync(rules, '{"rules": [ {"name": "x",')
    const syntax = await run(['rule', 'list'], {home})
    expect(syntax.code).to.equal(2)
    expect(syntax.stderr).to.match(/rules\.json is not valid JSON/)
    // and mqctl does not edit a broken document
    expect((await run(['rule', 'add', 'y', '--type', 'y', '--log'], {home})).code).to.equal(2)
    expect(readFileSync(rules, 'utf8')).to.equal('{"rules": [ {"name": "x",')
  })

  it('rule test: match or not, why a miss failed, and --expect for CI', async () => {
    writeRules({
      rules: [{name: 'deploy', pattern: {type: ['git.merged'], data: {branch: ['main']}}, actions: [{type: 'log'}]}],
    })
    const samples = join(home, 'samples')
    mkdirSync(samples)
    writeFileSync(join(samples, 'main.json'), JSON.stringify({type: 'git.merged', data: {branch: 'main'}}))
    writeFileSync(join(samples, 'dev.json'), JSON.stringify({type: 'git.merged', data: {branch: 'dev'}}))
    const all = await run(['rule', 'test', 'deploy', samples], {home})
    expect(all.code).to.equal(0)
    expect(all.stdout)
      .to.match(/dev\.json: no match: \$\.data\.branch: /)
      .and.match(/main\.json: match/)
    expect(
      (await run(['rule', 'test', 'deploy', join(samples, 'main.json'), '--expect', 'match'], {home})).code,
    ).to.equal(0)
    const failing = await run(['rule', 'test', 'deploy', samples, '--expect', 'match', '--json'], {home})
    expect(failing.code).to.equal(1)
    expect(
      JSON.parse(failing.stdout)
        .map((r: {passed: boolean}) => r.passed)
        .sort(),
    ).to.deep.equal([false, true])
    const patternFile = join(home, 'pattern.json')
    writeFileSync(patternFile, JSON.stringify({data: {branch: [{prefix: 'de'}]}}))
    expect(
      (await run(['rule', 'test', patternFile, join(samples, 'dev.json'), '--expect', 'match'], {home})).code,
    ).to.equal(0)
  })

  it('events list, show and replay', async () => {
    writeRules({rules: [{name: 'count', pattern: {type: ['tick']}, actions: [{type: 'file', path: 'ticks.jsonl'}]}]})
    for (let i = 0; i < 3; i++) await run(['trigger', 'tick', '--data', String(i)], {home})
    await run(['trigger', 'other'], {home})
    const listed = JSON.parse((await run(['events', 'list', '--json'], {home})).stdout)
    expect(listed.map((e: {event: {type: string}; status: string}) => [e.event.type, e.status])).to.deep.equal([
      ['other', 'unmatched'],
      ['tick', 'done'],
      ['tick', 'done'],
      ['tick', 'done'],
    ])
    expect(JSON.parse((await run(['events', 'list', '--type', 'tick', '--json'], {home})).stdout)).to.have.length(3)
    expect(JSON.parse((await run(['events', 'list', '--rule', 'count', '--json'], {home})).stdout)).to.have.length(3)
    expect(
      JSON.parse((await run(['events', 'list', '--status', 'unmatched', '--json'], {home})).stdout),
    ).to.have.length(1)
    const shown = JSON.parse((await run(['events', 'show', String(listed[1].seq), '--json'], {home})).stdout)
    expect(shown.attempts[0]).to.include({rule: 'count', outcome: 'ok', attempt: 1})
    const dry = JSON.parse((await run(['events', 'replay', '--since', '1h', '--dry-run', '--json'], {home})).stdout)
    expect(dry.events.map((e: {rules: string[]}) => e.rules.length)).to.deep.equal([1, 1, 1, 0])
    expect(readFileSync(join(home, 'ticks.jsonl'), 'utf8').trim().split('\n')).to.have.length(3)
    const replayed = JSON.parse(
      (await run(['events', 'replay', '--from', String(listed[2].seq), '--json'], {home})).stdout,
    )
    expect(replayed.replayed).to.equal(3)
    expect(readFileSync(join(home, 'ticks.jsonl'), 'utf8').trim().split('\n')).to.have.length(5)
    expect((await run(['events', 'replay', '--since', '1h', '--rule', 'nope'], {home})).code).to.equal(2)
  })

  it('dedups by source and id across separate processes', async () => {
    writeRules({rules: [{name: 'once', pattern: {type: ['pay']}, actions: [{type: 'file', path: 'paid.jsonl'}]}]})
    const runs = await Promise.all(
      Array.from({length: 5}, () => mq(['trigger', 'pay', '--id', 'inv-7', '--source', 'billing', '--json'], {home})),
    )
    expect(
      runs.map((r) => r.code),
      runs.map((r) => r.stderr).join(''),
    ).to.deep.equal([0, 0, 0, 0, 0])
    const summaries = runs.map((r) => JSON.parse(r.stdout))
    expect(summaries.filter((s) => s.duplicateOf === undefined)).to.have.length(1)
    expect(readFileSync(join(home, 'paid.jsonl'), 'utf8').trim().split('\n')).to.have.length(1)
    // another source with the same id is another event
    await run(['trigger', 'pay', '--id', 'inv-7', '--source', 'refunds'], {home})
    expect(readFileSync(join(home, 'paid.jsonl'), 'utf8').trim().split('\n')).to.have.length(2)
  })

  it('log actions print the event; publish actions feed a queue', async () => {
    writeRules({
      rules: [
        {
          name: 'both',
          pattern: {type: ['x']},
          actions: [{type: 'log'}, {type: 'publish', to: 'events.x', body: '{{data.msg}}'}],
        },
      ],
    })
    const result = await run(['trigger', 'x', '--data', '{"msg":"hi"}'], {home})
    expect(jsonLines(result.stdout)[0]).to.deep.include({type: 'x', data: {msg: 'hi'}})
    expect((await run(['consume', 'events.x'], {home})).stdout).to.equal('hi\n')
  })
  it('events list -f prints the recent events oldest first, then new ones with their outcome; Ctrl-C exits 0', async () => {
    writeRules({rules: [{name: 'keep', pattern: {type: ['order.n4']}, actions: [{type: 'file', path: 'out.jsonl'}]}]})
    for (const n of [1, 2, 3]) expect((await run(['trigger', `order.n${n}`], {home})).code).to.equal(0)
    const follower = start(['events', 'list', '-f', '-n', '2'], {home})
    await waitFor(() => /order\.n3/.test(follower.stdout), 'the backlog')
    const backlog = follower.stdout.trim().split('\n')
    expect(backlog.map((line) => line.split('\t')[2])).to.deep.equal(['order.n2', 'order.n3'])
    expect((await run(['trigger', 'order.n4'], {home})).code).to.equal(0)
    expect((await run(['trigger', 'other'], {home})).code).to.equal(0)
    await waitFor(() => /\tother\t/.test(follower.stdout), 'the new events')
    const lines = follower.stdout
      .trim()
      .split('\n')
      .map((line) => line.split('\t'))
    expect(lines.slice(2).map((cells) => [cells[0], cells[2], cells[4], cells[5]])).to.deep.equal([
      ['4', 'order.n4', 'done', 'keep'],
      ['5', 'other', 'unmatched', '-'],
    ])
    follower.kill('SIGINT')
    const done = await follower.done
    expect(done.code, done.stderr).to.equal(0)
    expect(done.stderr).to.equal('')
  })

  it('events list -f --json --status failed follows only failed events, as JSON lines', async () => {
    writeRules({
      rules: [
        {
          name: 'flaky',
          pattern: {type: ['x']},
          actions: [{type: 'exec', command: ['sh', '-c', 'exit 1']}],
          retry: {maxAttempts: 1},
        },
      ],
    })
    const follower = start(['events', 'list', '-f', '--status', 'failed', '--json'], {home})
    // Whether these land in the backlog or are followed, each is printed once.
    expect((await run(['trigger', 'x'], {home})).code).to.equal(1)
    expect((await run(['trigger', 'y'], {home})).code).to.equal(0)
    expect((await run(['trigger', 'x'], {home})).code).to.equal(1)
    await waitFor(() => jsonLines(follower.stdout).length === 2, 'two failed events')
    const followed = jsonLines<{seq: number; status: string; receivedAt: string}>(follower.stdout)
    expect(followed.map((e) => [e.seq, e.status])).to.deep.equal([
      [1, 'failed'],
      [3, 'failed'],
    ])
    expect(Date.parse(followed[0].receivedAt)).to.be.closeTo(Date.now(), 60_000) // ISO-8601, as every time in --json
    follower.kill('SIGINT')
    expect((await follower.done).code).to.equal(0)
  })
})
