// Issue 3 benchmarks: topic publish cost with 0, 1 and 10 durable subscriptions, subscribe
// throughput, and how fast a new subscription starts on a topic holding 1M messages.
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {FileBroker} from '../dist/core/file-broker/index.js'
import {BIN, fmt, header, median, mq, rate, report, shellMs, tempHome} from './lib.js'

export async function benchTopics({quick = false} = {}) {
  const N_STREAM = quick ? 20_000 : 200_000
  const N_RETAINED = quick ? 100_000 : 1_000_000
  const SINGLES = quick ? 100 : 400

  header('topics: publish cost with 0, 1 and 10 durable subscriptions')
  const lines = join(tempHome(), 'lines.txt')
  writeFileSync(lines, Array.from({length: N_STREAM}, (_, i) => `event ${i}`).join('\n') + '\n')
  const results = {}
  for (const subs of [0, 1, 10]) {
    const home = tempHome()
    mq(home, ['topic', 'create', 'events'])
    for (let i = 0; i < subs; i++) mq(home, ['subscribe', 'events', '--durable', `s${i}`, '--wait', '1ms'])
    const streamMs = shellMs(`node ${BIN} publish events --lines < ${lines} > /dev/null`, {MQ_HOME: home})
    const broker = new FileBroker(home)
    const single = []
    for (let i = 0; i < SINGLES; i++) {
      const t = process.hrtime.bigint()
      await broker.publish('events', [{body: `single ${i}`}])
      single.push(Number(process.hrtime.bigint() - t) / 1e3)
    }
    await broker.close()
    results[subs] = {stream: rate(N_STREAM, streamMs), single: median(single)}
    report(`${subs} subscriptions: publish --lines, whole process`, `${fmt(results[subs].stream)} msgs/s`, '')
    report(`${subs} subscriptions: one publish in-process, median`, `${fmt(results[subs].single)} µs`, '')
  }
  const streamRatio = results[0].stream / results[10].stream
  const singleRatio = results[10].single / results[0].single
  report('cost with 10 subscriptions vs none (--lines)', `${fmt(streamRatio)}×`, '≤ 2×', streamRatio <= 2)
  report('cost with 10 subscriptions vs none (single publish)', `${fmt(singleRatio)}×`, '≤ 2×', singleRatio <= 2)

  header(`topics: subscribe throughput (${fmt(N_STREAM)} messages, auto-ack, > /dev/null)`)
  const home = tempHome()
  shellMs(`node ${BIN} publish --topic events --lines < ${lines} > /dev/null`, {MQ_HOME: home})
  const ephemeralMs = shellMs(`node ${BIN} subscribe events --all -n ${N_STREAM} > /dev/null`, {MQ_HOME: home})
  report(
    'subscribe --all -n N (ephemeral)',
    `${fmt(rate(N_STREAM, ephemeralMs))} msgs/s (${fmt(ephemeralMs)} ms)`,
    '≥ 100,000 msgs/s',
    rate(N_STREAM, ephemeralMs) >= 100_000,
  )
  const durableMs = shellMs(`node ${BIN} subscribe events --durable reader --all -n ${N_STREAM} > /dev/null`, {
    MQ_HOME: home,
  })
  report(
    'subscribe --durable --all -n N',
    `${fmt(rate(N_STREAM, durableMs))} msgs/s (${fmt(durableMs)} ms)`,
    '≥ 100,000 msgs/s',
    rate(N_STREAM, durableMs) >= 100_000,
  )

  header(`topics: a new --new subscription, ${fmt(N_RETAINED)} retained vs an empty topic`)
  const full = tempHome()
  const bigLines = join(full, 'lines.txt')
  writeFileSync(bigLines, Array.from({length: N_RETAINED}, (_, i) => `retained ${i}`).join('\n') + '\n')
  shellMs(`node ${BIN} publish --topic events --lines < ${bigLines} > /dev/null`, {MQ_HOME: full})
  const empty = tempHome()
  mq(empty, ['topic', 'create', 'events'])
  // In-process: subscribe (--new), publish one message, receive it; the subscription is removed after.
  const firstMessage = async (folder) => {
    const broker = new FileBroker(folder)
    const times = []
    for (let i = 0; i < (quick ? 30 : 100); i++) {
      const t = process.hrtime.bigint()
      const sub = await broker.subscribe('events')
      await broker.publish('events', [{body: 'first'}])
      const [d] = await sub.receive({max: 1, autoAck: true})
      times.push(Number(process.hrtime.bigint() - t) / 1e3)
      if (d?.body !== 'first') throw new Error('the new subscription missed its first message')
      await sub.close()
    }
    await broker.close()
    return median(times)
  }
  const emptyUs = await firstMessage(empty)
  const fullUs = await firstMessage(full)
  report(
    'subscribe + publish + first receive, in-process, median',
    `${fmt(fullUs)} µs vs ${fmt(emptyUs)} µs = ${fmt(fullUs / emptyUs)}×`,
    '≤ 1.2×',
    fullUs / emptyUs <= 1.2,
  )
  // Whole command: `mq subscribe events --new` on each folder, interleaved (start-up and registration).
  const cli = {empty: [], full: []}
  for (let i = 0; i < (quick ? 7 : 21); i++) {
    for (const [label, folder] of [
      ['empty', empty],
      ['full', full],
    ]) {
      const t = process.hrtime.bigint()
      mq(folder, ['subscribe', 'events', '--new'])
      cli[label].push(Number(process.hrtime.bigint() - t) / 1e6)
    }
  }
  report(
    'mq subscribe --new (to its first receive), median wall',
    `${fmt(median(cli.full))} ms vs ${fmt(median(cli.empty))} ms = ${fmt(median(cli.full) / median(cli.empty))}×`,
    '≤ 1.2×',
    median(cli.full) / median(cli.empty) <= 1.2,
  )
}
