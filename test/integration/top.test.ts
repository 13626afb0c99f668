import {expect} from 'chai'

import {mq, tempHome} from '../helpers.js'
import {needsTmux, openTerminals} from '../terminal.js'

describe('mq top at a terminal (tmux)', function () {
  this.timeout(60_000)
  const openTerminal = openTerminals()
  before(function () {
    needsTmux(this)
  })

  it('shows live depths, sorts and filters by key, follows a resize, and q exits 0 with the terminal restored', async () => {
    const home = tempHome()
    await mq(['publish', 'jobs', '--lines'], {home, input: 'a\nb\nc\n'})
    await mq(['publish', 'emails', 'x'], {home})
    const terminal = openTerminal(['top', '--interval', '300ms'], {MQ_HOME: home})
    await terminal.waitFor(/^jobs +queue +3 /m, 'the first frame')
    expect(terminal.display('#{alternate_on} #{cursor_flag}')).to.equal('1 0') // full screen, cursor hidden
    expect(terminal.screen().trimEnd().split('\n').at(-1)).to.match(/^sort: n name {2}d depth .* q quit$/)

    // The depth follows what happens on the broker.
    await mq(['publish', 'jobs', '--lines'], {home, input: 'd\ne\n'})
    await terminal.waitFor(/^jobs +queue +5 /m, 'the new depth')
    expect(terminal.screen().indexOf('jobs ')).to.be.below(terminal.screen().indexOf('emails ')) // by depth

    terminal.keys(['n'], true)
    await terminal.waitFor(/sorted by name/)
    expect(terminal.screen().indexOf('emails ')).to.be.below(terminal.screen().indexOf('jobs '))

    terminal.keys(['/em'], true)
    await terminal.waitFor(/filter: em/, 'the filter prompt')
    terminal.keys(['Enter'])
    await terminal.waitFor(/sorted by name · filter "em"/)
    expect(terminal.screen()).to.not.match(/^jobs /m)

    terminal.resize(60, 16)
    const small = await terminal.waitFor(/^sort: n name .*…\s*$/m, 'the footer cut to 60 columns')
    const lines = small.split('\n')
    expect(lines.every((line) => line.length < 60)).to.equal(true)

    terminal.keys(['q'], true)
    await terminal.waitFor(/\[exit 0\]/)
    expect(terminal.display('#{alternate_on} #{cursor_flag}')).to.equal('0 1') // back on the main screen, cursor shown
    expect(terminal.screen()).to.not.include('QUEUES AND SUBSCRIPTIONS')
  })

  it('Ctrl-C also exits 0 and restores the terminal', async () => {
    const home = tempHome()
    await mq(['publish', 'jobs', 'x'], {home})
    const terminal = openTerminal(['top'], {MQ_HOME: home})
    await terminal.waitFor(/^jobs +queue +1 /m, 'the first frame')
    terminal.keys(['C-c'])
    await terminal.waitFor(/\[exit 0\]/)
    expect(terminal.display('#{alternate_on} #{cursor_flag}')).to.equal('0 1')
  })
})
