import {expect} from 'chai'

import {mq, tempHome} from '../helpers.js'
import {Terminal} from '../terminal.js'

describe('for a person at a terminal (tmux)', function () {
  this.timeout(30_000)
  let terminal: Terminal | undefined

  before(function () {
    if (!Terminal.available()) this.skip()
  })
  afterEach(() => {
    terminal?.close()
    terminal = undefined
  })

  it('prompts for a missing queue name, listing the existing queues, then consumes it', async () => {
    const home = tempHome()
    await mq(['publish', 'alpha', 'from alpha'], {home})
    await mq(['publish', 'beta', 'from beta'], {home})
    terminal = Terminal.start(['consume'], {MQ_HOME: home})
    await terminal.waitFor(/Which queue\?/)
    const screen = terminal.screen()
    expect(screen).to.include('alpha').and.include('beta')
    terminal.keys(['Down', 'Enter'])
    await terminal.waitFor(/\[exit 0\]/)
    expect(terminal.screen()).to.match(/#\d+ beta/).and.include('from beta')
  })

  it('shows a spinner on stderr while waiting and colours the output', async () => {
    const home = tempHome()
    terminal = Terminal.start(['consume', 'jobs', '--wait', '10m'], {MQ_HOME: home})
    await terminal.waitFor(/waiting for messages on jobs/)
    await mq(['publish', 'jobs', 'hello'], {home})
    await terminal.waitFor(/\[exit 0\]/)
    const screen = terminal.screen(true)
    expect(screen).to.include('hello')
    // eslint-disable-next-line no-control-regex
    expect(screen).to.match(/\u001B\[[0-9;]*m/) // chalk styled the header line
    expect(terminal.screen()).to.not.include('waiting for messages') // spinner cleared
  })

  it('consume --interactive: triage each message with one keypress (ack, retry, dead-letter, skip)', async () => {
    const home = tempHome()
    await mq(['publish', 'jobs', '--lines', '-H', 'source=import'], {home, input: 'first\nsecond\nthird\nfourth\n'})
    terminal = Terminal.start(['consume', 'jobs', '--interactive'], {MQ_HOME: home})
    await terminal.waitFor(/first[\s\S]*source: import[\s\S]*\[a\] ack/)
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
    await terminal.waitFor(/\[exit 130\]/)
    const stats = JSON.parse((await mq(['queue', 'stats', 'jobs', '--json'], {home})).stdout)
    expect({ready: stats.ready, inFlight: stats.inFlight, deadLettered: stats.deadLettered, acked: stats.totals.acked}).to.deep.equal({
      ready: 2, // third (skipped, released at the end) and fourth (quit, released)
      inFlight: 0,
      deadLettered: 1,
      acked: 1,
    })
    const dead = JSON.parse((await mq(['consume', 'jobs.dlq', '--json'], {home})).stdout)
    expect(dead).to.deep.include({body: 'second'})
    expect(dead.headers['x-dead-letter-reason']).to.equal('rejected')
  })
})
