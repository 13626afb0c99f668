import Database from 'better-sqlite3'
import {expect} from 'chai'
import {spawnSync} from 'node:child_process'
import {join} from 'node:path'

import type {Delivery} from '../../src/core/broker.js'
import {FileBroker} from '../../src/core/file-broker/index.js'
import {BAND} from '../../src/core/file-broker/message-ids.js'
import {pidSpace} from '../../src/core/process-alive.js'
import {tempHome, waiterRows, waitFor} from '../helpers.js'

/** The waiting consumers registered in a broker folder. */
const registrations = waiterRows

function messageRows(home: string): number {
  const db = new Database(join(home, 'broker.db'), {fileMustExist: true, timeout: 5_000})
  try {
    return (db.prepare('SELECT count(*) AS n FROM messages').get() as {n: number}).n
  } finally {
    db.close()
  }
}

/** A queue's totals as its row stores them (without what registrations still owe). */
function storedTotals(home: string, queue: string): {published: number; acked: number} {
  const db = new Database(join(home, 'broker.db'), {fileMustExist: true, timeout: 5_000})
  try {
    return db
      .prepare('SELECT published_total AS published, acked_total AS acked FROM destinations WHERE name = ?')
      .get(queue) as {published: number; acked: number}
  } finally {
    db.close()
  }
}

/** Adds a registration as another process would have made it. */
function register(home: string, queue: string, row: {pid: number; space?: string; aliveUntil?: number}): void {
  const db = new Database(join(home, 'broker.db'))
  try {
    const {id} = db.prepare('SELECT id FROM destinations WHERE name = ?').get(queue) as {id: number}
    db.prepare(
      'INSERT INTO waiters (dest_id, pid, started, pid_space, max, alive_until) VALUES (?, ?, NULL, ?, 100, ?)',
    ).run(id, row.pid, row.space ?? pidSpace(), row.aliveUntil ?? Date.now() + 60_000)
  } finally {
    db.close()
  }
}

/** Runs `fn` with Date.now moved forward by `clock.offset` ms (0 at first; `fn` sets it). */
async function withClock(fn: (clock: {offset: number}) => Promise<void>): Promise<void> {
  const realNow = Date.now
  const clock = {offset: 0}
  Date.now = () => realNow() + clock.offset
  try {
    await fn(clock)
  } finally {
    Date.now = realNow
  }
}

/** The pid of a process that has exited (and was reaped). */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid!
}

describe('hand-off to waiting consumers', () => {
  let home: string
  let consumer: FileBroker
  let publisher: FileBroker

  beforeEach(async () => {
    home = tempHome()
    consumer = new FileBroker(home)
    publisher = new FileBroker(home)
    await publisher.declareQueue('q')
  })

  afterEach(async () => {
    await consumer.close()
    await publisher.close()
  })

  /**
   * Starts an auto-ack long poll on `q`; resolves once it is registered (a new registration, or
   * the spent one of the last delivery made to wait again), with what it will receive.
   */
  async function waiting(max = 10, signal?: AbortSignal, queue = 'q'): Promise<{receiving: Promise<Delivery[]>}> {
    const waitingBefore = new Set(
      registrations(home)
        .filter((r) => r.handed === null)
        .map((r) => r.id),
    )
    const receiving = consumer.receive(queue, {max, autoAck: true, waitMs: 60_000, signal})
    await waitFor(
      () => registrations(home).some((r) => r.handed === null && !waitingBefore.has(r.id)),
      'the receive to register',
    )
    return {receiving}
  }

  it('a publish gives its messages to a waiting auto-ack receive in its own commit; they never enter the queue', async () => {
    const {receiving} = await waiting()
    const [published] = await publisher.publish('q', [{body: 'hello', headers: {k: 'v'}}])
    // Handed in the publish's commit: on the registration, not in the table, and not counted yet.
    expect(registrations(home)[0]).to.deep.include({uncounted: 1})
    expect(registrations(home)[0].handed).to.be.a('string')
    expect(messageRows(home)).to.equal(0)
    // Totals and rates count it all the same, from the moment it was handed…
    const counted = async () => {
      const stats = await publisher.queueStats('q')
      expect([stats.depth, stats.ready, stats.inFlight]).to.deep.equal([0, 0, 0])
      expect([stats.totals.published, stats.totals.acked]).to.deep.equal([1, 1])
      expect(await publisher.queueTotals('q')).to.deep.include({published: 1, acked: 1})
      expect(stats.rates.publishedPerSecond.last1m).to.be.greaterThan(0)
      expect(stats.rates.ackedPerSecond.last1m).to.be.greaterThan(0)
    }
    await counted()
    const delivered = await receiving
    expect(delivered.map((d) => [d.id, d.body, d.headers, d.attempt, d.receipt])).to.deep.equal([
      [published.id, 'hello', {k: 'v'}, 1, undefined],
    ])
    await counted()
    // …and once: the next receive (one that does not wait) removes the spent registration,
    // counting it into the totals.
    expect(await consumer.receive('q', {max: 10, autoAck: true})).to.deep.equal([])
    expect(registrations(home)).to.deep.equal([])
    await counted()
  })

  it('onHandOff gets what was handed as soon as the change is noticed, synced, before the receive returns the same array', async () => {
    const events: string[] = []
    let early: Delivery[] | undefined
    const receiving = consumer
      .receive('q', {
        max: 10,
        autoAck: true,
        waitMs: 60_000,
        onHandOff: (deliveries) => {
          early = deliveries
          events.push(`handed ${deliveries.map((d) => d.body).join(',')}`)
        },
      })
      .then((deliveries) => {
        events.push('returned')
        return deliveries
      })
    await waitFor(() => registrations(home).some((r) => r.handed === null), 'the receive to register')
    await publisher.publish('q', [{body: 'a'}, {body: 'b'}])
    const returned = await receiving
    expect(events).to.deep.equal(['handed a,b', 'returned'])
    expect(returned).to.equal(early)
    // Taken once: nothing is left to another receive, and the registration is spent, not put back.
    expect(await consumer.receive('q', {max: 10, autoAck: true})).to.deep.equal([])
    expect(messageRows(home)).to.equal(0)
    expect(registrations(home)).to.deep.equal([])
  })

  it('onHandOff is not called for messages a receive takes from the queue itself', async () => {
    await publisher.publish('q', [{body: 'waiting already'}])
    let called = false
    const taken = await consumer.receive('q', {
      max: 10,
      autoAck: true,
      waitMs: 60_000,
      onHandOff: () => (called = true),
    })
    expect(taken.map((d) => d.body)).to.deep.equal(['waiting already'])
    expect(called).to.equal(false)
  })

  it('ids stay unique and in publish order: a handed id is never given again, before or after its waiter is gone', async () => {
    const ids: number[] = []
    const publish = async (name: string, body: string) => {
      const [result] = await publisher.publish(name, [{body}])
      ids.push(Number(result.id))
    }
    let {receiving} = await waiting()
    await publish('q', 'handed 1')
    // Band 0's counter did not move: the id lives on the registration until it is removed.
    expect(registrations(home)[0]).to.deep.include({last_id: ids[0]})
    await publish('other', 'stored after it')
    await publisher.declareTopic('t')
    await publish('t', 'a topic message after it')
    expect((await receiving).map((d) => d.id)).to.deep.equal([String(ids[0])])
    ;({receiving} = await waiting()) // waits again on its row, which settles (this broker's first settlement)
    expect(registrations(home).map((r) => r.last_id)).to.deep.equal([null])
    await publish('q', 'handed 2')
    await receiving
    // Put back unread (the waiter closes first), then deleted with its queue: still never given again.
    ;({receiving} = await waiting())
    await publish('q', 'put back')
    await consumer.close()
    await publish('other', 'after the put-back')
    consumer = new FileBroker(home)
    const [back] = await consumer.receive('q', {max: 10, autoAck: true})
    expect([back.body, Number(back.id)]).to.deep.equal(['put back', ids[4]])
    const stop = new AbortController()
    ;({receiving} = await waiting(10, stop.signal))
    await publish('q', 'handed 3')
    await publisher.deleteQueue('q') // with its registration, read or not
    stop.abort()
    await publish('other', 'after the queue went')
    expect(ids).to.deep.equal([...ids].sort((a, b) => a - b))
    expect(new Set(ids).size).to.equal(ids.length)
    expect((await publisher.receive('other', {max: 10, autoAck: true})).map((d) => Number(d.id))).to.deep.equal([
      ids[1],
      ids[5],
      ids[7],
    ])
    expect((await receiving).every((d) => d.body === 'handed 3')).to.equal(true)
  })

  it('a registration wakes nobody (it gives no one anything to wait for); a hand-off wakes its waiter', async () => {
    /** Counts the commits a broker signals to waiting consumers (Sql.signal). */
    const signals = (broker: FileBroker) => {
      const sql = (broker as unknown as {sql: {signal(): void}}).sql
      const signal = sql.signal.bind(sql)
      const count = {n: 0}
      sql.signal = () => {
        count.n++
        signal()
      }
      return count
    }
    const consumed = signals(consumer)
    const published = signals(publisher)
    let {receiving} = await waiting()
    expect(consumed.n).to.equal(0)
    await publisher.publish('q', [{body: 'one'}])
    expect(published.n).to.equal(1)
    await receiving
    // Its next receive makes the spent registration wait again: still no signal.
    ;({receiving} = await waiting())
    expect(consumed.n).to.equal(0)
    await publisher.publish('q', [{body: 'two'}])
    expect((await receiving).map((d) => d.body)).to.deep.equal(['two'])
  })

  it('after a delivery the same registration waits again (one row updated); what it owes is settled once a second', async () => {
    await withClock(async (clock) => {
      let {receiving} = await waiting()
      const [{id}] = registrations(home)
      await publisher.publish('q', [{body: 'one'}])
      await receiving
      // Waits again: this broker never settled before, so it settles now.
      ;({receiving} = await waiting())
      expect(registrations(home).map((r) => [r.id, r.handed, r.uncounted, r.last_id])).to.deep.equal([
        [id, null, 0, null],
      ])
      expect(storedTotals(home, 'q')).to.deep.equal({published: 1, acked: 1})
      const [two] = await publisher.publish('q', [{body: 'two'}])
      await receiving
      // Within the second: the row keeps what it owes; the queue's totals count it all the same.
      ;({receiving} = await waiting())
      expect(registrations(home).map((r) => [r.id, r.uncounted, r.last_id])).to.deep.equal([[id, 1, Number(two.id)]])
      expect(storedTotals(home, 'q')).to.deep.equal({published: 1, acked: 1})
      expect(await publisher.queueTotals('q')).to.deep.include({published: 2, acked: 2})
      clock.offset = 1_500
      await publisher.publish('q', [{body: 'three'}])
      await receiving
      ;({receiving} = await waiting())
      expect(registrations(home).map((r) => [r.id, r.uncounted, r.last_id])).to.deep.equal([[id, 0, null]])
      expect(storedTotals(home, 'q')).to.deep.equal({published: 3, acked: 3})
      await publisher.publish('q', [{body: 'four'}])
      expect((await receiving).map((d) => d.body)).to.deep.equal(['four'])
    })
  })

  it('serves the longest waiting first: a waiter just handed a message waits again behind the others', async () => {
    const other = new FileBroker(home)
    try {
      let {receiving: first} = await waiting()
      const waitingBefore = registrations(home).map((r) => r.id)
      const second = other.receive('q', {max: 10, autoAck: true, waitMs: 60_000})
      await waitFor(() => registrations(home).length === waitingBefore.length + 1, 'the other consumer to register')
      await publisher.publish('q', [{body: 'm1'}])
      expect((await first).map((d) => d.body)).to.deep.equal(['m1'])
      ;({receiving: first} = await waiting()) // the same row, waiting again
      await publisher.publish('q', [{body: 'm2'}])
      expect((await second).map((d) => d.body)).to.deep.equal(['m2'])
      await publisher.publish('q', [{body: 'm3'}])
      expect((await first).map((d) => d.body)).to.deep.equal(['m3'])
    } finally {
      await other.close()
    }
  })

  it('totals and what waiters still owe them are read in one snapshot', async () => {
    const {receiving} = await waiting()
    await publisher.publish('q', [{body: 'one'}])
    await receiving
    // Another process settles the registration between the two reads of queueTotals.
    const waiters = (publisher as unknown as {waiters: {uncounted(queueId: number): unknown}}).waiters
    const uncounted = waiters.uncounted.bind(waiters)
    waiters.uncounted = (queueId: number) => {
      const db = new Database(join(home, 'broker.db'))
      db.exec(
        "UPDATE destinations SET published_total = published_total + 1, acked_total = acked_total + 1 WHERE name = 'q'; UPDATE waiters SET uncounted = 0",
      )
      db.close()
      return uncounted(queueId)
    }
    expect(await publisher.queueTotals('q')).to.deep.include({published: 1, acked: 1})
    expect((await publisher.queueStats('q')).totals).to.deep.include({published: 1, acked: 1})
  })

  it('what a dead waiter never settled counts in the rates of the minute it was handed, not forever in the current one', async () => {
    register(home, 'q', {pid: process.pid})
    await publisher.publish('q', [{body: 'lost'}])
    // Its process died ten minutes ago, owing 600 (a burst), and nothing registered on the queue
    // since to sweep it.
    const db = new Database(join(home, 'broker.db'))
    db.prepare('UPDATE waiters SET pid = ?, uncounted = 600, handed_at = handed_at - 600000').run(deadPid())
    db.close()
    const stats = await publisher.queueStats('q')
    expect(stats.totals).to.deep.include({published: 600, acked: 600})
    expect([stats.rates.publishedPerSecond.last5m, stats.rates.ackedPerSecond.last5m]).to.deep.equal([0, 0])
  })

  it('a registration deleted by anyone (an older mqctl knows nothing of last_id) still never gives its ids again', async () => {
    const {receiving} = await waiting()
    const [handed] = await publisher.publish('q', [{body: 'handed'}])
    await receiving
    expect(registrations(home)[0]).to.deep.include({last_id: Number(handed.id)})
    const db = new Database(join(home, 'broker.db'))
    db.prepare('DELETE FROM waiters').run()
    db.close()
    const [next] = await publisher.publish('other', [{body: 'next'}])
    expect(Number(next.id)).to.be.greaterThan(Number(handed.id))
  })

  it('hands a batch in delivery order: higher priority first, then publish order', async () => {
    const {receiving} = await waiting()
    const results = await publisher.publish('q', [
      {body: 'a', priority: 0},
      {body: 'b', priority: 5},
      {body: 'c', priority: 1},
      {body: 'd', priority: 5},
    ])
    const delivered = await receiving
    expect(delivered.map((d) => d.body)).to.deep.equal(['b', 'd', 'c', 'a'])
    expect(delivered.map((d) => d.id)).to.deep.equal([results[1].id, results[3].id, results[2].id, results[0].id])
    expect(Math.floor(Number(results[1].id) / BAND)).to.equal(5) // ids in their priority's band, as stored ones
  })

  it('a batch larger than what the waiter asked for: it gets the head, the rest stays queued in order', async () => {
    const {receiving} = await waiting(2)
    await publisher.publish(
      'q',
      ['m0', 'm1', 'm2', 'm3', 'm4'].map((body) => ({body})),
    )
    expect((await receiving).map((d) => d.body)).to.deep.equal(['m0', 'm1'])
    const rest = await publisher.receive('q', {max: 10, autoAck: true})
    expect(rest.map((d) => d.body)).to.deep.equal(['m2', 'm3', 'm4'])
  })

  it('hands at most 16 MiB at once: a larger head is left for the receive to take', async () => {
    await publisher.declareQueue('big', {maxBodyBytes: 10 * 1024 * 1024})
    const {receiving} = await waiting(10, undefined, 'big')
    const body = (c: string) => c.repeat(9 * 1024 * 1024)
    await publisher.publish('big', [{body: body('a')}, {body: body('b')}])
    // Not the whole batch (18 MiB): inserted, and only the first handed.
    expect(JSON.parse(registrations(home)[0].handed!)).to.have.length(1)
    const [first] = await receiving
    expect(first.body).to.equal(body('a'))
    const [second] = await consumer.receive('big', {max: 10, autoAck: true})
    expect(second.body).to.equal(body('b'))
  })

  it('a delayed message is not handed; it is delivered when due', async () => {
    const {receiving} = await waiting()
    await publisher.publish('q', [{body: 'later', deliverAt: Date.now() + 300}])
    expect(registrations(home)[0].handed).to.equal(null)
    expect((await publisher.queueStats('q')).delayed).to.equal(1)
    expect((await receiving).map((d) => d.body)).to.deep.equal(['later'])
  })

  it('a dedup id of a handed message answers a repeat with the same id', async () => {
    const {receiving} = await waiting()
    const [first] = await publisher.publish('q', [{body: 'once', dedupId: 'x'}])
    await receiving
    const [again] = await publisher.publish('q', [{body: 'once', dedupId: 'x'}])
    expect(again).to.deep.include({id: first.id, duplicate: true})
    expect((await publisher.queueStats('q')).depth).to.equal(0)
  })

  it('never hands to a registration whose process is gone: it is removed, the message queued', async () => {
    register(home, 'q', {pid: deadPid()})
    await publisher.publish('q', [{body: 'kept'}])
    expect(registrations(home)).to.deep.equal([])
    expect((await publisher.receive('q', {max: 10, autoAck: true})).map((d) => d.body)).to.deep.equal(['kept'])
  })

  it('messages handed to a waiter that died before reading them are counted as delivered when it is swept', async () => {
    register(home, 'q', {pid: process.pid})
    await publisher.publish('q', [{body: 'lost'}])
    expect(registrations(home)[0]).to.deep.include({uncounted: 1})
    // Its process is gone (the row now names a dead pid): the next registration sweeps it.
    const db = new Database(join(home, 'broker.db'))
    db.prepare('UPDATE waiters SET pid = ?').run(deadPid())
    db.close()
    const {receiving} = await waiting()
    expect(registrations(home)).to.have.length(1)
    expect(await publisher.queueTotals('q')).to.deep.include({published: 1, acked: 1})
    expect((await publisher.queueStats('q')).depth).to.equal(0)
    await publisher.publish('q', [{body: 'next'}])
    expect((await receiving).map((d) => d.body)).to.deep.equal(['next'])
  })

  it('leaves alone a registration it cannot trust: stale, or made in another pid space', async () => {
    register(home, 'q', {pid: process.pid, aliveUntil: Date.now() - 1}) // alive, not refreshed for long
    register(home, 'q', {pid: process.pid, space: 'another-container'})
    await publisher.publish('q', [{body: 'kept'}])
    expect(registrations(home).map((r) => r.handed)).to.deep.equal([null, null])
    expect((await publisher.queueStats('q')).depth).to.equal(1)
  })

  it('a registration sweeps the dead (also those from before the machine started), not the uncheckable', async () => {
    register(home, 'q', {pid: deadPid()})
    register(home, 'q', {pid: process.pid, space: 'an-earlier-boot:4026531836'})
    register(home, 'q', {pid: process.pid, space: 'another-container'})
    const {receiving} = await waiting()
    const left = registrations(home)
    expect(left.map((r) => r.pid)).to.deep.equal([process.pid, process.pid])
    await publisher.publish('q', [{body: 'mine'}])
    expect((await receiving).map((d) => d.body)).to.deep.equal(['mine'])
  })

  it('a waiter refreshes its registration when it wakes, so a publish keeps trusting it', async () => {
    await withClock(async (clock) => {
      const {receiving} = await waiting()
      const [registered] = registrations(home)
      // Six seconds on (less than REFRESH_MS of trust left), any commit wakes the waiter: it refreshes.
      clock.offset = 6_000
      await publisher.publish('elsewhere', [{body: 'wake up'}])
      await waitFor(
        () => registrations(home)[0].alive_until > registered.alive_until,
        'the waiter to refresh its registration',
      )
      // Twelve seconds after it registered, past its first TRUSTED_MS: still handed messages.
      clock.offset = 12_000
      await publisher.publish('q', [{body: 'still trusted'}])
      expect(registrations(home)[0].handed).to.be.a('string')
      expect((await receiving).map((d) => d.body)).to.deep.equal(['still trusted'])
    })
  })

  it('a receive that times out takes its registration back', async () => {
    const delivered = await consumer.receive('q', {max: 10, autoAck: true, waitMs: 300})
    expect(delivered).to.deep.equal([])
    expect(registrations(home)).to.deep.equal([])
  })

  it('an interrupted receive takes its registration back; what it was handed first is delivered, not lost', async () => {
    const controller = new AbortController()
    const {receiving} = await waiting(10, controller.signal)
    await publisher.publish('q', [{body: 'in time'}])
    controller.abort() // before this process's watch reported the commit
    expect((await receiving).map((d) => d.body)).to.deep.equal(['in time'])

    const second = new AbortController()
    const {receiving: idle} = await waiting(10, second.signal)
    second.abort()
    expect(await idle).to.deep.equal([])
    await consumer.receive('q', {max: 1, autoAck: true}) // removes what the first one spent
    expect(registrations(home)).to.deep.equal([])
  })

  it('closing with a handed message not yet read puts it back where it was', async () => {
    const {receiving} = await waiting()
    await publisher.publish('q', [{body: 'first'}])
    await publisher.publish('q', [{body: 'second'}])
    await consumer.close() // before its watch reported the commits
    expect(await receiving).to.deep.equal([])
    expect(registrations(home)).to.deep.equal([])
    // Published, and back in the queue: not delivered.
    expect(await publisher.queueTotals('q')).to.deep.include({published: 2, acked: 0})
    expect((await publisher.queueStats('q')).depth).to.equal(2)
    const back = await publisher.receive('q', {max: 10, autoAck: true})
    expect(back.map((d) => [d.body, d.attempt])).to.deep.equal([
      ['first', 1],
      ['second', 1],
    ])
    expect((await publisher.queueStats('q')).totals).to.deep.include({published: 2, acked: 2})
  })

  it('deleting the queue removes its registrations; the waiter goes on waiting without error', async () => {
    const receiving = consumer.receive('q', {max: 10, autoAck: true, waitMs: 600})
    await waitFor(() => registrations(home).length === 1, 'the receive to register')
    await publisher.deleteQueue('q')
    expect(registrations(home)).to.deep.equal([])
    expect(await receiving).to.deep.equal([])
  })

  it('a manual-ack receive is not handed messages: it leases them from the queue', async () => {
    const receiving = consumer.receive('q', {max: 1, autoAck: false, waitMs: 60_000})
    await publisher.publish('q', [{body: 'leased'}])
    const [delivery] = await receiving
    expect(delivery.receipt).to.be.a('string')
    expect((await publisher.queueStats('q')).inFlight).to.equal(1)
    expect(await consumer.ack([delivery.receipt!])).to.deep.equal(['ok'])
  })
})
