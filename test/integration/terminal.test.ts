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
    terminal = Terminal.start(['consume', 'jobs', '--wait', '20s'], {MQ_HOME: home})
    await terminal.waitFor(/waiting for messages on jobs/)
    await mq(['publish', 'jobs', 'hello'], {home})
    await terminal.waitFor(/\[exit 0\]/)
    const screen = terminal.screen(true)
    expect(screen).to.include('hello')
    expect(screen).to.match(/\u001B\[[0-9;]*m/) // chalk styled the header line
    expect(terminal.screen()).to.not.include('waiting for messages') // spinner cleared
  })
})
