import {expect} from 'chai'
import {readFileSync, writeFileSync} from 'node:fs'

import {jsonLines, mq, run, sleep, start, tempHome, waitFor} from '../helpers.js'

const stats = async (home: string, queue: string) =>
  JSON.parse((await run(['queue', 'stats', queue, '--json'], {home})).stdout)

describe('flow control (CLI)', function () {
  this.timeout(60_000)
  let home: string
  beforeEach(() => {
    home = tempHome()
  })

  describe('back-pressure', () => {
    it('reject: a publish into a full queue fails with exit 4 and says how full', async () => {
      await run(['queue', 'create', 'q', '--max-length', '2'], {home})
      await run(['publish', 'q', '--lines'], {home, input: 'a\nb\n'})
      const full = await run(['publish', 'q', 'c'], {home})
      expect(full.code).to.equal(4)
      expect(full.stderr).to.match(/queue q is full \(2 of 2 messages\)/)
      const batch = await run(['publish', 'q', '--lines'], {home, input: 'x\n'})
      expect(batch.code).to.equal(4)
      expect((await stats(home, 'q')).depth).to.equal(2)
    })

    it('reject by bytes', async () => {
      await run(['queue', 'create', 'q', '--max-bytes', '10'], {home})
      expect((await run(['publish', 'q', '12345678'], {home})).code).to.equal(0)
      const full = await run(['publish', 'q', '123'], {home})
      expect(full.code).to.equal(4)
      expect(full.stderr).to.match(/8 B of 10 B/)
    })

    it('drop-oldest: the oldest ready messages are discarded and counted', async () => {
      await run(['queue', 'create', 'q', '--max-length', '3', '--overflow', 'drop-oldest'], {home})
      await run(['publish', 'q', '--lines'], {home, input: '1\n2\n3\n4\n5\n'})
      expect((await run(['consume', 'q', '-n', '10'], {home})).stdout).to.equal('3\n4\n5\n')
      expect((await stats(home, 'q')).totals.dropped).to.equal(2)
    })

    it('block: waits up to --wait for room, then exit 4 naming what was published', async () => {
      await run(['queue', 'create', 'q', '--max-length', '2', '--overflow', 'block'], {home})
      await run(['publish', 'q', '--lines'], {home, input: 'a\nb\n'})
      // (how long it waited: bench/pacing.js)
      const blocked = await run(['publish', 'q', 'c', '--wait', '500ms'], {home})
      expect(blocked.code).to.equal(4)
      expect(blocked.stderr).to.match(/stayed full for 500ms/)
      // a consumer making room unblocks a waiting publisher (a wait longer than the test's timeout)
      const waiting = start(['publish', 'q', 'd', '--wait', '10m'], {home})
      await waiting.watching()
      await run(['consume', 'q'], {home})
      const result = await waiting.done
      expect(result.code, result.stderr).to.equal(0)
      expect((await run(['consume', 'q', '-n', '5'], {home})).stdout).to.equal('b\nd\n')
    })

    it('block: 3 publishers and one slow consumer never exceed the bound and lose nothing', async () => {
      await run(['queue', 'create', 'q', '--max-length', '100', '--overflow', 'block'], {home})
      const perPublisher = 150
      const publishers = [0, 1, 2].map((p) =>
        mq(['publish', 'q', '--lines'], {
          home,
          input: Array.from({length: perPublisher}, (_, i) => `p${p}-${i}`).join('\n') + '\n',
          timeoutMs: 50_000,
        }),
      )
      let finished = 0
      const results = Promise.all(publishers.map((p) => p.finally(() => finished++)))
      // The publishers fill the queue to its bound and wait there: held back, not refused.
      await waitFor(async () => (await stats(home, 'q')).depth === 100, 'the queue to fill up', 30_000)
      expect(finished, 'publishers still waiting at the bound').to.equal(0)
      const consumer = start(['consume', 'q', '-f', '--rate', '400/s', '--prefetch', '20'], {home, timeoutMs: 50_000})
      let maxDepth = 0
      while (finished < 3) {
        maxDepth = Math.max(maxDepth, (await stats(home, 'q')).depth)
        await sleep(20)
      }
      expect((await results).map((r) => r.code)).to.deep.equal([0, 0, 0])
      await waitFor(() => consumer.lines().length >= 3 * perPublisher, 'every message consumed', 20_000)
      consumer.kill('SIGINT')
      await consumer.done
      expect(maxDepth).to.be.at.most(100)
      const received = consumer.lines()
      expect(received.length).to.equal(3 * perPublisher)
      expect(new Set(received).size).to.equal(3 * perPublisher)
      // each publisher's messages arrive in its order
      for (const p of [0, 1, 2]) {
        const mine = received.filter((line) => line.startsWith(`p${p}-`))
        expect(mine).to.deep.equal(Array.from({length: perPublisher}, (_, i) => `p${p}-${i}`))
      }
    })
  })

  describe('sliding window and rate', () => {
    it('--prefetch holds at most N unacked deliveries until others are acked', async () => {
      await run(['publish', 'q', '--lines'], {home, input: '1\n2\n3\n4\n'})
      const consumer = start(['consume', 'q', '-f', '--ack', 'manual', '--json', '--prefetch', '2'], {home})
      await waitFor(() => consumer.lines().length === 2, 'two deliveries')
      // the leases say what the consumer holds: two, the rest left ready for others
      expect(await stats(home, 'q')).to.include({inFlight: 2, ready: 2})
      expect(consumer.lines()).to.have.length(2)
      const [first] = jsonLines<{receipt: string}>(consumer.stdout)
      await run(['ack', first.receipt], {home})
      await waitFor(() => consumer.lines().length === 3, 'a third delivery after an ack')
      expect(await stats(home, 'q')).to.include({inFlight: 2, ready: 1})
      expect(consumer.lines()).to.have.length(3)
      consumer.kill('SIGINT')
      await consumer.done
    })

    it('--prefetch with --exec holds the window ahead of the running commands', async () => {
      await run(['publish', 'q', '--lines'], {home, input: '1\n2\n3\n4\n5\n'})
      // each command runs until the test lets it finish, so the window is still when it is looked at
      const go = `${home}/go`
      const worker = start(
        [
          'consume',
          'q',
          '-f',
          '--exec',
          `while [ ! -f ${go} ]; do sleep 0.05; done`,
          '--parallel',
          '1',
          '--prefetch',
          '3',
        ],
        {home},
      )
      await waitFor(async () => (await stats(home, 'q')).inFlight === 3, 'three leases held')
      expect((await stats(home, 'q')).ready).to.equal(2)
      // The signal is pending in the worker before the command can see the file and end, so the
      // worker drains (starts nothing more) before it learns the command ended.
      worker.kill('SIGINT')
      writeFileSync(go, '')
      await worker.done
      // drained: the waiting deliveries went back at once, the running one finished
      const after = await stats(home, 'q')
      expect({ready: after.ready, inFlight: after.inFlight}).to.deep.equal({ready: 4, inFlight: 0})
    })

    it('--rate paces a consumer: every message, in order (the rate itself: bench/pacing.js, test/core/clock.test.ts)', async () => {
      await run(['publish', 'q', '--lines'], {home, input: Array.from({length: 10}, (_, i) => `m${i}`).join('\n')})
      const result = await run(['consume', 'q', '-n', '10', '--rate', '50/s'], {home})
      expect(result.code, result.stderr).to.equal(0)
      expect(result.stdout.trim().split('\n')).to.deep.equal(Array.from({length: 10}, (_, i) => `m${i}`))
      expect((await stats(home, 'q')).depth).to.equal(0)
      for (const bad of ['0/s', 'fast', '20/fortnight'])
        expect((await run(['consume', 'q', '--rate', bad], {home})).code, bad).to.equal(2)
    })
  })

  describe('time, priority, idempotence', () => {
    it('--delay and --at hold a message back; delayed ones come after ready ones', async () => {
      // Held back: times no process start can outlast, so the checks do not race the clock.
      await run(['publish', 'q', 'later', '--delay', '1h'], {home})
      await run(['publish', 'q', 'at', '--at', new Date(Date.now() + 3_600_000).toISOString()], {home})
      await run(['publish', 'q', 'now'], {home})
      expect((await stats(home, 'q')).delayed).to.equal(2)
      expect((await run(['consume', 'q', '-n', '5'], {home})).stdout).to.equal('now\n')
      expect((await run(['consume', 'q'], {home})).code).to.equal(3)
      // Delivered once due: a consumer waiting for them gets both, the earlier due first.
      await run(['publish', 'soon', 'second', '--delay', '600ms'], {home})
      await run(['publish', 'soon', 'first', '--at', new Date(Date.now() + 300).toISOString()], {home})
      const due = await run(['consume', 'soon', '-n', '2', '--wait', '10m'], {home})
      expect(due.stdout.split('\n').filter(Boolean).sort()).to.deep.equal(['first', 'second'])
    })

    it('--priority: higher first, FIFO within a priority', async () => {
      for (const [body, priority] of [
        ['a', '0'],
        ['b', '5'],
        ['c', '9'],
        ['d', '5'],
        ['e', '0'],
        ['f', '9'],
      ]) {
        await run(['publish', 'q', body, '--priority', priority], {home})
      }
      expect((await run(['consume', 'q', '-n', '10'], {home})).stdout).to.equal('c\nf\nb\nd\na\ne\n')
      expect((await run(['publish', 'q', 'x', '--priority', '10'], {home})).code).to.equal(2)
    })

    it('--ttl: an expired message is never delivered; with --dead-letter-expired it goes to the DLQ', async () => {
      await run(['queue', 'create', 'q', '--dead-letter-expired'], {home})
      await run(['publish', 'q', 'short', '--ttl', '200ms'], {home})
      await run(['publish', 'plain', 'gone', '--ttl', '200ms'], {home})
      await sleep(350) // time passing is the subject: past the TTL
      expect((await run(['consume', 'q'], {home})).code).to.equal(3)
      expect((await run(['consume', 'plain'], {home})).code).to.equal(3)
      const [dead] = jsonLines((await run(['consume', 'q.dlq', '--json'], {home})).stdout)
      expect(dead.body).to.equal('short')
      expect(dead.headers).to.deep.include({'x-dead-letter-reason': 'expired', 'x-original-queue': 'q'})
      expect((await stats(home, 'plain')).totals.expired).to.equal(1)
      expect((await run(['consume', 'plain.dlq'], {home})).stderr).to.match(/queue plain\.dlq does not exist/) // never made
    })

    it('a per-queue default TTL applies to messages without --ttl', async () => {
      await run(['queue', 'create', 'q', '--default-ttl', '200ms'], {home})
      await run(['publish', 'q', 'expires'], {home})
      await run(['publish', 'q', 'stays', '--ttl', '1h'], {home})
      await sleep(350) // time passing is the subject: past the default TTL
      expect((await run(['consume', 'q', '-n', '5'], {home})).stdout).to.equal('stays\n')
    })

    it('--dedup-id: repeats from separate processes return the first id and store nothing', async () => {
      const runs = await Promise.all(
        Array.from({length: 6}, () => mq(['publish', 'q', 'once', '--dedup-id', 'build-42', '--json'], {home})),
      )
      const results = runs.map((r) => JSON.parse(r.stdout))
      expect(new Set(results.map((r) => r.id)).size).to.equal(1)
      expect(results.filter((r) => r.duplicate)).to.have.length(5)
      const s = await stats(home, 'q')
      expect(s.depth).to.equal(1)
      expect(s.totals.deduplicated).to.equal(5)
      await run(['consume', 'q'], {home})
      // still a duplicate after the message was consumed, within the window
      expect(
        JSON.parse((await run(['publish', 'q', 'once', '--dedup-id', 'build-42', '--json'], {home})).stdout).duplicate,
      ).to.equal(true)
      expect((await run(['publish', 'q', 'other', '--dedup-id', 'build-43'], {home})).code).to.equal(0)
    })

    it('a dedup id is forgotten after the window', async () => {
      await run(['queue', 'create', 'q', '--dedup-window', '200ms'], {home})
      const first = (await run(['publish', 'q', 'x', '--dedup-id', 'k'], {home})).stdout
      await sleep(300) // time passing is the subject: past the dedup window
      const second = (await run(['publish', 'q', 'x', '--dedup-id', 'k'], {home})).stdout
      expect(second).to.not.equal(first)
    })

    it('a failed --exec run is retried after the queue’s backoff, until max deliveries (the delays: test/core/file-broker.test.ts, bench/pacing.js)', async () => {
      // A failed run: the message waits out its backoff (held back, not ready).
      await run(['queue', 'create', 'slow', '--retry-backoff', '1h'], {home})
      await run(['publish', 'slow', 'x'], {home})
      expect((await run(['consume', 'slow', '--exec', 'exit 1'], {home})).code).to.equal(1)
      expect(await stats(home, 'slow')).to.include({delayed: 1, ready: 0, inFlight: 0})
      // Retried after each backoff, until the fourth delivery dead-letters it.
      await run(
        ['queue', 'create', 'q', '--max-deliveries', '4', '--retry-backoff', '200ms', '--retry-backoff-max', '400ms'],
        {home},
      )
      await run(['publish', 'q', 'x'], {home})
      const log = `${home}/attempts`
      const result = await run(
        ['consume', 'q', '-n', '4', '--wait', '10m', '--exec', `echo $MQ_ATTEMPT >> ${log}; exit 1`],
        {home},
      )
      expect(result.code).to.equal(1)
      expect(readFileSync(log, 'utf8').trim().split('\n')).to.deep.equal(['1', '2', '3', '4'])
      const [dead] = jsonLines((await run(['consume', 'q.dlq', '--json'], {home})).stdout)
      expect(dead.headers).to.deep.include({'x-dead-letter-reason': 'max-deliveries', 'x-original-queue': 'q'})
    })
  })

  describe('dead letters', () => {
    async function deadLetters(queue: string, bodies: string[], reason: 'rejected' | 'max-deliveries' = 'rejected') {
      await run(['queue', 'create', queue, '--max-deliveries', '1'], {home})
      await run(['publish', queue, '--lines'], {home, input: bodies.join('\n')})
      const deliveries = jsonLines<{receipt: string}>(
        (await run(['consume', queue, '-n', String(bodies.length), '--ack', 'manual', '--json'], {home})).stdout,
      )
      await run(
        [
          'nack',
          ...(reason === 'rejected' ? ['--dead-letter'] : []),
          '--reason',
          'boom',
          ...deliveries.map((d) => d.receipt),
        ],
        {home},
      )
    }

    it('dlq list and peek show the dead letters and why', async () => {
      await deadLetters('jobs', ['a', 'b'])
      const list = jsonLines<{oldestAgeMs: number}>((await run(['dlq', 'list', '--json'], {home})).stdout)
      expect(list).to.deep.equal([{name: 'jobs.dlq', messages: 2, oldestAgeMs: list[0].oldestAgeMs, sources: ['jobs']}])
      const peeked = jsonLines((await run(['dlq', 'peek', 'jobs', '--json'], {home})).stdout)
      expect(peeked.map((m) => [m.body, (m.headers as Record<string, string>)['x-last-error']])).to.deep.equal([
        ['a', 'boom'],
        ['b', 'boom'],
      ])
    })

    it('redrive --dry-run changes nothing', async () => {
      await deadLetters('jobs', ['a', 'b', 'c'])
      const before = (await run(['dlq', 'peek', 'jobs', '--json'], {home})).stdout
      const dry = JSON.parse((await run(['dlq', 'redrive', 'jobs', '--dry-run', '--json'], {home})).stdout)
      expect(dry).to.deep.include({dryRun: true, moved: 3, examined: 3, target: 'jobs', deadLetterQueue: 'jobs.dlq'})
      expect((await run(['dlq', 'peek', 'jobs', '--json'], {home})).stdout).to.equal(before)
      expect((await stats(home, 'jobs')).depth).to.equal(0)
    })

    it('redrive with --filter and --limit moves matching messages back, keeping headers and counting redrives', async () => {
      await deadLetters('jobs', ['keep-1', 'move-1', 'move-2', 'move-3'])
      const result = JSON.parse(
        (
          await run(
            [
              'dlq',
              'redrive',
              'jobs',
              '--yes',
              '--filter',
              'body~move',
              '--filter',
              'x-dead-letter-reason=rejected',
              '--limit',
              '2',
              '--json',
            ],
            {home},
          )
        ).stdout,
      )
      expect(result).to.deep.include({moved: 2, dryRun: false})
      const back = jsonLines((await run(['consume', 'jobs', '-n', '10', '--json'], {home})).stdout)
      expect(back.map((m) => m.body)).to.deep.equal(['move-1', 'move-2'])
      expect(back[0].headers).to.deep.include({'x-redrive-count': '1', 'x-dead-letter-reason': 'rejected'})
      expect(jsonLines((await run(['dlq', 'peek', 'jobs', '--json'], {home})).stdout).map((m) => m.body)).to.deep.equal(
        ['keep-1', 'move-3'],
      )
    })

    it('redrive --rate paces the moves', async () => {
      await deadLetters('jobs', ['1', '2', '3', '4', '5', '6'])
      // (the pace itself: bench/pacing.js)
      const result = JSON.parse(
        (await run(['dlq', 'redrive', 'jobs', '--yes', '--rate', '10/s', '--json'], {home})).stdout,
      )
      expect(result.moved).to.equal(6)
      expect(
        jsonLines((await run(['consume', 'jobs', '-n', '10', '--json'], {home})).stdout).map((m) => m.body),
      ).to.deep.equal(['1', '2', '3', '4', '5', '6'])
    })

    it('redrives a durable subscription’s dead letters back into the subscription only', async () => {
      await run(['topic', 'create', 'events'], {home})
      await run(['subscribe', 'events', '--durable', 'a', '--wait', '1ms'], {home})
      await run(['subscribe', 'events', '--durable', 'b', '--wait', '1ms'], {home})
      await run(['publish', 'events', 'poison'], {home})
      await run(['subscribe', 'events', '--durable', 'a', '--exec', 'exit 65'], {home})
      expect((await run(['dlq', 'redrive', 'a', '--yes'], {home})).code).to.equal(0)
      const [again] = jsonLines((await run(['subscribe', 'events', '--durable', 'a', '--json'], {home})).stdout)
      expect(again).to.deep.include({body: 'poison', topic: 'events', subscription: 'a'})
      expect((await run(['subscribe', 'events', '--durable', 'b'], {home})).stdout).to.equal('poison\n')
      expect((await run(['subscribe', 'events', '--durable', 'b'], {home})).code).to.equal(3)
    })

    it('refuses --interactive without a terminal (exit 2)', async () => {
      const result = await run(['consume', 'jobs', '--interactive'], {home})
      expect(result.code).to.equal(2)
      expect(result.stderr).to.match(/needs a person at a terminal/)
    })
  })

  it('queue stats shows delayed, expired, dropped, deduplicated and rates', async () => {
    await run(['queue', 'create', 'q', '--max-length', '5', '--overflow', 'drop-oldest'], {home})
    await run(['publish', 'q', '--lines'], {home, input: '1\n2\n3\n4\n5\n6\n'})
    await run(['publish', 'q', 'd', '--delay', '1h'], {home})
    await run(['publish', 'q', 'x', '--dedup-id', 'a'], {home})
    await run(['publish', 'q', 'x', '--dedup-id', 'a'], {home})
    await run(['consume', 'q', '-n', '2'], {home})
    const s = await stats(home, 'q')
    expect(s.delayed).to.equal(1)
    expect(s.totals).to.deep.include({dropped: 3, deduplicated: 1, published: 8, acked: 2})
    expect(s.rates.publishedPerSecond.last1m).to.be.greaterThan(0)
    expect(s.rates.ackedPerSecond.last1m).to.be.greaterThan(0)
    const human = (await run(['queue', 'stats', 'q'], {home})).stdout
    expect(human)
      .to.match(/dropped by overflow\s+3/)
      .and.match(/deduplicated\s+1/)
      .and.match(/\/s last minute/)
  })
})
