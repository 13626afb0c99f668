import {expect} from 'chai'
import {type ChildProcess, spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {join} from 'node:path'

import {jsonLines, mq, ROOT, type RunOptions, start, tempHome, waitFor} from '../helpers.js'
import {type RabbitMq, requirePika, requireRabbitMq} from '../rabbitmq-server.js'

/**
 * mqctl and the RabbitMQ tutorial's Python clients (pika, Debian's python3-pika) on one real
 * RabbitMQ node: both orders (pika declares `hello` first; mqctl creates it first, transient, so
 * that the tutorial's default-argument declare is equivalent) and both directions, with
 * properties and headers visible on the other side (README.md, "Running on RabbitMQ").
 */

const TUTORIAL = join(ROOT, 'test', 'fixtures', 'rabbitmq-tutorial')

interface Python {
  child: ChildProcess
  stdout: string
  stderr: string
  exited: Promise<number | null>
}

describe('RabbitMQ interop: the tutorial with pika (amqp://)', function () {
  this.timeout(120_000) // python and node processes against one RabbitMQ node, on a busy runner
  let rabbit: RabbitMq
  let python: string
  let home: string
  const pythons: Python[] = []

  before(async function () {
    rabbit = await requireRabbitMq(this)
    python = requirePika(this)
  })
  beforeEach(() => {
    home = tempHome()
  })
  afterEach(async () => {
    for (const p of pythons.splice(0)) {
      p.child.kill('SIGKILL')
      await p.exited
    }
  })

  const on = (options: RunOptions = {}): RunOptions => ({
    home,
    ...options,
    env: {MQ_URL: rabbit.brokerUrl, ...options.env},
  })
  /** A queue of this test's own on the shared node (the tutorial's name, made unique). */
  const hello = () => `hello-${randomBytes(4).toString('hex')}`

  function pika(script: 'receive.py' | 'send.py', args: string[]): Python {
    const child = spawn(python, [join(TUTORIAL, script), rabbit.url, ...args], {stdio: ['ignore', 'pipe', 'pipe']})
    const p: Python = {
      child,
      stdout: '',
      stderr: '',
      exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    }
    child.stdout!.setEncoding('utf8').on('data', (text: string) => (p.stdout += text))
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (p.stderr += text))
    pythons.push(p)
    return p
  }

  async function receiver(queue: string): Promise<Python> {
    const p = pika('receive.py', [queue, '--properties'])
    await waitFor(
      () => p.stdout.includes('Waiting for messages') || p.child.exitCode !== null,
      'receive.py to consume',
      30_000,
    )
    expect(p.child.exitCode, p.stderr).to.equal(null)
    return p
  }

  async function send(queue: string, properties?: Record<string, unknown>): Promise<void> {
    const p = pika('send.py', [queue, ...(properties ? ['--properties', JSON.stringify(properties)] : [])])
    expect(await p.exited, p.stderr).to.equal(0)
    expect(p.stdout).to.include(" [x] Sent 'Hello World!'")
  }

  /** The JSON line receive.py printed after the n-th " [x] Received" line. */
  interface PikaProperties {
    content_type: string | null
    message_id: string | null
    correlation_id: string | null
    type: string | null
    timestamp: number | null
    headers: Record<string, unknown>
  }

  function propertiesOf(p: Python, n = 0): PikaProperties {
    const lines = p.stdout.split('\n')
    const received = lines.flatMap((line, index) => (line.startsWith(' [x] Received') ? [index] : []))
    return JSON.parse(lines[received[n] + 1]) as PikaProperties
  }

  it('pika declares hello first: its receive.py prints `mq publish hello "Hello World!"`, with mqctl\'s id and headers as properties', async () => {
    const queue = hello()
    const consumer = await receiver(queue)
    const published = await mq(['publish', queue, 'Hello World!', '-H', 'type=greeting', '-H', 'x-trace=abc'], on())
    expect(published.code, published.stderr).to.equal(0)
    const id = published.stdout.trim()
    await waitFor(
      () => consumer.stdout.includes(" [x] Received b'Hello World!'"),
      'receive.py to print the message',
      15_000,
    )
    const properties = propertiesOf(consumer)
    expect(properties.message_id).to.equal(id)
    expect(properties.headers).to.include({'x-trace': 'abc'})
    expect(properties.headers).to.not.have.property('type')
    expect(properties.type).to.equal('greeting') // an AMQP property, not a header
    expect(properties.timestamp).to.be.a('number')
    expect(Math.abs(properties.timestamp! * 1000 - Date.now())).to.be.below(120_000)
  })

  it('mqctl creates hello first (queue create --transient): the tutorial declares it afterwards and receives', async () => {
    const queue = hello()
    const created = await mq(['queue', 'create', queue, '--transient'], on())
    expect(created.code, created.stderr).to.equal(0)
    expect((await mq(['publish', queue, 'Hello World!'], on())).code).to.equal(0)
    const consumer = await receiver(queue) // its queue_declare(queue=…) with default arguments must not fail (406)
    await waitFor(
      () => consumer.stdout.includes(" [x] Received b'Hello World!'"),
      'receive.py to print the message',
      15_000,
    )
    await send(queue) // and the tutorial's sender declares it too
    await waitFor(
      () => consumer.stdout.split(' [x] Received').length === 3,
      'receive.py to print the second message',
      15_000,
    )
  })

  it("a durable queue made by mqctl refuses the tutorial's declare (406), as documented", async () => {
    const queue = hello()
    expect((await mq(['queue', 'create', queue], on())).code).to.equal(0)
    const p = pika('receive.py', [queue])
    expect(await p.exited).to.not.equal(0)
    expect(p.stderr).to.match(/PRECONDITION_FAILED|inequivalent arg 'durable'/)
  })

  it('pika send.py first: `mq consume hello` prints Hello World!', async () => {
    const queue = hello()
    await send(queue)
    const consumed = await mq(['consume', queue], on())
    expect(consumed.code, consumed.stderr).to.equal(0)
    expect(consumed.stdout).to.equal('Hello World!\n')
    expect((await mq(['consume', queue], on())).code).to.equal(3) // taken once (auto-ack)
  })

  it('mq consume --json shows what pika set: content type, message id, timestamp and headers', async () => {
    const queue = hello()
    const timestamp = Math.floor(Date.now() / 1000) - 60
    await send(queue, {
      content_type: 'text/plain',
      message_id: 'pika-42',
      timestamp,
      headers: {source: 'pika', 'x-retry': 3},
    })
    const consumed = await mq(['consume', queue, '--json'], on())
    expect(consumed.code, consumed.stderr).to.equal(0)
    const [delivery] = jsonLines<{
      id: string
      body: string
      headers: Record<string, string>
      publishedAt: string
      attempt: number
    }>(consumed.stdout)
    expect(delivery.body).to.equal('Hello World!')
    expect(delivery.id).to.equal('pika-42')
    expect(delivery.headers).to.include({'content-type': 'text/plain', source: 'pika', 'x-retry': '3'})
    expect(delivery.publishedAt).to.equal(new Date(timestamp * 1000).toISOString())
    expect(delivery.attempt).to.equal(1)
  })

  it('mq consume -f --json follows what pika sends, one JSON line per message', async () => {
    const queue = hello()
    await send(queue) // declares the queue (transient, as the tutorial does)
    const follower = start(['consume', queue, '-f', '--json'], on())
    await waitFor(() => follower.lines().length === 1, 'the first message')
    await send(queue, {message_id: 'second', headers: {n: 2}})
    await waitFor(() => follower.lines().length === 2, 'the second message')
    follower.kill('SIGINT')
    const done = await follower.done
    expect(done.code).to.equal(130)
    const deliveries = jsonLines<{id: string; body: string; headers: Record<string, string>}>(done.stdout)
    expect(deliveries.map((d) => d.body)).to.deep.equal(['Hello World!', 'Hello World!'])
    expect(deliveries[1].id).to.equal('second')
    expect(deliveries[1].headers.n).to.equal('2')
  })

  it('headers and properties mqctl sets reach pika: content-type and correlation-id as properties, the rest as headers', async () => {
    const queue = hello()
    const consumer = await receiver(queue)
    const published = await mq(
      [
        'publish',
        queue,
        '{"hello":"world"}',
        '-H',
        'content-type=application/json',
        '-H',
        'correlation-id=req-7',
        '-H',
        'tenant=acme',
      ],
      on(),
    )
    expect(published.code, published.stderr).to.equal(0)
    await waitFor(
      () => consumer.stdout.includes(' [x] Received b\'{"hello":"world"}\''),
      'receive.py to print the JSON body',
      15_000,
    )
    const properties = propertiesOf(consumer)
    expect(properties.content_type).to.equal('application/json')
    expect(properties.correlation_id).to.equal('req-7')
    expect(properties.headers).to.include({tenant: 'acme'})
    expect(properties.headers).to.not.have.any.keys('content-type', 'correlation-id')
    expect(properties.message_id).to.equal(published.stdout.trim())
  })
})
