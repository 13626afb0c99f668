import {expect} from 'chai'
import {existsSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {jsonLines, run, tempHome} from '../helpers.js'

const event = (id: string, type: string, data?: unknown) =>
  JSON.stringify({specversion: '1.0', id, source: 'ci', type, ...(data === undefined ? {} : {data})})

describe('rule match (CLI)', function () {
  this.timeout(30_000)
  let home: string
  let rules: string
  beforeEach(() => {
    home = tempHome()
    rules = join(home, 'ci-rules.json')
    writeFileSync(
      rules,
      JSON.stringify({
        rules: [
          {name: 'created', pattern: {type: ['order.created']}, actions: [{type: 'file', path: 'ran.jsonl'}]},
          {
            name: 'big',
            pattern: {data: {total: [{numeric: ['>', 100]}]}, $or: [{type: [{prefix: 'order.'}]}, {source: ['shop']}]},
            actions: [{type: 'exec', command: ['touch', 'ran']}],
          },
          {name: 'off', enabled: false, pattern: {type: ['order.created']}, actions: [{type: 'log'}]},
        ],
      }),
    )
  })

  it('prints the enabled rules each event matches, one line per event, in document order, and runs nothing', async () => {
    const input = [
      event('1', 'order.created', {total: 250}),
      '',
      event('2', 'order.created', {total: 5}),
      event('3', 'user.login'),
    ].join('\n')
    const result = await run(['rule', 'match', '--rules', rules], {home, input})
    expect(result.code, result.stderr).to.equal(0)
    expect(result.stdout).to.equal('created big\ncreated\n\n')
    expect(existsSync(join(home, 'ran.jsonl')) || existsSync(join(home, 'ran'))).to.equal(false)
    // Nothing is journalled: the broker folder holds no database afterwards.
    expect(existsSync(join(home, 'broker.db'))).to.equal(false)
  })

  it('reads files in order (and - for stdin); --json prints {"id","rules"} per event', async () => {
    const first = join(home, 'a.jsonl')
    writeFileSync(first, `${event('a1', 'order.paid', {total: 101})}\n`)
    const result = await run(['rule', 'match', first, '-', '--json', '--rules', rules], {
      home,
      input: `${event('s1', 'order.created')}\n`,
    })
    expect(result.code, result.stderr).to.equal(0)
    expect(jsonLines(result.stdout)).to.deep.equal([
      {id: 'a1', rules: ['big']},
      {id: 's1', rules: ['created']},
    ])
  })

  it('takes --rules from MQ_RULES as elsewhere', async () => {
    const result = await run(['rule', 'match'], {home, input: event('1', 'order.created'), env: {MQ_RULES: rules}})
    expect(result.stdout).to.equal('created\n')
  })

  it('exits 2 naming the file and line of a bad event', async () => {
    const file = join(home, 'events.jsonl')
    writeFileSync(
      file,
      [event('1', 'order.created'), '', '{"specversion":"1.0","id":"2","type":"x"}', event('3', 'x')].join('\n'),
    )
    const missing = await run(['rule', 'match', file, '--rules', rules], {home})
    expect(missing.code).to.equal(2)
    expect(missing.stderr).to.include(`line 3 of ${file}: invalid CloudEvent: required attribute "source" is missing`)
    const notJson = await run(['rule', 'match', '--rules', rules], {home, input: `${event('1', 'x')}\n{oops\n`})
    expect(notJson.code).to.equal(2)
    expect(notJson.stderr).to.match(/^error: line 2 of stdin: not valid JSON/)
    const absent = await run(['rule', 'match', join(home, 'nope.jsonl'), '--rules', rules], {home})
    expect(absent.code).to.equal(2)
    expect(absent.stderr).to.include('nope.jsonl does not exist')
  })

  it('keeps the rule index in the broker folder, and follows an edit of the rules document', async () => {
    const input = [event('1', 'order.created', {total: 250}), event('2', 'order.paid')].join('\n')
    const first = await run(['rule', 'match', '--rules', rules], {home, input})
    expect(first.stdout).to.equal('created big\n\n')
    expect(readdirSync(join(home, 'cache')).filter((file) => file.endsWith('.index'))).to.have.length(1)
    expect((await run(['rule', 'match', '--rules', rules], {home, input})).stdout).to.equal(first.stdout)
    writeFileSync(rules, readFileSync(rules, 'utf8').replace('"order.created"', '"order.paid"'))
    expect((await run(['rule', 'match', '--rules', rules], {home, input})).stdout).to.equal('big\ncreated\n')
  })

  it('goes through oclif the same way (help, unusual command lines)', async () => {
    const result = await run(['rule', 'match', '--rules', rules], {
      home,
      input: event('1', 'order.created'),
      env: {MQ_NO_FAST: '1'},
    })
    expect(result.code, result.stderr).to.equal(0)
    expect(result.stdout).to.equal('created\n')
  })
})
