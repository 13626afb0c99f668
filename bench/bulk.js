// Issue 13, progress: long operations on a big backlog (dlq redrive, queue purge) report progress
// as they go. Prints how long each takes, how often it reported, and the longest time without a
// report (what a person at the terminal sees as a frozen bar).
import {FileBroker} from '../dist/core/file-broker/index.js'
import {fmt, header, rate, tempHome} from './lib.js'

async function fill(broker, queue, count) {
  for (let i = 0; i < count; i += 10_000) {
    await broker.publish(
      queue,
      Array.from({length: Math.min(10_000, count - i)}, (_, j) => ({body: `message ${i + j} ${'x'.repeat(40)}`})),
    )
  }
}

/** Runs `operation(onProgress)` and measures the reports it makes. */
async function measure(operation) {
  const started = performance.now()
  let last = started
  let firstMs
  let longestGapMs = 0
  let reports = 0
  const onProgress = () => {
    const now = performance.now()
    firstMs ??= now - started
    longestGapMs = Math.max(longestGapMs, now - last)
    last = now
    reports++
  }
  await operation(onProgress)
  const totalMs = performance.now() - started
  return {totalMs, firstMs, longestGapMs: Math.max(longestGapMs, totalMs - (last - started)), reports}
}

function print(what, count, m) {
  console.log(
    `  ${what.padEnd(22)} ${fmt(count)} messages in ${fmt(m.totalMs)} ms (${fmt(rate(count, m.totalMs))}/s); ${m.reports} progress reports, first after ${fmt(m.firstMs)} ms, longest gap ${fmt(m.longestGapMs)} ms (${fmt(m.totalMs / Math.max(1, m.longestGapMs))}× shorter than the whole run)`,
  )
}

export async function benchBulk({quick = false} = {}) {
  const count = quick ? 20_000 : 200_000
  header(`bulk: progress of long operations on ${fmt(count)} messages (file broker)`)
  const broker = new FileBroker(tempHome())
  try {
    await broker.publish('jobs', [{body: 'x'}])
    await fill(broker, 'jobs.dlq', count)
    print('dlq redrive', count, await measure((onProgress) => broker.redrive('jobs', {onProgress})))
    print('queue purge', count + 1, await measure((onProgress) => broker.purgeQueue('jobs', {onProgress})))
  } finally {
    await broker.close()
  }
}
