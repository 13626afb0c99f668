import {expect} from 'chai'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import {jsonLines, mq, run, start, tempHome, waitFor} from '../helpers.js'

describe('subscribe and topics (CLI)', () => {
  let home: string
  beforeEach(() => {
    home = tempHome()
  })

  const subscriptions = async () =>
    jsonLines<{name: string; durable: boolean}>((await run(['subscription', 'list', '--json'], {home})).stdout)

  it('fans out to N subscriptions: each gets every message', async () => {
    await run(['topic', 'create', 'news'], {home})
    const subscribers = ['a', 'b', 'c'].map((name) =>
      start(['subscribe', 'news', '--durable', name, '-n', '2', '--wait', '10m', '--json'], {home}),
    )
    await waitFor(async () => (await subscriptions()).length === 3, 'three subscriptions')
    await run(['publish', 'news', 'one'], {home})
    await run(['publish', 'news', 'two'], {home})
    for (const [index, subscriber] of subscribers.entries()) {
      const result = await subscriber.done
      expect(result.code, result.stderr).to.equal(0)
      const envelopes = jsonLines(result.stdout)
      expect(envelopes.map((e) => [e.body, e.topic, e.subscription])).to.deep.equal([
        ['one', 'news', ['a', 'b', 'c'][index]],
        ['two', 'news', ['a', 'b', 'c'][index]],
      ])
    }
  })

  it('an ephemeral subscriber sees new messages and leaves nothing behind', async () => {
    await run(['publish', '--topic', 'news', 'before'], {home})
    const subscriber = start(['subscribe', 'news', '--wait', '10m'], {home})
    await waitFor(async () => (await subscriptions()).length === 1, 'the ephemeral subscription')
    await run(['publish', 'news', 'after'], {home})
    const result = await subscriber.done
    expect(result.stdout).to.equal('after\n')
    expect(await subscriptions()).to.deep.equal([])
  })

  it('an ephemeral subscription killed with SIGKILL is cleaned up by the next command that notices', async () => {
    const subscriber = start(['subscribe', 'news.#', '-f', '--ack', 'manual'], {home})
    await waitFor(async () => (await subscriptions()).length === 1, 'the ephemeral subscription')
    await run(['publish', 'news.x', 'held'], {home})
    await waitFor(() => subscriber.lines().length === 1, 'a delivery')
    subscriber.kill('SIGKILL')
    await subscriber.done
    expect(await subscriptions()).to.deep.equal([])
    // and with it gone, a publish to a new name it covered makes a queue again
    expect(JSON.parse((await run(['publish', 'news.y', 'z', '--json'], {home})).stdout).kind).to.equal('queue')
  })

  it('a durable subscription resumes across processes and acks persist', async () => {
    await run(['publish', '--topic', 'events', '1'], {home})
    const first = await run(['subscribe', 'events', '--durable', 'audit', '--all', '--json', '--ack', 'manual'], {home})
    const [delivery] = jsonLines<{body: string; receipt: string}>(first.stdout)
    expect(delivery.body).to.equal('1')
    expect((await run(['ack', delivery.receipt], {home})).code).to.equal(0)
    await run(['publish', 'events', '2'], {home})
    await run(['publish', 'events', '3'], {home})
    const second = await run(['subscribe', 'events', '--durable', 'audit', '-n', '5'], {home})
    expect(second.stdout).to.equal('2\n3\n')
    const third = await run(['subscribe', 'events', '--durable', 'audit'], {home})
    expect(third.code).to.equal(3)
    const stats = JSON.parse((await run(['subscription', 'stats', 'audit', '--json'], {home})).stdout)
    expect(stats).to.deep.include({lag: 0, inFlight: 0, durable: true, pattern: 'events'})
  })

  it('two processes on one durable subscription get disjoint messages and together all', async () => {
    await run(['topic', 'create', 'work'], {home})
    await run(['subscribe', 'work', '--durable', 'pool', '--wait', '1ms'], {home}) // create it
    await run(['publish', 'work', '--lines'], {home, input: Array.from({length: 400}, (_, i) => `m${i}`).join('\n')})
    const [a, b] = await Promise.all(
      [0, 1].map(() =>
        mq(['subscribe', 'work', '--durable', 'pool', '-n', '400', '--json', '--ack', 'manual'], {home}),
      ),
    )
    const bodiesA = jsonLines(a.stdout).map((e) => e.body as string)
    const bodiesB = jsonLines(b.stdout).map((e) => e.body as string)
    expect(bodiesA.filter((x) => bodiesB.includes(x))).to.deep.equal([])
    expect([...bodiesA, ...bodiesB].sort()).to.deep.equal(Array.from({length: 400}, (_, i) => `m${i}`).sort())
  })

  it('start positions: --all, --since, --from-id, --new', async () => {
    const ids = (await run(['publish', '--topic', 't', '--lines'], {home, input: 'a\nb\nc\n'})).stdout
      .trim()
      .split('\n')
    expect((await run(['subscribe', 't', '--all', '-n', '10'], {home})).stdout).to.equal('a\nb\nc\n')
    expect((await run(['subscribe', 't', '--from-id', ids[1], '-n', '10'], {home})).stdout).to.equal('b\nc\n')
    expect((await run(['subscribe', 't', '--since', '1h', '-n', '10'], {home})).stdout).to.equal('a\nb\nc\n')
    expect(
      (await run(['subscribe', 't', '--since', new Date(Date.now() + 60_000).toISOString(), '-n', '10'], {home})).code,
    ).to.equal(3)
    expect((await run(['subscribe', 't', '--new', '-n', '10'], {home})).code).to.equal(3)
    expect((await run(['subscribe', 't', '--all', '--new'], {home})).code).to.equal(2)
  })

  it('wildcards cover topics created later, in global publish order', async () => {
    const subscriber = start(['subscribe', 'logs.#', '-n', '4', '--wait', '10m', '--json'], {home})
    await waitFor(async () => (await subscriptions()).length === 1, 'the subscription')
    for (const [topic, body] of [
      ['logs.app', '1'],
      ['logs.db', '2'],
      ['logs.app.error', '3'],
      ['logs', '4'],
    ]) {
      expect(JSON.parse((await run(['publish', topic, body, '--json'], {home})).stdout).kind).to.equal('topic')
    }
    const result = await subscriber.done
    expect(jsonLines(result.stdout).map((e) => [e.topic, e.body])).to.deep.equal([
      ['logs.app', '1'],
      ['logs.db', '2'],
      ['logs.app.error', '3'],
      ['logs', '4'],
    ])
  })

  it('subscribe --exec follows the --exec contract with MQ_TOPIC and MQ_SUBSCRIPTION; exit 65 dead-letters', async () => {
    await run(['topic', 'create', 'orders'], {home})
    await run(['publish', 'orders', '--lines'], {home, input: 'good\nbad\n'})
    const log = join(home, 'log')
    const result = await run(
      [
        'subscribe',
        'orders',
        '--durable',
        'billing',
        '--all',
        '-n',
        '2',
        '--exec',
        `body=$(cat); echo "$MQ_TOPIC $MQ_SUBSCRIPTION $MQ_ATTEMPT $body" >> ${log}; [ "$body" = good ] || exit 65`,
      ],
      {home},
    )
    // a dead-lettered message makes the run exit 1, with what happened
    expect(result.code, result.stderr).to.equal(1)
    expect(result.stderr).to.match(/error: the command failed for 1 of 2 deliveries: 1 acked, 1 dead-lettered/)
    expect(readFileSync(log, 'utf8')).to.equal('orders billing 1 good\norders billing 1 bad\n')
    const [dead] = jsonLines((await run(['consume', 'billing.dlq', '--json'], {home})).stdout)
    expect(dead.body).to.equal('bad')
    expect(dead.headers).to.deep.include({
      'x-dead-letter-reason': 'rejected',
      'x-original-topic': 'orders',
      'x-original-subscription': 'billing',
    })
  })

  it('topic retention by count, visible to late subscribers; stats and list', async () => {
    await run(['topic', 'create', 'metrics', '--max-messages', '2'], {home})
    await run(['publish', 'metrics', '--lines'], {home, input: '1\n2\n3\n'})
    expect((await run(['subscribe', 'metrics', '--all', '-n', '10'], {home})).stdout).to.equal('2\n3\n')
    const stats = JSON.parse((await run(['topic', 'stats', 'metrics', '--json'], {home})).stdout)
    expect(stats).to.deep.include({messages: 2, totals: {published: 3, discarded: 1}})
    expect((await run(['topic', 'list'], {home})).stdout).to.match(/^metrics\t2\t/)
    expect(JSON.parse((await run(['topic', 'delete', 'metrics', '--yes', '--json'], {home})).stdout)).to.deep.equal({
      topic: 'metrics',
      deleted: 2,
    })
  })

  it('bad input: pattern syntax (position), queue vs topic, reused durable names', async () => {
    const bad = await run(['subscribe', 'orders..x'], {home})
    expect(bad.code).to.equal(2)
    expect(bad.stderr).to.match(/at position 8: empty segment/)
    expect((await run(['subscribe', 'orders.cre*'], {home})).stderr).to.match(/at position 11/)
    await run(['publish', 'jobs', 'x'], {home})
    const onQueue = await run(['subscribe', 'jobs'], {home})
    expect(onQueue.code).to.equal(2)
    expect(onQueue.stderr).to.match(/jobs is a queue, not a topic/)
    await run(['topic', 'create', 'news'], {home})
    const onTopic = await run(['consume', 'news'], {home})
    expect(onTopic.code).to.equal(2)
    expect(onTopic.stderr).to.match(/news is a topic, not a queue.*mq subscribe news/)
    await run(['subscribe', 'news', '--durable', 'reader', '--wait', '1ms'], {home})
    const reused = await run(['subscribe', 'other.*', '--durable', 'reader'], {home})
    expect(reused.code).to.equal(2)
    expect(reused.stderr).to.match(/pattern "news", not "other\.\*"/)
    expect((await run(['subscription', 'delete', 'reader', '--yes', '--json'], {home})).code).to.equal(0)
    expect((await run(['subscription', 'stats', 'reader'], {home})).code).to.equal(2)
  })

  it('topic publish and queue publish side by side in one broker', async () => {
    const subscriber = start(['subscribe', 'mixed.events', '-n', '1', '--wait', '10m'], {home})
    await waitFor(async () => (await subscriptions()).length === 1, 'the subscription')
    await run(['publish', 'mixed.events', 'to topic'], {home})
    await run(['publish', 'mixed.jobs', 'to queue'], {home})
    expect((await subscriber.done).stdout).to.equal('to topic\n')
    expect((await run(['consume', 'mixed.jobs'], {home})).stdout).to.equal('to queue\n')
  })
})
