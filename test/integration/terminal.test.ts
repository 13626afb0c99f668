import {expect} from 'chai'

import {jsonLines, mq, tempHome} from '../helpers.js'
import {needsTmux, openTerminals} from '../terminal.js'

describe('for a person at a terminal (tmux)', function () {
  this.timeout(30_000)
  const openTerminal = openTerminals()
  before(function () {
    needsTmux(this)
  })

  it('prompts for a missing queue name, listing the existing queues, then consumes it', async () => {
    const home = tempHome()
    await mq(['publish', 'alpha', 'from alpha'], {home})
    await mq(['publish', 'beta', 'from beta'], {home})
    const terminal = openTerminal(['consume'], {MQ_HOME: home})
    await terminal.waitFor(/Which queue\?/)
    const screen = terminal.screen()
    expect(screen).to.include('alpha').and.include('beta')
    terminal.keys(['Down', 'Enter'])
    await terminal.waitFor(/\[exit 0\]/)
    expect(terminal.screen())
      .to.match(/#\d+ beta/)
      .and.include('from beta')
  })

  it('shows a spinner on stderr while waiting and colours the output', async () => {
    const home = tempHome()
    const terminal = openTerminal(['consume', 'jobs', '--wait', '10m'], {MQ_HOME: home})
    await terminal.waitFor(/waiting for messages on jobs/)
    await mq(['publish', 'jobs', 'hello'], {home})
    await terminal.waitFor(/\[exit 0\]/)
    const screen = terminal.screen(true)
    expect(screen).to.include('hello')
    // eslint-disable-next-line no-control-regex
    expect(screen).to.match(/\u001B\[[0-9;]*m/) // chalk styled the header line
    expect(terminal.screen()).to.not.include('waiting for messages') // spinner cleared
  })

  it('consume --interactive: triage each message with one keypress (ack, retry, dead-letter, skip); q ends with the summary, exit 0', async () => {
    const home = tempHome()
    await mq(['publish', 'jobs', '--lines', '-H', 'source=import'], {home, input: 'first\nsecond\nthird\nfourth\n'})
    const terminal = openTerminal(['consume', 'jobs', '--interactive'], {MQ_HOME: home})
    await terminal.waitFor(
      /first[\s\S]*source: import[\s\S]*\[a\] ack {2}\[r\] retry {2}\[d\] dead-letter {2}\[s\] skip {2}\[q\] quit/,
    )
    terminal.keys(['a'], true)
    await terminal.waitFor(/second[\s\S]*\[a\] ack/)
    terminal.keys(['d'], true)
    await terminal.waitFor(/third[\s\S]*\[a\] ack/)
    terminal.keys(['s'], true)
    await terminal.waitFor(/fourth[\s\S]*\[a\] ack/)
    terminal.keys(['r'], true)
    // "retry" puts fourth back: it comes up again with attempt 2; quit there.
    await terminal.waitFor(/attempt 2[\s\S]*\[a\] ack/)
    terminal.keys(['q'], true)
    await terminal.waitFor(/\[exit 0\]/)
    expect(terminal.screen()).to.include('acked 1, retried 1, sent back 0, dead-lettered 1, skipped 1 (released)')
    const stats = JSON.parse((await mq(['queue', 'stats', 'jobs', '--json'], {home})).stdout)
    expect({
      ready: stats.ready,
      inFlight: stats.inFlight,
      deadLettered: stats.deadLettered,
      acked: stats.totals.acked,
    }).to.deep.equal({
      ready: 2, // third (skipped, released at the end) and fourth (quit, released as it was)
      inFlight: 0,
      deadLettered: 1,
      acked: 1,
    })
    const dead = JSON.parse((await mq(['consume', 'jobs.dlq', '--json'], {home})).stdout)
    expect(dead).to.deep.include({body: 'second'})
    expect(dead.headers['x-dead-letter-reason']).to.equal('rejected')
  })

  it('consume X.dlq --interactive: r sends a dead letter back to its queue (as redrive does); d is not offered', async () => {
    const home = tempHome()
    await mq(['publish', 'jobs', '--lines'], {home, input: 'broken\nalso broken\n'})
    const failed = await mq(['consume', 'jobs', '-n', '2', '--exec', 'exit 65'], {home})
    expect(failed.code).to.equal(1)
    const terminal = openTerminal(['consume', 'jobs.dlq', '--interactive'], {MQ_HOME: home})
    await terminal.waitFor(/broken[\s\S]*\[a\] ack \(discard\) {2}\[r\] send back {2}\[s\] skip {2}\[q\] quit/)
    expect(terminal.screen()).to.not.include('[d]')
    terminal.keys(['r'], true)
    await terminal.waitFor(/also broken[\s\S]*\[r\] send back/)
    terminal.keys(['q'], true)
    await terminal.waitFor(/\[exit 0\]/)
    expect(terminal.screen()).to.include('acked 0, retried 0, sent back 1, dead-lettered 0, skipped 0 (released)')
    const back = JSON.parse((await mq(['consume', 'jobs', '--json'], {home})).stdout)
    expect(back.body).to.equal('broken')
    expect(back.headers['x-redrive-count']).to.equal('1')
    const stillDead = JSON.parse((await mq(['queue', 'stats', 'jobs.dlq', '--json'], {home})).stdout)
    expect(stillDead.ready).to.equal(1) // "also broken", released as it was by q
  })

  it('Ctrl-C at any prompt exits 130 quietly', async function () {
    this.timeout(120_000) // four terminals, one after the other
    const home = tempHome()
    await mq(['publish', 'alpha', 'x'], {home})
    await mq(['publish', 'jobs', 'x'], {home})
    for (const [args, prompt] of [
      [['consume'], /Which queue\?/],
      [['queue', 'purge', 'alpha'], /Remove every message from alpha\?/],
      [['queue', 'create'], /New queue name:/],
      [['consume', 'jobs', '--interactive'], /\[a\] ack/],
    ] as const) {
      const terminal = openTerminal([...args], {MQ_HOME: home})
      await terminal.waitFor(prompt)
      terminal.keys(['C-c'])
      await terminal.waitFor(/\[exit \d+\]/)
      const screen = terminal.screen()
      expect(screen, args.join(' ')).to.include('[exit 130]')
      expect(screen, args.join(' ')).to.not.match(/error|unexpected|report it/i)
      terminal.close()
    }
    // Nothing was changed: the purge was not confirmed, the triaged message went back as it was.
    const stats = JSON.parse((await mq(['queue', 'stats', 'jobs', '--json'], {home})).stdout)
    expect({ready: stats.ready, inFlight: stats.inFlight}).to.deep.equal({ready: 1, inFlight: 0})
    expect(jsonLines((await mq(['queue', 'peek', 'jobs', '--json'], {home})).stdout)[0].deliveries).to.equal(0)
    expect(JSON.parse((await mq(['queue', 'stats', 'alpha', '--json'], {home})).stdout).ready).to.equal(1)
  })

  it('queue create and topic create ask for a new name, checked as it is typed', async () => {
    const home = tempHome()
    await mq(['publish', 'existing', 'x'], {home})
    const terminal = openTerminal(['queue', 'create'], {MQ_HOME: home})
    await terminal.waitFor(/New queue name:/)
    expect(terminal.screen()).to.not.include('existing') // a text input, not a picker
    terminal.keys(['bad name'], true)
    await terminal.waitFor(/queue name "bad name" has an invalid character " "/)
    terminal.keys(['Enter']) // refused while invalid
    await terminal.waitFor(/invalid character/)
    terminal.keys(['BSpace', 'BSpace', 'BSpace', 'BSpace', 'BSpace'])
    terminal.keys(['_jobs'], true)
    await terminal.waitFor(/New queue name: bad_jobs\s*\n/)
    expect(terminal.screen()).to.not.include('invalid character')
    terminal.keys(['Enter'])
    await terminal.waitFor(/\[exit 0\]/)
    expect(terminal.screen()).to.include('queue bad_jobs: visibility timeout 30s')
    const topic = openTerminal(['topic', 'create'], {MQ_HOME: home})
    await topic.waitFor(/New topic name:/)
    topic.keys(['news.daily'], true)
    topic.keys(['Enter'])
    await topic.waitFor(/\[exit 0\]/)
    expect(topic.screen()).to.include('topic news.daily: keeps up to 7d')
  })

  it('--no-color applies to stderr at a terminal too', async () => {
    const home = tempHome()
    const terminal = openTerminal(['consume', 'missing', '--no-color'], {MQ_HOME: home})
    await terminal.waitFor(/\[exit 2\]/)
    expect(terminal.screen(true)).to.include('error: queue missing does not exist')
    // eslint-disable-next-line no-control-regex
    expect(terminal.screen(true)).to.not.match(/\u001B\[3\dm/)
    const coloured = openTerminal(['consume', 'missing'], {MQ_HOME: home})
    await coloured.waitFor(/\[exit 2\]/)
    // eslint-disable-next-line no-control-regex
    expect(coloured.screen(true)).to.match(/\u001B\[31merror:/)
  })
})
