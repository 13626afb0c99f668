import Database from 'better-sqlite3'
import {expect} from 'chai'
import {spawnSync} from 'node:child_process'
import {join} from 'node:path'

import {DEFAULT_TOPIC_SETTINGS} from '../../src/core/broker.js'
import {Destinations} from '../../src/core/file-broker/destinations.js'
import {FileBroker} from '../../src/core/file-broker/index.js'
import {BAND, idText} from '../../src/core/file-broker/message-ids.js'
import {Sql} from '../../src/core/file-broker/sql.js'
import {SubscriptionStore} from '../../src/core/file-broker/subscription-store.js'
import {pidSpace} from '../../src/core/process-alive.js'
import {MIGRATIONS} from '../../src/core/store/migrations.js'
import {tempHome} from '../helpers.js'

/** "MQCL": the application id of an mqctl broker (src/core/store/database.ts). */
const APPLICATION_ID = 0x4d51434c

/**
 * A broker folder as schema 4 (before priority bands) left it: destinations made by the code that
 * has not changed since, messages written with schema 4's own statements (ids from AUTOINCREMENT,
 * every priority in one range). Returns the receipts it handed out.
 */
function schema4Folder(home: string): {leased: string; pointer: string} {
  const db = new Database(join(home, 'broker.db'))
  db.pragma('journal_mode = WAL')
  for (const migration of MIGRATIONS.slice(0, 4)) db.exec(migration)
  db.pragma(`application_id = ${APPLICATION_ID}`)
  db.pragma('user_version = 4')
  const sql = new Sql(db, home)
  const destinations = new Destinations(sql)
  const now = Date.now()
  const hour = 3_600_000
  const jobs = destinations.createQueue('jobs')
  const topic = destinations.insert('t', 'topic', DEFAULT_TOPIC_SETTINGS)
  const insert = db.prepare(
    `INSERT INTO messages (dest_id, state, priority, visible_at, published_at, expires_at, size, body, headers, attempts, lease_token, ref_id)
     VALUES (?, ?, ?, ?, ?, NULL, ?, ?, NULL, ?, ?, ?)`,
  )
  const message = (dest: number, state: number, priority: number, visibleAt: number, body: string, lease?: string) =>
    Number(
      insert.run(dest, state, priority, visibleAt, now, body.length, body, lease ? 1 : 0, lease ?? null, null)
        .lastInsertRowid,
    )
  // Ready ones of several priorities, one leased for an hour, one delayed briefly.
  const ids = [
    message(jobs.id, 0, 0, now, 'a'),
    message(jobs.id, 0, 5, now, 'b'),
    message(jobs.id, 0, 9, now, 'c'),
    message(jobs.id, 0, 5, now, 'd'),
    message(jobs.id, 0, 0, now, 'e'),
  ]
  const leased = message(jobs.id, 1, 3, now + hour, 'f', 'AAAAAAAA')
  message(jobs.id, 1, 0, now + 200, 'g')
  db.prepare('INSERT INTO dedup (dest_id, dedup_id, message_id, expires_at) VALUES (?, ?, ?, ?)').run(
    jobs.id,
    'k',
    ids[1],
    now + hour,
  )
  // A topic log read by a durable subscription, which holds a lease on the second message.
  const l1 = message(topic.id, 2, 0, now, 'l1')
  const l2 = message(topic.id, 2, 0, now, 'l2')
  const subscription = new SubscriptionStore(sql, destinations).create('d', 't', true, l1 - 1, {})
  db.prepare('UPDATE subscriptions SET cursor = ? WHERE dest_id = ?').run(l2, subscription.destId)
  const pointer = Number(
    db
      .prepare(
        `INSERT INTO messages (dest_id, state, visible_at, published_at, attempts, lease_token, size, body, ref_id)
         VALUES (?, 1, ?, ?, 1, ?, 0, '', ?)`,
      )
      .run(subscription.destId, now + hour, now, 'BBBBBBBB', l2).lastInsertRowid,
  )
  // The newest message is gone: its id must still never come back.
  db.prepare('DELETE FROM messages WHERE id = ?').run(message(jobs.id, 0, 0, now, 'z'))
  db.close()
  return {leased: `${leased}.AAAAAAAA`, pointer: `${pointer}.BBBBBBBB`}
}

describe('message ids in priority bands', () => {
  it('writes every id as String() would', () => {
    const ids = [1, 99_999_999, 2 ** 31 - 1, 2 ** 31, 100_000_000 * 21_474_837 - 1, BAND, 5 * BAND + 1, 10 * BAND - 1]
    for (let band = 0; band < 10; band++)
      for (let i = 0; i < 1000; i++) ids.push(band * BAND + Math.floor(Math.random() * BAND))
    expect(ids.map((id) => idText(id))).to.deep.equal(ids.map((id) => String(id)))
  })

  it('gives each priority its own range, consecutive within it, and each publish result names its message', async () => {
    const broker = new FileBroker(tempHome())
    try {
      const messages = Array.from({length: 150}, (_, i) => ({body: `m${i}`, priority: [0, 9, 3][i % 3]}))
      const results = await broker.publish('q', messages)
      const idOf = new Map(results.map((r, i) => [messages[i].body, Number(r.id)]))
      const n = (band: number, i: number) => band * BAND + Math.floor(i / 3) + 1
      expect(messages.map((m) => idOf.get(m.body))).to.deep.equal(messages.map((m, i) => n(m.priority, i)))
      const peeked = await broker.peek('q', 150)
      expect(peeked.map((m) => [m.body, Number(m.id)])).to.deep.equal(peeked.map((m) => [m.body, idOf.get(m.body)]))
      expect(peeked.slice(0, 3).map((m) => m.body)).to.deep.equal(['m1', 'm4', 'm7'])
      const taken = await broker.receive('q', {max: 150, autoAck: true})
      expect(taken.map((d) => d.body)).to.deep.equal(peeked.map((m) => m.body))
    } finally {
      await broker.close()
    }
  })

  it('numbers band 0 on, never reusing an id, whether rows of other bands are stored or not', async () => {
    const broker = new FileBroker(tempHome())
    try {
      const ids = async (name: string, messages: {body: string; priority?: number}[]) =>
        (await broker.publish(name, messages)).map((r) => r.id)
      expect(await ids('q', [{body: 'a'}, {body: 'b'}])).to.deep.equal(['1', '2'])
      expect(await ids('q', [{body: 'hot', priority: 5}])).to.deep.equal([String(5 * BAND + 1)])
      expect(await ids('q', [{body: 'c'}])).to.deep.equal(['3']) // a row of band 5 is stored
      expect(await ids('t', [{body: 'log'}])).to.deep.equal(['4'])
      const taken = await broker.receive('q', {max: 10, autoAck: true})
      expect(taken.map((d) => d.body)).to.deep.equal(['hot', 'a', 'b', 'c'])
      expect(await ids('q', [{body: 'd'}, {body: 'e'}])).to.deep.equal(['5', '6']) // none of band 5 left
      await broker.receive('q', {max: 10, autoAck: true}) // the newest ids are gone…
      expect(await ids('q', [{body: 'f'}])).to.deep.equal(['7']) // …and not given again
      expect(await ids('q', [{body: 'hot again', priority: 5}])).to.deep.equal([String(5 * BAND + 2)])
    } finally {
      await broker.close()
    }
  })

  it('steps over rows an mqctl from before the bands stored while still running (AUTOINCREMENT ids)', async () => {
    const home = tempHome()
    const broker = new FileBroker(home)
    try {
      await broker.publish('q', [{body: 'a'}, {body: 'hot', priority: 5}])
      // What an older process with the folder open during the upgrade does: the next id after the
      // highest, in whichever band that is (here band 5), and the same again after a plain row.
      const old = new Database(join(home, 'broker.db'))
      const insert = old.prepare(
        'INSERT INTO messages (id, dest_id, state, priority, published_at, size, body) SELECT ?, id, 0, ?, 0, 1, ? FROM destinations WHERE name = ?',
      )
      insert.run(5 * BAND + 2, 5, 'old hot', 'q')
      insert.run(2, 0, 'old', 'q')
      old.close()
      const ids = (await broker.publish('q', [{body: 'b'}, {body: 'hot b', priority: 5}])).map((r) => r.id)
      expect(ids).to.deep.equal(['3', idText(5 * BAND + 3)])
      const taken = await broker.receive('q', {max: 10, autoAck: true})
      expect(taken.map((d) => d.body)).to.deep.equal(['hot', 'old hot', 'hot b', 'a', 'old', 'b'])
    } finally {
      await broker.close()
    }
  })
})

describe('migration to priority bands (schema 5)', () => {
  it('upgrades a schema-4 folder: receipts, FIFO within a level, delays, dedup, cursors, and ids never reused', async () => {
    const home = tempHome()
    const {leased, pointer} = schema4Folder(home)
    const broker = new FileBroker(home)
    try {
      const db = new Database(join(home, 'broker.db'), {readonly: true})
      expect(db.pragma('user_version', {simple: true})).to.equal(MIGRATIONS.length)
      const band0 = (db.prepare('SELECT seq FROM message_seq WHERE band = 0').get() as {seq: number}).seq
      db.close()
      expect(band0).to.equal(11) // the deleted newest message's id, not the highest one left (10)

      // New messages go to their priority's band; priority 0 goes on after every id used before.
      const published = await broker.publish('jobs', [{body: 'h', priority: 5}, {body: 'i'}, {body: 'j', priority: 9}])
      expect(published.map((r) => r.id)).to.deep.equal([String(5 * BAND + 1), '12', String(9 * BAND + 1)])
      const again = await broker.publish('jobs', [{body: 'b again', dedupId: 'k'}])
      expect(again[0]).to.include({id: '2', duplicate: true})

      // A lease taken before the upgrade is still the lease: settled once, then stale.
      expect(await broker.ack([leased])).to.deep.equal(['ok'])
      expect(await broker.ack([leased])).to.deep.equal(['stale'])

      // Highest priority first, and within a level the older messages (old ids) first.
      const ready = await broker.receive('jobs', {max: 100, autoAck: true})
      expect(ready.map((d) => d.body)).to.deep.equal(['c', 'j', 'b', 'd', 'h', 'a', 'e', 'i'])
      const delayed = await broker.receive('jobs', {max: 10, autoAck: true, waitMs: 10_000})
      expect(delayed.map((d) => d.body)).to.deep.equal(['g'])

      // The durable subscription goes on after its cursor and still holds its lease.
      await broker.publish('t', [{body: 'l3'}])
      const durable = await broker.subscribe('t', {durable: 'd'})
      expect(durable.resumed).to.equal(true)
      const fresh = await durable.receive({max: 10, autoAck: false})
      expect(fresh.map((d) => [d.id, d.body])).to.deep.equal([['13', 'l3']])
      expect(await broker.ack([pointer, fresh[0].receipt!])).to.deep.equal(['ok', 'ok'])
      expect(await broker.ack([pointer])).to.deep.equal(['stale'])

      // A new subscription starts after the newest log message.
      const late = await broker.subscribe('t', {durable: 'late'})
      await broker.publish('t', [{body: 'l4'}])
      const news = await late.receive({max: 10, autoAck: true})
      expect(news.map((d) => d.body)).to.deep.equal(['l4'])
      expect(Number(news[0].id)).to.be.greaterThan(13)
    } finally {
      await broker.close()
    }
  })
})

describe('migration of hand-off registrations (schema 7)', () => {
  it('upgrades a schema-6 folder whose waiters are gone: nothing handed to them again, counted twice, or given the same id', async () => {
    const home = tempHome()
    const db = new Database(join(home, 'broker.db'))
    db.pragma('journal_mode = WAL')
    for (const migration of MIGRATIONS.slice(0, 6)) db.exec(migration)
    db.pragma(`application_id = ${APPLICATION_ID}`)
    db.pragma('user_version = 6')
    const jobs = new Destinations(new Sql(db, home)).createQueue('jobs')
    const now = Date.now()
    const nextId = () =>
      db.prepare('UPDATE message_seq SET seq = seq + 1 WHERE band = 0 RETURNING seq').pluck().get() as number
    // A ready message, as schema 6 stored and counted it.
    db.prepare(
      `INSERT INTO messages (id, dest_id, state, priority, visible_at, published_at, expires_at, size, body, headers, attempts)
       VALUES (?, ?, 0, 0, ?, ?, NULL, 3, 'old', NULL, 0)`,
    ).run(nextId(), jobs.id, now, now)
    // A message schema 6 handed to a waiter (counted as published and delivered then), which exited
    // before reading it; and a waiter that exited while waiting, its registration still fresh.
    const handedId = nextId()
    db.prepare(
      'UPDATE destinations SET published_total = published_total + ?, acked_total = acked_total + ? WHERE id = ?',
    ).run(2, 1, jobs.id)
    const gone = spawnSync(process.execPath, ['-e', '']).pid!
    const register = db.prepare(
      'INSERT INTO waiters (dest_id, pid, started, pid_space, max, alive_until, handed) VALUES (?, ?, NULL, ?, ?, ?, ?)',
    )
    register.run(
      jobs.id,
      gone,
      pidSpace(),
      1,
      now + 60_000,
      JSON.stringify([[handedId, 'lost', null, 1, now, 0, null, null]]),
    )
    register.run(jobs.id, gone, pidSpace(), 10, now + 60_000, null)
    db.close()

    const broker = new FileBroker(home)
    try {
      const view = new Database(join(home, 'broker.db'), {readonly: true})
      const waiters = () => view.prepare('SELECT count(*) FROM waiters').pluck().get()
      expect(view.pragma('user_version', {simple: true})).to.equal(MIGRATIONS.length)
      expect(await broker.queueTotals('jobs')).to.include({published: 2, acked: 1})

      // Band 0 goes on after the handed message's id; the waiter that is gone is not handed it.
      const [published] = await broker.publish('jobs', [{body: 'new'}])
      expect(published.id).to.equal(String(handedId + 1))
      const taken = await broker.receive('jobs', {max: 10, autoAck: true})
      expect(taken.map((d) => d.body)).to.deep.equal(['old', 'new'])

      // A waiting receive sweeps the registrations of processes that are gone, counting nothing again.
      expect(await broker.receive('jobs', {max: 1, autoAck: true, waitMs: 1})).to.deep.equal([])
      expect(waiters()).to.equal(0)
      expect(await broker.queueTotals('jobs')).to.include({published: 3, acked: 3})
      const [later] = await broker.publish('jobs', [{body: 'later'}])
      expect(later.id).to.equal(String(handedId + 2))
      view.close()
    } finally {
      await broker.close()
    }
  })
})
