import {expect} from 'chai'

import type {Broker} from '../../src/core/broker.js'
import type {Feature} from '../../src/core/capabilities.js'
import {InvalidInputError, NotFoundError, WrongKindError} from '../../src/core/errors.js'
import {sleep, waitFor} from '../helpers.js'

/**
 * The behaviour every Broker implementation must show. The file broker runs it in
 * file-broker.test.ts, the NATS driver in nats-broker.test.ts, unchanged: no case knows which
 * driver it runs on. A feature a driver's capabilities mark as refused is asserted to fail with
 * InvalidInputError (exit 2), never skipped. Timings suit a networked broker on a loaded runner:
 * what must NOT have happened yet is given a second or more, what must happen is waited for
 * (a long poll or waitFor), never a guessed sleep.
 */
export function brokerConformance(name: string, open: () => Promise<Broker>): void {
  describe(`Broker conformance: ${name}`, () => {
    let broker: Broker
    beforeEach(async () => {
      broker = await open()
    })
    afterEach(async () => {
      await broker.close()
    })

    const bodies = (deliveries: {body: string}[]) => deliveries.map((d) => d.body)
    const refused = async (feature: Feature) =>
      (await broker.describe()).capabilities.features[feature].support === 'refused'
    /** Asserts the driver refuses what its capabilities say it refuses: exit 2 with the reason. */
    const expectRefusal = async (attempt: () => Promise<unknown>) => {
      let error: unknown
      try {
        await attempt()
      } catch (caught) {
        error = caught
      }
      expect(error).to.be.instanceOf(InvalidInputError)
    }

    it('delivers a queue FIFO, each message once, with a fresh receipt per delivery', async () => {
      await broker.publish(
        'jobs',
        ['a', 'b', 'c'].map((body) => ({body})),
      )
      const first = await broker.receive('jobs', {max: 2, autoAck: false})
      const second = await broker.receive('jobs', {max: 5, autoAck: false})
      expect(bodies(first)).to.deep.equal(['a', 'b'])
      expect(bodies(second)).to.deep.equal(['c'])
      const receipts = [...first, ...second].map((d) => d.receipt)
      expect(new Set(receipts).size).to.equal(3)
      expect(await broker.receive('jobs', {max: 5, autoAck: false})).to.deep.equal([])
    })

    it('keeps headers, ids and publish time', async () => {
      const before = Date.now()
      const [published] = await broker.publish('jobs', [
        {body: '{"x":1}', headers: {type: 'created', 'trace-id': 'abc'}},
      ])
      const [delivery] = await broker.receive('jobs', {max: 1, autoAck: true})
      expect(delivery.id).to.equal(published.id)
      expect(delivery.queue).to.equal('jobs')
      expect(delivery.headers).to.deep.equal({type: 'created', 'trace-id': 'abc'})
      expect(delivery.attempt).to.equal(1)
      expect(delivery.publishedAt).to.be.within(before - 5, Date.now() + 5)
    })

    it('removes auto-acked messages on delivery, with no receipt', async () => {
      await broker.publish('jobs', [{body: 'once'}])
      const [delivery] = await broker.receive('jobs', {max: 1, autoAck: true})
      expect(delivery.receipt).to.equal(undefined)
      expect((await broker.queueStats('jobs')).depth).to.equal(0)
    })

    it('redelivers an unacked message after the visibility timeout, with attempt 2', async () => {
      await broker.publish('jobs', [{body: 'work'}])
      const [first] = await broker.receive('jobs', {max: 1, autoAck: false, visibilityTimeoutMs: 1_000})
      expect(await broker.receive('jobs', {max: 1, autoAck: false})).to.have.length(0)
      const [second] = await broker.receive('jobs', {max: 1, autoAck: false, waitMs: 10_000})
      expect(second.body).to.equal('work')
      expect(second.attempt).to.equal(2)
      expect(second.receipt).to.not.equal(first.receipt)
      // The first consumer's receipt is stale now: ack fails and changes nothing.
      expect(await broker.ack([first.receipt!])).to.deep.equal(['stale'])
      expect(await broker.ack([second.receipt!])).to.deep.equal(['ok'])
      expect(await broker.ack([second.receipt!])).to.deep.equal(['stale'])
    })

    it('rejects stale receipts for nack and extend without changing anything', async () => {
      await broker.publish('jobs', [{body: 'x'}])
      const [delivery] = await broker.receive('jobs', {max: 1, autoAck: false})
      expect(await broker.ack([delivery.receipt!])).to.deep.equal(['ok'])
      expect(await broker.nack([delivery.receipt!])).to.deep.equal(['stale'])
      expect(await broker.extend([delivery.receipt!], 1000)).to.deep.equal(['stale'])
      expect((await broker.queueStats('jobs')).depth).to.equal(0)
    })

    it('tells which receipts still hold their lease', async () => {
      await broker.publish('jobs', [{body: 'a'}, {body: 'b'}, {body: 'c'}])
      const [a, b] = await broker.receive('jobs', {max: 2, autoAck: false, visibilityTimeoutMs: 60_000})
      const [c] = await broker.receive('jobs', {max: 1, autoAck: false, visibilityTimeoutMs: 300})
      expect(await broker.stillLeased([a.receipt!, b.receipt!])).to.deep.equal([true, true])
      await broker.ack([a.receipt!])
      expect(await broker.extend([b.receipt!], 60_000)).to.deep.equal(['ok'])
      expect(await broker.stillLeased([a.receipt!, b.receipt!])).to.deep.equal([false, true])
      await waitFor(async () => !(await broker.stillLeased([c.receipt!]))[0], 'the short lease to run out')
    })

    it('refuses garbled receipts before settling any', async () => {
      await broker.publish('jobs', [{body: 'x'}])
      const [delivery] = await broker.receive('jobs', {max: 1, autoAck: false})
      let error: unknown
      try {
        await broker.ack([delivery.receipt!, 'not-a-receipt'])
      } catch (caught) {
        error = caught
      }
      expect(error).to.be.instanceOf(InvalidInputError)
      expect(await broker.ack([delivery.receipt!])).to.deep.equal(['ok'])
    })

    it('nack releases at once, or after a delay', async () => {
      await broker.publish('jobs', [{body: 'x'}])
      const [a] = await broker.receive('jobs', {max: 1, autoAck: false})
      expect(await broker.nack([a.receipt!])).to.deep.equal(['released'])
      const [b] = await broker.receive('jobs', {max: 1, autoAck: false})
      expect(b.attempt).to.equal(2)
      await broker.nack([b.receipt!], {delayMs: 1_500})
      expect(await broker.receive('jobs', {max: 1, autoAck: false})).to.have.length(0)
      expect((await broker.queueStats('jobs')).delayed).to.equal(1)
      const [c] = await broker.receive('jobs', {max: 1, autoAck: false, waitMs: 10_000})
      expect(c.attempt).to.equal(3)
    })

    it('extend keeps a message hidden past its original lease', async () => {
      await broker.publish('jobs', [{body: 'x'}])
      const [a] = await broker.receive('jobs', {max: 1, autoAck: false, visibilityTimeoutMs: 500})
      expect(await broker.extend([a.receipt!], 5_000)).to.deep.equal(['ok'])
      await sleep(1_000)
      expect(await broker.receive('jobs', {max: 1, autoAck: false})).to.have.length(0)
      expect(await broker.ack([a.receipt!])).to.deep.equal(['ok'])
    })

    it('dead-letters after max deliveries with headers recording why', async () => {
      await broker.declareQueue('jobs', {maxDeliveries: 2})
      await broker.publish('jobs', [{body: 'poison', headers: {k: 'v'}}])
      for (let i = 0; i < 2; i++) {
        const [d] = await broker.receive('jobs', {max: 1, autoAck: false})
        await broker.nack([d.receipt!], {error: `boom ${i + 1}`})
      }
      expect(await broker.receive('jobs', {max: 1, autoAck: false})).to.have.length(0)
      const [dead] = await broker.receive('jobs.dlq', {max: 1, autoAck: true})
      expect(dead.body).to.equal('poison')
      expect(dead.headers).to.include({
        k: 'v',
        'x-dead-letter-reason': 'max-deliveries',
        'x-dead-letter-attempts': '2',
        'x-original-queue': 'jobs',
        'x-last-error': 'boom 2',
      })
      const stats = await broker.queueStats('jobs')
      expect(stats.totals.deadLettered).to.equal(1)
    })

    it('dead-letters a message whose last lease ran out', async () => {
      await broker.declareQueue('jobs', {maxDeliveries: 1, visibilityTimeoutMs: 50})
      await broker.publish('jobs', [{body: 'slow'}])
      await broker.receive('jobs', {max: 1, autoAck: false})
      // A receive after the lease ran out dead-letters it instead of delivering it.
      await waitFor(async () => {
        expect(await broker.receive('jobs', {max: 1, autoAck: false})).to.have.length(0)
        return (await broker.queueStats('jobs')).totals.deadLettered === 1
      }, 'the message dead-lettered')
      const [dead] = await broker.receive('jobs.dlq', {max: 1, autoAck: true})
      expect(dead.headers['x-dead-letter-reason']).to.equal('max-deliveries')
    })

    it('dead-letters at once on request, to a configured queue', async () => {
      await broker.declareQueue('jobs', {deadLetterQueue: 'failed'})
      await broker.publish('jobs', [{body: 'bad'}])
      const [d] = await broker.receive('jobs', {max: 1, autoAck: false})
      expect(await broker.nack([d.receipt!], {deadLetter: true, error: 'exit 65'})).to.deep.equal(['dead-lettered'])
      const [dead] = await broker.receive('failed', {max: 1, autoAck: true})
      expect(dead.headers).to.include({'x-dead-letter-reason': 'rejected', 'x-last-error': 'exit 65'})
    })

    it('publishes a batch atomically: one bad message stores none', async () => {
      await broker.declareQueue('small', {maxBodyBytes: 10})
      let error: InvalidInputError | undefined
      try {
        await broker.publish('small', [{body: 'ok'}, {body: 'x'.repeat(11)}])
      } catch (caught) {
        error = caught as InvalidInputError
      }
      expect(error).to.be.instanceOf(InvalidInputError)
      expect(error!.index).to.equal(1)
      expect((await broker.queueStats('small')).depth).to.equal(0)
    })

    it('long-polls: returns as soon as a message arrives', async () => {
      // A wait longer than the test's timeout: only a receive that returns on arrival passes.
      const waiting = broker.receive('later', {max: 1, autoAck: true, waitMs: 120_000})
      await sleep(100)
      await broker.publish('later', [{body: 'now'}])
      const [delivery] = await waiting
      expect(delivery.body).to.equal('now')
    })

    it('declares queues idempotently and refuses conflicting settings', async () => {
      await broker.declareQueue('hello', {maxDeliveries: 3})
      await broker.declareQueue('hello')
      await broker.declareQueue('hello', {maxDeliveries: 3})
      let error: unknown
      try {
        await broker.declareQueue('hello', {maxDeliveries: 4})
      } catch (caught) {
        error = caught
      }
      expect(error).to.be.instanceOf(InvalidInputError)
      expect((await broker.listQueues()).map((q) => q.name)).to.deep.equal(['hello'])
    })

    it('validates names', async () => {
      for (const bad of ['', 'a..b', '.a', 'a.', 'a b', 'ä', 'x'.repeat(201), 'a/b']) {
        let error: unknown
        try {
          await broker.publish(bad, [{body: 'x'}])
        } catch (caught) {
          error = caught
        }
        expect(error, JSON.stringify(bad)).to.be.instanceOf(InvalidInputError)
      }
      await broker.publish('a-b_c.D9', [{body: 'x'}])
    })

    it('reports missing queues as not found', async () => {
      let error: unknown
      try {
        await broker.queueStats('missing')
      } catch (caught) {
        error = caught
      }
      expect(error).to.be.instanceOf(NotFoundError)
    })

    it('purges and deletes queues', async () => {
      await broker.publish('jobs', [{body: 'a'}, {body: 'b'}])
      await broker.receive('jobs', {max: 1, autoAck: false})
      expect(await broker.purgeQueue('jobs')).to.deep.equal({purged: 2})
      await broker.publish('jobs', [{body: 'c'}])
      expect(await broker.deleteQueue('jobs')).to.deep.equal({deleted: 1})
      expect(await broker.listQueues()).to.deep.equal([])
    })

    it('peeks without delivering', async () => {
      await broker.publish('jobs', [{body: 'a'}, {body: 'b'}])
      if (await refused('peek')) return expectRefusal(() => broker.peek('jobs', 10))
      const peeked = await broker.peek('jobs', 10)
      expect(peeked.map((m) => m.body)).to.deep.equal(['a', 'b'])
      const [d] = await broker.receive('jobs', {max: 1, autoAck: false})
      expect(d.attempt).to.equal(1)
      const after = await broker.peek('jobs', 10)
      expect(after.map((m) => m.state)).to.deep.equal(['ready', 'in-flight'])
    })

    it('counts ready, in-flight and delayed messages', async () => {
      await broker.publish('jobs', [{body: 'a'}, {body: 'b'}, {body: 'c'}, {body: 'd', deliverAt: Date.now() + 60_000}])
      await broker.receive('jobs', {max: 1, autoAck: false})
      const stats = await broker.queueStats('jobs')
      expect({ready: stats.ready, inFlight: stats.inFlight, delayed: stats.delayed, depth: stats.depth}).to.deep.equal({
        ready: 2,
        inFlight: 1,
        delayed: 1,
        depth: 4,
      })
      expect(stats.oldestAgeMs).to.be.a('number')
    })

    it('reports publish and ack rates over the last minutes', async () => {
      await broker.declareQueue('jobs')
      expect((await broker.queueStats('jobs')).rates.publishedPerSecond.last1m).to.equal(0)
      await broker.publish(
        'jobs',
        ['a', 'b', 'c', 'd'].map((body) => ({body})),
      )
      await broker.receive('jobs', {max: 1, autoAck: true})
      const [held] = await broker.receive('jobs', {max: 1, autoAck: false})
      await broker.ack([held.receipt!])
      // A driver may sample its counts (RabbitMQ's management API every few seconds): wait for them.
      const {rates} = await waitFor(
        async () => {
          const stats = await broker.queueStats('jobs')
          return stats.rates.ackedPerSecond.last1m > 0 && stats
        },
        'the acks to show in the rates',
        30_000,
        250,
      )
      // Four published and two acked within the current minute.
      expect(rates.publishedPerSecond.last1m).to.be.at.least(rates.ackedPerSecond.last1m)
      expect(rates.publishedPerSecond.last5m).to.be.greaterThan(0).and.at.most(rates.publishedPerSecond.last1m)
    })

    it('delays a message until its time; meeting it early is not an attempt', async () => {
      await broker.declareQueue('jobs', {maxDeliveries: 1})
      const deliverAt = Date.now() + 1_500
      await broker.publish('jobs', [{body: 'later', deliverAt}, {body: 'now'}])
      // Both are looked at, only the due one is delivered.
      expect(bodies(await broker.receive('jobs', {max: 10, autoAck: false}))).to.deep.equal(['now'])
      expect(await broker.receive('jobs', {max: 10, autoAck: false})).to.deep.equal([])
      expect((await broker.queueStats('jobs')).delayed).to.equal(1)
      const [later] = await broker.receive('jobs', {max: 1, autoAck: false, waitMs: 20_000})
      expect(Date.now()).to.be.at.least(deliverAt - 20)
      // Attempt 1 of at most 1: not dead-lettered although the receive above met it early.
      expect([later.body, later.attempt]).to.deep.equal(['later', 1])
      expect(await broker.ack([later.receipt!])).to.deep.equal(['ok'])
      expect((await broker.queueStats('jobs')).totals.deadLettered).to.equal(0)
    })

    it('expires messages past their TTL: dropped, or dead-lettered when the queue asks, and counted', async () => {
      await broker.publish('jobs', [
        {body: 'short', ttlMs: 200},
        {body: 'long', ttlMs: 60_000},
      ])
      const deadLetterExpired = !(await refused('dead-letter-expired'))
      if (deadLetterExpired) {
        await broker.declareQueue('keep', {defaultTtlMs: 200, deadLetterExpired: true})
        await broker.publish('keep', [{body: 'old'}])
      } else {
        await expectRefusal(() => broker.declareQueue('keep', {defaultTtlMs: 200, deadLetterExpired: true}))
      }
      await sleep(300)
      const [long] = await broker.receive('jobs', {max: 10, autoAck: true})
      expect(long.body).to.equal('long')
      expect(long.expiresAt).to.be.a('number')
      expect(await broker.receive('jobs', {max: 10, autoAck: true})).to.deep.equal([])
      const counted = !(await refused('expired-count'))
      if (counted) expect((await broker.queueStats('jobs')).totals).to.include({expired: 1, deadLettered: 0})
      if (!deadLetterExpired) return
      expect(await broker.receive('keep', {max: 10, autoAck: false})).to.deep.equal([])
      const [dead] = await broker.receive('keep.dlq', {max: 1, autoAck: true})
      expect([dead.body, dead.headers['x-dead-letter-reason']]).to.deep.equal(['old', 'expired'])
      expect((await broker.queueStats('keep')).totals).to.include({expired: 1, deadLettered: 1})
    })

    it('delivers higher priorities first, in publish order within a priority', async () => {
      await broker.publish('jobs', [
        {body: 'p0a'},
        {body: 'p9a', priority: 9},
        {body: 'p5', priority: 5},
        {body: 'p9b', priority: 9},
        {body: 'p0b', priority: 0},
      ])
      if (!(await refused('peek')))
        expect((await broker.peek('jobs', 10)).map((m) => m.body)).to.deep.equal(['p9a', 'p9b', 'p5', 'p0a', 'p0b'])
      const first = await broker.receive('jobs', {max: 3, autoAck: false})
      expect(first.map((d) => [d.body, d.priority])).to.deep.equal([
        ['p9a', 9],
        ['p9b', 9],
        ['p5', 5],
      ])
      // A released high-priority message comes back before the lower ones.
      expect(await broker.nack([first[2].receipt!])).to.deep.equal(['released'])
      expect(bodies(await broker.receive('jobs', {max: 10, autoAck: true}))).to.deep.equal(['p5', 'p0a', 'p0b'])
      // A networked broker settles acks asynchronously: its stats catch up (the file broker's at once).
      const counts = async () => {
        const stats = await broker.queueStats('jobs')
        return {depth: stats.depth, inFlight: stats.inFlight}
      }
      await waitFor(async () => (await counts()).depth === 2, 'the auto-acks to show in the stats', 30_000, 100)
      expect(await counts()).to.deep.equal({depth: 2, inFlight: 2})
      // A long poll wakes for a message of any priority.
      const waiting = broker.receive('jobs', {max: 1, autoAck: true, waitMs: 120_000})
      await sleep(100)
      await broker.publish('jobs', [{body: 'urgent', priority: 7}])
      expect(bodies(await waiting)).to.deep.equal(['urgent'])
      await broker.declareTopic('news')
      await expectRefusal(() => broker.publish('news', [{body: 'x', priority: 1}]))
    })

    describe('topics and subscriptions', () => {
      it('fans out: every subscription gets its own copy', async () => {
        const subs = await Promise.all(['a', 'b', 'c'].map((name) => broker.subscribe('news', {durable: name})))
        await broker.publish('news', [{body: 'hello'}, {body: 'world'}], {kind: 'topic'})
        for (const sub of subs) {
          const got = await sub.receive({max: 10, autoAck: true})
          expect(got.map((d) => [d.body, d.topic, d.subscription])).to.deep.equal([
            ['hello', 'news', sub.name],
            ['world', 'news', sub.name],
          ])
        }
      })

      it('routes a publish to a name covered by a subscription pattern to a new topic', async () => {
        const sub = await broker.subscribe('orders.*', {durable: 'all-orders'})
        const [published] = await broker.publish('orders.created', [{body: 'x'}])
        expect(published.kind).to.equal('topic')
        expect((await broker.listTopics()).map((t) => t.name)).to.deep.equal(['orders.created'])
        expect((await sub.receive({max: 1, autoAck: true}))[0].body).to.equal('x')
        expect((await broker.publish('jobs', [{body: 'y'}]))[0].kind).to.equal('queue')
      })

      it('a wildcard subscription sees several topics in global publish order', async () => {
        const sub = await broker.subscribe('logs.#', {durable: 'all-logs'})
        for (const [topic, body] of [
          ['logs.a', '1'],
          ['logs.b', '2'],
          ['logs.a.x', '3'],
          ['logs.b', '4'],
          ['logs', '5'],
        ]) {
          await broker.publish(topic, [{body}], {kind: 'topic'})
        }
        const got = await sub.receive({max: 10, autoAck: true})
        expect(got.map((d) => d.body)).to.deep.equal(['1', '2', '3', '4', '5'])
      })

      it('matches # anywhere in a pattern: #.error, app.#.error, and * in the middle', async () => {
        const anyError = await broker.subscribe('#.error', {durable: 'any-error'})
        const appError = await broker.subscribe('app.#.error', {durable: 'app-error'})
        const oneLevel = await broker.subscribe('app.*.error', {durable: 'one-level'})
        for (const topic of [
          'error',
          'app.error',
          'app.db.error',
          'app.db.pool.error',
          'app.db.warning',
          'web.error',
          'errors',
        ]) {
          await broker.publish(topic, [{body: topic}], {kind: 'topic'})
        }
        const got = async (sub: typeof anyError) => (await sub.receive({max: 20, autoAck: true})).map((d) => d.body)
        expect(await got(anyError)).to.deep.equal([
          'error',
          'app.error',
          'app.db.error',
          'app.db.pool.error',
          'web.error',
        ])
        expect(await got(appError)).to.deep.equal(['app.error', 'app.db.error', 'app.db.pool.error'])
        expect(await got(oneLevel)).to.deep.equal(['app.db.error'])
      })

      it('a durable subscription resumes where it left off, with leases and redelivery like a queue', async () => {
        await broker.declareTopic('events')
        let sub = await broker.subscribe('events', {durable: 'worker', settings: {maxDeliveries: 2}})
        await broker.publish(
          'events',
          ['1', '2', '3'].map((body) => ({body})),
        )
        const [first] = await sub.receive({max: 1, autoAck: false, visibilityTimeoutMs: 60_000})
        await broker.ack([first.receipt!])
        const [second] = await sub.receive({max: 1, autoAck: false, visibilityTimeoutMs: 60_000})
        await sub.close()
        sub = await broker.subscribe('events', {durable: 'worker'})
        expect(sub.resumed).to.equal(true)
        const [third] = await sub.receive({max: 1, autoAck: false})
        expect(third.body).to.equal('3')
        expect(await broker.nack([second.receipt!])).to.deep.equal(['released'])
        const [again] = await sub.receive({max: 1, autoAck: false})
        expect([again.body, again.attempt]).to.deep.equal(['2', 2])
        expect(await broker.nack([again.receipt!], {error: 'still failing'})).to.deep.equal(['dead-lettered'])
        const [dead] = await broker.receive('worker.dlq', {max: 1, autoAck: true})
        expect(dead.body).to.equal('2')
        expect(dead.headers).to.include({
          'x-dead-letter-reason': 'max-deliveries',
          'x-original-topic': 'events',
          'x-original-subscription': 'worker',
          'x-last-error': 'still failing',
        })
        // The log row is shared: the topic still holds the message for other subscriptions.
        expect((await broker.topicStats('events')).messages).to.equal(3)
      })

      it('two consumers on one durable subscription get disjoint messages and together all', async () => {
        await broker.declareTopic('work')
        const a = await broker.subscribe('work', {durable: 'shared'})
        const b = await broker.subscribe('work', {durable: 'shared'})
        await broker.publish(
          'work',
          Array.from({length: 10}, (_, i) => ({body: String(i)})),
        )
        const fromA = await a.receive({max: 4, autoAck: false})
        const fromB = await b.receive({max: 10, autoAck: false})
        const bodies = [...fromA, ...fromB].map((d) => d.body)
        expect(bodies.sort()).to.deep.equal(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
      })

      it('start positions: new (default), all, since, from-id', async () => {
        await broker.declareTopic('t')
        const [old] = await broker.publish('t', [{body: 'old'}])
        await sleep(30)
        const boundary = Date.now()
        await sleep(5)
        const [recent] = await broker.publish('t', [{body: 'recent'}])
        const first = async (start?: import('../../src/core/broker.js').StartPosition) => {
          const sub = await broker.subscribe('t', {start})
          const got = (await sub.receive({max: 10, autoAck: true})).map((d) => d.body)
          await sub.close()
          return got
        }
        expect(await first()).to.deep.equal([])
        expect(await first({kind: 'new'})).to.deep.equal([])
        expect(await first({kind: 'all'})).to.deep.equal(['old', 'recent'])
        expect(await first({kind: 'since', time: boundary})).to.deep.equal(['recent'])
        expect(await first({kind: 'from-id', id: old.id})).to.deep.equal(['old', 'recent'])
        expect(await first({kind: 'from-id', id: recent.id})).to.deep.equal(['recent'])
      })

      it('an ephemeral subscription leaves nothing behind when closed', async () => {
        const sub = await broker.subscribe('temp.#', {start: {kind: 'all'}})
        expect(sub.durable).to.equal(false)
        expect((await broker.listSubscriptions()).map((s) => s.name)).to.deep.equal([sub.name])
        await broker.publish('temp.x', [{body: 'x'}], {kind: 'topic'})
        await sub.receive({max: 1, autoAck: false})
        await sub.close()
        expect(await broker.listSubscriptions()).to.deep.equal([])
      })

      it('retains messages by count, bytes and age, discarding the oldest', async () => {
        await broker.declareTopic('count', {maxMessages: 3})
        await broker.publish(
          'count',
          ['1', '2', '3', '4', '5'].map((body) => ({body})),
        )
        let sub = await broker.subscribe('count', {start: {kind: 'all'}})
        expect((await sub.receive({max: 10, autoAck: true})).map((d) => d.body)).to.deep.equal(['3', '4', '5'])
        await sub.close()
        if (await refused('topic-max-bytes')) {
          await expectRefusal(() => broker.declareTopic('bytes', {maxBytes: 10}))
        } else {
          await broker.declareTopic('bytes', {maxBytes: 10})
          await broker.publish(
            'bytes',
            ['aaaa', 'bbbb', 'cccc'].map((body) => ({body})),
          )
          sub = await broker.subscribe('bytes', {start: {kind: 'all'}})
          expect((await sub.receive({max: 10, autoAck: true})).map((d) => d.body)).to.deep.equal(['bbbb', 'cccc'])
          await sub.close()
        }
        const maxAgeMs = 1_000
        await broker.declareTopic('age', {maxAgeMs})
        const readAll = async () => {
          const reader = await broker.subscribe('age', {start: {kind: 'all'}})
          const got = bodies(await reader.receive({max: 10, autoAck: true}))
          await reader.close()
          return got
        }
        await broker.publish('age', [{body: 'stale'}])
        // Dropped once older than the max age, as readers see it (whenever the driver gets to it).
        await waitFor(async () => !(await readAll()).includes('stale'), 'the stale message to age out')
        // A message younger than the max age is kept: judged only when publishing and reading it
        // took less than the max age (a busy machine may take longer; then it tries again).
        for (let attempt = 1; ; attempt++) {
          const before = performance.now()
          await broker.publish('age', [{body: `fresh-${attempt}`}])
          const got = await readAll()
          if (performance.now() - before >= maxAgeMs) continue
          expect(got).to.include(`fresh-${attempt}`).and.not.include('stale')
          break
        }
        expect((await broker.topicStats('count')).totals.discarded).to.equal(2)
      })

      it("counts a topic's messages and bytes", async () => {
        await broker.declareTopic('sized')
        await broker.declareTopic('other')
        await broker.publish('sized', [{body: 'abcd'}, {body: 'é'}])
        await broker.publish('other', [{body: 'x'.repeat(100)}])
        const bytes = 4 + 2
        expect(await broker.topicStats('sized')).to.deep.include({messages: 2, bytes})
        const listed = await broker.listTopics()
        expect(listed.map((t) => [t.name, t.messages, t.bytes])).to.deep.equal([
          ['other', 1, 100],
          ['sized', 2, bytes],
        ])
      })

      it('refuses a durable name reused with another pattern, showing both', async () => {
        await broker.subscribe('a.*', {durable: 'x'})
        let error: unknown
        try {
          await broker.subscribe('b.*', {durable: 'x'})
        } catch (caught) {
          error = caught
        }
        expect(error).to.be.instanceOf(InvalidInputError)
        expect((error as Error).message)
          .to.include('"a.*"')
          .and.include('"b.*"')
      })

      it('refuses to subscribe to a queue or consume a topic', async () => {
        await broker.publish('jobs', [{body: 'x'}])
        await broker.declareTopic('news')
        const fails = async (fn: () => Promise<unknown>) => {
          try {
            await fn()
          } catch (caught) {
            return caught
          }
          return undefined
        }
        expect(await fails(() => broker.subscribe('jobs'))).to.be.instanceOf(WrongKindError)
        expect(await fails(() => broker.receive('news', {max: 1, autoAck: true}))).to.be.instanceOf(WrongKindError)
      })

      it('keeps topic and queue messages apart in one broker', async () => {
        await broker.declareTopic('t')
        const sub = await broker.subscribe('t', {durable: 's'})
        await broker.publish('q', [{body: 'for the queue'}])
        await broker.publish('t', [{body: 'for the topic'}])
        expect((await broker.receive('q', {max: 10, autoAck: true})).map((d) => d.body)).to.deep.equal([
          'for the queue',
        ])
        expect((await sub.receive({max: 10, autoAck: true})).map((d) => d.body)).to.deep.equal(['for the topic'])
      })

      it('reports lag, in flight and the oldest unacked age', async () => {
        await broker.declareTopic('t')
        const sub = await broker.subscribe('t', {durable: 's'})
        await broker.publish(
          't',
          ['1', '2', '3'].map((body) => ({body})),
        )
        await sub.receive({max: 1, autoAck: false})
        const stats = await broker.subscriptionStats('s')
        expect({lag: stats.lag, inFlight: stats.inFlight, topics: stats.topics}).to.deep.equal({
          lag: 2,
          inFlight: 1,
          topics: ['t'],
        })
        expect(stats.oldestUnackedAgeMs).to.be.a('number')
      })
    })

    it('never lets a queue and a topic share a name', async () => {
      await broker.publish('jobs', [{body: 'a'}])
      let error: unknown
      try {
        await broker.publish('jobs', [{body: 'b'}], {kind: 'topic'})
      } catch (caught) {
        error = caught
      }
      expect(error).to.be.instanceOf(WrongKindError)
    })
  })
}
