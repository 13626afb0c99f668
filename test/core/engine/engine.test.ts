import {expect} from 'chai'
import {existsSync, readFileSync} from 'node:fs'
import {createServer, type IncomingMessage} from 'node:http'
import type {AddressInfo} from 'node:net'
import {join} from 'node:path'

import {buildEvent} from '../../../src/core/engine/cloudevents.js'
import {Engine} from '../../../src/core/engine/engine.js'
import {validateDocument} from '../../../src/core/engine/rules.js'
import {renderTemplate} from '../../../src/core/engine/template.js'
import {FileBroker} from '../../../src/core/file-broker/index.js'
import {tempHome} from '../../helpers.js'

describe('event engine', () => {
  let home: string
  let broker: FileBroker
  const logged: string[] = []
  beforeEach(() => {
    home = tempHome()
    broker = new FileBroker(home)
    logged.length = 0
  })
  afterEach(() => broker.close())

  const engine = (rules: unknown[]) =>
    new Engine({
      broker,
      journal: broker.journal,
      rules: validateDocument({rules}, 'rules.json'),
      baseDir: home,
      env: process.env,
      log: (line) => logged.push(line),
    })

  it('runs the actions of every matching rule and journals each attempt', async () => {
    const e = engine([
      {name: 'log-all', pattern: {type: [{prefix: 'order.'}]}, actions: [{type: 'log'}]},
      {name: 'file-created', pattern: {type: ['order.created']}, actions: [{type: 'file', path: 'out.jsonl'}]},
      {name: 'other', pattern: {type: ['user.created']}, actions: [{type: 'log'}]},
    ])
    const summary = await e.handle(buildEvent({type: 'order.created', data: {id: 7}}))
    expect(summary.matched).to.deep.equal(['log-all', 'file-created'])
    expect(summary.ok).to.equal(true)
    expect(logged).to.have.length(1)
    expect(JSON.parse(readFileSync(join(home, 'out.jsonl'), 'utf8')).data).to.deep.equal({id: 7})
    const record = await broker.journal.get(String(summary.seq))
    expect(record?.status).to.equal('done')
    expect((await broker.journal.runs(summary.seq)).map((r) => [r.rule, r.outcome])).to.deep.equal([
      ['log-all', 'ok'],
      ['file-created', 'ok'],
    ])
  })

  it('retries a failing action with backoff, then leaves a dead-letter record with the error, exit code and output', async () => {
    const e = engine([
      {
        name: 'flaky',
        pattern: {type: ['x']},
        actions: [{type: 'exec', command: ['sh', '-c', 'echo "went wrong" >&2; exit 7']}],
        retry: {maxAttempts: 3, backoff: '20ms'},
      },
    ])
    const started = Date.now()
    const summary = await e.handle(buildEvent({type: 'x'}))
    expect(summary.ok).to.equal(false)
    expect(summary.actions[0]).to.include({outcome: 'dead-lettered', attempts: 3, exitCode: 7})
    expect(Date.now() - started).to.be.at.least(20) // backed off between attempts
    const runs = await broker.journal.runs(summary.seq)
    expect(runs.map((r) => r.outcome)).to.deep.equal(['failed', 'failed', 'dead-lettered'])
    expect(runs[2]).to.include({exitCode: 7, error: 'exit 7'})
    expect(runs[2].outputTail).to.include('went wrong')
    expect(runs[2].target).to.equal('["sh","-c","echo \\"went wrong\\" >&2; exit 7"]')
    expect((await broker.journal.get(String(summary.seq)))?.status).to.equal('failed')
  })

  it('succeeds on a later attempt', async () => {
    const marker = join(home, 'marker')
    const e = engine([
      {
        name: 'second-time',
        pattern: {type: ['x']},
        actions: [{type: 'exec', command: ['sh', '-c', `[ -e ${marker} ] || { touch ${marker}; exit 1; }`]}],
        retry: {backoff: '10ms'},
      },
    ])
    const summary = await e.handle(buildEvent({type: 'x'}))
    expect(summary.actions[0]).to.include({outcome: 'ok', attempts: 2})
  })

  it('gives up when the retries would pass the maximum age', async () => {
    // a 1 h backoff: waiting for it instead of giving up would outlast the test's timeout
    const e = engine([
      {
        name: 'old',
        pattern: {type: ['x']},
        actions: [{type: 'exec', command: ['false']}],
        retry: {maxAttempts: 10, backoff: '1h', maxBackoff: '1h', maxAge: '500ms'},
      },
    ])
    const summary = await e.handle(buildEvent({type: 'x'}))
    expect(summary.actions[0]).to.include({outcome: 'dead-lettered', attempts: 1})
  })

  it('never executes event data: injection attempts stay inert argv items', async () => {
    const marker = join(home, 'pwned')
    const hostile = [
      `$(touch ${marker})`,
      `\`touch ${marker}\``,
      `; touch ${marker}`,
      `' ; touch ${marker} ; '`,
      `"\ntouch ${marker}\n"`,
      `| touch ${marker}`,
      `&& touch ${marker}`,
    ]
    const out = join(home, 'args.txt')
    const e = engine([
      {
        name: 'echo',
        pattern: {type: ['x']},
        actions: [
          {type: 'exec', command: ['sh', '-c', `printf '%s\\n' "$1" >> ${out}`, 'sh', '{{data.value}}']},
          {type: 'exec', command: ['printf', '%s|%s\\n', '{{data.value}}', '{{subject}}']},
          {type: 'exec', shell: true, command: `printf '%s\\n' "$MQ_EVENT_SUBJECT" > /dev/null; cat > /dev/null`},
          {type: 'publish', to: 'out', body: '{{data.value}}'},
        ],
      },
    ])
    for (const value of hostile) {
      // (a subject may not hold control characters, so newlines only travel in data)
      const summary = await e.handle(buildEvent({type: 'x', data: {value}, subject: value.replace(/\n/g, ' ')}))
      expect(summary.ok, JSON.stringify(summary)).to.equal(true)
    }
    expect(existsSync(marker)).to.equal(false)
    expect(readFileSync(out, 'utf8')).to.equal(hostile.map((v) => `${v}\n`).join(''))
    const published = await broker.receive('out', {max: 100, autoAck: true})
    expect(published.map((d) => d.body)).to.deep.equal(hostile)
  })

  it('refuses templates in a shell command at validation', () => {
    expect(() =>
      validateDocument(
        {
          rules: [
            {name: 'r', pattern: {type: ['x']}, actions: [{type: 'exec', shell: true, command: 'echo {{data.x}}'}]},
          ],
        },
        'rules.json',
      ),
    ).to.throw(/rule "r" at actions\[0\]\.command: templates are not allowed in a shell command/)
  })

  it('gives exec actions the event on stdin and MQ_EVENT_* variables', async () => {
    const out = join(home, 'env.txt')
    const e = engine([
      {
        name: 'env',
        pattern: {type: ['x']},
        actions: [{type: 'exec', command: ['sh', '-c', `{ cat; echo; env | grep ^MQ_ | sort; } > ${out}`]}],
      },
    ])
    const event = buildEvent({type: 'x', subject: 'sub', data: {a: 1}})
    await e.handle(event)
    const text = readFileSync(out, 'utf8')
    expect(JSON.parse(text.split('\n')[0])).to.deep.equal(event)
    expect(text)
      .to.include(`MQ_EVENT_ID=${event.id}`)
      .and.include('MQ_EVENT_TYPE=x')
      .and.include('MQ_EVENT_SUBJECT=sub')
    expect(text).to.include('MQ_EVENT_DATA={"a":1}').and.include('MQ_RULE=env').and.include('MQ_ATTEMPT=1')
  })

  it('publishes to a queue or topic with a body template or the whole event', async () => {
    const e = engine([
      {
        name: 'p',
        pattern: {type: ['order.created']},
        actions: [
          {type: 'publish', to: 'orders.{{data.region}}', body: 'order {{data.id}}', headers: {id: '{{data.id}}'}},
          {type: 'publish', to: 'all'},
        ],
      },
    ])
    const event = buildEvent({type: 'order.created', data: {id: 5, region: 'eu'}})
    await e.handle(event)
    const [templated] = await broker.receive('orders.eu', {max: 1, autoAck: true})
    expect(templated.body).to.equal('order 5')
    expect(templated.headers).to.include({id: '5', 'ce-type': 'order.created', 'ce-id': event.id})
    const [whole] = await broker.receive('all', {max: 1, autoAck: true})
    expect(JSON.parse(whole.body)).to.deep.equal(event)
  })

  it('POSTs CloudEvents over HTTP in structured and binary mode, retrying on errors', async () => {
    const requests: {headers: IncomingMessage['headers']; body: string}[] = []
    let failures = 1
    const server = createServer((req, res) => {
      let body = ''
      req.on('data', (chunk) => (body += chunk))
      req.on('end', () => {
        requests.push({headers: req.headers, body})
        if (failures-- > 0) res.writeHead(503).end('busy')
        else res.writeHead(202).end()
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`
    try {
      const e = engine([
        {
          name: 'structured',
          pattern: {type: ['x']},
          actions: [{type: 'http', url, headers: {authorization: 'Bearer t'}}],
          retry: {backoff: '10ms'},
        },
        {name: 'binary', pattern: {type: ['x']}, actions: [{type: 'http', url, mode: 'binary'}], concurrency: 'serial'},
      ])
      const event = buildEvent({type: 'x', data: {n: 1}, subject: 's'})
      const summary = await e.handle(event)
      expect(summary.ok).to.equal(true)
      const structured = requests.filter((r) => r.headers['content-type']?.startsWith('application/cloudevents+json'))
      expect(structured.length).to.be.at.least(1)
      expect(JSON.parse(structured.at(-1)!.body)).to.deep.equal(event)
      expect(structured[0].headers.authorization).to.equal('Bearer t')
      const binary = requests.find((r) => r.headers['ce-id'] === event.id)!
      expect(binary.headers).to.include({
        'ce-type': 'x',
        'ce-source': event.source,
        'ce-subject': 's',
        'ce-specversion': '1.0',
        'content-type': 'application/json',
      })
      expect(JSON.parse(binary.body)).to.deep.equal({n: 1})
      const runs = await broker.journal.runs(summary.seq)
      expect(runs.some((r) => r.httpStatus === 503 && r.outcome === 'failed')).to.equal(true)
    } finally {
      server.close()
    }
  })

  it('ignores a repeat of the same source and id within the dedup window', async () => {
    const e = engine([{name: 'l', pattern: {type: ['x']}, actions: [{type: 'log'}]}])
    const event = buildEvent({type: 'x', id: 'fixed', source: 'test'})
    const first = await e.handle(event)
    const second = await e.handle(event)
    expect(second.duplicateOf).to.equal(first.seq)
    expect(logged).to.have.length(1)
  })

  it('concurrency serial runs one at a time; drop skips while running', async () => {
    const log = join(home, 'log')
    const slow = {type: 'exec', command: ['sh', '-c', `echo start >> ${log}; sleep 0.3; echo end >> ${log}`]}
    const serial = engine([{name: 's', pattern: {type: ['x']}, actions: [slow], concurrency: 'serial'}])
    await Promise.all([serial.handle(buildEvent({type: 'x'})), serial.handle(buildEvent({type: 'x'}))])
    expect(readFileSync(log, 'utf8')).to.equal('start\nend\nstart\nend\n')
    const drop = engine([{name: 'd', pattern: {type: ['y']}, actions: [slow], concurrency: 'drop'}])
    const results = await Promise.all([drop.handle(buildEvent({type: 'y'})), drop.handle(buildEvent({type: 'y'}))])
    expect(results.map((r) => r.actions[0].outcome).sort()).to.deep.equal(['dropped', 'ok'])
  })

  it('a serial rule that cannot get its turn within its retry age gives up instead of running alongside', async () => {
    const log = join(home, 'serial.log')
    const e = engine([
      {
        name: 's',
        pattern: {type: ['x']},
        actions: [{type: 'exec', command: ['sh', '-c', `echo start >> ${log}; sleep 0.8; echo end >> ${log}`]}],
        concurrency: 'serial',
        retry: {maxAge: '200ms'},
      },
    ])
    const results = await Promise.all([e.handle(buildEvent({type: 'x'})), e.handle(buildEvent({type: 'x'}))])
    expect(results.map((r) => r.actions[0].outcome).sort()).to.deep.equal(['dead-lettered', 'ok'])
    expect(readFileSync(log, 'utf8')).to.equal('start\nend\n')
  })

  it('renders templates: paths, arrays, the whole event, missing values', () => {
    const event = buildEvent({type: 't', data: {order: {id: 42, items: [{sku: 'a'}]}, flag: true}})
    expect(
      renderTemplate('{{type}}/{{data.order.id}}/{{data.order.items[0].sku}}/{{data.flag}}/{{data.missing}}', event),
    ).to.equal('t/42/a/true/')
    expect(JSON.parse(renderTemplate('{{event}}', event))).to.deep.equal(event)
    expect(renderTemplate('{{ data.order }}', event)).to.equal('{"id":42,"items":[{"sku":"a"}]}')
  })

  it('validates hand-edited documents, naming the rule and the path', () => {
    const bad = (rules: unknown, pattern: RegExp) =>
      expect(() => validateDocument({rules}, 'rules.json')).to.throw(pattern)
    bad([{name: 'a', pattern: {type: 'x'}, actions: [{type: 'log'}]}], /rule "a" at pattern\.type: /)
    bad([{name: 'a', pattern: {type: ['x']}, actions: []}], /rule "a" at actions: must be a non-empty array/)
    bad(
      [{name: 'a', pattern: {type: ['x']}, actions: [{type: 'exec', command: 'ls'}]}],
      /rule "a" at actions\[0\]\.command: must be a non-empty array of strings/,
    )
    bad(
      [{name: 'a', pattern: {type: ['x']}, actions: [{type: 'teleport'}]}],
      /rule "a" at actions\[0\]\.type: must be exec, publish, http, file or log/,
    )
    bad(
      [{name: 'a', pattern: {type: ['x']}, actions: [{type: 'log'}], retry: {backoff: 'soon'}}],
      /rule "a" at retry\.backoff: invalid duration/,
    )
    bad([{name: 'a', pattern: {type: ['x']}, actions: [{type: 'log'}], concurrency: 'many'}], /rule "a" at concurrency/)
    bad(
      [
        {name: 'a', pattern: {type: ['x']}, actions: [{type: 'log'}]},
        {name: 'a', pattern: {type: ['y']}, actions: [{type: 'log'}]},
      ],
      /used twice/,
    )
    bad([{pattern: {type: ['x']}, actions: [{type: 'log'}]}], /rule #1 at name: must be a string/)
    bad(
      [{name: 'a', pattern: {type: ['x']}, actions: [{type: 'http', url: 'ftp://x'}]}],
      /actions\[0\]\.url: must be an http/,
    )
  })
})
