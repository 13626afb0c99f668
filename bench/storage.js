// Issue 12, storage: how many fsyncs a one-shot `mq publish` costs (counted with strace), and what
// a hot one-shot command costs next to bare `node -e ''`.
import {spawnSync} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import {BIN, fmt, header, median, mq, report, tempHome, wallMs} from './lib.js'

/** fsync/fdatasync calls of one run, split into data files and folders (strace -y names each fd). */
function countFsyncs(args, env) {
  const trace = join(env.MQ_HOME, 'strace.txt')
  const result = spawnSync('strace', ['-f', '-y', '-e', 'trace=fsync,fdatasync', '-o', trace, process.execPath, BIN, ...args], {env, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe']})
  if (result.status !== 0) throw new Error(`strace mq ${args.join(' ')} failed: ${result.stderr.slice(-500)}`)
  const calls = readFileSync(trace, 'utf8').split('\n').filter((line) => /\b(fsync|fdatasync)\(\d+<[^>]*>\)\s*=\s*0/.test(line))
  const paths = calls.map((line) => /<([^>]*)>/.exec(line)[1])
  const data = paths.filter((path) => /broker\.db(-wal)?$/.test(path)).length
  return {data, other: paths.length - data, paths}
}

export async function benchStorage({quick = false} = {}) {
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
    report('mq publish q m: data fsyncs (median)', `${dataFast} (+${median(fast.map((f) => f.other))} of the folder)`, '= 1', dataFast === 1)
    report('same, closing the connection at exit (MQ_NO_FAST=1)', `${median(closing.map((f) => f.data))} (+${median(closing.map((f) => f.other))} of the folder)`, '(the old behaviour)')
  }

  header("storage: a hot one-shot command next to node -e '' (median, interleaved)")
  const home = tempHome()
  mq(home, ['publish', 'q', 'warm-up'])
  const env = {...process.env, MQ_HOME: home}
  const node = []
  const publish = []
  for (let i = 0; i < (quick ? 7 : 21); i++) {
    node.push(wallMs(process.execPath, ['-e', '']))
    publish.push(wallMs(process.execPath, [BIN, 'publish', 'q', `m${i}`], {env}))
  }
  const ratio = median(publish) / median(node)
  report("node -e ''", `${fmt(median(node))} ms`, '(baseline)')
  report('mq publish q m', `${fmt(median(publish))} ms = ${fmt(ratio)}×`, '≤ 1.5× node', ratio <= 1.5)
}
