// The NATS JetStream driver against a plain nats.js client doing the same work, and against the
// file broker, all in one run on a nats-server it starts on loopback (figures, never gates):
//   npm run build && node bench/nats.js [--quick] [bulk] [ack] [oneshot] [wake] [hot]   (default: all)
// `hot` is the file broker's hot publish against an earlier build: BEFORE=DIR (see bench/hot-path.js).
import {execFileSync, spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {connect} from '@nats-io/transport-node'

import {benchHotPath} from './hot-path.js'
import {BIN, fmt, header, median, percentile, rate, report, shellMs, tempHome, wallMs} from './lib.js'

const PLAIN = new URL('./nats-plain.js', import.meta.url).pathname

async function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const {port} = server.address()
      server.close(() => resolve(port))
    })
  })
}

async function startServer() {
  const binary = ['/usr/sbin/nats-server', '/usr/local/bin/nats-server'].find((p) => {
    try {
      execFileSync(p, ['--version'])
      return true
    } catch {
      return false
    }
  })
  if (!binary) return undefined
  const port = await freePort()
  const store = mkdtempSync(join(tmpdir(), 'mq-bench-nats-'))
  const child = spawn(binary, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  await new Promise((resolve) => {
    let log = ''
    child.stderr.on('data', (chunk) => {
      log += chunk
      if (log.includes('Server is ready')) resolve()
    })
  })
  child.stderr.resume()
  return {
    url: `nats://127.0.0.1:${port}`,
    stop: () => (child.kill('SIGTERM'), rmSync(store, {recursive: true, force: true})),
  }
}

export async function benchNats({quick = false, only = []} = {}) {
  const wanted = (section) => only.length === 0 || only.includes(section)
  const N = quick ? 20_000 : 200_000
  const N_ACK = quick ? 2_000 : 20_000
  const RUNS = quick ? 7 : 21
  const server = await startServer()
  if (!server) {
    header('nats: skipped (nats-server is not installed: apt-get install nats-server)')
    return
  }
  const prefix = `b${randomBytes(3).toString('hex')}`
  const url = `${server.url}?prefix=${prefix}`
  const nc = await connect({servers: server.url.replace('nats://', '')})
  const api = async (subject, body) =>
    JSON.parse(
      new TextDecoder().decode((await nc.request(`$JS.API.${subject}`, JSON.stringify(body), {timeout: 60_000})).data),
    )
  const plainStream = async (name) => {
    await api(`STREAM.CREATE.${name}`, {name, subjects: [`plain.${name}`], retention: 'workqueue', storage: 'file'})
    await api(`CONSUMER.DURABLE.CREATE.${name}.c`, {
      stream_name: name,
      config: {durable_name: 'c', ack_policy: 'explicit', max_ack_pending: -1},
    })
  }
  const home = tempHome()
  const lines = join(home, 'lines.txt')
  writeFileSync(lines, Array.from({length: N}, (_, i) => `message number ${i}`).join('\n') + '\n')
  const env = {MQ_URL: url, MQ_HOME: home}
  const fileEnv = {MQ_HOME: tempHome(), MQ_URL: ''}
  try {
    if (wanted('bulk')) {
      header(`nats: bulk publish --lines and consume -n (${fmt(N)} messages, auto-ack)`)
      await plainStream('BULK')
      const plainPub = shellMs(`node ${PLAIN} publish ${server.url} BULK ${N} < ${lines}`)
      const mqPub = shellMs(`node ${BIN} publish bulk --lines < ${lines} > /dev/null`, env)
      const filePub = shellMs(`node ${BIN} publish bulk --lines < ${lines} > /dev/null`, fileEnv)
      report('plain nats.js publish (acks awaited)', `${fmt(rate(N, plainPub))} msgs/s`, '(baseline)')
      report(
        'mq publish --lines on nats://',
        `${fmt(rate(N, mqPub))} msgs/s = ${fmt(plainPub / mqPub)}×`,
        '≥ 0.8× plain',
        plainPub / mqPub >= 0.8,
      )
      report('mq publish --lines on the file broker', `${fmt(rate(N, filePub))} msgs/s`, '(for comparison)')
      const plainCon = shellMs(`node ${PLAIN} consume ${server.url} BULK ${N} > /dev/null`)
      const mqCon = shellMs(`node ${BIN} consume bulk -n ${N} > /dev/null`, env)
      const fileCon = shellMs(`node ${BIN} consume bulk -n ${N} > /dev/null`, fileEnv)
      report('plain nats.js pull + ack', `${fmt(rate(N, plainCon))} msgs/s`, '(baseline)')
      report(
        'mq consume -n on nats://',
        `${fmt(rate(N, mqCon))} msgs/s = ${fmt(plainCon / mqCon)}×`,
        '≥ 0.8× plain',
        plainCon / mqCon >= 0.8,
      )
      report('mq consume -n on the file broker', `${fmt(rate(N, fileCon))} msgs/s`, '(for comparison)')
    }
    if (wanted('ack')) {
      header(`nats: manual-ack pipeline (${fmt(N_ACK)} messages, exact stale detection)`)
      const ackLines = join(home, 'ack-lines.txt')
      writeFileSync(ackLines, Array.from({length: N_ACK}, (_, i) => `job ${i}`).join('\n') + '\n')
      await plainStream('ACKS')
      shellMs(`node ${PLAIN} publish ${server.url} ACKS ${N_ACK} < ${ackLines}`)
      const plainAck = shellMs(`node ${PLAIN} pull-ack ${server.url} ACKS ${N_ACK} > /dev/null`)
      shellMs(`node ${BIN} publish acks --lines < ${ackLines} > /dev/null`, env)
      const mqAck = shellMs(
        `node ${BIN} consume acks -n ${N_ACK} --ack manual --json | jq -r .receipt | node ${BIN} ack > /dev/null`,
        env,
      )
      report('plain nats.js pull + confirmed ack', `${fmt(rate(N_ACK, plainAck))} msgs/s`, '(baseline)')
      report(
        'consume --ack manual --json | jq -r .receipt | ack',
        `${fmt(rate(N_ACK, mqAck))} msgs/s = ${fmt(plainAck / mqAck)}×`,
        '≥ 0.5× plain',
        plainAck / mqAck >= 0.5,
      )
    }
    if (wanted('oneshot')) {
      header(`nats: one-shot publish, median of ${RUNS} interleaved runs`)
      const times = {node: [], nats: [], file: []}
      for (let i = 0; i < RUNS; i++) {
        times.node.push(wallMs(process.execPath, ['-e', '']))
        times.nats.push(wallMs(process.execPath, [BIN, 'publish', 'one', 'x'], {env: {...process.env, ...env}}))
        times.file.push(wallMs(process.execPath, [BIN, 'publish', 'one', 'x'], {env: {...process.env, ...fileEnv}}))
      }
      const base = median(times.node)
      report("node -e ''", `${fmt(base)} ms`, '(baseline)')
      report(
        'mq publish on nats://',
        `${fmt(median(times.nats))} ms = ${fmt(median(times.nats) / base)}× node`,
        `${fmt(median(times.nats) / median(times.file))}× the file broker`,
      )
      report(
        'mq publish on the file broker',
        `${fmt(median(times.file))} ms = ${fmt(median(times.file) / base)}× node`,
        '',
      )
    }
    if (wanted('wake')) {
      header('nats: long-poll wake-up (publish → consume --wait returns)')
      const {JetStreamBroker} = await import('../dist/core/nats-broker/index.js')
      const {parseBrokerUrl} = await import('../dist/core/open-broker.js')
      const consumer = await JetStreamBroker.connect(parseBrokerUrl(url))
      const producer = await JetStreamBroker.connect(parseBrokerUrl(url))
      await consumer.declareQueue('wake')
      // A queue with priorities is waited on through a subscription to its subjects (priorities.ts).
      await producer.publish('wake-p', [{body: 'level', priority: 5}])
      await consumer.receive('wake-p', {max: 1, autoAck: true})
      for (const [queue, priority, label] of [
        ['wake', 0, 'wake-up after publish p50 / p99'],
        ['wake-p', 5, 'the same on a queue with priorities'],
      ]) {
        const wakes = []
        for (let i = 0; i < (quick ? 30 : 200); i++) {
          const waiting = consumer.receive(queue, {max: 1, autoAck: true, waitMs: 5_000})
          await new Promise((resolve) => setTimeout(resolve, 5))
          const sent = performance.now()
          await producer.publish(queue, [{body: String(i), priority}])
          await waiting
          wakes.push(performance.now() - sent)
        }
        report(label, `${fmt(percentile(wakes, 50))} / ${fmt(percentile(wakes, 99))} ms`, '')
      }
      await consumer.close()
      await producer.close()
    }
  } finally {
    await nc.close()
    server.stop()
  }
  if (wanted('hot')) benchHotPath({runs: RUNS})
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2)
  await benchNats({quick: args.includes('--quick'), only: args.filter((a) => !a.startsWith('--'))})
}
