import {expect} from 'chai'

import {envelopeLines} from '../../src/cli/deliveries.js'
import {toJson} from '../../src/cli/output.js'
import type {Delivery} from '../../src/core/broker.js'

describe('the --json envelope of a delivery', () => {
  /** The envelope as an object, in the order of its fields, written by the one JSON writer of --json. */
  const reference = (d: Delivery) =>
    toJson({
      id: d.id,
      ...(d.queue === undefined ? {} : {queue: d.queue}),
      ...(d.topic === undefined ? {} : {topic: d.topic}),
      ...(d.subscription === undefined ? {} : {subscription: d.subscription}),
      body: d.body,
      headers: d.headers,
      attempt: d.attempt,
      ...(d.receipt === undefined ? {} : {receipt: d.receipt}),
      publishedAt: d.publishedAt,
    })

  it('is the text toJson writes for it, whatever fields the delivery has', () => {
    const line = envelopeLines()
    const deliveries: Delivery[] = [
      {id: '1', queue: 'jobs', body: 'job 1', headers: {}, attempt: 1, receipt: '1.abcdEFG_', publishedAt: 0},
      {id: '2', queue: 'jobs', body: 'job 2', headers: {}, attempt: 3, receipt: '2.abcdEFG_', publishedAt: 0},
      {id: '3', queue: 'jobs', body: '', headers: {createdAt: '5', 'x-y': 'é "q" \n\t\\'}, attempt: 1, publishedAt: 1},
      {
        id: '4',
        topic: 'orders.created',
        subscription: 'billing',
        body: '{"id":1}\u2028\u0000 ☃ \ud83d\ude00',
        headers: {k: 'v'},
        attempt: 2,
        receipt: '9.zzzzzzzz',
        publishedAt: 1_733_550_000_123,
        priority: 5,
        expiresAt: 1_733_550_100_000,
      },
      {id: '5', topic: 'orders.created', body: 'ephemeral', headers: {}, attempt: 1, publishedAt: 1_733_550_000_123},
      {id: '6', queue: 'jobs', body: 'after', headers: {}, attempt: 1, publishedAt: 0},
    ]
    for (const delivery of deliveries) {
      const text = line(delivery)
      expect(text).to.equal(reference(delivery))
      expect(JSON.parse(text)).to.have.property('publishedAt', new Date(delivery.publishedAt).toISOString())
    }
  })
})
