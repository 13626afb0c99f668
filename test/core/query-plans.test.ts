import {expect} from 'chai'

import {FileBroker} from '../../src/core/file-broker/index.js'
import {sleep, tempHome} from '../helpers.js'

/**
 * Every statement the broker runs must be served by an index: no SCAN of the messages table and
 * no temporary B-tree for sorting, so per-operation cost stays flat as the backlog grows.
 * The workload below drives every code path; the test then checks each statement it compiled.
 */
describe('query plans', () => {
  it('uses an index for every statement (no SCAN messages, no USE TEMP B-TREE) and binds no bare LIMIT', async () => {
    const broker = new FileBroker(tempHome())
    try {
      await broker.publish(
        'other',
        Array.from({length: 2000}, (_, i) => ({body: `filler ${i}`})),
      )
      await broker.declareQueue('jobs', {maxDeliveries: 2, visibilityTimeoutMs: 20})
      await broker.updateQueue('jobs', {deadLetterExpired: true})
      await broker.publish('jobs', [
        {body: 'a', headers: {k: 'v'}},
        {body: 'b', priority: 5},
        {body: 'c', deliverAt: Date.now() + 10},
        {body: 'd', ttlMs: 1},
      ])
      const leased = await broker.receive('jobs', {max: 2, autoAck: false})
      await broker.ack([leased[0].receipt!])
      await broker.extend([leased[1].receipt!], 10)
      await sleep(30)
      const again = await broker.receive('jobs', {max: 10, autoAck: false, waitMs: 100})
      await broker.nack(
        again.map((d) => d.receipt!),
        {delayMs: 5},
      )
      await sleep(30)
      const third = await broker.receive('jobs', {max: 10, autoAck: false, waitMs: 100})
      await broker.nack(
        third.slice(0, 1).map((d) => d.receipt!),
        {deadLetter: true},
      )
      await broker.nack(
        third.slice(1).map((d) => d.receipt!),
        {backoff: true, error: 'x'},
      )
      await sleep(30)
      await broker.receive('jobs', {max: 10, autoAck: true})
      await broker.receive('jobs.dlq', {max: 10, autoAck: true})
      await broker.peek('other', 5)
      await broker.queueStats('jobs')
      await broker.getQueue('jobs')
      await broker.listQueues()
      await broker.purgeQueue('other')
      await broker.deleteQueue('jobs')

      // topics and subscriptions
      await broker.declareTopic('t.a', {maxMessages: 5, maxBytes: 1000, maxAgeMs: 60_000})
      await broker.declareTopic('t.b')
      const durable = await broker.subscribe('t.*', {durable: 'd', settings: {maxDeliveries: 1}})
      const since = await broker.subscribe('t.#', {start: {kind: 'since', time: Date.now() - 1000}})
      await broker.publish(
        't.a',
        Array.from({length: 8}, (_, i) => ({body: `a${i}`})),
      )
      await broker.publish('t.b', [{body: 'b'}])
      const got = await durable.receive({max: 3, autoAck: false, visibilityTimeoutMs: 20})
      await broker.ack([got[0].receipt!])
      await broker.nack([got[1].receipt!], {deadLetter: true})
      await sleep(30)
      await durable.receive({max: 10, autoAck: false})
      await since.receive({max: 10, autoAck: true})
      await broker.subscribe('t.a', {start: {kind: 'from-id', id: '1'}})
      await broker.subscribe('t.a', {start: {kind: 'all'}})
      await broker.subscriptionStats('d')
      await broker.topicStats('t.a')
      await broker.listSubscriptions()
      await broker.listTopics()
      await since.close()
      await broker.deleteSubscription('d')
      await broker.deleteTopic('t.b')

      // flow control: bounded queues, dedup, rates, windows, redrive
      await broker.declareQueue('bounded', {maxLength: 3, maxBytes: 100, overflow: 'drop-oldest'})
      await broker.publish(
        'bounded',
        Array.from({length: 5}, (_, i) => ({body: `b${i}`, dedupId: `id-${i % 4}`})),
      )
      await broker.updateQueue('bounded', {overflow: 'block'})
      await broker.publish('bounded', [{body: 'wait'}], {blockTimeoutMs: 10}).catch(() => {})
      const held = await broker.receive('bounded', {max: 2, autoAck: false})
      await broker.stillLeased(held.map((d) => d.receipt!))
      await broker.nack(
        held.map((d) => d.receipt!),
        {deadLetter: true},
      )
      await broker.listDeadLetterQueues()
      await broker.redrive('bounded', {dryRun: true, filter: () => true})
      await broker.redrive('bounded', {limit: 1})
      await broker.queueStats('bounded')

      const sources = broker.statementSources()
      expect(sources.length).to.be.greaterThan(15)
      const offenders = sources
        .map((source) => ({source: source.replace(/\s+/g, ' ').trim(), plan: broker.explain(source)}))
        .filter(({plan}) =>
          plan.some((step) => /^SCAN (messages|dedup|rates)\b/.test(step) || step.includes('USE TEMP B-TREE')),
        )
      expect(offenders, JSON.stringify(offenders, null, 2)).to.deep.equal([])
      // A bare bound LIMIT makes SQLite prepare the statement again on every run (see LIMIT in sql.ts).
      expect(sources.filter((source) => /LIMIT\s+\?/i.test(source))).to.deep.equal([])
    } finally {
      await broker.close()
    }
  })
})
