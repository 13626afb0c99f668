import {expect} from 'chai'

import {formatProgress, ProgressBar} from '../../src/cli/progress.js'
import {FileBroker} from '../../src/core/file-broker/index.js'
import {tempHome} from '../helpers.js'

describe('progress: the bar', () => {
  it('shows count, percent, rate and ETA within the width', () => {
    const line = formatProgress({
      label: 'redriving dead letters of jobs',
      done: 50_000,
      total: 200_000,
      ratePerSecond: 21_000.4,
      etaMs: 7_200,
      unit: 'messages',
      width: 120,
    })
    expect(line).to.equal(
      'redriving dead letters of jobs  [########......................]  25% 50,000/200,000 messages  21,000/s  ETA 7s',
    )
    expect(
      formatProgress({
        label: 'redriving dead letters of jobs',
        done: 50_000,
        total: 200_000,
        unit: 'messages',
        width: 70,
      }),
    ).to.equal('redriving dead letters of…  [###.......]  25% 50,000/200,000 messages')
  })

  it('gives the label way on a narrow terminal, then the bar; never wider than the terminal', () => {
    for (const width of [20, 40, 60, 80]) {
      const line = formatProgress({
        label: 'redriving dead letters of a.rather.long.queue.name',
        done: 10,
        total: 20,
        ratePerSecond: 5,
        etaMs: 2000,
        unit: 'messages',
        width,
      })
      expect(line.length, `${width}: ${line}`).to.be.below(width)
    }
    expect(
      formatProgress({
        label: 'redriving dead letters of a.rather.long.queue.name',
        done: 10,
        total: 20,
        unit: 'messages',
        width: 50,
      }),
    ).to.match(/^redriving dead… {2}\[#{5}\.{5}\] {2}50% 10\/20 messages$/)
  })

  it('without a total: a count and a rate, no bar and no ETA', () => {
    expect(
      formatProgress({
        label: 'publishing to jobs',
        done: 1234,
        ratePerSecond: 99.6,
        etaMs: 5,
        unit: 'messages',
        width: 80,
      }),
    ).to.equal('publishing to jobs  1,234 messages  100/s')
  })

  it('a fraction in another unit (bytes of a file) drives the bar while the count stays in messages', () => {
    expect(
      formatProgress({label: 'publishing to jobs', done: 10, fraction: 0.5, unit: 'messages', width: 60}),
    ).to.match(/\[#+\.+\] {2}50% 10 messages$/)
  })

  it('draws after 300 ms, at most every 100 ms, measures rate and ETA, and clears its line on stop', () => {
    let now = 0
    const written: string[] = []
    const stream = {columns: 100, write: (text: string) => written.push(text)} as unknown as NodeJS.WritableStream
    const bar = new ProgressBar(stream, 'purging jobs', 'messages', () => now)
    bar.update(0, 1000)
    now = 200
    bar.update(100, 1000)
    expect(written).to.deep.equal([]) // a quick operation shows nothing
    now = 1000
    bar.update(500, 1000)
    now = 1050
    bar.update(520, 1000) // too soon to redraw
    expect(written).to.have.length(1)
    // eslint-disable-next-line no-control-regex
    expect(written[0]).to.match(/^\rpurging jobs {2}\[#+\.+\] {2}50% 500\/1,000 messages {2}500\/s {2}ETA 1s\u001B\[K$/)
    bar.stop()
    bar.stop()
    expect(written.slice(1)).to.deep.equal(['\r\u001B[K'])
    bar.update(900, 1000)
    expect(written).to.have.length(2)
  })
})

describe('progress: long broker operations report it', () => {
  let broker: FileBroker
  beforeEach(() => {
    broker = new FileBroker(tempHome())
  })
  afterEach(() => broker.close())

  it('redrive reports each batch (done of total, moved) and lets timers run in between', async () => {
    await broker.publish('jobs', [{body: 'x'}])
    await broker.publish(
      'jobs.dlq',
      Array.from({length: 1000}, (_, i) => ({body: `m${i}`})),
    )
    const reports: {done: number; total: number; moved: number}[] = []
    let ticks = 0
    const timer = setInterval(() => ticks++, 0)
    const result = await broker.redrive('jobs', {onProgress: (report) => reports.push({...report, ticks} as never)})
    clearInterval(timer)
    expect(result.moved).to.equal(1000)
    expect(reports.length).to.be.at.least(5)
    expect(reports.at(-1)).to.deep.include({done: 1000, total: 1000, moved: 1000})
    expect(reports.map((r) => r.done)).to.deep.equal([...reports.map((r) => r.done)].sort((a, b) => a - b))
    expect(ticks).to.be.above(0) // the event loop ran between batches
  })

  it('purge deletes in batches with progress, keeps what was published meanwhile, and stops on abort', async () => {
    await broker.publish(
      'jobs',
      Array.from({length: 12_000}, (_, i) => ({body: `m${i}`})),
    )
    await broker.receive('jobs', {max: 10, autoAck: false}) // in flight ones go too
    const reports: {done: number; total: number}[] = []
    let published = false
    const result = await broker.purgeQueue('jobs', {
      onProgress: (report) => {
        reports.push(report)
        if (!published) {
          published = true
          void broker.publish('jobs', [{body: 'during the purge'}])
        }
      },
    })
    expect(result.purged).to.equal(12_000)
    expect(reports.map((r) => r.done)).to.deep.equal([5000, 10_000, 12_000])
    expect(reports.every((r) => r.total === 12_000)).to.equal(true)
    const left = await broker.receive('jobs', {max: 10, autoAck: true})
    expect(left.map((d) => d.body)).to.deep.equal(['during the purge'])

    await broker.publish(
      'big',
      Array.from({length: 12_000}, (_, i) => ({body: `m${i}`})),
    )
    const stop = new AbortController()
    const partial = await broker.purgeQueue('big', {signal: stop.signal, onProgress: () => stop.abort()})
    expect(partial.purged).to.equal(5000)
    expect((await broker.queueStats('big')).depth).to.equal(7000)
  })

  it('purge keeps what was published meanwhile at any priority (ids of a priority live in their own range)', async () => {
    await broker.publish(
      'levels',
      Array.from({length: 12_000}, (_, i) => ({body: `m${i}`, priority: i % 10})),
    )
    await broker.publish('levels', [{body: 'delayed', priority: 7, deliverAt: Date.now() + 60_000}])
    let published = false
    const result = await broker.purgeQueue('levels', {
      onProgress: () => {
        if (published) return
        published = true
        void broker.publish('levels', [
          {body: 'low', priority: 0},
          {body: 'mid', priority: 3},
          {body: 'later', priority: 7, deliverAt: Date.now() + 60_000},
        ])
      },
    })
    expect(result.purged).to.equal(12_001)
    expect((await broker.peek('levels', 10)).map((m) => m.body)).to.deep.equal(['mid', 'low', 'later'])
  })
})
