import {expect} from 'chai'
import {writeFileSync} from 'node:fs'
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {join} from 'node:path'

import {buildEvent} from '../../../src/core/engine/cloudevents.js'
import {Engine} from '../../../src/core/engine/engine.js'
import {validateDocument} from '../../../src/core/engine/rules.js'
import {FileBroker} from '../../../src/core/file-broker/index.js'
import {mq, tempHome} from '../../helpers.js'

/** A local HTTP server that records the path and query of every request it gets. */
async function recordingServer(): Promise<{server: Server; port: number; paths: string[]}> {
  const paths: string[] = []
  const server = createServer((req, res) => {
    paths.push(req.url ?? '')
    req.resume()
    req.on('end', () => res.writeHead(204).end())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {server, port: (server.address() as AddressInfo).port, paths}
}

describe('http actions: event data fills in the URL, never chooses where it goes', () => {
  let home: string
  let broker: FileBroker
  beforeEach(() => {
    home = tempHome()
    broker = new FileBroker(home)
  })
  afterEach(() => broker.close())

  const engine = (url: string) =>
    new Engine({
      broker,
      journal: broker.journal,
      rules: validateDocument(
        {rules: [{name: 'hook', pattern: {type: ['x']}, actions: [{type: 'http', url}], retry: {maxAttempts: 1}}]},
        'rules.json',
      ),
      baseDir: home,
      env: process.env,
      log: () => {},
    })

  it('percent-encodes template values as path and query components, so the request goes where the rule says', async () => {
    const {server, port, paths} = await recordingServer()
    try {
      const e = engine(`http://127.0.0.1:${port}/hook/{{data.n}}/x?q={{data.q}}&n={{data.n}}#{{data.n}}`)
      const summary = await e.handle(buildEvent({type: 'x', data: {n: '1:9999/x?', q: 'a&b=c#d e'}}))
      expect(summary.ok, JSON.stringify(summary)).to.equal(true)
      expect(paths).to.deep.equal(['/hook/1%3A9999%2Fx%3F/x?q=a%26b%3Dc%23d%20e&n=1%3A9999%2Fx%3F'])
    } finally {
      server.close()
    }
  })

  it('refuses a value that would make a path segment "." or "..", and sends nothing', async () => {
    const {server, port, paths} = await recordingServer()
    try {
      const e = engine(`http://127.0.0.1:${port}/api/{{data.n}}/hook`)
      for (const n of ['..', '.']) {
        const summary = await e.handle(buildEvent({type: 'x', data: {n}}))
        expect(summary.ok).to.equal(false)
        expect(summary.actions[0].error).to.match(/path segment/)
      }
      // a dot inside a segment, or an encoded dot, is just data
      expect((await e.handle(buildEvent({type: 'x', data: {n: '..a'}}))).ok).to.equal(true)
      expect((await e.handle(buildEvent({type: 'x', data: {n: '%2e%2e'}}))).ok).to.equal(true)
      expect(paths).to.deep.equal(['/api/..a/hook', '/api/%252e%252e/hook'])
    } finally {
      server.close()
    }
  })

  it('refuses templates in the scheme, host or port when a document is validated', () => {
    const bad = (url: string) =>
      expect(() =>
        validateDocument({rules: [{name: 'a', pattern: {type: ['x']}, actions: [{type: 'http', url}]}]}, 'rules.json'),
      ).to.throw(/actions\[0\]\.url: (templates are not allowed in the scheme, host or port|must be an http)/)
    bad('http://127.0.0.{{data.n}}:8080/hook')
    bad('http://{{data.host}}/hook')
    bad('http://hooks.example.com:{{data.port}}/hook')
    bad('http://user:{{data.pw}}@hooks.example.com/hook')
    bad('http://hooks.example.com{{data.path}}')
    bad('{{data.scheme}}://hooks.example.com/hook')
    // templates after the authority are fine
    validateDocument(
      {
        rules: [
          {
            name: 'a',
            pattern: {type: ['x']},
            actions: [{type: 'http', url: 'https://hooks.example.com/{{type}}?id={{id}}'}],
          },
        ],
      },
      'rules.json',
    )
  })

  it('rule add refuses a templated host (exit 2), and so does loading a hand-edited rules.json', async () => {
    const add = await mq(['rule', 'add', 'hook', '--type', 'x', '--http', 'http://127.0.0.{{data.n}}:8080/hook'], {
      home,
    })
    expect(add.code, add.stderr).to.equal(2)
    expect(add.stderr).to.match(/url: templates are not allowed in the scheme, host or port/)
    writeFileSync(
      join(home, 'rules.json'),
      JSON.stringify({
        rules: [{name: 'hook', pattern: {type: ['x']}, actions: [{type: 'http', url: 'http://{{data.host}}/hook'}]}],
      }),
    )
    const trigger = await mq(['trigger', 'x', '--data', '{"host":"127.0.0.1:9999"}'], {home})
    expect(trigger.code, trigger.stderr).to.equal(2)
    expect(trigger.stderr).to.match(/rule "hook" at actions\[0\]\.url: templates are not allowed/)
  })
})
