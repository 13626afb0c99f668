import {expect} from 'chai'
import {execFile} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {promisify} from 'node:util'

import {BIN, jsonLines, mq, type MqProcess, type RunOptions, start, tempHome, waitFor} from '../helpers.js'
import {freePort, type NatsServer, requireNatsServer, startNatsServer} from '../nats-server.js'

const run = promisify(execFile)

describe('the CLI on a nats:// broker (real nats-server)', function () {
  this.timeout(90_000) // several CLI processes against a real server per test, on a busy runner
  let server: NatsServer | undefined
  let binary: string
  let url: string
  let home: string

  before(async function () {
    binary = requireNatsServer(this)
    server = await startNatsServer({binary})
  })
  after(async () => {
    await server?.stop()
  })
  beforeEach(() => {
    // A prefix per test: its own streams and consumers on the shared server.
    url = `${server!.url}?prefix=t${randomBytes(4).toString('hex')}`
    home = tempHome()
  })

  const on = (options: RunOptions = {}): RunOptions => ({home, ...options, env: {MQ_URL: url, ...options.env}})
  const stats = async (queue: string) => JSON.parse((await mq(['queue', 'stats', queue, '--json'], on())).stdout)

  it('consume --ack manual --json | jq -r .receipt | mq ack settles across processes; the same receipts again exit 5', async () => {
    expect((await mq(['publish', 'jobs', '--lines'], on({input: 'a\nb\nc\n'}))).code).to.equal(0)
    const pipeline = `"${process.execPath}" "${BIN}" consume jobs -n 3 --ack manual --json | tee "${home}/deliveries" | jq -r .receipt | "${process.execPath}" "${BIN}" ack --json`
    const {stdout} = await run('sh', ['-c', pipeline], {env: {...process.env, MQ_URL: url, MQ_HOME: home, CI: ''}})
    expect(JSON.parse(stdout)).to.deep.equal({settled: 3, stale: []})
    expect(jsonLines<{body: string}>(readFileSync(join(home, 'deliveries'), 'utf8')).map((d) => d.body)).to.deep.equal([
      'a',
      'b',
      'c',
    ])
    expect((await stats('jobs')).depth).to.equal(0)
    const receipts = jsonLines<{receipt: string}>(readFileSync(join(home, 'deliveries'), 'utf8')).map((d) => d.receipt)
    const again = await mq(['ack', ...receipts], on())
    expect(again.code).to.equal(5)
    expect(again.stderr).to.match(/stale/)
  })

  it('a receipt whose lease ran out and was redelivered is stale (exit 5); the redelivery’s receipt works', async () => {
    await mq(['publish', 'jobs', 'work'], on())
    const [first] = jsonLines<{receipt: string}>(
      (await mq(['consume', 'jobs', '--ack', 'manual', '--json', '--visibility-timeout', '200ms'], on())).stdout,
    )
    const second = await mq(['consume', 'jobs', '--ack', 'manual', '--json', '--wait', '10s'], on())
    const [redelivery] = jsonLines<{receipt: string; attempt: number}>(second.stdout)
    expect(redelivery.attempt).to.equal(2)
    const stale = await mq(['ack', first.receipt], on())
    expect([stale.code, stale.stderr]).to.satisfy(
      ([code, stderr]: [number, string]) => code === 5 && /stale/.test(stderr),
    )
    expect((await stats('jobs')).depth).to.equal(1)
    expect((await mq(['ack', redelivery.receipt], on())).code).to.equal(0)
    expect((await stats('jobs')).depth).to.equal(0)
  })

  it('--exec workers with --parallel handle every message once; exit 65 dead-letters with the headers', async () => {
    const lines = Array.from({length: 20}, (_, i) => `m${i}`)
    await mq(['publish', 'work', '--lines'], on({input: lines.join('\n') + '\n'}))
    await mq(['publish', 'work', 'poison'], on())
    const out = join(home, 'out')
    const script = `read body; if [ "$body" = poison ]; then exit 65; fi; echo "$body $MQ_ATTEMPT" >> "${out}"`
    const worker = await mq(
      ['consume', 'work', '-n', '21', '--exec', script, '--parallel', '4', '--wait', '20s'],
      on({timeoutMs: 60_000}),
    )
    // A worker that dead-lettered something says so with exit 1.
    expect(worker.code, worker.stderr).to.equal(1)
    expect(worker.stderr).to.match(/20 acked, 1 dead-lettered/)
    const handled = readFileSync(out, 'utf8').trim().split('\n').sort()
    expect(handled).to.deep.equal(lines.map((l) => `${l} 1`).sort())
    const dead = jsonLines<{body: string; headers: Record<string, string>}>(
      (await mq(['consume', 'work.dlq', '--json'], on())).stdout,
    )
    expect(dead[0].body).to.equal('poison')
    expect(dead[0].headers).to.include({'x-dead-letter-reason': 'rejected', 'x-original-queue': 'work'})
  })

  it('two hosts (different MQ_HOME, same broker) share one queue’s work exactly once', async () => {
    const count = 60
    await mq(
      ['publish', 'shared', '--lines'],
      on({input: Array.from({length: count}, (_, i) => `job${i}`).join('\n') + '\n'}),
    )
    const out = join(home, 'handled')
    writeFileSync(out, '')
    const script = `read body; echo "$body $MQ_MESSAGE_ID" >> "${out}"`
    const hosts = [tempHome(), tempHome()].map((hostHome) =>
      start(['consume', 'shared', '-f', '--exec', script, '--parallel', '2', '--prefetch', '5'], {
        home: hostHome,
        env: {MQ_URL: url},
        timeoutMs: 60_000,
      }),
    )
    await waitFor(
      () => readFileSync(out, 'utf8').split('\n').filter(Boolean).length >= count,
      `${count} handled jobs`,
      30_000,
    )
    for (const host of hosts) host.kill('SIGINT')
    const results = await Promise.all(hosts.map((h) => h.done))
    for (const result of results) expect(result.code, result.stderr).to.equal(130)
    const handled = readFileSync(out, 'utf8').split('\n').filter(Boolean)
    expect(handled).to.have.length(count)
    expect(new Set(handled.map((line) => line.split(' ')[0])).size).to.equal(count)
    expect((await stats('shared')).depth).to.equal(0)
  })

  it('--delay across processes: a waiting consumer gets the message at its time, as attempt 1', async () => {
    await mq(['queue', 'create', 'timed', '--max-deliveries', '1'], on())
    const published = Date.now()
    const waiting = mq(['consume', 'timed', '--wait', '60s', '--ack', 'manual', '--json'], on())
    expect((await mq(['publish', 'timed', 'soon', '--delay', '1500ms'], on())).code).to.equal(0)
    const got = await waiting
    expect(got.code, got.stderr).to.equal(0)
    const delivery = JSON.parse(got.stdout)
    expect(Date.now() - published).to.be.at.least(1_480)
    expect([delivery.body, delivery.attempt]).to.deep.equal(['soon', 1])
    expect((await mq(['ack', delivery.receipt], on())).code).to.equal(0)
  })

  it('queue stats rates count what other processes published and acked', async () => {
    expect((await mq(['publish', 'rated', '--lines'], on({input: '1\n2\n3\n'}))).code).to.equal(0)
    expect((await mq(['consume', 'rated', '-n', '3'], on())).stdout).to.equal('1\n2\n3\n')
    const {rates} = JSON.parse((await mq(['queue', 'stats', 'rated', '--json'], on())).stdout)
    expect(rates.publishedPerSecond.last1m).to.be.greaterThan(0)
    expect(rates.ackedPerSecond.last1m).to.be.greaterThan(0)
  })

  it('refuses what the server version cannot do safely: exit 2 naming the feature, the server and the alternative', async () => {
    const bytes = await mq(['queue', 'create', 'small', '--max-bytes', '1KiB'], on())
    expect(bytes.code).to.equal(2)
    expect(bytes.stderr).to.match(/--max-bytes.*drops old messages.*--max-length/)
    expect((await mq(['queue', 'list'], on())).stdout).to.equal('')
  })

  it('max length: reject exits 4, drop-oldest keeps the newest, both on the server', async () => {
    await mq(['queue', 'create', 'full', '--max-length', '2'], on())
    await mq(['publish', 'full', '--lines'], on({input: '1\n2\n'}))
    const rejected = await mq(['publish', 'full', '3'], on())
    expect(rejected.code).to.equal(4)
    await mq(['queue', 'create', 'rolling', '--max-length', '2', '--overflow', 'drop-oldest'], on())
    await mq(['publish', 'rolling', '--lines'], on({input: '1\n2\n3\n4\n'}))
    const got = await mq(['consume', 'rolling', '-n', '5'], on())
    expect(got.stdout).to.equal('3\n4\n')
  })

  it('mq broker info names the broker, the server version and the feature table', async () => {
    const info = JSON.parse((await mq(['broker', 'info', '--json'], on())).stdout)
    expect(info.driver).to.equal('nats')
    expect(info.server.version).to.match(/^2\.\d+\.\d+/)
    expect(info.capabilities.features['stale-receipts'].support).to.equal('emulated')
    const file = JSON.parse((await mq(['broker', 'info', '--json'], {home})).stdout)
    expect(file.driver).to.equal('file')
  })

  it('the file broker refuses --replicas; --broker with --home is a usage error', async () => {
    const replicas = await mq(['queue', 'create', 'q', '--replicas', '3'], {home})
    expect(replicas.code).to.equal(2)
    expect(replicas.stderr).to.match(/--replicas.*file broker/)
    const both = await mq(['publish', 'q', 'x', '--broker', url, '--home', home], {home})
    expect(both.code).to.equal(2)
  })

  it('connection problems: one line, exit 1, the URL with the password hidden and what to do; never a hang', async () => {
    const closed = await freePort()
    const refused = await mq(['publish', 'q', 'x', '--broker', `nats://alice:s3cret@127.0.0.1:${closed}`], {
      home,
      timeoutMs: 30_000,
    })
    expect(refused.code).to.equal(1)
    expect(refused.stderr.trim().split('\n')).to.have.length(1)
    expect(refused.stderr)
      .to.include(`nats://alice:***@127.0.0.1:${closed}`)
      .and.match(/nats-server running with -js/)
    expect(refused.stderr).to.not.include('s3cret')
    const plain = await startNatsServer({binary, jetstream: false})
    try {
      const noJs = await mq(['publish', 'q', 'x', '--broker', plain.url], {home, timeoutMs: 30_000})
      expect(noJs.code).to.equal(1)
      expect(noJs.stderr).to.match(/JetStream.*-js/)
    } finally {
      await plain.stop()
    }
  })

  it('trigger runs rules whose publish action goes to the nats:// broker; the journal stays in the folder', async () => {
    expect((await mq(['rule', 'add', 'fwd', '--type', 'order.created', '--publish', 'orders'], on())).code).to.equal(0)
    const triggered = await mq(['trigger', 'order.created', '--data', '{"n":1}', '--id', 'e1'], on())
    expect(triggered.code, triggered.stderr).to.equal(0)
    const [delivery] = jsonLines<{body: string}>((await mq(['consume', 'orders', '--json'], on())).stdout)
    expect(JSON.parse(delivery.body)).to.deep.include({id: 'e1', type: 'order.created'})
    // The same event id again runs nothing: dedup is in the folder's journal.
    expect((await mq(['trigger', 'order.created', '--data', '{"n":1}', '--id', 'e1'], on())).code).to.equal(0)
    expect((await mq(['consume', 'orders'], on())).code).to.equal(3)
    expect((await mq(['events', 'list', '--json'], on())).stdout).to.include('e1')
  })

  it('daemon start --broker: HTTP ingest publishes to the nats:// broker, /metrics reads it', async () => {
    const started = await mq(['daemon', 'start', '--broker', url, '--http-port', '0', '--json'], {
      home,
      timeoutMs: 30_000,
    })
    expect(started.code, started.stderr).to.equal(0)
    try {
      const {port} = JSON.parse(started.stdout).http
      const token = readFileSync(join(home, 'daemon.token'), 'utf8').trim()
      const headers = {authorization: `Bearer ${token}`}
      const posted = await fetch(`http://127.0.0.1:${port}/queues/jobs/messages`, {
        method: 'POST',
        headers,
        body: 'via http',
      })
      expect(posted.status).to.equal(201)
      expect((await mq(['consume', 'jobs'], on())).stdout).to.equal('via http\n')
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`, {headers})).text()
      expect(metrics).to.include('mq_queue_acked_total{queue="jobs"} 1')
    } finally {
      expect((await mq(['daemon', 'stop'], {home, timeoutMs: 30_000})).code).to.equal(0)
    }
  })

  it('a follower and an --exec worker wait out a server outage longer than the failover budget, then go on', async function () {
    this.timeout(180_000)
    // Its own server, restarted on the same port and store: the outage is the input of the test.
    const port = await freePort()
    const store = mkdtempSync(join(tmpdir(), 'mq-nats-restart-'))
    let own = await startNatsServer({binary, port, store})
    const opts = on({
      env: {MQ_URL: own.url, MQ_NATS_FAILOVER_MS: '300', MQ_NATS_TIMEOUT_MS: '1000'},
      timeoutMs: 120_000,
    })
    const handled = join(home, 'handled')
    writeFileSync(handled, '')
    const children: MqProcess[] = []
    try {
      for (const queue of ['jobs', 'logs']) expect((await mq(['queue', 'create', queue], opts)).code).to.equal(0)
      const worker = start(['consume', 'jobs', '-f', '--exec', `cat >> "${handled}"; echo >> "${handled}"`], opts)
      const follower = start(['consume', 'logs', '-f'], opts)
      children.push(worker, follower)
      expect((await mq(['publish', 'jobs', 'before'], opts)).code).to.equal(0)
      expect((await mq(['publish', 'logs', 'before'], opts)).code).to.equal(0)
      await waitFor(() => readFileSync(handled, 'utf8').includes('before'), 'the worker to handle "before"', 30_000)
      await waitFor(() => follower.stdout.includes('before'), 'the follower to print "before"', 30_000)

      await own.stop('SIGKILL')
      // Several request timeouts, each longer than the whole failover budget of a one-shot command.
      const down = performance.now()
      await waitFor(() => performance.now() - down > 4_000, 'an outage of 4 s', 10_000, 100)
      expect(worker.child.exitCode, worker.stderr).to.equal(null)
      expect(follower.child.exitCode, follower.stderr).to.equal(null)
      own = await startNatsServer({binary, port, store})

      expect((await mq(['publish', 'jobs', 'after'], opts)).code).to.equal(0)
      expect((await mq(['publish', 'logs', 'after'], opts)).code).to.equal(0)
      await waitFor(() => readFileSync(handled, 'utf8').includes('after'), 'the worker to handle "after"', 60_000, 100)
      await waitFor(() => follower.stdout.includes('after'), 'the follower to print "after"', 60_000, 100)
      for (const child of [worker, follower]) child.kill('SIGINT')
      const [w, f] = await Promise.all([worker.done, follower.done])
      expect(w.code, w.stderr).to.equal(130)
      expect(f.code, f.stderr).to.equal(130)
      expect(f.stdout).to.equal('before\nafter\n')
      expect(readFileSync(handled, 'utf8').split('\n').filter(Boolean)).to.deep.equal(['before', 'after'])
    } finally {
      for (const child of children) if (child.child.exitCode === null) child.kill('SIGKILL')
      await Promise.all(children.map((child) => child.done))
      await own.stop()
      rmSync(store, {recursive: true, force: true})
    }
  })

  it('an ephemeral subscription vanishes after its process is killed', async () => {
    const env = {MQ_NATS_EPHEMERAL_INACTIVE_MS: '1000'}
    const sub = start(['subscribe', 'logs.#', '-f'], on({env}))
    await waitFor(
      async () => jsonLines((await mq(['subscription', 'list', '--json'], on())).stdout).length === 1,
      'the ephemeral subscription',
      20_000,
      200,
    )
    sub.kill('SIGKILL')
    await sub.done
    await waitFor(
      async () => jsonLines((await mq(['subscription', 'list', '--json'], on())).stdout).length === 0,
      'the subscription to vanish',
      30_000,
      200,
    )
  })
  it('mq top --once and --json read a nats:// broker through the Broker interface', async () => {
    expect((await mq(['publish', 'jobs', '--lines'], on({input: 'a\nb\nc\n'}))).code).to.equal(0)
    expect((await mq(['topic', 'create', 'orders.created'], on())).code).to.equal(0)
    expect((await mq(['subscribe', 'orders.*', '--durable', 'audit', '-n', '1', '--wait', '1ms'], on())).code).to.equal(
      3,
    )
    expect((await mq(['publish', 'orders.created', 'o1'], on())).code).to.equal(0)
    const json = await mq(['top', '--json'], on())
    expect(json.code, json.stderr).to.equal(0)
    const snapshot = JSON.parse(json.stdout)
    expect(snapshot.broker).to.match(/^nats:\/\//)
    // The NATS driver keeps per-minute counts (a small rates stream): the first sample has rates.
    const jobs = snapshot.queues.find((q: {name: string}) => q.name === 'jobs')
    expect(jobs).to.deep.include({kind: 'queue', depth: 3, inFlight: 0})
    expect(jobs.publishRate).to.be.a('number').and.above(0)
    expect(snapshot.queues.find((q: {name: string}) => q.name === 'audit')).to.deep.include({
      kind: 'subscription',
      depth: 1,
    })
    expect(snapshot.topics.find((t: {name: string}) => t.name === 'orders.created')).to.deep.include({
      subscriptions: 1,
      maxLag: 1,
    })
    const once = await mq(['top', '--once'], on())
    expect(once.code, once.stderr).to.equal(0)
    expect(once.stdout).to.match(/^jobs +queue +3 +0 +0 +0 +[\d.]+ +[\d.-]+$/m)
    expect(once.stdout).to.not.include('\u001B')
  })
})
