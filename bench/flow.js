// Issue 4 benchmarks: publishing into a full drop-oldest queue, consuming with priorities, and
// the lateness of delayed messages.
import {spawn} from 'node:child_process'
import {cpSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {FileBroker} from '../dist/core/file-broker/index.js'
import {BIN, fmt, header, mq, percentile, pinned, rate, report, shellMs, tempHome, timesMs} from './lib.js'

export async function benchFlow({quick = false} = {}) {
  const N = quick ? 20_000 : 200_000
  const lines = join(tempHome(), 'lines.txt')
  writeFileSync(lines, Array.from({length: N}, (_, i) => `message ${i}`).join('\n') + '\n')

  header(`flow: publish --lines into a queue held at its max length (drop-oldest), ${fmt(N)} messages`)
  const free = tempHome()
  const freeMs = shellMs(`node ${BIN} publish q --lines < ${lines} > /dev/null`, {MQ_HOME: free})
  const bounded = tempHome()
  mq(bounded, ['queue', 'create', 'q', '--max-length', '10000', '--overflow', 'drop-oldest'])
  shellMs(`head -n 10000 ${lines} | node ${BIN} publish q --lines > /dev/null`, {MQ_HOME: bounded})
  const fullMs = shellMs(`node ${BIN} publish q --lines < ${lines} > /dev/null`, {MQ_HOME: bounded})
  const depth = JSON.parse(mq(bounded, ['queue', 'stats', 'q', '--json']).stdout)
  report('unbounded queue', `${fmt(rate(N, freeMs))} msgs/s`, '(reference)')
  report(
    'queue held at 10,000 (drop-oldest)',
    `${fmt(rate(N, fullMs))} msgs/s = ${fmt(freeMs / fullMs)}× of unbounded`,
    `depth stays ${fmt(depth.depth)}, dropped ${fmt(depth.totals.dropped)}`,
  )

  const rounds = quick ? 1 : 3
  header(
    `flow: consume -n N > /dev/null with priorities in use vs without (${fmt(N)} messages, best of ${rounds}, interleaved)`,
  )
  const fill = async (priorityOf) => {
    const home = tempHome()
    const broker = new FileBroker(home)
    for (let start = 0; start < N; start += 5000) {
      await broker.publish(
        'q',
        Array.from({length: Math.min(5000, N - start)}, (_, i) => ({
          body: `message ${start + i}`,
          priority: priorityOf(start + i),
        })),
      )
    }
    await broker.close()
    return home
  }
  const filled = {
    plain: await fill(() => undefined),
    // Worst case: ten levels round-robin, so each level's messages are spread over the whole table.
    roundRobin: await fill((i) => i % 10),
    // A common case: one urgent message in ten.
    urgent: await fill((i) => (i % 10 === 0 ? 9 : 0)),
  }
  const best = {}
  for (let round = 0; round < rounds; round++) {
    for (const [name, home] of Object.entries(filled)) {
      const copy = tempHome()
      cpSync(home, copy, {recursive: true}) // every round drains the same backlog
      const {wall} = timesMs(...pinned(process.execPath, [BIN, 'consume', 'q', '-n', String(N)]), {
        env: {...process.env, MQ_HOME: copy},
      })
      best[name] = Math.min(best[name] ?? Infinity, wall)
    }
  }
  report('without priorities', `${fmt(rate(N, best.plain))} msgs/s`, '')
  report(
    'priorities 0–9 round-robin (worst case)',
    `${fmt(rate(N, best.roundRobin))} msgs/s = ${fmt(best.roundRobin / best.plain)}× the time`,
    '≤ 1.1×',
    best.roundRobin / best.plain <= 1.1,
  )
  report(
    'priority 9 for one message in ten',
    `${fmt(rate(N, best.urgent))} msgs/s = ${fmt(best.urgent / best.plain)}× the time`,
    '≤ 1.1×',
    best.urgent / best.plain <= 1.1,
  )

  header(`flow: ${quick ? '10k' : '100k'} delayed messages scheduled over 10 s, delivery lateness`)
  const D = quick ? 10_000 : 100_000
  const delayed = tempHome()
  const consumer = spawn(process.execPath, [BIN, 'consume', 'q', '-n', String(D), '--wait', '60s', '--json'], {
    env: {...process.env, MQ_HOME: delayed},
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const lateness = []
  let buffered = ''
  consumer.stdout.setEncoding('utf8').on('data', (chunk) => {
    const now = Date.now()
    buffered += chunk
    const parts = buffered.split('\n')
    buffered = parts.pop()
    for (const line of parts) lateness.push(now - Number(JSON.parse(line).headers.due))
  })
  const scheduler = new FileBroker(delayed)
  const base = Date.now() + 2_000
  for (let start = 0; start < D; start += 5000) {
    const batch = Array.from({length: Math.min(5000, D - start)}, (_, i) => {
      const due = base + Math.floor(((start + i) / D) * 10_000)
      return {body: `delayed ${start + i}`, deliverAt: due, headers: {due: String(due)}}
    })
    await scheduler.publish('q', batch)
  }
  await scheduler.close()
  await new Promise((resolve) => consumer.on('exit', resolve))
  report('delivered', `${fmt(lateness.length)} of ${fmt(D)}`, '', lateness.length === D)
  report('lateness p50', `${fmt(percentile(lateness, 50))} ms`, '')
  report('lateness p99', `${fmt(percentile(lateness, 99))} ms`, '')
  report('lateness max', `${fmt(Math.max(...lateness))} ms`, '')
}
