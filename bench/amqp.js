// The AMQP driver against a plain amqplib client doing the same work (and the file broker for
// comparison), all in one run on a private RabbitMQ node it boots on loopback (figures, never gates):
//   npm run build && node bench/amqp.js [--quick] [bulk] [ack] [oneshot]   (default: all)
// The node is the tests' (test/rabbitmq-server.ts: own node name, ports and data folder, stopped
// at exit); booting it takes 20-40 s here and is not part of any figure.
import {execFileSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {BIN, fmt, header, median, rate, report, shellMs, tempHome, wallMs} from './lib.js'

const PLAIN = new URL('./amqp-plain.js', import.meta.url).pathname

/** The tests' RabbitMQ helper (TypeScript), loaded through tsx, a dev dependency like this script. */
async function rabbitHelper() {
  const {register} = await import('tsx/esm/api')
  register()
  return import('../test/rabbitmq-server.ts')
}

export async function benchAmqp({quick = false, only = []} = {}) {
  const wanted = (section) => only.length === 0 || only.includes(section)
  const N = quick ? 5_000 : 50_000
  const N_ACK = quick ? 1_000 : 10_000
  const RUNS = quick ? 7 : 21
  const helper = await rabbitHelper()
  if (!helper.rabbitmqServerBinary()) {
    header('amqp: skipped (rabbitmq-server is not installed: apt-get install rabbitmq-server)')
    return
  }
  const node = await helper.rabbitmq()
  const tag = randomBytes(3).toString('hex')
  const home = tempHome()
  const env = {MQ_URL: node.brokerUrl, MQ_HOME: home}
  const fileEnv = {MQ_HOME: tempHome(), MQ_URL: ''}
  const linesOf = (name, count, text) => {
    const path = join(home, name)
    writeFileSync(path, Array.from({length: count}, (_, i) => `${text} ${i}`).join('\n') + '\n')
    return path
  }
  try {
    if (wanted('bulk')) {
      header(`amqp: bulk publish --lines and consume -n (${fmt(N)} messages, persistent, confirms)`)
      const lines = linesOf('lines.txt', N, 'message number')
      const plainPub = shellMs(`node ${PLAIN} publish '${node.url}' plain-bulk-${tag} < ${lines}`)
      const mqPub = shellMs(`node ${BIN} publish bulk-${tag} --lines < ${lines} > /dev/null`, env)
      const filePub = shellMs(`node ${BIN} publish bulk --lines < ${lines} > /dev/null`, fileEnv)
      report('plain amqplib publish (confirms awaited, window 512)', `${fmt(rate(N, plainPub))} msgs/s`, '(baseline)')
      report(
        'mq publish --lines on amqp://',
        `${fmt(rate(N, mqPub))} msgs/s = ${fmt(plainPub / mqPub)}×`,
        '≥ 0.8× plain',
        plainPub / mqPub >= 0.8,
      )
      report('mq publish --lines on the file broker', `${fmt(rate(N, filePub))} msgs/s`, '(for comparison)')
      const plainCon = shellMs(`node ${PLAIN} consume '${node.url}' plain-bulk-${tag} ${N} > /dev/null`)
      const mqCon = shellMs(`node ${BIN} consume bulk-${tag} -n ${N} > /dev/null`, env)
      const fileCon = shellMs(`node ${BIN} consume bulk -n ${N} > /dev/null`, fileEnv)
      report('plain amqplib consume (prefetch 500, ack each)', `${fmt(rate(N, plainCon))} msgs/s`, '(baseline)')
      report(
        'mq consume -n on amqp://',
        `${fmt(rate(N, mqCon))} msgs/s = ${fmt(plainCon / mqCon)}×`,
        '≥ 0.8× plain',
        plainCon / mqCon >= 0.8,
      )
      report('mq consume -n on the file broker', `${fmt(rate(N, fileCon))} msgs/s`, '(for comparison)')
    }
    if (wanted('ack')) {
      header(`amqp: manual-ack pipeline through the daemon (${fmt(N_ACK)} messages)`)
      const lines = linesOf('ack-lines.txt', N_ACK, 'job')
      shellMs(`node ${PLAIN} publish '${node.url}' plain-acks-${tag} < ${lines}`)
      shellMs(`node ${BIN} publish acks-${tag} --lines < ${lines} > /dev/null`, env)
      const plainAck = shellMs(`node ${PLAIN} consume '${node.url}' plain-acks-${tag} ${N_ACK} > /dev/null`)
      execFileSync(process.execPath, [BIN, 'daemon', 'start', '--no-http'], {
        env: {...process.env, ...env},
        stdio: 'ignore',
      })
      let mqAck
      try {
        mqAck = shellMs(
          `node ${BIN} consume acks-${tag} -n ${N_ACK} --ack manual --json | jq -r .receipt | node ${BIN} ack > /dev/null`,
          env,
        )
      } finally {
        execFileSync(process.execPath, [BIN, 'daemon', 'stop'], {env: {...process.env, ...env}, stdio: 'ignore'})
      }
      report('plain amqplib consume + ack each (one process)', `${fmt(rate(N_ACK, plainAck))} msgs/s`, '(baseline)')
      report(
        'consume --ack manual --json | jq -r .receipt | ack (daemon)',
        `${fmt(rate(N_ACK, mqAck))} msgs/s = ${fmt(plainAck / mqAck)}×`,
        '≥ 0.5× plain',
        plainAck / mqAck >= 0.5,
      )
    }
    if (wanted('oneshot')) {
      header(`amqp: one-shot publish, median of ${RUNS} interleaved runs`)
      const times = {node: [], amqp: [], file: []}
      for (let i = 0; i < RUNS; i++) {
        times.node.push(wallMs(process.execPath, ['-e', '']))
        times.amqp.push(wallMs(process.execPath, [BIN, 'publish', `one-${tag}`, 'x'], {env: {...process.env, ...env}}))
        times.file.push(wallMs(process.execPath, [BIN, 'publish', 'one', 'x'], {env: {...process.env, ...fileEnv}}))
      }
      const base = median(times.node)
      report("node -e ''", `${fmt(base)} ms`, '(baseline)')
      report(
        'mq publish on amqp://',
        `${fmt(median(times.amqp))} ms = ${fmt(median(times.amqp) / base)}× node`,
        `${fmt(median(times.amqp) / median(times.file))}× the file broker`,
      )
      report(
        'mq publish on the file broker',
        `${fmt(median(times.file))} ms = ${fmt(median(times.file) / base)}× node`,
        '',
      )
    }
  } finally {
    await helper.stopRabbitMq()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2)
  await benchAmqp({quick: args.includes('--quick'), only: args.filter((a) => !a.startsWith('--'))})
}
