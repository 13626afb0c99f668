// Compares the publish → waiting consumer wake-up of several builds of mqctl in one run:
//
//   node bench/ab-wakeup.js ROOT_A ROOT_B [...] [--rounds N]
//
// Each ROOT is a built mqctl (a checkout after `npm run build`, e.g. a `git worktree` of another
// commit whose node_modules is a link to this one's). Every build gets its own broker folder, a
// publisher in this process (its FileBroker) and its own `consume -f`. Every round publishes once
// with each build, in a new random order, then once to Redis BLPOP when redis-server is
// installed. The order matters: a build that publishes right after another one runs up to 0.1×
// faster for that alone (their SQLite, V8 and kernel paths are warm), so a fixed order favours the
// later build (ARCHITECTURE.md, "Hand-off to waiting consumers"). Besides each build's p50, it
// prints each later build's paired difference from the first: the median over rounds of (its time
// − the first build's time in the same round). Pairing takes out the host's slow and fast spells,
// which move both builds of a round alike, so it tells differences of 10–20 µs apart where the
// p50s of separate runs cannot.
import {join, resolve} from 'node:path'

import {fmt, percentile} from './lib.js'
import {redisInstalled} from './redis.js'
import {mqWakeup, redisWakeup} from './storage.js'

const args = process.argv.slice(2)
const roundsAt = args.indexOf('--rounds')
const rounds = roundsAt === -1 ? 300 : Number(args.splice(roundsAt, 2)[1])
if (args.length === 0 || !(rounds > 0)) {
  console.error('usage: node bench/ab-wakeup.js ROOT_A ROOT_B [...] [--rounds N]')
  process.exit(2)
}
const sleep = (ms) => new Promise((done) => setTimeout(done, ms))

const builds = []
for (const root of args.map((arg) => resolve(arg))) {
  const {FileBroker} = await import(join(root, 'dist', 'core', 'file-broker', 'index.js'))
  builds.push({name: root, side: await mqWakeup(FileBroker, join(root, 'bin', 'run.js')), times: []})
}
const redis = redisInstalled() ? await redisWakeup(rounds) : undefined
const redisTimes = []
try {
  for (let round = 0; round < rounds; round++) {
    const order = [...builds]
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1))
      ;[order[i], order[j]] = [order[j], order[i]]
    }
    for (const build of order) {
      await sleep(5 + Math.random() * 10) // the consumers are idle again, waiting
      build.times.push(await build.side.wakeUp(`m${round}`))
    }
    if (!redis) continue
    await sleep(5 + Math.random() * 10)
    redisTimes.push(await redis.wakeUp(`m${round}`))
  }
} finally {
  for (const build of builds) await build.side.close()
  await redis?.close()
}
const yardstick = redis ? percentile(redisTimes, 50) : undefined
if (yardstick === undefined) console.log('Redis: skipped (redis-server is not installed)')
else console.log(`Redis BLPOP: p50 ${fmt(yardstick)} ms`)
const first = builds[0]
for (const {name, times} of builds) {
  const p50 = percentile(times, 50)
  const ratio = yardstick === undefined ? '' : ` = ${fmt(p50 / yardstick)}× Redis`
  let paired = ''
  if (times !== first.times) {
    const differences = times.map((time, round) => (time - first.times[round]) * 1000)
    const faster = differences.filter((difference) => difference < 0).length
    paired = `; paired with the first: median ${signed(percentile(differences, 50))} µs (quartiles ${signed(percentile(differences, 25))} / ${signed(percentile(differences, 75))}), faster in ${Math.round((100 * faster) / rounds)}% of rounds`
  }
  console.log(`${name}: p50 ${fmt(p50)} ms, p90 ${fmt(percentile(times, 90))} ms${ratio}${paired}`)
}

function signed(micros) {
  return `${micros > 0 ? '+' : ''}${Math.round(micros)}`
}
