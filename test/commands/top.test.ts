import {expect} from 'chai'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {run, tempHome} from '../helpers.js'

describe('mq top --once / --json (CLI)', function () {
  this.timeout(30_000)
  let home: string
  beforeEach(async () => {
    home = tempHome()
    await run(['publish', 'jobs', '--lines'], {home, input: 'a\nb\nc\n'})
    await run(['publish', 'emails', 'x'], {home})
    writeFileSync(
      join(home, 'rules.json'),
      JSON.stringify({rules: [{name: 'keep', pattern: {type: ['x']}, actions: [{type: 'file', path: 'kept.jsonl'}]}]}),
    )
    await run(['trigger', 'x'], {home})
  })

  it('without a terminal prints one plain frame (no escape codes) and exits 0', async () => {
    const result = await run(['top'], {home})
    expect(result.code, result.stderr).to.equal(0)
    expect(result.stdout).to.not.include('\u001B')
    expect(result.stdout).to.match(
      /^mq top — file:.* — \d\d:\d\d:\d\d — every 1s · 2 queues, 0 topics, 0 subscriptions, 1 rule$/m,
    )
    expect(result.stdout).to.match(/^jobs +queue +3 +0 +0 +0 +[\d.]+ +0$/m)
    expect(result.stdout).to.match(/^keep +enabled +1 +0 +0 +\d+ms +\d+ms$/m)
    expect(result.stdout).to.not.match(/sort: n name/) // no keys: nothing to press
    expect(result.stdout.indexOf('jobs')).to.be.below(result.stdout.indexOf('emails'))
  })

  it('--once --sort name --filter picks and orders the rows', async () => {
    const result = await run(['top', '--once', '--sort', 'name', '--filter', 'mail'], {home})
    expect(result.code).to.equal(0)
    expect(result.stdout).to.match(/^emails +queue/m)
    expect(result.stdout).to.not.match(/^jobs/m)
    expect(result.stdout).to.include('sorted by name · filter "mail"')
  })

  it('--json prints the snapshot for scripts', async () => {
    const result = await run(['top', '--json'], {home})
    expect(result.code).to.equal(0)
    const snapshot = JSON.parse(result.stdout)
    expect(Date.parse(snapshot.takenAt)).to.be.closeTo(Date.now(), 60_000)
    expect(snapshot.queues.map((q: {name: string}) => q.name).sort()).to.deep.equal(['emails', 'jobs'])
    expect(snapshot.queues.find((q: {name: string}) => q.name === 'jobs')).to.deep.include({
      kind: 'queue',
      depth: 3,
      inFlight: 0,
      delayed: 0,
      deadLettered: 0,
    })
    expect(snapshot.rules[0]).to.deep.include({name: 'keep', enabled: true, matches: 1, failures: 0})
    expect(JSON.parse((await run(['top', '--json', '--filter', 'job'], {home})).stdout).queues).to.have.length(1)
  })

  it('a bad --sort or --interval: exit 2 with one line', async () => {
    const sort = await run(['top', '--sort', 'size'], {home})
    expect(sort.code).to.equal(2)
    expect(sort.stderr).to.match(/--sort=size to be one of: name, depth, inflight, dlq, in, ack/)
    expect((await run(['top', '--interval', '0s'], {home})).code).to.equal(2)
  })
  it('an invalid rules document does not stop it: the rules that ran still show, from the journal', async () => {
    writeFileSync(join(home, 'rules.json'), '{"rules": [')
    const result = await run(['top', '--json'], {home})
    expect(result.code, result.stderr).to.equal(0)
    expect(JSON.parse(result.stdout).rules).to.deep.equal([
      {...JSON.parse(result.stdout).rules[0], name: 'keep', enabled: null, matches: 1},
    ])
  })
})
