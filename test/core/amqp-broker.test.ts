import {randomBytes} from 'node:crypto'

import {expect} from 'chai'

import {AmqpBroker} from '../../src/core/amqp-broker/index.js'
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
})
