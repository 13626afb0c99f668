// Issue 12, storage: how many fsyncs a one-shot `mq publish` costs (counted with strace), what a
// hot one-shot command costs next to bare `node -e ''`, bulk publish and consume next to the bare
// better-sqlite3 floor (bench/floor-storage.js), memory of a streamed publish, and the manual-ack
// pipeline and the long-poll wake-up next to Redis (bench/redis.js).
import {spawn, spawnSync} from 'node:child_process'
import {closeSync, openSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {FileBroker} from '../dist/core/file-broker/index.js'
import {
  BIN,
  fmt,
  fsyncCount,
  header,
  median,
  mq,
  peakRssKiB,
  percentile,
  pinned,
  rate,
  report,
  ROOT,
  shellMs,
  tempHome,
  timesMs,
  wallMs,
} from './lib.js'
import {RedisClient, redisInstalled, startRedis} from './redis.js'

const FLOOR = join(ROOT, 'bench', 'floor-storage.js')
// BENCH_ONLY=hot,bulk runs only those sections: fsyncs, hot, bulk, memory, manual-ack, wakeup.
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',')) : undefined
const wanted = (section) => !ONLY || ONLY.has(section)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** fsync/fdatasync calls of one run, split into data files and folders (strace -y names each fd). */
function countFsyncs(args, env) {
  const trace = join(env.MQ_HOME, 'strace.txt')
  const result = spawnSync(
    'strace',
    ['-f', '-y', '-e', 'trace=fsync,fdatasync', '-o', trace, process.execPath, BIN, ...args],
    {env, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe']},
  )
  if (result.status !== 0) throw new Error(`strace mq ${args.join(' ')} failed: ${result.stderr.slice(-500)}`)
  return fsyncsIn(trace)
}

/** The fsyncs an `strace -y` output file records: of data files (the WAL, the database) and of others. */
function fsyncsIn(trace) {
  const calls = readFileSync(trace, 'utf8')
    .split('\n')
    .filter((line) => /\b(fsync|fdatasync)\(\d+<[^>]*>\)\s*=\s*0/.test(line))
  const paths = calls.map((line) => /<([^>]*)>/.exec(line)[1])
  const wal = paths.filter((path) => path.endsWith('broker.db-wal')).length
  const data = wal + paths.filter((path) => path.endsWith('broker.db')).length
  return {data, wal, other: paths.length - data, paths}
}

export async function benchStorage({quick = false} = {}) {
  if (wanted('fsyncs')) benchFsyncs({quick})
  if (wanted('hot')) benchHot({quick})
  if (wanted('bulk')) await benchBulk({quick})
  if (wanted('memory')) await benchStreamMemory({quick})
  if (wanted('manual-ack')) await benchManualAck({quick})
  if (wanted('wakeup')) await benchWakeup({quick})
}

/** fsyncs of a one-shot publish, split into data files and folders. */
function benchFsyncs({quick}) {
  header('storage: fsyncs of a one-shot mq publish (strace -f), steady state')
  if (spawnSync('strace', ['-V']).status !== 0) {
    console.log('  skipped: strace is not installed (apt-get install strace)')
  } else {
    const home = tempHome()
    const env = {...process.env, MQ_HOME: home}
    mq(home, ['publish', 'q', 'warm-up']) // the broker exists; its WAL too
    const runs = quick ? 3 : 9
    const fast = []
    const closing = []
    // Not interleaved: each closing run deletes the WAL, which the next run would have to re-create.
    for (let i = 0; i < runs; i++) fast.push(countFsyncs(['publish', 'q', `m${i}`], env))
    // The oclif path closes the connection on exit (checkpoint, WAL deleted): the old behaviour.
    for (let i = 0; i < runs; i++) closing.push(countFsyncs(['publish', 'q', `c${i}`], {...env, MQ_NO_FAST: '1'}))
    const dataFast = median(fast.map((f) => f.data))
    report(
      'mq publish q m: data fsyncs (median)',
      `${dataFast} (+${median(fast.map((f) => f.other))} of the folder)`,
      '= 1',
      dataFast === 1,
    )
    report(
      'same, closing the connection at exit (MQ_NO_FAST=1)',
      `${median(closing.map((f) => f.data))} (+${median(closing.map((f) => f.other))} of the folder)`,
      '(the old behaviour)',
    )
  }
}

/** A hot one-shot command next to bare `node -e ''`. */
function benchHot({quick}) {
  header("storage: a hot one-shot command next to node -e '' (median, interleaved)")
  const home = tempHome()
  mq(home, ['publish', 'q', 'warm-up'])
  const env = {...process.env, MQ_HOME: home}
  // Not pinned: a start-up is mostly one thread, but Node's helper threads (compilation, GC) would
  // queue behind it on one CPU, which no user's machine does.
  const hot = {
    "node -e ''": () => wallMs(process.execPath, ['-e', '']),
    'mq publish q m': (i) => wallMs(process.execPath, [BIN, 'publish', 'q', `m${i}`], {env}),
    'mq consume q': () => wallMs(process.execPath, [BIN, 'consume', 'q'], {env}),
  }
  const times = Object.fromEntries(Object.keys(hot).map((name) => [name, []]))
  for (let i = 0; i < (quick ? 7 : 21); i++) for (const [name, run] of Object.entries(hot)) times[name].push(run(i))
  const base = median(times["node -e ''"])
  report("node -e ''", `${fmt(base)} ms`, '(baseline)')
  for (const name of Object.keys(hot).slice(1)) {
    const ratio = median(times[name]) / base
    report(name, `${fmt(median(times[name]))} ms = ${fmt(ratio)}×`, '≤ 1.5× node', ratio <= 1.5)
  }
}

/** Whole-process bulk publish (--lines < FILE) and auto-ack consume next to the bare-SQLite floor, interleaved. */
async function benchBulk({quick}) {
  const N = quick ? 50_000 : 200_000
  const rounds = quick ? 1 : 3
  header(
    `storage: bulk publish --lines and consume -n (auto-ack), ${fmt(N)} messages, next to the bare better-sqlite3 floor (best of ${rounds}, interleaved)`,
  )
  const file = join(tempHome(), 'lines.txt')
  writeFileSync(file, Array.from({length: N}, (_, i) => `message number ${i}`).join('\n') + '\n')
  const fresh = () => {
    const home = tempHome()
    mq(home, ['queue', 'create', 'q'])
    return home
  }
  const best = {}
  const keep = (name, times) => {
    best[name] ??= {wall: Infinity, cpu: Infinity}
    best[name].wall = Math.min(best[name].wall, times.wall)
    best[name].cpu = Math.min(best[name].cpu, times.cpu)
  }
  const withStdin = (path, run) => {
    const fd = openSync(path, 'r')
    try {
      return run(fd)
    } finally {
      closeSync(fd)
    }
  }
  const variants = {
    'publish floor': (home) =>
      withStdin(file, () => timesMs(...pinned(process.execPath, [FLOOR, 'publish', home, 'q', file]))),
    'mq publish --lines': (home) =>
      withStdin(file, (fd) =>
        timesMs(...pinned(process.execPath, [BIN, 'publish', 'q', '--lines']), {
          env: {...process.env, MQ_HOME: home},
          stdio: [fd, 'ignore', 'pipe'],
        }),
      ),
    'consume floor': (home) => timesMs(...pinned(process.execPath, [FLOOR, 'consume', home, 'q', String(N)])),
    'mq consume -n': (home) =>
      timesMs(...pinned(process.execPath, [BIN, 'consume', 'q', '-n', String(N)]), {
        env: {...process.env, MQ_HOME: home},
      }),
  }
  for (let round = 0; round < rounds; round++) {
    const floorHome = fresh()
    const mqHome = fresh()
    keep('publish floor', variants['publish floor'](floorHome))
    keep('mq publish --lines', variants['mq publish --lines'](mqHome))
    keep('consume floor', variants['consume floor'](floorHome))
    keep('mq consume -n', variants['mq consume -n'](mqHome))
  }
  for (const [floor, ours, shown] of [
    ['publish floor', 'mq publish --lines', 'mq publish q --lines < FILE > /dev/null'],
    ['consume floor', 'mq consume -n', `mq consume q -n ${N} > /dev/null`],
  ]) {
    const ratio = best[floor].wall / best[ours].wall
    report(`${floor}`, `${fmt(rate(N, best[floor].wall))} msgs/s`, '(floor)')
    report(
      shown,
      `${fmt(rate(N, best[ours].wall))} msgs/s = ${fmt(ratio)}× floor (CPU: ${fmt(best[floor].cpu / best[ours].cpu)}×)`,
      '≥ 0.8× floor',
      ratio >= 0.8,
    )
  }
  // fsyncs per 1,000 messages, one extra run of each under strace -c -f.
  const floorHome = fresh()
  const mqHome = fresh()
  const counts = {
    'publish floor': withStdin(file, () => fsyncCount(process.execPath, [FLOOR, 'publish', floorHome, 'q', file])),
    'mq publish --lines': withStdin(file, (fd) =>
      fsyncCount(process.execPath, [BIN, 'publish', 'q', '--lines'], {
        env: {...process.env, MQ_HOME: mqHome},
        stdio: [fd, 'ignore', 'pipe'],
      }),
    ),
    'consume floor': fsyncCount(process.execPath, [FLOOR, 'consume', floorHome, 'q', String(N)]),
    'mq consume -n': fsyncCount(process.execPath, [BIN, 'consume', 'q', '-n', String(N)], {
      env: {...process.env, MQ_HOME: mqHome},
    }),
  }
  if (counts['mq consume -n'] === undefined)
    console.log('  fsync counts skipped: strace is not installed (apt-get install strace)')
  else
    for (const [name, calls] of Object.entries(counts))
      report(`${name}: fsyncs per 1,000 messages (strace -c -f)`, `${fmt((calls / N) * 1000)} (${calls} in all)`, '')
}

/** Peak RSS of publish --lines from a regular file and from a pipe: constant memory, however long the input. */
async function benchStreamMemory({quick}) {
  const N = quick ? 500_000 : 2_000_000
  header(`storage: peak RSS of publish --lines, ${fmt(N)} lines`)
  const file = join(tempHome(), 'lines.txt')
  writeFileSync(file, Array.from({length: N}, (_, i) => `message number ${i}`).join('\n') + '\n')
  const fromFile = await peakRssKiB('sh', ['-c', `exec node ${BIN} publish q --lines < ${file} > /dev/null`], {
    MQ_HOME: tempHome(),
  })
  report('publish --lines < FILE', `${fmt(fromFile / 1024)} MB`, '≤ 120 MB', fromFile / 1024 <= 120)
  const fromPipe = await peakRssKiB('sh', ['-c', `cat ${file} | node ${BIN} publish q --lines > /dev/null`], {
    MQ_HOME: tempHome(),
  })
  report(
    'cat FILE | publish --lines (the largest process)',
    `${fmt(fromPipe / 1024)} MB`,
    '≤ 120 MB',
    fromPipe / 1024 <= 120,
  )
}

/** consume --ack manual --json | jq -r .receipt | mq ack, next to Redis XREADGROUP + XACK (appendfsync always). */
async function benchManualAck({quick}) {
  const N = quick ? 20_000 : 100_000
  const rounds = quick ? 1 : 3
  header(
    `storage: manual-ack pipeline, ${fmt(N)} messages, next to Redis XREADGROUP + XACK (appendfsync always), best of ${rounds}, interleaved`,
  )
  const file = join(tempHome(), 'lines.txt')
  writeFileSync(file, Array.from({length: N}, (_, i) => `job ${i}`).join('\n') + '\n')
  /** One run of the pipeline on a fresh broker: its wall time and the messages left behind. */
  const ours = () => {
    const home = tempHome()
    shellMs(`node ${BIN} publish jobs --lines < ${file} > /dev/null`, {MQ_HOME: home})
    const ms = shellMs(`node ${BIN} consume jobs -n ${N} --ack manual --json | jq -r .receipt | node ${BIN} ack`, {
      MQ_HOME: home,
    })
    return {ms, left: JSON.parse(mq(home, ['queue', 'stats', 'jobs', '--json']).stdout).depth}
  }
  const redis = redisInstalled() ? await startRedis() : undefined
  try {
    const client = redis && (await RedisClient.connect(redis.port))
    const best = {ours: Infinity, theirs: Infinity}
    let left = 0
    let acked = 0
    for (let round = 0; round < rounds; round++) {
      const run = ours()
      best.ours = Math.min(best.ours, run.ms)
      left += run.left
      if (!client) continue
      const stream = `jobs${round}`
      for (let start = 0; start < N; start += 1000) {
        await Promise.all(
          Array.from({length: Math.min(1000, N - start)}, (_, i) =>
            client.call('XADD', stream, '*', 'body', `job ${start + i}`),
          ),
        )
      }
      await client.call('XGROUP', 'CREATE', stream, 'workers', '0')
      // One client reads 1,000 at a time and acks each batch pipelined with the next read, as the
      // consume and ack processes of the pipeline overlap.
      const started = performance.now()
      let pendingAck
      for (;;) {
        const read = client.call('XREADGROUP', 'GROUP', 'workers', 'c1', 'COUNT', 1000, 'STREAMS', stream, '>')
        if (pendingAck) acked += await pendingAck
        const reply = await read
        const entries = reply?.[0]?.[1] ?? []
        if (entries.length === 0) break
        pendingAck = client.call('XACK', stream, 'workers', ...entries.map(([id]) => id))
      }
      best.theirs = Math.min(best.theirs, performance.now() - started)
    }
    client?.close()
    pipelineFsyncs(N)
    const rateOurs = rate(N, best.ours)
    if (!client) {
      report(
        'consume --ack manual --json | jq -r .receipt | mq ack',
        `${fmt(rateOurs)} msgs/s (${left} left)`,
        'Redis: skipped (redis-server is not installed)',
      )
      return
    }
    const rateTheirs = rate(N, best.theirs)
    report(
      'Redis XREADGROUP COUNT 1000 + XACK, appendfsync always',
      `${fmt(rateTheirs)} msgs/s (${fmt(acked)} acked)`,
      '(yardstick)',
    )
    report(
      'consume --ack manual --json | jq -r .receipt | mq ack',
      `${fmt(rateOurs)} msgs/s = ${fmt(rateOurs / rateTheirs)}× Redis (${left} left)`,
      '≥ 0.5× Redis',
      rateOurs / rateTheirs >= 0.5 && left === 0,
    )
  } finally {
    await redis?.stop()
  }
}

/**
 * fsyncs of each side of the manual-ack pipeline (strace around each mq process; a run of its own,
 * not timed): the consume side commits its leases without one (ARCHITECTURE.md, "Leases are not
 * synced"), so what it has left are checkpoints; each ack commit has one.
 */
function pipelineFsyncs(N) {
  if (spawnSync('strace', ['-V']).status !== 0) {
    report('fsyncs per 1,000 messages', 'skipped: strace is not installed (apt-get install strace)', '')
    return
  }
  const home = tempHome()
  const file = join(home, 'lines.txt')
  writeFileSync(file, Array.from({length: N}, (_, i) => `job ${i}`).join('\n') + '\n')
  shellMs(`node ${BIN} publish jobs --lines < ${file} > /dev/null`, {MQ_HOME: home})
  const traced = (side) => `strace -f -y -e trace=fsync,fdatasync -o ${join(home, `${side}.strace`)} node ${BIN}`
  shellMs(`${traced('consume')} consume jobs -n ${N} --ack manual --json | jq -r .receipt | ${traced('ack')} ack`, {
    MQ_HOME: home,
  })
  const perThousand = (count) => fmt((count * 1000) / N)
  const sides = ['consume', 'ack'].map((side) => {
    const {data, wal} = fsyncsIn(join(home, `${side}.strace`))
    return `${side} ${perThousand(data)} (WAL ${perThousand(wal)}, database ${perThousand(data - wal)})`
  })
  report('fsyncs per 1,000 messages (broker.db and its WAL)', sides.join(', '), '(not timed)')
}

/**
 * Latency from the start of a publish (in this process) to the line a waiting consumer process
 * prints for it: mq consume -f (no daemon) next to a BLPOP client process on Redis (appendfsync always).
 */
async function benchWakeup({quick}) {
  const rounds = quick ? 50 : 200
  header(
    `storage: publish → waiting consumer wake-up, ${rounds} messages, next to Redis BLPOP (appendfsync always), interleaved; the broker has carried traffic before`,
  )
  const ours = []
  const theirs = []
  const mq = await mqWakeup()
  const redis = redisInstalled() ? await redisWakeup(rounds) : undefined
  try {
    for (let i = 0; i < rounds; i++) {
      await sleep(5 + Math.random() * 10) // the consumers are idle again, waiting
      ours.push(await mq.wakeUp(`m${i}`))
      if (!redis) continue
      await sleep(5 + Math.random() * 10)
      theirs.push(await redis.wakeUp(`m${i}`))
    }
  } finally {
    await mq.close()
    await redis?.close()
  }
  if (!redis) {
    report(
      'mq consume -f wake-up p50 / p99',
      `${fmt(percentile(ours, 50))} ms / ${fmt(percentile(ours, 99))} ms`,
      'Redis: skipped (redis-server is not installed)',
    )
    return
  }
  report(
    'Redis BLPOP wake-up p50 / p99',
    `${fmt(percentile(theirs, 50))} ms / ${fmt(percentile(theirs, 99))} ms`,
    '(yardstick)',
  )
  const ratio = percentile(ours, 50) / percentile(theirs, 50)
  report(
    'mq consume -f wake-up p50 / p99 (no daemon)',
    `${fmt(percentile(ours, 50))} ms / ${fmt(percentile(ours, 99))} ms = ${fmt(ratio)}× Redis p50`,
    '≤ 1.2× Redis',
    ratio <= 1.2,
  )
}

/**
 * One side of the wake-up measurement: a broker of `Broker` (this build's FileBroker, or another
 * build's: bench/ab-wakeup.js) that has carried traffic, and a `consume -f` of `bin` waiting on its
 * empty queue. `wakeUp(body)` publishes one message and resolves with the ms until the consumer
 * printed it.
 */
export async function mqWakeup(Broker = FileBroker, bin = BIN) {
  const home = tempHome()
  const broker = new Broker(home)
  await broker.publish('wake', [{body: 'warm-up'}])
  // A broker that has carried traffic, as one in use: its WAL at its working size (about 1,000
  // pages, then reused from the start). A new broker's first commits grow the WAL file, and a
  // sync of a grown file also writes its new size (one more journal commit); Redis's AOF, appended
  // to, is measured as it always runs.
  for (let i = 0; i < 400; i++) await broker.publish('traffic', [{body: `t${i}`}])
  await broker.receive('traffic', {max: 1000, autoAck: true})
  const consumer = lineReader(
    spawn(process.execPath, [bin, 'consume', 'wake', '-f'], {
      env: {...process.env, MQ_HOME: home},
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  )
  await consumer.next() // the warm-up message
  return {
    wakeUp: (body) => timedLine(consumer, () => broker.publish('wake', [{body}])),
    close: async () => {
      consumer.child.kill('SIGINT')
      await broker.close()
    },
  }
}

/** The same with Redis (appendfsync always) and a BLPOP client in its own process, for `rounds` messages. */
export async function redisWakeup(rounds) {
  const redis = await startRedis()
  const client = await RedisClient.connect(redis.port)
  const consumer = lineReader(
    spawn(process.execPath, [join(ROOT, 'bench', 'redis.js'), 'blpop', String(redis.port), 'wake', String(rounds)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  )
  await consumer.next() // ready
  return {
    wakeUp: (body) => timedLine(consumer, () => client.call('RPUSH', 'wake', body)),
    close: async () => {
      client.close()
      consumer.child.kill()
      await redis.stop()
    },
  }
}

/** Ms from the start of `send` to the next line of `reader`. */
async function timedLine(reader, send) {
  const started = performance.now()
  const arrived = reader.next()
  await send()
  await arrived
  return performance.now() - started
}

/** Reads a child's stdout line by line: `next()` resolves with the next line. */
function lineReader(child) {
  const lines = []
  const waiters = []
  let buffered = ''
  child.stdout.setEncoding('utf8').on('data', (chunk) => {
    buffered += chunk
    const parts = buffered.split('\n')
    buffered = parts.pop()
    for (const line of parts) waiters.length > 0 ? waiters.shift()(line) : lines.push(line)
  })
  return {
    child,
    next: () => (lines.length > 0 ? Promise.resolve(lines.shift()) : new Promise((resolve) => waiters.push(resolve))),
  }
}
