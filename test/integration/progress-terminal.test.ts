import {expect} from 'chai'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {mq, run, tempHome} from '../helpers.js'
import {needsTmux, openTerminals, shellQuote} from '../terminal.js'

describe('progress of long operations', function () {
  this.timeout(60_000)
  const openTerminal = openTerminals()

  async function deadLetters(home: string, count: number): Promise<void> {
    await run(['queue', 'create', 'jobs'], {home})
    const lines = Array.from({length: count}, (_, i) => `m${i}`).join('\n')
    expect((await run(['publish', 'jobs.dlq', '--lines'], {home, input: lines})).code).to.equal(0)
  }

  it('at a terminal, dlq redrive shows a bar with count, rate and ETA on stderr, then clears it', async function () {
    needsTmux(this)
    const home = tempHome()
    await deadLetters(home, 600)
    const terminal = openTerminal(['dlq', 'redrive', 'jobs', '--rate', '150/s', '--yes'], {MQ_HOME: home})
    const screen = await terminal.waitFor(
      /redriving dead letters of jobs +\[#*\.+\] +\d+% [\d,]+\/600 messages +\d+\/s +ETA \d+s/,
      'the bar',
    )
    expect(screen).to.not.match(/\[exit/)
    await terminal.waitFor(/\[exit 0\]/)
    const end = terminal.screen()
    expect(end).to.include('redrove 600 of 600 examined messages in jobs.dlq to jobs')
    expect(end).to.not.include('redriving dead letters') // the bar's line was cleared
  })

  it('at a terminal, publish --lines from a file shows how far through the file it is', async function () {
    needsTmux(this)
    const home = tempHome()
    const file = join(home, 'lines.txt')
    writeFileSync(file, Array.from({length: 30_000}, (_, i) => `line ${i}`).join('\n'))
    // A queue that blocks when full holds the publish partway through the file until a consumer comes.
    await run(['queue', 'create', 'slow', '--max-length', '10000', '--overflow', 'block'], {home})
    const terminal = openTerminal(['publish', 'slow', '--lines'], {MQ_HOME: home}, `< ${shellQuote(file)} > /dev/null`)
    const blocked = await terminal.waitFor(
      /publishing to slow +\[#+\.+\] +(\d+)% ([\d,]+) messages/,
      'the bar, held by the full queue',
    )
    const [, percent, count] = /(\d+)% ([\d,]+) messages/.exec(blocked)!
    expect(Number(percent)).to.be.above(0).and.below(100)
    expect(Number(count.replaceAll(',', ''))).to.be.at.most(10_000)
    const consumer = await mq(['consume', 'slow', '-n', '30000', '--wait', '30s'], {home, timeoutMs: 40_000})
    expect(consumer.code).to.equal(0)
    expect(consumer.stdout.trim().split('\n')).to.have.length(30_000)
    await terminal.waitFor(/\[exit 0\]/)
    expect(terminal.screen()).to.not.include('publishing to slow')
  })

  it('at a terminal, consume -n N into a file shows the draining; to the terminal itself, no bar', async function () {
    needsTmux(this)
    const home = tempHome()
    await run(['publish', 'jobs', '--lines'], {home, input: Array.from({length: 600}, (_, i) => `m${i}`).join('\n')})
    const out = join(home, 'out.txt')
    const terminal = openTerminal(
      ['consume', 'jobs', '-n', '500', '--rate', '200/s'],
      {MQ_HOME: home},
      `> ${shellQuote(out)}`,
    )
    await terminal.waitFor(/consuming jobs +\[#*\.+\] +\d+% [\d,]+\/500 messages +\d+\/s +ETA \d+s/, 'the bar')
    await terminal.waitFor(/\[exit 0\]/)
    expect(terminal.screen()).to.not.include('consuming jobs')
    const direct = openTerminal(['consume', 'jobs', '-n', '100', '--rate', '200/s'], {MQ_HOME: home})
    await direct.waitFor(/\[exit 0\]/)
    expect(direct.screen()).to.include('m599').and.not.include('consuming jobs')
  })

  it('at a terminal, events replay shows its progress', async function () {
    needsTmux(this)
    const home = tempHome()
    writeFileSync(
      join(home, 'rules.json'),
      JSON.stringify({
        rules: [{name: 'slow', pattern: {type: ['job']}, actions: [{type: 'exec', command: ['sleep', '0.2']}]}],
      }),
    )
    for (let i = 0; i < 8; i++) expect((await run(['trigger', 'job'], {home})).code).to.equal(0)
    const terminal = openTerminal(['events', 'replay', '--from', '1'], {MQ_HOME: home}, '> /dev/null')
    await terminal.waitFor(/replaying events +\[#*\.+\] +\d+% \d\/8 events/, 'the bar')
    await terminal.waitFor(/\[exit 0\]/)
    expect(terminal.screen()).to.not.include('replaying events')
  })

  it('in a pipe or with --json: no bar, nothing on stderr', async () => {
    const home = tempHome()
    await deadLetters(home, 3000)
    const redrive = await mq(['dlq', 'redrive', 'jobs', '--json', '--yes'], {home})
    expect(redrive.code).to.equal(0)
    expect(redrive.stderr).to.equal('')
    expect(JSON.parse(redrive.stdout)).to.include({moved: 3000})
    const purge = await mq(['queue', 'purge', 'jobs', '--yes'], {home})
    expect(purge.code).to.equal(0)
    expect(purge.stderr).to.equal('')
  })
})
