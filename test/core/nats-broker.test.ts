import {randomBytes} from 'node:crypto'

import {JetStreamBroker} from '../../src/core/nats-broker/index.js'
import {type NatsTarget, parseBrokerUrl} from '../../src/core/open-broker.js'
import {type NatsServer, requireNatsServer, startNatsServer} from '../nats-server.js'
import {brokerConformance} from './broker-conformance.js'

describe('NATS JetStream driver', function () {
  let server: NatsServer | undefined
  before(async function () {
    const binary = requireNatsServer(this)
    server = await startNatsServer({binary})
  })
  after(async () => {
    await server?.stop()
  })

  /** Each test gets its own prefix: its own streams, subjects and consumers on the shared server. */
  const open = () =>
    JetStreamBroker.connect(parseBrokerUrl(server!.url, `t${randomBytes(4).toString('hex')}`) as NatsTarget)

  brokerConformance('nats', open)
})
