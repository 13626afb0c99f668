import {expect} from 'chai'
import {existsSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {isProcessAlive} from '../../src/core/process-alive.js'
import {
  daemonHttp,
  daemonStart,
  daemonStatus,
  jsonLines,
  killDaemon,
  mq,
  type MqProcess,
  run,
  start,
  startDaemon,
  stopDaemon,
  tempHome,
  waitFor,
} from '../helpers.js'

/** What POST /events answers. */
interface Accepted {
  accepted: {id: string}[]
}

const events = async (home: string) =>
  JSON.parse((await run(['events', 'list', '--json', '-n', '1000'], {home})).stdout) as {
    status: string
    event: {id: string}
  }[]
const daemonLog = async (home: string) => (await run(['daemon', 'logs', '-n', '1000'], {home})).stdout

describe('the daemon', function () {
  this.timeout(60_000)

  it('starts once (idempotent), reports its status, keeps its files private, and stops', async () => {
    const home = tempHome()
    const first = await startDaemon(home)
    expect(first).to.include({home, version: '0.1.0'})
    expect(first.http!.address).to.equal('127.0.0.1')
    expect(first).to.deep.equal({...(await daemonStatus(home)), uptimeMs: first.uptimeMs})
    const again = await mq(['daemon', 'start', '--json'], {home})
    expect(JSON.parse(again.stdout).pid).to.equal(first.pid)
    for (const file of ['daemon.pid', 'daemon.sock', 'daemon.token', 'daemon.log']) {
      expect(statSync(join(home, file)).mode & 0o077, file).to.equal(0)
    }
    expect(statSync(home).mode & 0o077).to.equal(0)
    expect((await mq(['daemon', 'stop'], {home})).code).to.equal(0)
    const stopped = await run(['daemon', 'status'], {home})
    expect(stopped.code).to.equal(3)
    expect(stopped.stderr).to.match(/no daemon runs/)
    expect(existsSync(join(home, 'daemon.sock'))).to.equal(false)
    expect(await daemonLog(home)).to.match(/started[\s\S]*draining[\s\S]*stopped/)
  })

  it('daemon logs -f follows the log as the daemon writes it', async () => {
    const home = tempHome()
    await startDaemon(home)
    const follower = start(['daemon', 'logs', '-f', '-n', '1'], {home})
    await waitFor(() => follower.stdout.includes('started'), 'the last line so far')
    expect((await run(['daemon', 'stop'], {home})).code).to.equal(0)
    await waitFor(() => follower.stdout.includes('daemon: stopped'), 'the lines written since')
    follower.kill('SIGINT')
    expect((await follower.done).code).to.equal(130)
  })

  it('replaces a stale pid file and socket left by a crashed daemon', async () => {
    const home = tempHome()
    const first = await startDaemon(home)
    killDaemon(home)
    await waitFor(() => !isProcessAlive(first.pid), 'the daemon to die')
    expect(existsSync(join(home, 'daemon.pid'))).to.equal(true)
    expect(existsSync(join(home, 'daemon.sock'))).to.equal(true)
    expect((await run(['daemon', 'status'], {home})).code).to.equal(3)
    // and a pid file naming some other, long-dead process
    writeFileSync(join(home, 'daemon.pid'), JSON.stringify({pid: 999_999, started: null}))
    writeFileSync(join(home, 'daemon.sock'), '')
    const second = await startDaemon(home)
    expect(second.pid).to.not.equal(first.pid)
  })

  it('publishes through the daemon; consumers on the folder see it; commands work if it dies', async () => {
    const home = tempHome()
    await startDaemon(home)
    // A wait longer than the test's timeout: only a consumer woken by the daemon's commit passes.
    const consumer = start(['consume', 'jobs', '--wait', '10m'], {home})
    await consumer.watching()
    const published = await mq(['publish', 'jobs', 'through the daemon', '--json'], {home})
    expect(published.code, published.stderr).to.equal(0)
    expect((await consumer.done).stdout).to.equal('through the daemon\n')
    expect((await daemonStatus(home))!.counts.published).to.equal(1)
    const pid = killDaemon(home)!
    await waitFor(() => !isProcessAlive(pid), 'the daemon to die')
    const fallback = await mq(['publish', 'jobs', 'no daemon now'], {home})
    expect(fallback.code, fallback.stderr).to.equal(0)
    expect((await run(['consume', 'jobs'], {home})).stdout).to.equal('no daemon now\n')
  })

  it('group commit keeps each client’s errors to itself (bad names, full queues)', async () => {
    const home = tempHome()
    await run(['queue', 'create', 'small', '--max-length', '1'], {home})
    await startDaemon(home)
    // Three clients at once (in this process, each with its own connection to the daemon).
    const runs = await Promise.all([
      run(['publish', 'small', 'fits'], {home}),
      run(['publish', 'ok', 'fine'], {home}),
      run(['publish', 'a..b', 'bad name'], {home}),
    ])
    expect(runs.map((r) => r.code)).to.deep.equal([0, 0, 2])
    expect((await daemonStatus(home))!.counts.published).to.equal(2) // the bad name never reached it
    const full = await run(['publish', 'small', 'too many'], {home})
    expect(full.code).to.equal(4)
    expect(full.stderr).to.match(/queue small is full/)
  })

  it('trigger hands the event over and returns at once; --wait waits for the actions', async () => {
    const home = tempHome()
    // The action cannot finish until the test lets it (the file go).
    const action = 'while [ ! -e go ]; do sleep 0.05; done; cat >> done.jsonl; echo >> done.jsonl'
    writeFileSync(
      join(home, 'rules.json'),
      JSON.stringify({
        rules: [{name: 'slow', pattern: {type: ['job']}, actions: [{type: 'exec', command: ['sh', '-c', action]}]}],
      }),
    )
    await startDaemon(home)
    const queued = await mq(['trigger', 'job', '--json'], {home})
    expect(queued.code, queued.stderr).to.equal(0)
    // It returned while the action could not finish: the daemon runs it in the background.
    expect(JSON.parse(queued.stdout)).to.include({queued: true})
    expect(existsSync(join(home, 'done.jsonl'))).to.equal(false)
    writeFileSync(join(home, 'go'), '')
    await waitFor(() => existsSync(join(home, 'done.jsonl')), 'the action to run in the daemon')
    const waited = await mq(['trigger', 'job', '--wait', '--json'], {home})
    expect(JSON.parse(waited.stdout)).to.deep.include({ok: true, matched: ['slow']})
    expect(readFileSync(join(home, 'done.jsonl'), 'utf8').trim().split('\n')).to.have.length(2)
    expect((await events(home)).map((e) => e.status)).to.deep.equal(['done', 'done'])
  })

  it('logs one line per action outcome (rule, action, outcome, duration) and one per event', async () => {
    const home = tempHome()
    writeFileSync(
      join(home, 'rules.json'),
      JSON.stringify({
        rules: [
          {name: 'keep', pattern: {type: ['job']}, actions: [{type: 'file', path: 'kept.jsonl'}]},
          {
            name: 'broken',
            pattern: {type: ['job']},
            actions: [{type: 'exec', command: ['sh', '-c', 'exit 3']}],
            retry: {maxAttempts: 2, backoff: '10ms'},
          },
        ],
      }),
    )
    await startDaemon(home)
    expect((await mq(['trigger', 'job'], {home})).code).to.equal(0)
    expect((await mq(['trigger', 'nobody.cares'], {home})).code).to.equal(0)
    const log = await waitFor(async () => {
      const text = (await mq(['daemon', 'logs'], {home})).stdout
      return /nobody\.cares .*no rule matched/.test(text) && /job .*FAILED/.test(text) ? text : undefined
    }, 'the event lines')
    expect(log).to.match(/event #1 job: rule keep action #1 file \S*kept\.jsonl ok after 1 attempt in \d+ms/)
    expect(log).to.match(/event #1 job: rule broken action #1 exec .* dead-lettered exit 3 after 2 attempts in \d+m?s/)
    expect(log).to.match(/event #1 job from \S+: FAILED \(rules: (keep, broken|broken, keep)\) in \d+m?s/)
    expect(log).to.match(/event #2 nobody\.cares from \S+: no rule matched in \d+m?s/)
    // the action lines come before their event's line
    expect(log.indexOf('rule keep action #1')).to.be.below(log.indexOf('event #1 job from'))
  })

  it('reloads an edited rules document; an invalid edit is refused and the old rules stay', async () => {
    const home = tempHome()
    const rules = join(home, 'rules.json')
    writeFileSync(
      rules,
      JSON.stringify({rules: [{name: 'a', pattern: {type: ['x']}, actions: [{type: 'file', path: 'a.jsonl'}]}]}),
    )
    await startDaemon(home)
    writeFileSync(
      rules,
      JSON.stringify({rules: [{name: 'b', pattern: {type: ['x']}, actions: [{type: 'file', path: 'b.jsonl'}]}]}),
    )
    await waitFor(async () => (await daemonLog(home)).includes('rules: reloaded'), 'the reload')
    await mq(['trigger', 'x', '--wait'], {home})
    expect(existsSync(join(home, 'b.jsonl'))).to.equal(true)
    expect(existsSync(join(home, 'a.jsonl'))).to.equal(false)
    writeFileSync(rules, '{"rules": [{"name": "broken"')
    await waitFor(async () => (await daemonLog(home)).includes('refused the edit'), 'the refusal')
    const status = (await daemonStatus(home))!
    expect(status.rules.error).to.match(/not valid JSON/)
    // the daemon keeps the previous rules (the trigger command itself would refuse the broken file)
    const http1 = await daemonHttp(home, status)('/events', {
      method: 'POST',
      headers: {'content-type': 'application/cloudevents+json'},
      body: JSON.stringify({specversion: '1.0', id: 'r1', source: 't', type: 'x'}),
    })
    expect(http1.status).to.equal(202)
    await waitFor(
      () => readFileSync(join(home, 'b.jsonl'), 'utf8').trim().split('\n').length === 2,
      'the old rule to run',
    )
  })

  // One daemon for these tests: each uses its own event ids, queues and files.
  describe('HTTP ingest', () => {
    let home: string
    let http: ReturnType<typeof daemonHttp>
    before(async () => {
      home = tempHome()
      writeFileSync(
        join(home, 'rules.json'),
        JSON.stringify({
          rules: [{name: 'keep', pattern: {type: [{prefix: 'web.'}]}, actions: [{type: 'file', path: 'web.jsonl'}]}],
        }),
      )
      http = daemonHttp(home, await startDaemon(home))
    })
    after(() => stopDaemon(home))
    const eventIds = async () => (await events(home)).map((e) => e.event.id)
    const queues = async () =>
      jsonLines<{name: string}>((await run(['queue', 'list', '--json'], {home})).stdout).map((q) => q.name)
    /** The events the rule handled so far (whole lines: the daemon may be appending one). */
    const handled = () => {
      const text = existsSync(join(home, 'web.jsonl')) ? readFileSync(join(home, 'web.jsonl'), 'utf8') : ''
      return jsonLines(text.slice(0, text.lastIndexOf('\n') + 1))
    }
    const handledIds = () => handled().map((e) => e.id as string)

    it('needs the bearer token (401, nothing stored); /healthz does not', async () => {
      expect((await http('/healthz', {token: false})).status).to.equal(200)
      const body = JSON.stringify({specversion: '1.0', id: 'unauthorized', source: 's', type: 'web.x'})
      for (const token of [false, 'wrong-token'] as const) {
        const response = await http('/events', {
          method: 'POST',
          token,
          headers: {'content-type': 'application/cloudevents+json'},
          body,
        })
        expect(response.status).to.equal(401)
        expect((await http('/queues/unauthorized/messages', {method: 'POST', token, body: 'x'})).status).to.equal(401)
        expect((await http('/metrics', {token})).status).to.equal(401)
      }
      expect(await eventIds()).to.not.include('unauthorized')
      expect(await queues()).to.not.include('unauthorized')
    })

    it('accepts structured, binary and batch CloudEvents, and queue messages', async () => {
      const structured = await http('/events', {
        method: 'POST',
        headers: {'content-type': 'application/cloudevents+json'},
        body: JSON.stringify({specversion: '1.0', id: 's1', source: 'web', type: 'web.structured', data: {a: 1}}),
      })
      expect(structured.status).to.equal(202)
      expect(((await structured.json()) as Accepted).accepted[0]).to.include({id: 's1'})
      const binary = await http('/events', {
        method: 'POST',
        headers: {
          'ce-specversion': '1.0',
          'ce-id': 'b1',
          'ce-source': 'web',
          'ce-type': 'web.binary',
          'ce-subject': 'sub',
          'content-type': 'application/json',
        },
        body: JSON.stringify({b: 2}),
      })
      expect(binary.status).to.equal(202)
      const batch = await http('/events', {
        method: 'POST',
        headers: {'content-type': 'application/cloudevents-batch+json'},
        body: JSON.stringify(
          [1, 2, 3].map((n) => ({specversion: '1.0', id: `batch-${n}`, source: 'web', type: 'web.batch'})),
        ),
      })
      expect(((await batch.json()) as Accepted).accepted).to.have.length(3)
      const sent = ['s1', 'b1', 'batch-1', 'batch-2', 'batch-3']
      await waitFor(() => sent.every((id) => handledIds().includes(id)), 'five events handled')
      expect(handledIds().filter((id) => sent.includes(id))).to.have.length(5) // each once
      expect(handled().find((e) => e.id === 'b1')).to.deep.include({subject: 'sub', data: {b: 2}, type: 'web.binary'})
      const message = await http('/queues/inbox/messages', {
        method: 'POST',
        headers: {'mq-header-kind': 'web'},
        body: 'hello over http',
      })
      expect(message.status).to.equal(201)
      const [delivered] = jsonLines((await run(['consume', 'inbox', '--json'], {home})).stdout)
      expect(delivered).to.deep.include({body: 'hello over http', headers: {kind: 'web'}})
      // every event the rule handled (these and the other tests') is one ok action
      const actions = handled().length
      const metrics = await (await http('/metrics')).text()
      expect(metrics)
        .to.match(/^mq_queue_depth\{queue="inbox"\} 0$/m)
        .and.match(/^# TYPE mq_actions_total counter$/m)
      expect(metrics).to.match(new RegExp(`^mq_actions_total\\{rule="keep",outcome="ok"\\} ${actions}$`, 'm'))
    })

    it('refuses malformed, invalid, oversized and unknown requests with a 4xx and the reason', async () => {
      const post = (path: string, headers: Record<string, string>, body: string | Buffer) =>
        http(path, {method: 'POST', headers, body})
      const cases: [() => Promise<Response>, number, RegExp][] = [
        [() => post('/events', {'content-type': 'application/cloudevents+json'}, '{not json'), 400, /malformed JSON/],
        [
          () =>
            post(
              '/events',
              {'content-type': 'application/cloudevents+json'},
              JSON.stringify({specversion: '1.0', id: 'x', type: 't'}),
            ),
          400,
          /"source"/,
        ],
        [
          () =>
            post(
              '/events',
              {'content-type': 'application/cloudevents-batch+json'},
              JSON.stringify([{specversion: '1.0', id: 'ok', source: 's', type: 't'}, {id: 'bad'}]),
            ),
          400,
          /event 2/,
        ],
        [() => post('/events', {'content-type': 'text/plain'}, 'hello'), 415, /structured/],
        [
          () => post('/events', {'content-type': 'application/cloudevents+json'}, Buffer.alloc(5 * 1024 * 1024, 32)),
          413,
          /limit/,
        ],
        [() => post('/queues/a..b/messages', {}, 'x'), 400, /empty segment/],
        [() => post('/queues/q/messages', {}, Buffer.from([0xff, 0xfe])), 400, /UTF-8/],
        [() => http('/nowhere'), 404, /no such endpoint/],
        [() => post('/queues/%E0%A4%A/messages', {}, 'x'), 400, /percent-encoding/],
        [
          () =>
            post(
              '/events',
              {'ce-specversion': '1.0', 'ce-id': 'x', 'ce-source': 's', 'ce-type': 't', 'ce-data': 'injected'},
              '',
            ),
          400,
          /ce-data is not allowed/,
        ],
        [() => http('/events'), 405, /not allowed/],
        // the limits every way in shares (src/core): priority, headers, event depth
        [
          () => post('/queues/q/messages?priority=', {}, 'x'),
          400,
          /priority= must be a whole number from 0 to 9, got ""/,
        ],
        [
          () =>
            post(
              '/queues/q/messages',
              Object.fromEntries(Array.from({length: 65}, (_, i) => [`mq-header-h${i}`, 'v'])),
              'x',
            ),
          413,
          /65 headers, over the limit of 64/,
        ],
        [
          () =>
            post(
              '/events',
              {'content-type': 'application/cloudevents+json'},
              `{"specversion":"1.0","id":"d","source":"s","type":"t","data":${'['.repeat(20_000)}${']'.repeat(20_000)}}`,
            ),
          400,
          /"data" is nested deeper than 256 levels/,
        ],
      ]
      for (const [send, status, reason] of cases) {
        const response = await send()
        const text = await response.text()
        expect(response.status, text).to.equal(status)
        expect(JSON.parse(text).error.message).to.match(reason)
      }
      // the batch with one bad event stored none of it, nor any other refused event
      expect((await eventIds()).filter((id) => ['x', 'ok', 'bad', 'd'].includes(id))).to.deep.equal([])
      expect(await queues()).to.not.include('q')
      // a chunked body over the limit gets its 413 too (not a reset connection)
      const {request} = await import('node:http')
      const s = (await daemonStatus(home))!
      const token = readFileSync(join(home, 'daemon.token'), 'utf8').trim()
      const code = await new Promise<number | undefined>((resolve) => {
        const req = request(
          {
            host: '127.0.0.1',
            port: s.http!.port,
            path: '/queues/q/messages',
            method: 'POST',
            headers: {authorization: `Bearer ${token}`, 'transfer-encoding': 'chunked'},
          },
          (res) => {
            res.resume()
            resolve(res.statusCode)
          },
        )
        req.on('error', () => resolve(undefined))
        const chunk = Buffer.alloc(256 * 1024, 97)
        let sent = 0
        const pump = () => {
          while (sent < 5 * 1024 * 1024) {
            sent += chunk.length
            if (!req.write(chunk)) return req.once('drain', pump)
          }
          req.end()
        }
        pump()
      })
      expect(code).to.equal(413)
    })

    it('maps binary mode headers per the binding, and answers 429 for a full queue', async () => {
      const binary = await http('/events', {
        method: 'POST',
        headers: {
          'ce-specversion': '1.0',
          'ce-id': 'b2',
          'ce-source': 'web',
          'ce-type': 'web.binary',
          'ce-subject': 'caf%C3%A9%20x',
          'content-type': 'application/json; charset=utf-8',
        },
        body: '{"n":1}',
      })
      expect(binary.status).to.equal(202)
      const event = await waitFor(() => handled().find((e) => e.id === 'b2'), 'the event')
      expect(event).to.deep.include({
        subject: 'café x',
        datacontenttype: 'application/json; charset=utf-8',
        data: {n: 1},
      })
      await run(['queue', 'create', 'tight', '--max-length', '1', '--overflow', 'block'], {home})
      expect((await http('/queues/tight/messages', {method: 'POST', body: 'one'})).status).to.equal(201)
      const full = await http('/queues/tight/messages', {method: 'POST', body: 'two'})
      expect(full.status).to.equal(429)
      expect(full.headers.get('retry-after')).to.equal('1')
      expect(JSON.parse((await run(['queue', 'stats', 'tight', '--json'], {home})).stdout).depth).to.equal(1)
    })
  })

  it('after kill -9 mid-action, a restart runs the event again; acknowledged publishes are kept', async () => {
    const home = tempHome()
    const marker = join(home, 'attempts')
    writeFileSync(
      join(home, 'rules.json'),
      JSON.stringify({
        rules: [
          {
            name: 'long',
            pattern: {type: ['work']},
            actions: [
              {
                type: 'exec',
                command: [
                  'sh',
                  '-c',
                  `echo run >> ${marker}; [ $(wc -l < ${marker}) -ge 2 ] || { echo $$ > ${marker}.pid; exec sleep 60; }`,
                ],
              },
            ],
          },
        ],
      }),
    )
    const first = await startDaemon(home)
    // Each acknowledged by the daemon (a client connection each, from this process).
    for (let i = 0; i < 20; i++) expect((await run(['publish', 'kept', `m${i}`], {home})).code).to.equal(0)
    expect((await daemonStatus(home))!.counts.published).to.equal(20)
    expect((await mq(['trigger', 'work'], {home})).code).to.equal(0)
    await waitFor(
      () => existsSync(`${marker}.pid`) && readFileSync(`${marker}.pid`, 'utf8').trim() !== '',
      'the action to start',
    )
    killDaemon(home)
    // the action runs in its own process group and outlives the daemon; end it as a machine crash would
    process.kill(-Number(readFileSync(`${marker}.pid`, 'utf8')), 'SIGKILL')
    await waitFor(() => !isProcessAlive(first.pid), 'the daemon to die')
    await startDaemon(home)
    await waitFor(() => readFileSync(marker, 'utf8').trim().split('\n').length === 2, 'the event to run again')
    await waitFor(async () => (await events(home))[0].status === 'done', 'the event to be done')
    expect((await run(['consume', 'kept', '-n', '100'], {home})).stdout.trim().split('\n')).to.have.length(20)
  })

  it('SIGTERM drains: the running action finishes; a second SIGTERM forces and hands the event back', async () => {
    const home = tempHome()
    // The action finishes only once the test lets it (the file go), after the daemon began to drain.
    const action = 'touch started; while [ ! -e go ]; do sleep 0.05; done; touch finished'
    writeFileSync(
      join(home, 'rules.json'),
      JSON.stringify({
        rules: [{name: 'slow', pattern: {type: ['job']}, actions: [{type: 'exec', command: ['sh', '-c', action]}]}],
      }),
    )
    const draining = (daemon: MqProcess) =>
      waitFor(() => daemon.stderr.includes('draining'), 'the daemon to start draining')
    const daemon = start(['daemon', 'start', '--foreground', '--no-http'], {home})
    await waitFor(async () => (await daemonStatus(home)) !== undefined, 'the daemon')
    await mq(['trigger', 'job'], {home})
    await waitFor(() => existsSync(join(home, 'started')), 'the action to start')
    daemon.kill('SIGTERM')
    await draining(daemon)
    writeFileSync(join(home, 'go'), '')
    const result = await daemon.done
    expect(result.code).to.equal(0)
    expect(existsSync(join(home, 'finished'))).to.equal(true)
    expect((await events(home))[0].status).to.equal('done')

    writeFileSync(
      join(home, 'rules.json'),
      JSON.stringify({
        rules: [
          {
            name: 'slow',
            pattern: {type: ['job']},
            actions: [{type: 'exec', command: ['sh', '-c', 'touch started2; exec sleep 60']}],
          },
        ],
      }),
    )
    const second = start(['daemon', 'start', '--foreground', '--no-http'], {home})
    await waitFor(async () => (await daemonStatus(home)) !== undefined, 'the daemon')
    await mq(['trigger', 'job'], {home})
    await waitFor(() => existsSync(join(home, 'started2')), 'the action to start')
    second.kill('SIGTERM')
    await draining(second)
    second.kill('SIGTERM')
    const forced = await second.done
    expect(forced.code).to.equal(0)
    const [event] = await events(home)
    expect(event.status).to.equal('pending') // handed back, not failed: the next daemon runs it again
    writeFileSync(
      join(home, 'rules.json'),
      JSON.stringify({
        rules: [{name: 'slow', pattern: {type: ['job']}, actions: [{type: 'exec', command: ['touch', 'finished2']}]}],
      }),
    )
    await startDaemon(home)
    await waitFor(() => existsSync(join(home, 'finished2')), 'the event to run again')
  })

  it('a daemon that fails to start (port in use) leaves nothing running', async () => {
    const home = tempHome()
    const {createServer} = await import('node:net')
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const port = (blocker.address() as {port: number}).port
    try {
      const result = await daemonStart(home, {args: ['--http-port', String(port)]})
      expect(result.code).to.equal(1)
      expect(result.stderr).to.match(/did not start/)
      await waitFor(async () => (await run(['daemon', 'status'], {home})).code === 3, 'no daemon')
      expect(existsSync(join(home, 'daemon.pid'))).to.equal(false)
      expect((await run(['publish', 'q', 'still works'], {home})).code).to.equal(0)
    } finally {
      blocker.close()
    }
  })

  it('starts over a garbage pid file, and replaces an empty token', async () => {
    const home = tempHome()
    writeFileSync(join(home, 'daemon.pid'), 'garbage')
    writeFileSync(join(home, 'daemon.token'), '')
    const http = daemonHttp(home, await startDaemon(home))
    expect(readFileSync(join(home, 'daemon.token'), 'utf8').trim()).to.have.length(64)
    expect((await http('/metrics')).status).to.equal(200)
    expect((await http('/metrics', {token: false})).status).to.equal(401)
    expect((await http('/metrics', {token: ''})).status).to.equal(401)
  })

  it('a hung daemon does not hang commands: they fall back, and nothing is stored twice', async () => {
    const home = tempHome()
    const s = await startDaemon(home)
    process.kill(s.pid, 'SIGSTOP')
    try {
      const result = await mq(['publish', 'q', 'once'], {home})
      expect(result.code, result.stderr).to.equal(0)
    } finally {
      process.kill(s.pid, 'SIGCONT')
    }
    // The daemon now wakes and commits the request it was sent; its dedup id makes it a no-op.
    await waitFor(
      async () => (await daemonStatus(home))?.counts.published === 1,
      'the daemon to commit the request it was sent',
    )
    expect((await run(['consume', 'q', '-n', '10'], {home})).stdout).to.equal('once\n')
  })
})
