// The file broker's hot path before and after a change: `mq publish q x` against `node -e ''`,
// runs interleaved, median of 21 each. BEFORE=DIR points at a copy of an earlier build (its bin/
// and dist/, e.g. made with `cp -r bin dist package.json /tmp/before`). bench/nats.js runs it too.
//   node bench/hot-path.js            (this build only)
//   BEFORE=/tmp/before node bench/hot-path.js
import {join} from 'node:path'

import {BIN, fmt, header, median, report, tempHome, wallMs} from './lib.js'

export function benchHotPath({runs = 21, before = process.env.BEFORE} = {}) {
  const variants = [
    ["node -e ''", process.execPath, ['-e', '']],
    ['publish (this build)', process.execPath, [BIN, 'publish', 'q', 'x']],
  ]
  if (before)
    variants.push(['publish (before)', process.execPath, [join(before, 'bin', 'run.js'), 'publish', 'q', 'x']])

  const home = tempHome()
  const env = {...process.env, MQ_HOME: home}
  delete env.MQ_URL
  const times = new Map(variants.map(([name]) => [name, []]))
  for (const [, command, args] of variants) wallMs(command, args, {env}) // warm the page cache
  for (let i = 0; i < runs; i++) {
    for (const [name, command, args] of variants) times.get(name).push(wallMs(command, args, {env}))
  }
  header(`file broker hot path, median of ${runs} interleaved runs`)
  const base = median(times.get("node -e ''"))
  for (const [name] of variants) {
    const ms = median(times.get(name))
    report(name, `${fmt(ms)} ms`, `${fmt(ms / base)}× node -e ''`)
  }
  if (before) {
    const ratio = median(times.get('publish (this build)')) / median(times.get('publish (before)'))
    report('publish: this build / before', `${fmt(ratio)}×`, 'target ≤ 1.02×', ratio <= 1.02)
  } else {
    report('publish: this build / before', 'not measured', 'set BEFORE=DIR (an earlier build) to compare')
  }
}

if (import.meta.url === `file://${process.argv[1]}`) benchHotPath({runs: Number(process.env.RUNS ?? 21)})
