// Shared helpers for the benchmarks: they print figures and ratios measured in one run and never
// fail on wall-clock time (machines here are shared and noisy).
import {execFileSync, spawn, spawnSync} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
export const BIN = join(ROOT, 'bin', 'run.js')

const homes = []
export function tempHome() {
  const home = mkdtempSync(join(tmpdir(), 'mq-bench-'))
  homes.push(home)
  return home
}
process.on('exit', () => {
  for (const home of homes) rmSync(home, {recursive: true, force: true})
})

export const median = (values) => percentile(values, 50)
export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]
}

/** Wall time of one synchronous run of a command, in ms. */
export function wallMs(command, args, options = {}) {
  const started = process.hrtime.bigint()
  const result = spawnSync(command, args, {stdio: ['ignore', 'ignore', 'pipe'], ...options})
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr}`)
  return ms
}

/**
 * Wall and CPU time (user + system, all threads) of one run of a command, in ms. On a shared,
 * loaded machine the CPU time is the steadier figure; it needs GNU time (else it is NaN).
 */
export function timesMs(command, args, options = {}) {
  if (!existsSync('/usr/bin/time')) return {wall: wallMs(command, args, options), cpu: NaN}
  const started = process.hrtime.bigint()
  const result = spawnSync('/usr/bin/time', ['-f', '%U %S', command, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    ...options,
  })
  const wall = Number(process.hrtime.bigint() - started) / 1e6
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr}`)
  const [user, system] = result.stderr.trim().split('\n').pop().split(' ').map(Number)
  return {wall, cpu: (user + system) * 1000}
}

/** Runs a shell pipeline and returns its wall time in ms. */
export function shellMs(script, env) {
  const started = process.hrtime.bigint()
  execFileSync('sh', ['-c', script], {env: {...process.env, ...env}, stdio: ['ignore', 'ignore', 'inherit']})
  return Number(process.hrtime.bigint() - started) / 1e6
}

/** `mq` with MQ_HOME set. */
export function mq(home, args, options = {}) {
  return spawnSync(process.execPath, [BIN, ...args], {
    env: {...process.env, MQ_HOME: home},
    encoding: 'utf8',
    maxBuffer: 1 << 30,
    ...options,
  })
}

/** Peak RSS (KiB) of a command: GNU time when installed, else VmHWM polled from /proc. */
export async function peakRssKiB(command, args, env) {
  if (existsSync('/usr/bin/time')) {
    const result = spawnSync('/usr/bin/time', ['-f', '%M', command, ...args], {
      env: {...process.env, ...env},
      encoding: 'utf8',
      stdio: ['ignore', 'ignore', 'pipe'],
      maxBuffer: 1 << 26,
    })
    return Number(result.stderr.trim().split('\n').pop())
  }
  const child = spawn(command, args, {env: {...process.env, ...env}, stdio: 'ignore'})
  let peak = 0
  const poll = setInterval(() => {
    try {
      const match = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))
      if (match) peak = Math.max(peak, Number(match[1]))
    } catch {
      // the process just ended: its peak so far is the answer
    }
  }, 5)
  await new Promise((resolve) => child.on('exit', resolve))
  clearInterval(poll)
  return peak
}

export function rate(count, ms) {
  return Math.round(count / (ms / 1000))
}

export function fmt(n) {
  return Number.isFinite(n) ? n.toLocaleString('en-US', {maximumFractionDigits: 2}) : String(n)
}

/** One line of the report: the figure, the target, and whether it was met (informational). */
export function report(name, figure, target, met) {
  const mark = met === undefined ? ' ' : met ? '✓' : '✗'
  console.log(`${mark} ${name.padEnd(58)} ${String(figure).padEnd(28)} ${target}`)
}

export function header(title) {
  console.log(`\n== ${title}`)
}

/**
 * The command pinned to one CPU with taskset (BENCH_CPU, default 1) when taskset exists, so the
 * variants compared in one run compete for the same core; `[command, args]`.
 */
export function pinned(command, args) {
  const cpu = process.env.BENCH_CPU ?? '1'
  if (cpu === 'none' || spawnSync('taskset', ['-V']).status !== 0) return [command, args]
  return ['taskset', ['-c', cpu, command, ...args]]
}

/**
 * fsync + fdatasync calls of one run of a command and its children, from `strace -c -f`, or
 * undefined when strace is not installed. `options` go to spawnSync (stdin, env).
 */
export function fsyncCount(command, args, options = {}) {
  if (spawnSync('strace', ['-V']).status !== 0) return undefined
  const out = join(tempHome(), 'strace-c.txt')
  const result = spawnSync('strace', ['-c', '-f', '-e', 'trace=fsync,fdatasync', '-o', out, command, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    ...options,
  })
  if (result.status !== 0)
    throw new Error(`strace ${command} ${args.join(' ')} failed (${result.status}): ${result.stderr.slice(-500)}`)
  let calls = 0
  for (const line of readFileSync(out, 'utf8').split('\n')) {
    const fields = line.trim().split(/\s+/)
    if (fields.at(-1) === 'fsync' || fields.at(-1) === 'fdatasync') calls += Number(fields[3])
  }
  return calls
}
