import {expect} from 'chai'
import {execFile} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {promisify} from 'node:util'

import {BIN, jsonLines, mq, type RunOptions, tempHome} from '../helpers.js'
import {type NatsServer, requireNatsServer, startNatsServer} from '../nats-server.js'

const run = promisify(execFile)

/** The README's tour (and the examples of its sections that apply) on a nats:// broker. */
describe('the README tour on a nats:// broker (real nats-server)', function () {
  this.timeout(120_000)
  let server: NatsServer | undefined
  let options: RunOptions

  before(async function () {
    const binary = requireNatsServer(this)
    server = await startNatsServer({binary})
    options = {
      home: tempHome(),
      env: {MQ_URL: `${server.url}?prefix=tour${randomBytes(3).toString('hex')}`},
      timeoutMs: 30_000,
    }
  })
  after(async () => {
    await server?.stop()
  })

  const ok = async (args: string[], extra: RunOptions = {}) => {
    const result = await mq(args, {...options, ...extra})
    expect(result.code, `mq ${args.join(' ')}: ${result.stderr}`).to.equal(0)
    return result.stdout
  }
  const sh = async (script: string) =>
    (
      await run('sh', ['-c', script], {
        env: {...process.env, ...options.env, MQ_HOME: options.home, CI: '', MQ: `${process.execPath} ${BIN}`},
      })
    ).stdout

  it('queues: publish, headers from stdin, consume, long poll, follow', async () => {
    expect(await ok(['publish', 'jobs', 'resize cat.png'])).to.match(/^\d+\n$/)
    await ok(['publish', 'orders', '-H', 'type=created'], {input: '{"order":42}\n'})
    expect(await ok(['consume', 'jobs'])).to.equal('resize cat.png\n')
    const [order] = jsonLines<{body: string; headers: Record<string, string>}>(
      await ok(['consume', 'orders', '--json']),
    )
    // A body read from stdin loses its one trailing newline (as on the file broker).
    expect(order).to.deep.include({body: '{"order":42}', headers: {type: 'created'}})
    await ok(['publish', 'jobs', 'soon'])
    expect(await ok(['consume', 'jobs', '--wait', '30s'])).to.equal('soon\n')
    expect((await mq(['consume', 'jobs'], options)).code).to.equal(3)
  })

  it('manual acknowledgement: pipe to ack, nack --delay, extend --by', async () => {
    await ok(['publish', 'jobs', '--lines'], {input: 'a\nb\n'})
    expect(await sh('$MQ consume jobs -n 1 --ack manual --json | jq -r .receipt | $MQ ack && echo settled')).to.equal(
      'settled\n',
    )
    const [d] = jsonLines<{receipt: string}>(await ok(['consume', 'jobs', '--ack', 'manual', '--json']))
    await ok(['extend', d.receipt, '--by', '5m'])
    await ok(['nack', d.receipt, '--delay', '30s'])
    const stats = JSON.parse(await ok(['queue', 'stats', 'jobs', '--json']))
    expect({delayed: stats.delayed, depth: stats.depth}).to.deep.equal({delayed: 1, depth: 1})
    await ok(['queue', 'purge', 'jobs', '--yes'])
  })

  it('a worker: --exec with --parallel, queue stats, the dead-letter queue with its headers', async () => {
    await ok(['publish', 'work', '--lines'], {input: 'ok1\nbad\nok2\n'})
    const worker = await mq(
      ['consume', 'work', '-n', '3', '--parallel', '2', '--exec', 'read b; [ "$b" != bad ] || exit 65'],
      options,
    )
    expect(worker.stderr).to.match(/2 acked, 1 dead-lettered/)
    const stats = JSON.parse(await ok(['queue', 'stats', 'work', '--json']))
    expect({depth: stats.depth, deadLettered: stats.deadLettered}).to.deep.equal({depth: 0, deadLettered: 1})
    const [dead] = jsonLines<{headers: Record<string, string>}>(await ok(['consume', 'work.dlq', '--json']))
    expect(dead.headers['x-dead-letter-reason']).to.equal('rejected')
  })

  it('round trips: consume --json | jq | publish --envelopes keeps bodies and headers', async () => {
    await ok(['publish', 'a', 'hello', '-H', 'k=v'])
    await sh(`$MQ consume a -n 1 --json | jq -c '.body |= ascii_upcase' | $MQ publish b --envelopes`)
    const [moved] = jsonLines<{body: string; headers: Record<string, string>}>(await ok(['consume', 'b', '--json']))
    expect(moved).to.deep.include({body: 'HELLO', headers: {k: 'v'}})
  })

  it('the RabbitMQ hello world: queue create, publish, consume', async () => {
    await ok(['queue', 'create', 'hello'])
    await ok(['publish', 'hello', 'Hello World!'])
    expect(await ok(['consume', 'hello'])).to.equal('Hello World!\n')
  })

  it('publish/subscribe: retention, durable and ephemeral subscriptions, start positions, stats', async () => {
    await ok(['topic', 'create', 'orders.created', '--max-age', '7d', '--max-messages', '1000000'])
    await ok(['subscribe', 'orders.#', '--durable', 'billing', '-n', '1', '--wait', '1ms'], {}).catch(() => undefined)
    await ok(['publish', 'orders.created', 'o1'])
    expect(await ok(['subscribe', 'orders.#', '--durable', 'billing'])).to.equal('o1\n')
    await ok(['publish', 'audit', 'first', '--topic'])
    expect(await ok(['subscribe', 'audit', '--durable', 'audit', '--all'])).to.equal('first\n')
    expect(await ok(['subscribe', 'audit', '--since', '1h'])).to.equal('first\n')
    const stats = JSON.parse(await ok(['subscription', 'stats', 'billing', '--json']))
    expect(stats).to.deep.include({lag: 0, inFlight: 0})
  })

  it('flow control: reject, dedup ids, delays, priorities, TTLs', async () => {
    await ok(['queue', 'create', 'capped', '--max-length', '1'])
    await ok(['publish', 'capped', 'x'])
    expect((await mq(['publish', 'capped', 'y'], options)).code).to.equal(4)
    const first = await ok(['publish', 'deploys', 'v42', '--dedup-id', 'build-42'])
    expect(await ok(['publish', 'deploys', 'v42', '--dedup-id', 'build-42'])).to.equal(first)
    await ok(['publish', 'tasks', 'later', '--delay', '10m'])
    await ok(['publish', 'tasks', 'cold'])
    await ok(['publish', 'tasks', 'hot', '--priority', '9'])
    await ok(['publish', 'tasks', 'report', '--ttl', '1h'])
    expect(await ok(['consume', 'tasks', '-n', '5'])).to.equal('hot\ncold\nreport\n')
    expect(JSON.parse(await ok(['queue', 'stats', 'tasks', '--json']))).to.deep.include({delayed: 1, depth: 1})
    await ok(['queue', 'create', 'expiring', '--default-ttl', '1d', '--dead-letter-expired'])
  })

  it('dead letters: list, peek, redrive --dry-run and redrive', async () => {
    await ok(['queue', 'create', 'jobs2', '--max-deliveries', '1'])
    await ok(['publish', 'jobs2', 'poison'])
    const [d] = jsonLines<{receipt: string}>(await ok(['consume', 'jobs2', '--ack', 'manual', '--json']))
    await ok(['nack', d.receipt, '--reason', 'boom'])
    expect(await ok(['dlq', 'list'])).to.include('jobs2.dlq')
    expect(await ok(['dlq', 'peek', 'jobs2', '--json'])).to.include('boom')
    const dry = JSON.parse(await ok(['dlq', 'redrive', 'jobs2', '--dry-run', '--json']))
    expect(dry.moved).to.equal(1)
    await ok(['dlq', 'redrive', 'jobs2', '--yes'])
    const [back] = jsonLines<{headers: Record<string, string>}>(await ok(['consume', 'jobs2', '--json']))
    expect(back.headers['x-redrive-count']).to.equal('1')
  })
})
