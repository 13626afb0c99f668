import {randomBytes} from 'node:crypto'

import amqplib from 'amqplib'
import {expect} from 'chai'

import {AmqpBroker} from '../../src/core/amqp-broker/index.js'
import {InvalidInputError} from '../../src/core/errors.js'
import {type AmqpTarget, parseBrokerUrl} from '../../src/core/open-broker.js'
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
      const t = parseBrokerUrl('amqp://bob:s%40cret@rabbit.local/prod?management=http://rabbit.local:15672') as AmqpTarget
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
        expect((await refusal(() => broker.publish('jobs', [{body: 'x', dedupId: 'a'}]))).message).to.include('deduplication')
        await broker.publish('jobs', [{body: 'x'}])
        expect((await refusal(() => broker.queueStats('jobs'))).message).to.include('?management=')
      } finally {
        await broker.close()
      }
    })
  })
})
