import {randomBytes} from 'node:crypto'

import amqplib from 'amqplib'
import {expect} from 'chai'

import {AmqpBroker} from '../../src/core/amqp-broker/index.js'
import {InvalidInputError, QueueFullError} from '../../src/core/errors.js'
import {type AmqpTarget, parseBrokerUrl} from '../../src/core/open-broker.js'
import {mq, sleep, start, tempHome, waitFor} from '../helpers.js'
import {type RabbitMq, requireRabbitMq} from '../rabbitmq-server.js'
import {brokerConformance} from './broker-conformance.js'

/** A vhost of its own for each test: its own queues, exchanges and topic log on the shared node. */
async function freshVhost(node: RabbitMq): Promise<string> {
  const vhost = `t${randomBytes(4).toString('hex')}`
  const auth = `Basic ${Buffer.from('guest:guest').toString('base64')}`
  const put = async (path: string, body: unknown) => {
    const response = await fetch(`${node.managementUrl}/api/${path}`, {
      method: 'PUT',
      headers: {authorization: auth, 'content-type': 'application/json'},
      body: JSON.stringify(body),
    })
    if (!response.ok) throw new Error(`PUT ${path}: ${response.status}`)
  }
  await put(`vhosts/${vhost}`, {})
  await put(`permissions/${vhost}/guest`, {configure: '.*', write: '.*', read: '.*'})
  return vhost
}

describe('AMQP driver (RabbitMQ)', function () {
  let node: RabbitMq | undefined
  before(async function () {
    node = await requireRabbitMq(this)
  })

  const target = async (management = true) =>
    parseBrokerUrl(
      `${node!.url}/${await freshVhost(node!)}${management ? `?management=${node!.managementUrl}` : ''}`,
    ) as AmqpTarget
  const open = async () => AmqpBroker.connect(await target())

  brokerConformance('amqp', open)

  describe('RabbitMQ specifics', () => {
    it('parses amqp:// URLs and never shows the password', () => {
      const t = parseBrokerUrl(
        'amqp://bob:s%40cret@rabbit.local/prod?management=http://rabbit.local:15672',
      ) as AmqpTarget
      expect([t.host, t.port, t.vhost, t.user, t.pass]).to.deep.equal(['rabbit.local', 5672, 'prod', 'bob', 's@cret'])
      expect(t.display).to.equal('amqp://bob:***@rabbit.local:5672/prod?management=http://rabbit.local:15672')
      expect(() => parseBrokerUrl('amqp://h/?bogus=1')).to.throw(InvalidInputError)
    })

    it('adopts a queue another client declared, and a --transient queue lets default clients declare it', async () => {
      const t = await target()
      const broker = await AmqpBroker.connect(t)
      const connection = await amqplib.connect(t.url)
      try {
        const channel = await connection.createChannel()
        // As the pika tutorial declares it: transient, no arguments.
        await channel.assertQueue('hello', {durable: false})
        channel.sendToQueue('hello', Buffer.from('Hello from another client!'), {
          contentType: 'text/plain',
          messageId: 'm-1',
          timestamp: 1_700_000_000,
          headers: {k: 'v'},
        })
        await broker.declareQueue('hello', {maxDeliveries: 3})
        const [delivery] = await broker.receive('hello', {max: 1, autoAck: true, waitMs: 5_000})
        expect(delivery.id).to.equal('m-1')
        expect(delivery.headers).to.deep.equal({k: 'v', 'content-type': 'text/plain'})
        expect(delivery.publishedAt).to.equal(1_700_000_000_000)
        await broker.declareQueue('tutorial', {}, {transient: true})
        await channel.assertQueue('tutorial', {durable: false})
        await broker.publish('tutorial', [{body: 'Hello World!'}])
        const got = await channel.get('tutorial', {noAck: true})
        expect(got && got.content.toString()).to.equal('Hello World!')
      } finally {
        await connection.close()
        await broker.close()
      }
    })

    it('queue stats show the queue type: classic for its own queues, what RabbitMQ says for adopted ones', async () => {
      const t = await target()
      const broker = await AmqpBroker.connect(t)
      const connection = await amqplib.connect(t.url)
      try {
        const channel = await connection.createChannel()
        await channel.assertQueue('replicated', {durable: true, arguments: {'x-queue-type': 'quorum'}})
        await broker.publish('own', [{body: 'x'}])
        expect((await broker.queueStats('own')).queueType).to.equal('classic')
        expect((await broker.queueStats('replicated')).queueType).to.equal('quorum')
        const url = `${t.url}?management=${encodeURIComponent(t.management!)}`
        const shown = await mq(['queue', 'stats', 'replicated', '--broker', url], {home: tempHome()})
        expect(shown.stdout).to.match(/type\s+quorum/)
        const json = await mq(['queue', 'stats', 'own', '--json', '--broker', url], {home: tempHome()})
        expect(JSON.parse(json.stdout).queueType).to.equal('classic')
      } finally {
        await connection.close()
        await broker.close()
      }
    })

    it('limits: reject, drop-oldest and block; priorities; TTL; delays', async () => {
      const broker = await open()
      try {
        await broker.declareQueue('capped', {maxLength: 2})
        await broker.publish('capped', [{body: '1'}, {body: '2'}])
        let full: unknown
        try {
          await broker.publish('capped', [{body: '3'}])
        } catch (error) {
          full = error
        }
        expect(full).to.be.instanceOf(QueueFullError)
        await broker.declareQueue('rolling', {maxLength: 2, overflow: 'drop-oldest'})
        await broker.publish(
          'rolling',
          ['1', '2', '3'].map((body) => ({body})),
        )
        expect((await broker.receive('rolling', {max: 10, autoAck: true})).map((d) => d.body)).to.deep.equal(['2', '3'])
        await broker.declareQueue('blocking', {maxLength: 1, overflow: 'block'})
        await broker.publish('blocking', [{body: 'first'}])
        const blocked = broker.publish('blocking', [{body: 'second'}], {blockTimeoutMs: 10_000})
        await sleep(200)
        expect((await broker.receive('blocking', {max: 1, autoAck: true}))[0].body).to.equal('first')
        await blocked
        expect((await broker.receive('blocking', {max: 1, autoAck: true, waitMs: 5_000}))[0].body).to.equal('second')

        await broker.publish('urgent', [{body: 'low'}, {body: 'high', priority: 9}, {body: 'mid', priority: 5}])
        expect((await broker.receive('urgent', {max: 3, autoAck: true})).map((d) => d.body)).to.deep.equal([
          'high',
          'mid',
          'low',
        ])

        await broker.publish('short', [{body: 'gone', ttlMs: 50}, {body: 'kept'}])
        await sleep(150)
        expect((await broker.receive('short', {max: 10, autoAck: true})).map((d) => d.body)).to.deep.equal(['kept'])

        const at = Date.now()
        await broker.publish('later', [{body: 'soon', deliverAt: at + 3_000}])
        expect(await broker.receive('later', {max: 1, autoAck: true})).to.deep.equal([])
        const [late] = await broker.receive('later', {max: 1, autoAck: true, waitMs: 10_000})
        expect(late.body).to.equal('soon')
        expect(Date.now() - at).to.be.at.least(2_900)
      } finally {
        await broker.close()
      }
    })

    it('lists dead-letter queues and redrives them with x-redrive-count', async () => {
      const broker = await open()
      try {
        await broker.declareQueue('jobs', {maxDeliveries: 1})
        await broker.publish('jobs', [{body: 'a'}, {body: 'b'}])
        for (const d of await broker.receive('jobs', {max: 2, autoAck: false}))
          await broker.nack([d.receipt!], {deadLetter: true, error: 'bad'})
        expect((await broker.listDeadLetterQueues()).map((q) => [q.name, q.sources])).to.deep.equal([
          ['jobs.dlq', ['jobs']],
        ])
        const dry = await broker.redrive('jobs', {dryRun: true})
        expect([dry.examined, dry.moved]).to.deep.equal([2, 2])
        const result = await broker.redrive('jobs', {limit: 1})
        expect(result.moved).to.equal(1)
        const [back] = await broker.receive('jobs', {max: 1, autoAck: true})
        expect(back.body).to.equal('a')
        expect(back.headers['x-redrive-count']).to.equal('1')
        expect(back.headers).to.not.have.property('x-dead-letter-reason')
      } finally {
        await broker.close()
      }
    })

    it('says in one line what to check when the node cannot be reached (exit 1, password hidden)', async () => {
      const result = await mq(['publish', 'jobs', 'x', '--broker', 'amqp://bob:s3cret@127.0.0.1:1/'], {
        home: tempHome(),
      })
      expect(result.code).to.equal(1)
      expect(result.stderr.trim().split('\n')).to.have.length(1)
      expect(result.stderr)
        .to.include('amqp://bob:***@127.0.0.1:1')
        .and.include('rabbitmq-server running')
        .and.not.include('s3cret')
    })

    it('a follower rides out a dropped connection: it reconnects and nothing is lost', async function () {
      this.timeout(60_000)
      const t = await target()
      const url = `${t.url}?management=${encodeURIComponent(t.management!)}`
      const home = tempHome()
      const follower = start(['consume', 'loss', '-f', '--broker', url], {home, timeoutMs: 50_000})
      await mq(['publish', 'loss', 'before', '--broker', url], {home})
      await waitFor(() => follower.stdout.includes('before'), 'the first message', 20_000)
      // The server closes every connection of the vhost, as a node restart or a network cut would.
      const auth = `Basic ${Buffer.from('guest:guest').toString('base64')}`
      // The management API lists a new connection after its first statistics sample.
      const connections = await waitFor(
        async () => {
          const listed = (await (
            await fetch(`${node!.managementUrl}/api/vhosts/${encodeURIComponent(t.vhost)}/connections`, {
              headers: {authorization: auth},
            })
          ).json()) as {name: string}[]
          return listed.length > 0 ? listed : undefined
        },
        "the follower's connection in the management API",
        20_000,
      )
      for (const {name} of connections) {
        await fetch(`${node!.managementUrl}/api/connections/${encodeURIComponent(name)}`, {
          method: 'DELETE',
          headers: {authorization: auth},
        })
      }
      await mq(['publish', 'loss', 'after', '--broker', url], {home})
      await waitFor(() => follower.stdout.includes('after'), 'the message published after the drop', 30_000)
      follower.kill('SIGINT')
      const result = await follower.done
      expect(result.stdout.trim().split('\n')).to.deep.equal(['before', 'after'])
    })

    it('refuses dedup ids, and stats without the management API, with the reason', async () => {
      const broker = await AmqpBroker.connect(await target(false))
      try {
        const refusal = async (attempt: () => Promise<unknown>) => {
          try {
            await attempt()
          } catch (error) {
            return error as InvalidInputError
          }
          throw new Error('not refused')
        }
        expect((await refusal(() => broker.publish('jobs', [{body: 'x', dedupId: 'a'}]))).message).to.include(
          'deduplication',
        )
        await broker.publish('jobs', [{body: 'x'}])
        expect((await refusal(() => broker.queueStats('jobs'))).message).to.include('?management=')
      } finally {
        await broker.close()
      }
    })
  })
})
