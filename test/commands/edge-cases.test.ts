import {expect} from 'chai'
import {existsSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {jsonLines, mq, run, shell, sleep, start, tempHome, waitFor} from '../helpers.js'

const depth = async (home: string, queue: string) =>
  JSON.parse((await run(['queue', 'stats', queue, '--json'], {home})).stdout).depth

describe('edge cases', function () {
  this.timeout(30_000)
  let home: string
  beforeEach(() => {
    home = tempHome()
  })

  it('auto-ack keeps the messages it could not write (a full disk), with one error line', async () => {
    await run(['publish', 'q', '--lines'], {home, input: 'a\nb\nc\n'})
    const result = await shell('MQ consume q -n 3 > /dev/full', {home})
    expect(result.code).to.equal(1)
    expect(result.stderr.trim().split('\n')).to.have.length(1)
    expect(result.stderr).to.match(/cannot write the output \(ENOSPC\)/)
    expect(await depth(home, 'q')).to.equal(3)
    expect((await run(['consume', 'q', '-n', '3'], {home})).stdout).to.equal('a\nb\nc\n')
    const list = await shell('MQ queue list > /dev/full', {home})
    expect(list.code).to.equal(1)
    expect(list.stderr.trim().split('\n')).to.have.length(1)
  })

  it('refuses a topic as a dead-letter queue, and a dead-letter queue name that is not a name', async () => {
    await run(['topic', 'create', 'events'], {home})
    const asDlq = await run(['queue', 'create', 'jobs', '--dead-letter-queue', 'events'], {home})
    expect(asDlq.code).to.equal(2)
    expect(asDlq.stderr).to.match(/events is a topic/)
    const badName = await run(['subscribe', 't', '--durable', 's1', '--dead-letter-queue', 'bad name!'], {home})
    expect(badName.code).to.equal(2)
    expect(badName.stderr).to.match(/dead-letter queue/)
  })

  it('refuses NUL in header values; an exec action fed a NUL fails like any attempt', async () => {
    const nul = await run(['publish', 'q', '--envelopes'], {home, input: '{"body":"x","headers":{"k":"v\\u0000w"}}\n'})
    expect(nul.code).to.equal(2)
    expect(nul.stderr).to.match(/without NUL/)
    writeFileSync(
      join(home, 'rules.json'),
      JSON.stringify({
        rules: [
          {
            name: 'echo',
            pattern: {type: ['t']},
            actions: [{type: 'exec', command: ['echo', '{{data.x}}']}],
            retry: {maxAttempts: 2, backoff: '10ms'},
          },
        ],
      }),
    )
    const trigger = await run(['trigger', 't', '--data', '{"x":"a\\u0000b"}', '--json'], {home})
    expect(trigger.code).to.equal(1)
    expect(JSON.parse(trigger.stdout).actions[0]).to.include({outcome: 'dead-lettered', attempts: 2})
  })

  it('never lets event data choose the program of an exec action', async () => {
    writeFileSync(
      join(home, 'rules.json'),
      JSON.stringify({
        rules: [
          {name: 'x', pattern: {type: ['t']}, actions: [{type: 'exec', command: ['{{data.prog}}', '{{data.arg}}']}]},
        ],
      }),
    )
    const result = await run(['trigger', 't', '--data', '{"prog":"touch","arg":"pwned"}'], {home})
    expect(result.code).to.equal(2)
    expect(result.stderr).to.match(/command\[0\]: the program cannot be a template/)
    expect(existsSync(join(home, 'pwned'))).to.equal(false)
  })

  it('redrive stops at a full queue instead of overfilling it', async () => {
    await run(['queue', 'create', 'jobs', '--max-length', '2', '--max-deliveries', '1'], {home})
    for (let i = 0; i < 5; i++) {
      await run(['publish', 'jobs', `m${i}`], {home})
      const [d] = jsonLines<{receipt: string}>(
        (await run(['consume', 'jobs', '--ack', 'manual', '--json'], {home})).stdout,
      )
      await run(['nack', '--dead-letter', d.receipt], {home})
    }
    const result = await run(['dlq', 'redrive', 'jobs', '--yes', '--json'], {home})
    expect(JSON.parse(result.stdout)).to.deep.include({moved: 2, stoppedFull: true})
    expect(await depth(home, 'jobs')).to.equal(2)
  })

  it('nack --dead-letter on a queue without a dead-letter queue releases the message, with a note', async () => {
    await run(['queue', 'create', 'plain', '--dead-letter-queue', 'none'], {home})
    await run(['publish', 'plain', 'x'], {home})
    const [d] = jsonLines<{receipt: string}>(
      (await run(['consume', 'plain', '--ack', 'manual', '--json'], {home})).stdout,
    )
    const result = await run(['nack', '--dead-letter', d.receipt], {home})
    expect(result.code).to.equal(0)
    expect(result.stderr).to.match(/released, not dead-lettered/)
    expect((await run(['consume', 'plain'], {home})).stdout).to.equal('x\n')
  })

  it('rule add from many processes at once loses no rule', async () => {
    const runs = await Promise.all(
      Array.from({length: 8}, (_, i) => mq(['rule', 'add', `r${i}`, '--type', `t${i}`, '--log'], {home})),
    )
    expect(
      runs.map((r) => r.code),
      runs.map((r) => r.stderr).join(''),
    ).to.deep.equal(Array(8).fill(0))
    expect((await run(['rule', 'list'], {home})).stdout.trim().split('\n').sort()).to.deep.equal(
      Array.from({length: 8}, (_, i) => `r${i}`).sort(),
    )
  })

  it('events replay leaves the original outcome in the journal', async () => {
    writeFileSync(
      join(home, 'rules.json'),
      JSON.stringify({
        rules: [
          {name: 'bad', pattern: {type: ['t']}, actions: [{type: 'exec', command: ['false']}], retry: {maxAttempts: 1}},
        ],
      }),
    )
    await run(['trigger', 't'], {home})
    await run(['rule', 'disable', 'bad'], {home})
    await run(['events', 'replay', '--since', '1h'], {home})
    const [event] = JSON.parse((await run(['events', 'list', '--json'], {home})).stdout)
    expect(event).to.deep.include({status: 'failed', rules: ['bad']})
  })

  it('a trigger retried after its first run was killed runs the event instead of calling it a duplicate', async () => {
    const pidFile = join(home, 'action.pid')
    const done = join(home, 'done')
    writeFileSync(
      join(home, 'rules.json'),
      JSON.stringify({
        rules: [
          {
            name: 'deploy',
            pattern: {type: ['deploy']},
            actions: [
              {
                type: 'exec',
                command: [
                  'sh',
                  '-c',
                  `[ -e ${pidFile} ] && { touch ${done}; exit 0; }; echo $$ > ${pidFile}; exec sleep 60`,
                ],
              },
            ],
          },
        ],
      }),
    )
    const first = start(['trigger', 'deploy', '--id', 'build-7', '--source', 'ci'], {home})
    await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '', 'the action to start')
    first.kill('SIGKILL')
    await first.done
    process.kill(-Number(readFileSync(pidFile, 'utf8')), 'SIGKILL')
    const retried = await run(['trigger', 'deploy', '--id', 'build-7', '--source', 'ci', '--json'], {home})
    expect(retried.code, retried.stderr).to.equal(0)
    expect(JSON.parse(retried.stdout)).to.not.have.property('duplicateOf')
    expect(existsSync(done)).to.equal(true)
    expect(JSON.parse((await run(['events', 'list', '--json'], {home})).stdout)[0].status).to.equal('done')
  })

  it('a topic’s max age applies to readers too', async () => {
    await run(['topic', 'create', 't', '--max-age', '300ms'], {home})
    await run(['publish', 't', 'old'], {home})
    await sleep(500) // time passing is the subject: past the topic's max age
    expect((await run(['subscribe', 't', '--all'], {home})).code).to.equal(3)
  })

  it('global flags may come before the command', async () => {
    const elsewhere = tempHome()
    expect((await run(['--home', elsewhere, 'publish', 'q', 'x'], {home})).code).to.equal(0)
    expect((await run(['--home', elsewhere, '--json', 'queue', 'stats', 'q'], {home})).stdout).to.match(/"depth":1/)
  })

  it('flag errors read as one plain line', async () => {
    const result = await run(['publish', 'q', 'x', '--priority', '12'], {home})
    expect(result.code).to.equal(2)
    expect(result.stderr).to.match(/^error: --priority must be at most 9; see `mq publish --help`\n$/)
    expect((await run(['queue', 'update', 'q', '--unbounded', '--max-length', '5'], {home})).code).to.equal(2)
  })

  it('--discard-expired undoes --dead-letter-expired', async () => {
    await run(['queue', 'create', 'q', '--dead-letter-expired'], {home})
    const updated = await run(['queue', 'update', 'q', '--discard-expired', '--json'], {home})
    expect(JSON.parse(updated.stdout).settings.deadLetterExpired).to.equal(false)
  })

  it('an empty broker.db someone else created becomes a private broker', async () => {
    writeFileSync(join(home, 'broker.db'), '', {mode: 0o644})
    expect((await run(['publish', 'q', 'x'], {home})).code).to.equal(0)
    expect(statSync(join(home, 'broker.db')).mode & 0o777).to.equal(0o600)
  })

  it('bad input does not create a broker folder', async () => {
    const fresh = join(home, 'not-yet')
    expect((await run(['publish', 'bad name!', 'x'], {home: fresh})).code).to.equal(2)
    expect((await run(['consume', 'q', '--wait', 'soon'], {home: fresh})).code).to.equal(2)
    expect(existsSync(fresh)).to.equal(false)
  })
})
