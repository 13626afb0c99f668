import {expect} from 'chai'

import {DEFAULT_VIEW, formatCount, formatRate, renderTop, sparkline, type TopView} from '../../src/cli/top-view.js'
import {FileBroker} from '../../src/core/file-broker/index.js'
import {type TopQueueRow, TopSampler, type TopSnapshot} from '../../src/core/top.js'
import {tempHome} from '../helpers.js'

function queue(name: string, depth: number, extra: Partial<TopQueueRow> = {}): TopQueueRow {
  return {
    name,
    kind: 'queue',
    depth,
    inFlight: 0,
    delayed: 0,
    deadLettered: 0,
    publishRate: 0,
    ackRate: 0,
    depthHistory: [depth],
    rateHistory: [0],
    ...extra,
  }
}

const SNAPSHOT: TopSnapshot = {
  takenAt: '2026-12-02T15:40:59.000Z',
  broker: 'file:/tmp/x',
  intervalMs: 1000,
  queues: [
    queue('jobs', 120, {
      inFlight: 4,
      deadLettered: 2,
      publishRate: 35,
      ackRate: 30.14,
      depthHistory: [0, 40, 80, 120],
      rateHistory: [35, 35, 35, 35],
    }),
    queue('emails', 3, {publishRate: 250.4}),
    {...queue('audit', 7), kind: 'subscription', delayed: null, publishRate: null, ackRate: null},
  ],
  topics: [
    {
      name: 'orders.created',
      messages: 15_000,
      bytes: 1,
      publishRate: 2.5,
      subscriptions: 1,
      maxLag: 7,
      rateHistory: [1, 2],
    },
  ],
  rules: [
    {
      name: 'deploy',
      enabled: true,
      matches: 12,
      matchRate: 0,
      failures: 3,
      deadLettered: 1,
      avgLatencyMs: 1500,
      maxLatencyMs: 4200,
      lastRunAt: 1,
      matchHistory: [0],
    },
  ],
}

const view = (extra: Partial<TopView>): TopView => ({...DEFAULT_VIEW, ...extra})

describe('mq top: the frame (a pure function of a snapshot)', () => {
  it('lists queues and subscriptions with depth, in flight, delayed, DLQ and rates; topics with lag; rules with failures and latency', () => {
    const lines = renderTop(SNAPSHOT, view({columns: 120}))
    const text = lines.join('\n')
    expect(lines[0]).to.equal('mq top — file:/tmp/x — 15:40:59 — every 1s · 2 queues, 1 topic, 1 subscription, 1 rule')
    expect(lines[1]).to.equal('sorted by depth')
    expect(text).to.match(/^NAME +KIND +DEPTH +IN FLIGHT +DELAYED +DLQ +IN\/S +ACK\/S$/m)
    expect(text).to.match(/^jobs +queue +120 +4 +0 +2 +35 +30$/m)
    expect(text).to.match(/^audit +sub +7 +0 +- +0 +- +-$/m)
    expect(text).to.match(/^orders\.created +15\.0k +2\.5 +1 +7$/m)
    expect(text).to.match(/^deploy +enabled +12 +3 +1 +1s +4s$/m)
    // sorted by depth, largest first
    expect(text.indexOf('jobs ')).to.be.below(text.indexOf('audit ')).and.below(text.indexOf('emails '))
  })

  it('sorts by the chosen column, reverses, and filters by name', () => {
    const names = (lines: string[]) => lines.filter((l) => / (queue|sub) /.test(l)).map((l) => l.split(' ')[0])
    expect(names(renderTop(SNAPSHOT, view({sort: 'name'})))).to.deep.equal(['audit', 'emails', 'jobs'])
    expect(names(renderTop(SNAPSHOT, view({sort: 'in'})))).to.deep.equal(['emails', 'jobs', 'audit'])
    expect(names(renderTop(SNAPSHOT, view({sort: 'name', reverse: true})))).to.deep.equal(['jobs', 'emails', 'audit'])
    const filtered = renderTop(SNAPSHOT, view({filter: 'JO'}))
    expect(names(filtered)).to.deep.equal(['jobs'])
    expect(filtered[1]).to.equal('sorted by depth · filter "JO"')
    expect(filtered.join('\n')).to.include('none match the filter') // no topic or rule named so
  })

  it('live: fills the screen exactly, sparklines of depth and rate, the keys in the footer on the last row', () => {
    const lines = renderTop(SNAPSHOT, view({columns: 100, rows: 30, live: true}))
    expect(lines).to.have.length(30)
    expect(lines.every((line) => line.length < 100)).to.equal(true)
    expect(lines.at(-1)).to.equal(
      'sort: n name  d depth  i in flight  x DLQ  p in/s  a ack/s  r reverse  / filter  q quit',
    )
    expect(lines.find((l) => l.startsWith('jobs'))).to.match(/ {2}▁▃▆█ {2,}████$/)
    expect(lines.join('\n')).to.match(/DEPTH \(\d+s\)/)
    const editing = renderTop(SNAPSHOT, view({columns: 100, rows: 30, live: true, editing: true, filter: 'jo'}))
    expect(editing.at(-1)).to.equal('filter: jo▏ (Enter keeps it, Esc clears it)')
  })

  it('fits a small or narrow terminal: rows cut with a count of the rest, nothing wider than the screen', () => {
    const many: TopSnapshot = {
      ...SNAPSHOT,
      queues: Array.from({length: 50}, (_, i) => queue(`queue-number-${String(i).padStart(2, '0')}`, i)),
    }
    const lines = renderTop(many, view({columns: 60, rows: 20, live: true}))
    expect(lines).to.have.length(20)
    expect(lines.every((line) => line.length < 60)).to.equal(true)
    expect(lines.join('\n')).to.match(/… \d+ more \(filter with \/\)/)
    expect(lines.join('\n')).to.include('orders.created') // topics and rules keep their rows
    expect(lines.join('\n')).to.include('deploy')
  })

  it('sparklines scale to their largest value; counts and rates read short', () => {
    expect(sparkline([0, 1, 2, 4, 8], 5)).to.equal('▁▂▃▅█')
    expect(sparkline([3], 4)).to.equal('   █')
    expect(sparkline([0, 0], 2)).to.equal('▁▁')
    expect([formatCount(950), formatCount(12_345), formatCount(4_100_000)]).to.deep.equal(['950', '12.3k', '4.1M'])
    expect([formatRate(null), formatRate(0), formatRate(0.25), formatRate(3.14), formatRate(1234.4)]).to.deep.equal([
      '-',
      '0',
      '0.25',
      '3.1',
      '1234',
    ])
  })
})

describe('mq top: the sampler', () => {
  let broker: FileBroker
  beforeEach(() => {
    broker = new FileBroker(tempHome())
  })
  afterEach(() => broker.close())

  it('measures rates between samples from the totals, and keeps histories', async () => {
    let now = 1_000_000
    const sampler = new TopSampler({broker, intervalMs: 1000, now: () => now})
    await broker.publish('jobs', [{body: 'a'}])
    const first = await sampler.sample()
    expect(first.queues[0]).to.deep.include({name: 'jobs', kind: 'queue', depth: 1, inFlight: 0})
    await broker.publish(
      'jobs',
      Array.from({length: 20}, () => ({body: 'x'})),
    )
    const got = await broker.receive('jobs', {max: 5, autoAck: false})
    await broker.ack(got.slice(0, 4).map((d) => d.receipt!))
    now += 2000
    const second = await sampler.sample()
    expect(second.queues[0]).to.deep.include({depth: 16, inFlight: 1, publishRate: 10, ackRate: 2})
    expect(second.queues[0].depthHistory).to.deep.equal([1, 16])
    expect(second.broker).to.match(/^file:/)
    expect(second.takenAt).to.equal(new Date(now).toISOString())
  })

  it('subscriptions: lag and in flight; topics: their subscriptions and most lag; DLQ depth of each', async () => {
    await broker.declareQueue('jobs')
    await broker.publish('jobs.dlq', [{body: 'dead'}, {body: 'dead too'}])
    await broker.declareTopic('orders.created')
    await broker.subscribe('orders.*', {durable: 'audit'})
    await broker.publish('orders.created', [{body: '1'}, {body: '2'}, {body: '3'}])
    const sampler = new TopSampler({broker, intervalMs: 1000})
    const s = await sampler.sample()
    expect(s.queues.find((q) => q.name === 'jobs')).to.deep.include({deadLettered: 2})
    expect(s.queues.find((q) => q.name === 'audit')).to.deep.include({
      kind: 'subscription',
      depth: 3,
      inFlight: 0,
      delayed: null,
    })
    expect(s.topics).to.deep.equal([
      {name: 'orders.created', messages: 3, bytes: 3, publishRate: null, subscriptions: 1, maxLag: 3, rateHistory: [0]},
    ])
  })

  it('rules: matches, failures and latency from the journal, read on incrementally; rules that never ran are listed', async () => {
    const journal = broker.journal
    const run = async (
      seq: number,
      rule: string,
      attempt: number,
      outcome: 'ok' | 'failed' | 'dead-lettered',
      durationMs: number,
    ) =>
      journal.recordRun({
        eventSeq: seq,
        rule,
        action: 0,
        actionType: 'exec',
        target: 'x',
        attempt,
        startedAt: Date.now(),
        durationMs,
        outcome,
      })
    await run(1, 'deploy', 1, 'failed', 100)
    await run(1, 'deploy', 2, 'ok', 300)
    const sampler = new TopSampler({
      broker,
      journal,
      intervalMs: 1000,
      rules: async () => [
        {name: 'deploy', enabled: true},
        {name: 'idle', enabled: false},
      ],
    })
    const first = await sampler.sample()
    expect(first.rules).to.deep.equal([
      {
        name: 'deploy',
        enabled: true,
        matches: 1,
        matchRate: null,
        failures: 1,
        deadLettered: 0,
        avgLatencyMs: 200,
        maxLatencyMs: 300,
        lastRunAt: first.rules[0].lastRunAt,
        matchHistory: [0],
      },
      {
        name: 'idle',
        enabled: false,
        matches: 0,
        matchRate: null,
        failures: 0,
        deadLettered: 0,
        avgLatencyMs: null,
        maxLatencyMs: null,
        lastRunAt: null,
        matchHistory: [0],
      },
    ])
    await run(2, 'deploy', 1, 'dead-lettered', 600)
    await run(3, 'gone', 1, 'ok', 10)
    const second = await sampler.sample()
    expect(second.rules.find((r) => r.name === 'deploy')).to.deep.include({
      matches: 2,
      failures: 2,
      deadLettered: 1,
      avgLatencyMs: 1000 / 3,
      maxLatencyMs: 600,
    })
    expect(second.rules.find((r) => r.name === 'gone')).to.deep.include({enabled: null, matches: 1})
  })
})
