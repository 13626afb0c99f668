// Issue 2 benchmarks: start-up cost, streaming throughput, consume throughput, flat cost with a
// deep backlog, and memory while draining a large backlog.
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {FileBroker} from '../dist/core/file-broker/index.js'
import {BIN, fmt, header, median, mq, peakRssKiB, rate, report, shellMs, tempHome, wallMs} from './lib.js'

export async function benchQueues({quick = false} = {}) {
  const N_STREAM = quick ? 20_000 : 200_000
  const N_ACK = quick ? 10_000 : 100_000
  const N_BACKLOG = quick ? 100_000 : 1_000_000
  const RUNS = quick ? 7 : 21

  header('queues: start-up (side by side, interleaved)')
  const home = tempHome()
  const nodeTimes = []
  const publishTimes = []
  const env = {...process.env, MQ_HOME: home}
  for (let i = 0; i < RUNS; i++) {
    nodeTimes.push(wallMs(process.execPath, ['-e', '']))
    publishTimes.push(wallMs(process.execPath, [BIN, 'publish', 'q', 'hello'], {env}))
  }
  const nodeMedian = median(nodeTimes)
  const publishMedian = median(publishTimes)
  report("node -e '' median wall", `${fmt(nodeMedian)} ms`, '(baseline)')
  report(
    'mq publish q hello median wall',
    `${fmt(publishMedian)} ms = ${fmt(publishMedian / nodeMedian)}×`,
    '≤ 2.0× node',
    publishMedian / nodeMedian <= 2,
  )

  header(`queues: streaming publish --lines (${fmt(N_STREAM)} messages, whole process)`)
  const streamHome = tempHome()
  const lines = join(streamHome, 'lines.txt')
  writeFileSync(lines, Array.from({length: N_STREAM}, (_, i) => `message number ${i}`).join('\n') + '\n')
  const fileMs = shellMs(`node ${BIN} publish q --lines < ${lines} > /dev/null`, {MQ_HOME: streamHome})
  report(
    'publish --lines < file',
    `${fmt(rate(N_STREAM, fileMs))} msgs/s (${fmt(fileMs)} ms)`,
    '≥ 150,000 msgs/s',
    rate(N_STREAM, fileMs) >= 150_000,
  )
  const pipeHome = tempHome()
  const pipeMs = shellMs(`cat ${lines} | node ${BIN} publish q --lines > /dev/null`, {MQ_HOME: pipeHome})
  report(
    'cat file | publish --lines (pipe, batch per read)',
    `${fmt(rate(N_STREAM, pipeMs))} msgs/s (${fmt(pipeMs)} ms)`,
    '≥ 150,000 msgs/s',
    rate(N_STREAM, pipeMs) >= 150_000,
  )

  header(`queues: consume (${fmt(N_STREAM)} auto-ack, ${fmt(N_ACK)} manual + ack)`)
  const consumeMs = shellMs(`node ${BIN} consume q -n ${N_STREAM} > /dev/null`, {MQ_HOME: streamHome})
  report(
    'consume -n N (auto-ack) > /dev/null',
    `${fmt(rate(N_STREAM, consumeMs))} msgs/s (${fmt(consumeMs)} ms)`,
    '≥ 100,000 msgs/s',
    rate(N_STREAM, consumeMs) >= 100_000,
  )
  const ackHome = tempHome()
  const ackLines = join(ackHome, 'lines.txt')
  writeFileSync(ackLines, Array.from({length: N_ACK}, (_, i) => `job ${i}`).join('\n') + '\n')
  shellMs(`node ${BIN} publish jobs --lines < ${ackLines} > /dev/null`, {MQ_HOME: ackHome})
  const pipelineMs = shellMs(
    `node ${BIN} consume jobs -n ${N_ACK} --ack manual --json | jq -r .receipt | node ${BIN} ack`,
    {MQ_HOME: ackHome},
  )
  const left = JSON.parse(mq(ackHome, ['queue', 'stats', 'jobs', '--json']).stdout).depth
  report(
    'consume --ack manual --json | jq -r .receipt | ack',
    `${fmt(rate(N_ACK, pipelineMs))} msgs/s (${fmt(pipelineMs)} ms, ${left} left)`,
    '≥ 50,000 msgs/s',
    rate(N_ACK, pipelineMs) >= 50_000 && left === 0,
  )

  header(`queues: cost with ${fmt(N_BACKLOG)} messages queued vs an empty queue`)
  const deepHome = tempHome()
  const deepLines = join(deepHome, 'lines.txt')
  writeFileSync(deepLines, Array.from({length: N_BACKLOG}, (_, i) => `backlog ${i}`).join('\n') + '\n')
  shellMs(`node ${BIN} publish deep --lines < ${deepLines} > /dev/null`, {MQ_HOME: deepHome})
  const emptyHome = tempHome()
  mq(emptyHome, ['queue', 'create', 'deep'])
  // In-process: the storage cost of one publish and one receive+ack, each its own transaction.
  const perOp = async (folder) => {
    const broker = new FileBroker(folder)
    const publishUs = []
    const receiveAckUs = []
    for (let i = 0; i < 300; i++) {
      let t = process.hrtime.bigint()
      await broker.publish('deep', [{body: 'probe'}])
      publishUs.push(Number(process.hrtime.bigint() - t) / 1e3)
      t = process.hrtime.bigint()
      const [d] = await broker.receive('deep', {max: 1, autoAck: false})
      await broker.ack([d.receipt])
      receiveAckUs.push(Number(process.hrtime.bigint() - t) / 1e3)
    }
    await broker.close()
    return {publish: median(publishUs), receiveAck: median(receiveAckUs)}
  }
  const empty = await perOp(emptyHome)
  const deep = await perOp(deepHome)
  report(
    'in-process publish, median',
    `${fmt(deep.publish)} µs vs ${fmt(empty.publish)} µs = ${fmt(deep.publish / empty.publish)}×`,
    '≤ 1.2×',
    deep.publish / empty.publish <= 1.2,
  )
  report(
    'in-process receive + ack, median',
    `${fmt(deep.receiveAck)} µs vs ${fmt(empty.receiveAck)} µs = ${fmt(deep.receiveAck / empty.receiveAck)}×`,
    '≤ 1.2×',
    deep.receiveAck / empty.receiveAck <= 1.2,
  )
  // Whole commands, interleaved: mq publish, and mq consume --ack manual + mq ack.
  const cli = {empty: {publish: [], consumeAck: []}, deep: {publish: [], consumeAck: []}}
  for (let i = 0; i < RUNS; i++) {
    for (const [label, folder] of [
      ['empty', emptyHome],
      ['deep', deepHome],
    ]) {
      const folderEnv = {...process.env, MQ_HOME: folder}
      cli[label].publish.push(wallMs(process.execPath, [BIN, 'publish', 'deep', 'probe'], {env: folderEnv}))
      let t = process.hrtime.bigint()
      const out = mq(folder, ['consume', 'deep', '--ack', 'manual', '--json'])
      mq(folder, ['ack', JSON.parse(out.stdout).receipt])
      cli[label].consumeAck.push(Number(process.hrtime.bigint() - t) / 1e6)
    }
  }
  const ratioPublish = median(cli.deep.publish) / median(cli.empty.publish)
  const ratioConsume = median(cli.deep.consumeAck) / median(cli.empty.consumeAck)
  report(
    'mq publish, median wall',
    `${fmt(median(cli.deep.publish))} ms vs ${fmt(median(cli.empty.publish))} ms = ${fmt(ratioPublish)}×`,
    '≤ 1.2×',
    ratioPublish <= 1.2,
  )
  report(
    'mq consume --ack manual + mq ack, median wall',
    `${fmt(median(cli.deep.consumeAck))} ms vs ${fmt(median(cli.empty.consumeAck))} ms = ${fmt(ratioConsume)}×`,
    '≤ 1.2×',
    ratioConsume <= 1.2,
  )

  header(`queues: memory while draining a ${fmt(N_BACKLOG)} backlog`)
  const rss = await peakRssKiB(process.execPath, [BIN, 'consume', 'deep', '-n', String(N_BACKLOG)], {MQ_HOME: deepHome})
  report('peak RSS of consume -n N (auto-ack) > /dev/null', `${fmt(rss / 1024)} MB`, '≤ 150 MB', rss / 1024 <= 150)
}
