import {expect} from 'chai'
import {appendFileSync, existsSync, readFileSync, renameSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {mq, start, tempHome, waitFor} from '../helpers.js'

describe('mq engine run: sources feed the rules', function () {
  this.timeout(40_000)

  it('runs a schedule, a watched file and a polled command through the rules, then stops on SIGTERM', async () => {
    const home = tempHome()
    const log = join(home, 'app.log')
    const state = join(home, 'state.txt')
    writeFileSync(log, 'old line, before the engine started\n')
    writeFileSync(state, 'v1')
    writeFileSync(
      join(home, 'rules.json'),
      JSON.stringify({
        rules: [
          {name: 'collect', pattern: {type: [{prefix: 'src.'}]}, actions: [{type: 'file', path: 'events.jsonl'}]},
        ],
        sources: [
          {name: 'tick', type: 'schedule', every: '300ms', event: {type: 'src.tick', data: {n: 1}}},
          {name: 'applog', type: 'watch-file', path: 'app.log', event: {type: 'src.line'}},
          {
            name: 'state',
            type: 'poll-command',
            command: ['cat', 'state.txt'],
            every: '200ms',
            event: {type: 'src.changed'},
          },
        ],
      }),
    )
    const engine = start(['engine', 'run'], {home, timeoutMs: 35_000})
    // Only whole lines: the engine may be half-way through appending one (or have just created the file).
    const events = () => {
      const text = existsSync(join(home, 'events.jsonl')) ? readFileSync(join(home, 'events.jsonl'), 'utf8') : ''
      return text
        .slice(0, text.lastIndexOf('\n') + 1)
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line))
    }
    const ofType = (type: string) => events().filter((e) => e.type === type)
    await waitFor(() => engine.stderr.includes('engine: running'), 'the engine to start')
    await waitFor(() => ofType('src.tick').length >= 2, 'two ticks')
    appendFileSync(log, 'first new line\nsecond new line\n')
    await waitFor(() => ofType('src.line').length === 2, 'two lines')
    expect(ofType('src.line').map((e) => e.data.line)).to.deep.equal(['first new line', 'second new line'])
    // rotation: the old file moves away, a new one starts
    renameSync(log, `${log}.1`)
    writeFileSync(log, 'after rotation\n')
    await waitFor(() => ofType('src.line').length === 3, 'the line after rotation')
    writeFileSync(state, 'v2')
    await waitFor(() => ofType('src.changed').length === 1, 'a change of the command output')
    expect(ofType('src.changed')[0].data).to.include({output: 'v2', previousOutput: 'v1', exitCode: 0})
    expect(ofType('src.tick')[0].data).to.include({n: 1}).and.have.property('scheduledAt')
    engine.kill('SIGTERM')
    const result = await engine.done
    expect(result.code).to.equal(130)
    const journal = JSON.parse(
      (await mq(['events', 'list', '--rule', 'collect', '--json', '-n', '1000'], {home})).stdout,
    )
    expect(journal.length).to.equal(events().length)
  })

  it('refuses a document without sources', async () => {
    const home = tempHome()
    writeFileSync(join(home, 'rules.json'), JSON.stringify({rules: []}))
    const result = await mq(['engine', 'run'], {home})
    expect(result.code).to.equal(2)
    expect(result.stderr).to.match(/declares no enabled sources/)
  })
})
