import {expect} from 'chai'
import {spawn} from 'node:child_process'
import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {jsonLines, type MqProcess, mq, ROOT, start, tempHome, waitFor} from '../helpers.js'

/**
 * Holds the broker's write lock (BEGIN IMMEDIATE, as a backup or a `sqlite3` shell would) for at
 * least 25 s — well past the 10 s busy timeout — and until its stdin closes; says "locked" once it
 * holds it.
 */
const LOCKER = `
const Database = require('better-sqlite3')
const db = new Database(process.argv[1])
db.pragma('busy_timeout = 60000')
db.exec('BEGIN IMMEDIATE')
const since = Date.now()
console.log('locked')
process.stdin.resume()
process.stdin.on('end', () => setTimeout(() => {
  db.exec('COMMIT')
  db.close()
  console.log('released')
}, Math.max(0, 25000 - (Date.now() - since))))
`

const WAITING = 'broker locked by another process; waiting'

const numbered = (prefix: string, count: number) => Array.from({length: count}, (_, i) => `${prefix}-${i}`)

describe('lock contention: another process holds the write lock past the busy timeout', function () {
  this.timeout(180_000)

  it('followers, --exec workers, a subscriber and a --lines stream wait it out, finish their work and lose nothing', async () => {
    const home = tempHome()
    const startedLog = join(home, 'started.log')
    const doneLog = join(home, 'done.log')
    const gate = join(home, 'gate')
    const jobs = numbered('job', 20)
    const held = numbered('held', 20)
    const news = numbered('news', 20)
    const work = numbered('work', 6)
    const streamed = numbered('line', 10)
    for (const [args, bodies] of [
      [['publish', 'jobs', '--lines'], jobs],
      [['publish', 'held', '--lines'], held],
      [['publish', 'news', '--topic', '--lines'], news],
      [['publish', 'work', '--lines'], work],
    ] as const) {
      expect((await mq([...args], {home, input: bodies.join('\n') + '\n', timeoutMs: 120_000})).code).to.equal(0)
    }

    const long = {home, timeoutMs: 170_000}
    // Two workers, two commands each: all four run (and wait for the gate) when the lock is taken.
    const command = `echo "$MQ_MESSAGE_ID" >> ${startedLog}; while [ ! -e ${gate} ]; do sleep 0.05; done; body=$(cat); echo "$body" >> ${doneLog}`
    const workers = [0, 1].map(() => start(['consume', 'work', '-f', '--parallel', '2', '--exec', command], long))
    const stream = start(['publish', 'lines', '--lines'], {...long, openStdin: true})
    const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [])
    await waitFor(() => lines(startedLog).length === 4, 'four running commands', 30_000)
    stream.child.stdin!.write('line-first\n')
    await waitFor(() => stream.lines().length === 1, 'the stream to publish its first line', 30_000)

    const locker = spawn(process.execPath, ['-e', LOCKER, join(home, 'broker.db')], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    let lockerOut = ''
    locker.stdout!.setEncoding('utf8').on('data', (text: string) => (lockerOut += text))
    const lockerExit = new Promise((resolve) => locker.on('exit', resolve))
    const followers: MqProcess[] = []
    try {
      await waitFor(() => lockerOut.includes('locked'), 'the locker to hold the write lock', 30_000)
      // While the lock is held: followers start, commands finish (their acks must wait), lines arrive.
      followers.push(
        start(['consume', 'jobs', '-f', '--json'], long),
        start(['consume', 'held', '-f', '--ack', 'manual', '--visibility-timeout', '10m', '--json'], long),
        start(['subscribe', 'news', '--durable', 'audit', '--all', '-f', '--json'], long),
      )
      // A one-shot command still fails after the busy timeout, with one clear line.
      const oneShot = mq(['publish', 'jobs', 'one-shot'], long)
      writeFileSync(gate, '')
      stream.child.stdin!.write(streamed.join('\n') + '\n')
      const all = [...followers, ...workers, stream]
      // Each meets the lock past the busy timeout and says so once; then the lock is let go.
      await waitFor(
        () => all.every((p) => p.stderr.includes(WAITING) || p.child.exitCode !== null),
        'every process to report the lock',
        90_000,
        100,
      )
      const refused = await oneShot
      expect(refused.code).to.equal(1)
      expect(refused.stderr).to.match(/^error: the broker in .* stayed locked by another process for \d+s; retry/)
      for (const p of all) {
        expect(
          p.child.exitCode,
          `${p.child.spawnargs.slice(2, 4).join(' ')} exited during the lock: ${p.stderr}`,
        ).to.equal(null)
        expect(p.stderr.split(WAITING).length - 1, 'the wait is reported once').to.equal(1)
      }
    } finally {
      locker.stdin!.end()
      await lockerExit
    }
    expect(lockerOut).to.include('released')

    const [auto, manual, subscriber] = followers
    stream.child.stdin!.end()
    const streamExit = await stream.done
    expect(streamExit.code, streamExit.stderr).to.equal(0)
    expect(streamExit.stdout.split('\n').filter(Boolean)).to.have.length(1 + streamed.length)
    await waitFor(
      () => jsonLines(auto.stdout).length === jobs.length,
      'the auto-ack follower to get every job',
      60_000,
      100,
    )
    await waitFor(
      () => jsonLines(manual.stdout).length === held.length,
      'the manual-ack follower to get every message',
      60_000,
      100,
    )
    await waitFor(
      () => jsonLines(subscriber.stdout).length === news.length,
      'the subscriber to get every message',
      60_000,
      100,
    )
    await waitFor(() => lines(doneLog).length === work.length, 'the workers to run every message', 60_000, 100)
    const receipts = jsonLines(manual.stdout).map((d) => d.receipt as string)
    expect((await mq(['ack'], {...long, input: receipts.join('\n') + '\n'})).code).to.equal(0)
    const stats = async (queue: string) => {
      const result = await mq(['queue', 'stats', queue, '--json'], long)
      expect(result.code, result.stderr).to.equal(0)
      return JSON.parse(result.stdout)
    }
    await waitFor(
      async () => (await stats('work')).totals.acked === work.length,
      'every work message acked',
      60_000,
      100,
    )

    for (const p of [...followers, ...workers]) p.kill('SIGTERM')
    for (const exit of await Promise.all([...followers, ...workers].map((p) => p.done))) {
      expect(exit.code, exit.stderr).to.equal(130)
      expect(exit.stderr).not.to.match(/could not settle|stayed locked|database connection is not open/)
    }

    expect(jsonLines(auto.stdout).map((d) => d.body)).to.have.members(jobs)
    expect(jsonLines(manual.stdout).map((d) => d.body)).to.have.members(held)
    expect(jsonLines(subscriber.stdout).map((d) => d.body)).to.have.members(news)
    expect(lines(doneLog)).to.have.members(work)
    for (const [queue, count] of [
      ['jobs', jobs.length],
      ['held', held.length],
      ['work', work.length],
    ] as const) {
      const settled = await stats(queue)
      expect(settled.depth, queue).to.equal(0)
      expect(settled.totals, queue).to.deep.include({published: count, acked: count, deadLettered: 0})
    }
    expect((await stats('lines')).depth).to.equal(1 + streamed.length)
    const bodies = jsonLines((await mq(['consume', 'lines', '-n', '100', '--json'], long)).stdout).map((d) => d.body)
    expect(bodies).to.deep.equal(['line-first', ...streamed])
  })
})
