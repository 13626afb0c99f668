import Database from 'better-sqlite3'
import {expect} from 'chai'
import {spawn} from 'node:child_process'
import fs, {chmodSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {syncBuiltinESMExports} from 'node:module'
import {join} from 'node:path'

import {backoffDelayMs} from '../../src/core/backoff.js'
import {StoreError} from '../../src/core/errors.js'
import {FileBroker} from '../../src/core/file-broker/index.js'
import {Sql} from '../../src/core/file-broker/sql.js'
import {openDatabase} from '../../src/core/store/database.js'
import {ROOT, sleep, tempHome} from '../helpers.js'
import {brokerConformance} from './broker-conformance.js'

brokerConformance('file broker', async () => new FileBroker(tempHome()))

describe('FileBroker storage', () => {
  it('creates a private folder and database in WAL mode', async () => {
    const home = join(tempHome(), 'nested', 'broker')
    const broker = new FileBroker(home)
    await broker.publish('q', [{body: 'x'}])
    await broker.close()
    expect(statSync(home).mode & 0o777).to.equal(0o700)
    expect(statSync(join(home, 'broker.db')).mode & 0o777).to.equal(0o600)
    const header = readFileSync(join(home, 'broker.db'))
    expect(header.subarray(18, 20)).to.deep.equal(Buffer.from([2, 2])) // WAL read/write versions
  })

  it('closes idempotently', async () => {
    const broker = new FileBroker(tempHome())
    await broker.close()
    await broker.close()
  })

  it('refuses a file that is not a database, without touching it', () => {
    const home = tempHome()
    writeFileSync(join(home, 'broker.db'), 'definitely not sqlite')
    expect(() => new FileBroker(home)).to.throw(StoreError, /not a broker database/)
    expect(readFileSync(join(home, 'broker.db'), 'utf8')).to.equal('definitely not sqlite')
  })

  it('refuses a home that is a file', () => {
    const home = join(tempHome(), 'file')
    writeFileSync(home, '')
    expect(() => new FileBroker(home)).to.throw(StoreError, /not a folder/)
  })

  it('reopens an existing broker and keeps its messages', async () => {
    const home = tempHome()
    const a = new FileBroker(home)
    await a.publish('q', [{body: 'kept'}])
    await a.close()
    const b = new FileBroker(home)
    const [d] = await b.receive('q', {max: 1, autoAck: true})
    expect(d.body).to.equal('kept')
    await b.close()
  })

  it('reports a read-only folder as a store error', async function () {
    if (process.getuid?.() === 0) this.skip() // root ignores permissions; covered by the CLI test as another user
    const home = tempHome()
    chmodSync(home, 0o500)
    expect(() => new FileBroker(home)).to.throw(StoreError)
  })
})

/**
 * Another process opens the broker database in `home`, takes a lock (`begin`: BEGIN IMMEDIATE or
 * EXCLUSIVE), writes the row `holder` into `marks`, and commits 300 ms after saying so. Resolves
 * once it holds the lock, with its exit code to come.
 */
async function lockHolder(home: string, begin: 'IMMEDIATE' | 'EXCLUSIVE'): Promise<{exited: Promise<unknown>}> {
  const holder = spawn(
    process.execPath,
    [
      '-e',
      `const db = new (require('better-sqlite3'))(process.argv[1])
       db.exec('BEGIN ${begin}'); db.prepare("INSERT INTO marks (who) VALUES ('holder')").run()
       console.log('locked'); setTimeout(() => { db.exec('COMMIT'); db.close() }, 300)`,
      join(home, 'broker.db'),
    ],
    {cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit']},
  )
  const exited = new Promise((resolve) => holder.on('exit', resolve))
  await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()))
  return {exited}
}

describe('waiting for another process’s write lock', () => {
  it('a write that meets the lock waits until it is let go, then commits after it', async () => {
    const home = tempHome()
    const sql = new Sql(openDatabase(home), home)
    sql.write(() => sql.q('CREATE TABLE marks (who TEXT NOT NULL, seq INTEGER PRIMARY KEY)').run())
    // Another process takes the lock, writes a row, and commits a moment after saying so.
    const {exited} = await lockHolder(home, 'IMMEDIATE')
    // The write waits in its own loop: SQLite's busy handler is off while it runs.
    const busyTimeout = sql.write(() => {
      sql.q("INSERT INTO marks (who) VALUES ('writer')").run()
      return sql.db.pragma('busy_timeout', {simple: true})
    })
    expect(busyTimeout).to.equal(0)
    expect(await exited).to.equal(0)
    const order = (sql.q('SELECT who FROM marks ORDER BY seq').all() as {who: string}[]).map((row) => row.who)
    expect(order).to.deep.equal(['holder', 'writer'])
    sql.close()
    sql.db.close()
  })

  it('a read that meets a lock waits for it with SQLite’s busy handler', async () => {
    const home = tempHome()
    // In WAL mode an open connection's reads meet a lock only in rare moments (another connection
    // recovering the WAL after a crash); without WAL, during every commit. So: a rollback journal.
    const db = openDatabase(home)
    db.pragma('journal_mode = DELETE')
    const sql = new Sql(db, home)
    sql.write(() => sql.q('CREATE TABLE marks (who TEXT NOT NULL)').run())
    // Another process holds the exclusive lock and lets it go a moment after saying so.
    const {exited} = await lockHolder(home, 'EXCLUSIVE')
    // The connection runs with SQLite's busy handler off (writes wait in their own loop): the read
    // fails with SQLITE_BUSY at once, and is run again with the handler on, then off again.
    expect(sql.db.pragma('busy_timeout', {simple: true})).to.equal(0)
    const who = sql.read(() => sql.q('SELECT who FROM marks').pluck().all())
    expect(who).to.deep.equal(['holder'])
    expect(sql.db.pragma('busy_timeout', {simple: true})).to.equal(0)
    expect(await exited).to.equal(0)
    sql.close()
    sql.db.close()
  })
})

describe('retry backoff', () => {
  it('doubles from the base up to the maximum, with equal jitter: between half and all of it', () => {
    for (const [attempt, full] of [
      [1, 200],
      [2, 400],
      [3, 800],
      [4, 1000],
      [9, 1000],
    ]) {
      const draws = Array.from({length: 200}, () => backoffDelayMs(200, 1000, attempt))
      expect(Math.min(...draws), `attempt ${attempt}`).to.be.at.least(full / 2)
      expect(Math.max(...draws), `attempt ${attempt}`).to.be.at.most(full)
      expect(new Set(draws).size, `attempt ${attempt}: spread out`).to.be.greaterThan(1)
    }
  })

  it('a failed delivery of a queue waits out the queue’s backoff before it is ready again', async () => {
    const home = tempHome()
    const broker = new FileBroker(home)
    try {
      await broker.declareQueue('q', {retryBackoffMs: 60_000, retryBackoffMaxMs: 90_000})
      await broker.publish('q', [{body: 'x'}])
      for (const [attempt, full] of [
        [1, 60_000],
        [2, 90_000],
      ]) {
        const [delivery] = await broker.receive('q', {max: 1, autoAck: false})
        expect(delivery.attempt).to.equal(attempt)
        const before = Date.now()
        await broker.nack([delivery.receipt!], {backoff: true})
        const after = Date.now()
        expect(await broker.receive('q', {max: 1, autoAck: false})).to.deep.equal([])
        // When it is due (stored for every process to see), read straight from the database.
        const db = new Database(join(home, 'broker.db'), {readonly: true})
        const {visible_at: due} = db.prepare('SELECT visible_at FROM messages').get() as {visible_at: number}
        db.close()
        expect(due, `attempt ${attempt}`).to.be.within(before + full / 2, after + full)
        // Due now, for the next attempt (not waited for: what is tested is when it was due).
        const writer = new Database(join(home, 'broker.db'))
        writer.prepare('UPDATE messages SET visible_at = 0').run()
        writer.close()
      }
    } finally {
      await broker.close()
    }
  })
})

describe('leases and acks', () => {
  it('acks receipts by lease token: an older delivery’s receipt and a repeated one in the same batch are stale', async () => {
    const broker = new FileBroker(tempHome())
    try {
      await broker.publish('jobs', [{body: 'a'}, {body: 'b'}, {body: 'c'}])
      const first = await broker.receive('jobs', {max: 3, autoAck: false, visibilityTimeoutMs: 1})
      await sleep(5)
      // Redelivered: new leases (one token for the batch); the first receipts are stale now.
      const second = await broker.receive('jobs', {max: 2, autoAck: false})
      expect(second.map((d) => d.body)).to.deep.equal(['a', 'b'])
      const [a1, b1, c1] = first.map((d) => d.receipt!)
      const [a2, b2] = second.map((d) => d.receipt!)
      // c1 still holds: its lease ran out but nobody took the message again.
      expect(await broker.ack([a1, a2, b2, a2, c1, b1])).to.deep.equal(['stale', 'ok', 'ok', 'stale', 'ok', 'stale'])
      const stats = await broker.queueStats('jobs')
      expect([stats.depth, stats.totals.acked]).to.deep.equal([0, 3])
    } finally {
      await broker.close()
    }
  })

  it('acks the receipts of several receives and queues in one batch; a stale one amid current ones of its receive leaves those acked', async () => {
    const broker = new FileBroker(tempHome())
    try {
      await broker.publish('jobs', [{body: 'a'}, {body: 'b'}, {body: 'c'}, {body: 'd'}])
      await broker.publish('other', [{body: 'x'}, {body: 'y'}])
      const [a, b, c] = (await broker.receive('jobs', {max: 3, autoAck: false})).map((d) => d.receipt!)
      const [d] = (await broker.receive('jobs', {max: 1, autoAck: false})).map((d) => d.receipt!)
      const [x, y] = (await broker.receive('other', {max: 2, autoAck: false})).map((d) => d.receipt!)
      expect(await broker.ack([b])).to.deep.equal(['ok'])
      // a, b, c share a token and b is settled already (stale, not first of its receive's ids);
      // d and x, y are whole receives.
      expect(await broker.ack([a, x, b, d, c, y])).to.deep.equal(['ok', 'ok', 'stale', 'ok', 'ok', 'ok'])
      const jobs = await broker.queueStats('jobs')
      const other = await broker.queueStats('other')
      expect([jobs.depth, jobs.totals.acked, other.depth, other.totals.acked]).to.deep.equal([0, 4, 0, 2])
      // The first receipt of its receive stale, the others current.
      await broker.publish('jobs', [{body: 'e'}, {body: 'f'}])
      const [e, f] = (await broker.receive('jobs', {max: 2, autoAck: false})).map((d) => d.receipt!)
      expect(await broker.ack([e])).to.deep.equal(['ok'])
      expect(await broker.ack([e, f])).to.deep.equal(['stale', 'ok'])
      const after = await broker.queueStats('jobs')
      expect([after.depth, after.totals.acked]).to.deep.equal([0, 6])
      // Ids that are not one run (a gap; priority bands) are acked as well.
      await broker.publish('jobs', [{body: 'g'}, {body: 'h'}, {body: 'i'}, {body: 'j', priority: 5}])
      const [j, g, h, i] = (await broker.receive('jobs', {max: 4, autoAck: false})).map((d) => d.receipt!)
      expect(await broker.ack([g, i, j])).to.deep.equal(['ok', 'ok', 'ok'])
      expect(await broker.ack([h, g])).to.deep.equal(['ok', 'stale'])
      const last = await broker.queueStats('jobs')
      expect([last.depth, last.totals.acked]).to.deep.equal([0, 10])
    } finally {
      await broker.close()
    }
  })

  it('an ack waiting for another process’s write lock settles the receipts that arrive meanwhile in the same batch', async () => {
    const home = tempHome()
    const broker = new FileBroker(home)
    try {
      await broker.publish('jobs', [{body: 'a'}, {body: 'b'}, {body: 'c'}])
      const [a, b, c] = (await broker.receive('jobs', {max: 3, autoAck: false})).map((d) => d.receipt!)
      await broker.ack([c])
      // Another process holds the write lock until it reads a line.
      const holder = spawn(
        process.execPath,
        [
          '-e',
          `const db = new (require('better-sqlite3'))(process.argv[1])
           db.exec('BEGIN IMMEDIATE'); console.log('locked')
           process.stdin.once('data', () => { db.exec('COMMIT'); db.close(); process.exit(0) })`,
          join(home, 'broker.db'),
        ],
        {cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit']},
      )
      const exited = new Promise((resolve) => holder.on('exit', resolve))
      await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()))
      const asked: string[][] = []
      const more = () => {
        // Called while the ack waits: b (and the stale c) arrive now; then the lock is let go.
        const arrived = asked.length === 0 ? [b, c] : []
        asked.push(arrived)
        if (asked.length === 1) holder.stdin.write('go\n')
        return arrived
      }
      expect(await broker.ack([a], {more})).to.deep.equal(['ok', 'ok', 'stale'])
      expect(asked[0]).to.deep.equal([b, c])
      expect(await exited).to.equal(0)
      expect((await broker.queueStats('jobs')).depth).to.equal(0)
    } finally {
      await broker.close()
    }
  })

  it('a write is synced before it returns, a lease transaction is not; commits never sync under the lock', () => {
    const home = tempHome()
    const db = openDatabase(home)
    // Opening (with its migrations) commits with FULL: SQLite syncs inside those commits.
    expect(db.pragma('synchronous', {simple: true})).to.equal(2)
    const sql = new Sql(db, home)
    const synchronous = () => sql.db.pragma('synchronous', {simple: true})
    const syncs = countSyncs()
    try {
      // Inside every write transaction SQLite commits without a sync (NORMAL: the lock is released
      // at once); Sql syncs the WAL itself after the commit.
      expect(sql.write(() => synchronous())).to.equal(1)
      expect(syncs.count).to.equal(1)
      expect(sql.write(() => synchronous(), 'lease')).to.equal(1)
      expect(syncs.count).to.equal(1) // a lease is not synced of its own
      // A durable write that joins a lease transaction makes it durable.
      sql.write(() => sql.write(() => 1), 'lease')
      expect(syncs.count).to.equal(2)
      expect(() =>
        sql.write(() => {
          throw new Error('failed')
        }),
      ).to.throw(/failed/)
      expect(syncs.count).to.equal(2) // nothing committed, nothing to sync
      expect(synchronous()).to.equal(1) // NORMAL throughout: every commit goes through write, which syncs
    } finally {
      syncs.restore()
      sql.close()
    }
  })
})

/** Counts fdatasync calls (what Sql syncs the WAL with) until `restore`. */
function countSyncs(): {count: number; restore: () => void} {
  const original = fs.fdatasyncSync
  const counter = {
    count: 0,
    restore: () => {
      fs.fdatasyncSync = original
      syncBuiltinESMExports()
    },
  }
  fs.fdatasyncSync = (fd) => {
    counter.count++
    original(fd)
  }
  syncBuiltinESMExports() // the named import in sql.ts sees the counting one
  return counter
}
