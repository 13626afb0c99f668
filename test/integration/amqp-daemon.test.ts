import {expect} from 'chai'
import {execFile} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {promisify} from 'node:util'

import {isProcessAlive} from '../../src/core/process-alive.js'
import {BIN, jsonLines, mq, type RunOptions, start, tempHome, waitFor} from '../helpers.js'
import {type RabbitMq, requireRabbitMq} from '../rabbitmq-server.js'

const run = promisify(execFile)

/**
 * Receipts on amqp:// through the daemon (README.md, "Running on RabbitMQ"; ARCHITECTURE.md, "The
 * daemon as receipt holder"): an AMQP delivery tag can only be settled on the channel that
 * received it, so `consume --ack manual` receives through the daemon, which holds the leases, and
 * `ack`/`nack`/`extend` from any other process settle through it. Real RabbitMQ, real daemon,
 * real kill -9.
 */
describe('receipts on amqp:// held by the daemon (real RabbitMQ)', function () {
  this.timeout(90_000)
  let rabbit: RabbitMq
  let home: string
  let queue: string

  before(async function () {
    rabbit = await requireRabbitMq(this)
  })
  beforeEach(() => {
    home = tempHome()
    queue = `jobs-${randomBytes(4).toString('hex')}`
  })
  afterEach(async () => {
    await mq(['daemon', 'stop', '--force'], on())
  })

  const on = (options: RunOptions = {}): RunOptions => ({
    home,
    timeoutMs: 60_000,
    ...options,
    env: {MQ_URL: rabbit.brokerUrl, ...options.env},
  })
  type Delivery = {id: string; body: string; attempt: number; receipt: string}
  const consumeManual = async (args: string[] = []) => {
    const result = await mq(['consume', queue, '--ack', 'manual', '--json', ...args], on())
    expect(result.code, result.stderr).to.equal(0)
    return jsonLines<Delivery>(result.stdout)
  }
  const startDaemon = async () => {
    const started = await mq(['daemon', 'start', '--no-http'], on())
    expect(started.code, `${started.stderr}\n${readFileSync(join(home, 'daemon.log'), 'utf8')}`).to.equal(0)
    return Number(started.stdout.trim())
  }
  const publish = async (...bodies: string[]) => {
    const result = await mq(['publish', queue, '--lines'], on({input: bodies.map((b) => `${b}\n`).join('')}))
    expect(result.code, result.stderr).to.equal(0)
  }

  it('without a daemon, --ack manual, ack, nack and extend exit 2 with the command that fixes it; auto-ack and --exec work', async () => {
    await publish('a', 'b')
    for (const args of [
      ['consume', queue, '--ack', 'manual'],
      ['ack', 'a1:0123456789ab:1'],
      ['nack', 'a1:0123456789ab:1'],
      ['extend', 'a1:0123456789ab:1', '--by', '1m'],
    ]) {
      const refused = await mq(args, on())
      expect(refused.code, args.join(' ')).to.equal(2)
      expect(refused.stderr.trim().split('\n')).to.have.length.at.most(2)
      expect(refused.stderr).to.match(/held by the daemon/)
      expect(refused.stderr).to.include('mq daemon start')
    }
    // a daemon of this folder that serves another broker (the folder itself) does not settle for this one
    const fileDaemon = await mq(['daemon', 'start', '--no-http'], on({env: {MQ_URL: ''}}))
    expect(fileDaemon.code, fileDaemon.stderr).to.equal(0)
    const other = await mq(['ack', 'a1:0123456789ab:1'], on())
    expect(other.code).to.equal(2)
    expect(other.stderr).to.match(/serves file:/)
    expect((await mq(['daemon', 'stop'], on({env: {MQ_URL: ''}}))).code).to.equal(0)
    expect((await mq(['consume', queue], on())).stdout).to.equal('a\n')
    const worker = await mq(['consume', queue, '--exec', 'cat > "$OUT"'], on({env: {OUT: join(home, 'out')}}))
    expect(worker.code, worker.stderr).to.equal(0)
    expect(readFileSync(join(home, 'out'), 'utf8')).to.equal('b')
  })

  it('consume --ack manual --json | jq -r .receipt | mq ack settles through the daemon; the same receipts again exit 5', async () => {
    await startDaemon()
    await publish('a', 'b', 'c')
    const pipeline = `"${process.execPath}" "${BIN}" consume ${queue} -n 3 --ack manual --json | tee "${home}/deliveries" | jq -r .receipt | "${process.execPath}" "${BIN}" ack --json`
    const {stdout} = await run('sh', ['-c', pipeline], {
      env: {...process.env, MQ_URL: rabbit.brokerUrl, MQ_HOME: home, CI: ''},
    })
    expect(JSON.parse(stdout)).to.deep.equal({settled: 3, stale: []})
    const deliveries = jsonLines<Delivery>(readFileSync(join(home, 'deliveries'), 'utf8'))
    expect(deliveries.map((d) => d.body)).to.deep.equal(['a', 'b', 'c'])
    const again = await mq(['ack', ...deliveries.map((d) => d.receipt)], on())
    expect(again.code).to.equal(5)
    expect(again.stderr).to.match(/stale/)
    expect((await mq(['consume', queue], on())).code).to.equal(3) // nothing left, nothing redelivered
  })

  it('a lease that runs out is redelivered with attempt + 1; its old receipt is stale (exit 5), the new one acks', async () => {
    await startDaemon()
    await publish('work')
    const [first] = await consumeManual(['--visibility-timeout', '300ms'])
    expect(first.attempt).to.equal(1)
    const [again] = await consumeManual(['--wait', '20s'])
    expect(again.body).to.equal('work')
    expect(again.attempt).to.equal(2)
    const stale = await mq(['ack', first.receipt], on())
    expect(stale.code).to.equal(5)
    expect((await mq(['ack', again.receipt], on())).code).to.equal(0)
  })

  it('nack releases for redelivery, extend keeps a lease past its timeout, both from other processes', async () => {
    await startDaemon()
    await publish('x')
    const [leased] = await consumeManual(['--visibility-timeout', '1500ms'])
    const extended = await mq(['extend', leased.receipt, '--by', '30s'], on())
    expect(extended.code, extended.stderr).to.equal(0)
    // past the original 1.5 s lease, nothing is redelivered: the lease was extended
    const empty = await mq(['consume', queue, '--ack', 'manual', '--wait', '3s'], on())
    expect(empty.code).to.equal(3)
    expect((await mq(['nack', leased.receipt], on())).code).to.equal(0)
    const [redelivered] = await consumeManual(['--wait', '20s'])
    expect(redelivered.attempt).to.equal(2)
    expect((await mq(['ack', redelivered.receipt], on())).code).to.equal(0)
  })

  it('a durable subscription with --ack manual is held by the daemon too; an ephemeral one is refused (exit 2)', async () => {
    await startDaemon()
    const topic = `events.${randomBytes(3).toString('hex')}`
    const durable = `audit-${randomBytes(3).toString('hex')}`
    const created = await mq(['subscribe', topic, '--durable', durable, '--ack', 'manual'], on())
    expect(created.code).to.equal(3) // created; nothing published yet
    expect((await mq(['publish', topic, '--topic', 'e1'], on())).code).to.equal(0)
    const got = await mq(['subscribe', topic, '--durable', durable, '--ack', 'manual', '--json', '--wait', '20s'], on())
    expect(got.code, got.stderr).to.equal(0)
    const [delivery] = jsonLines<Delivery>(got.stdout)
    expect(delivery.body).to.equal('e1')
    expect((await mq(['ack', delivery.receipt], on())).code).to.equal(0)
    expect((await mq(['ack', delivery.receipt], on())).code).to.equal(5)
    const ephemeral = await mq(['subscribe', topic, '--ack', 'manual'], on())
    expect(ephemeral.code).to.equal(2)
    expect(ephemeral.stderr).to.match(/--durable/)
  })

  it('kill -9 of the daemon while it holds leases: what was acked stays acked, the rest comes back with attempt + 1, old receipts exit 5', async () => {
    const pid = await startDaemon()
    await publish('m1', 'm2', 'm3')
    const held = await consumeManual(['-n', '3'])
    expect(held.map((d) => d.body)).to.deep.equal(['m1', 'm2', 'm3'])
    expect((await mq(['ack', held[0].receipt], on())).code).to.equal(0)
    process.kill(pid, 'SIGKILL')
    await waitFor(() => !isProcessAlive(pid), 'the daemon to die')
    // no daemon: the receipt cannot be settled here, and the command says how to get one
    const orphan = await mq(['ack', held[1].receipt], on())
    expect(orphan.code).to.equal(2)
    expect(orphan.stderr).to.include('mq daemon start')
    await startDaemon()
    const stale = await mq(['ack', held[1].receipt, held[2].receipt], on())
    expect(stale.code).to.equal(5)
    const back = await consumeManual(['-n', '2', '--wait', '30s'])
    expect(back.map((d) => d.body).sort()).to.deep.equal(['m2', 'm3'])
    expect(back.map((d) => d.attempt)).to.deep.equal([2, 2])
    expect((await mq(['ack', ...back.map((d) => d.receipt)], on())).code).to.equal(0)
    expect((await mq(['consume', queue, '--wait', '2s'], on())).code).to.equal(3) // m1 was not lost nor redelivered
  })

  it('kill -9 of an --exec worker: the message it was running comes back with attempt + 1, finished ones are not redone', async () => {
    await publish('one', 'two')
    const marks = join(home, 'marks')
    const pidFile = join(home, 'running')
    // The first message finishes; the command for the second waits until the worker is killed
    // (and is killed after it: it is this test's process, not the worker's any more).
    const script = `body=$(cat); echo "$body $MQ_ATTEMPT" >> "${marks}"; if [ "$body" = two ] && [ "$MQ_ATTEMPT" = 1 ]; then echo $$ > "${pidFile}"; exec sleep 60; fi`
    const worker = start(['consume', queue, '-f', '--exec', script], on())
    await waitFor(
      () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim(),
      'the worker to start on the second message',
      30_000,
    )
    worker.kill('SIGKILL')
    await worker.done
    process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL')
    const again = await mq(
      ['consume', queue, '--exec', `echo "$(cat) $MQ_ATTEMPT" >> "${marks}"`, '--wait', '30s'],
      on(),
    )
    expect(again.code, again.stderr).to.equal(0)
    expect(readFileSync(marks, 'utf8').trim().split('\n')).to.deep.equal(['one 1', 'two 1', 'two 2'])
    const left = await mq(['consume', queue, '--wait', '2s', '--json'], on())
    expect(left.code, left.stdout).to.equal(3)
  })
})
