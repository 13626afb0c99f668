// Issue 6 benchmarks: wake-up latency of a long-polling consumer, publish throughput through the
// daemon vs directly with 1, 4 and 16 clients, and HTTP ingest from a load generator process.
import {execFileSync, spawn} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import {DaemonClient} from '../dist/core/daemon/client.js'
import {FileBroker} from '../dist/core/file-broker/index.js'
import {BIN, fmt, header, mq, percentile, report, ROOT, tempHome} from './lib.js'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function startDaemon(home) {
  execFileSync(process.execPath, [BIN, 'daemon', 'start'], {env: {...process.env, MQ_HOME: home}, stdio: 'ignore'})
}
function stopDaemon(home) {
  execFileSync(process.execPath, [BIN, 'daemon', 'stop'], {env: {...process.env, MQ_HOME: home}, stdio: 'ignore'})
}

async function wakeups(home, publish, rounds) {
  const consumer = spawn(process.execPath, [BIN, 'consume', 'wake', '-f', '--json'], {
    env: {...process.env, MQ_HOME: home},
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const latencies = []
  let waiting
  let buffered = ''
  consumer.stdout.setEncoding('utf8').on('data', (chunk) => {
    const now = performance.timeOrigin + performance.now()
    buffered += chunk
    const lines = buffered.split('\n')
    buffered = lines.pop()
    for (const line of lines) {
      latencies.push(now - Number(JSON.parse(line).headers.sent))
      waiting?.()
    }
  })
  await sleep(500) // let the consumer start and begin waiting
  for (let i = 0; i < rounds; i++) {
    const arrived = new Promise((resolve) => (waiting = resolve))
    // The clock starts when the publish returned: the message is durable and visible.
    const before = performance.timeOrigin + performance.now()
    await publish({body: String(i), headers: {sent: String(before)}})
    await arrived
    await sleep(5 + Math.random() * 10) // the consumer is idle again, waiting
  }
  consumer.kill('SIGINT')
  await new Promise((resolve) => consumer.on('exit', resolve))
  return latencies
}

/** Clients start together (after all connected) and each reports its own time: start-up is not measured. */
async function throughput(home, mode, clients, perClient) {
  const children = Array.from({length: clients}, () =>
    spawn(process.execPath, [join(ROOT, 'bench', 'daemon-client.js'), mode, home, String(perClient), 'load'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  )
  const lines = children.map((child) => {
    let text = ''
    child.stdout.setEncoding('utf8').on('data', (chunk) => (text += chunk))
    return () => text.trim().split('\n')
  })
  while (!lines.every((read) => read()[0] === 'ready')) await sleep(20)
  for (const child of children) child.stdin.write('go\n')
  await Promise.all(children.map((child) => new Promise((resolve) => child.on('exit', resolve))))
  const slowestMs = Math.max(...lines.map((read) => Number(read()[1])))
  return (clients * perClient) / (slowestMs / 1000)
}

export async function benchDaemon({quick = false} = {}) {
  const rounds = quick ? 50 : 300
  header(`daemon: wake-up latency of a long-polling consumer (${rounds} messages from another process)`)
  const home = tempHome()
  const direct = new FileBroker(home)
  const withoutDaemon = await wakeups(home, (m) => direct.publish('wake', [m]), rounds)
  report(
    'without the daemon (file notification): p50 / p99',
    `${fmt(percentile(withoutDaemon, 50))} ms / ${fmt(percentile(withoutDaemon, 99))} ms`,
    'p50 ≤ 10 ms',
    percentile(withoutDaemon, 50) <= 10,
  )
  await direct.close()
  startDaemon(home)
  const client = await DaemonClient.connect(home)
  const withDaemon = await wakeups(home, (m) => client.publish('wake', [m], {}), rounds)
  client.close()
  report(
    'with the daemon (published through it): p50 / p99',
    `${fmt(percentile(withDaemon, 50))} ms / ${fmt(percentile(withDaemon, 99))} ms`,
    'p50 ≤ 10 ms',
    percentile(withDaemon, 50) <= 10,
  )

  header('daemon: publish throughput, one durable publish at a time per client, through the daemon vs direct')
  const perClient = quick ? 100 : 400
  for (const clients of [1, 4, 16]) {
    const directHome = tempHome()
    mq(directHome, ['queue', 'create', 'load'])
    const directRate = await throughput(directHome, 'direct', clients, perClient)
    const daemonRate = await throughput(home, 'daemon', clients, perClient)
    const ratio = daemonRate / directRate
    report(
      `${clients} client${clients === 1 ? '' : 's'}: direct vs through the daemon`,
      `${fmt(Math.round(directRate))} vs ${fmt(Math.round(daemonRate))} msgs/s = ${fmt(ratio)}×`,
      clients === 16 ? '≥ 2× with 16 clients' : '',
      clients === 16 ? ratio >= 2 : undefined,
    )
  }

  header('daemon: HTTP ingest from a load generator in a second process (structured CloudEvents)')
  const status = JSON.parse(mq(home, ['daemon', 'status', '--json']).stdout)
  const token = readFileSync(join(home, 'daemon.token'), 'utf8').trim()
  const seconds = quick ? 2 : 5
  for (const concurrency of [1, 16]) {
    const out = await new Promise((resolve) => {
      const child = spawn(
        process.execPath,
        [join(ROOT, 'bench', 'http-load.js'), String(status.http.port), token, String(concurrency), String(seconds)],
        {stdio: ['ignore', 'pipe', 'inherit']},
      )
      let text = ''
      child.stdout.on('data', (chunk) => (text += chunk))
      child.on('exit', () => resolve(JSON.parse(text)))
    })
    report(
      `POST /events, ${concurrency} in flight, ${seconds} s`,
      `${fmt(Math.round(out.accepted / (out.ms / 1000)))} events/s (${fmt(out.accepted)} accepted, ${out.failed} failed)`,
      '',
    )
  }
  stopDaemon(home)
}
