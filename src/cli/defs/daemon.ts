import {spawn} from 'node:child_process'
import {closeSync, existsSync, openSync, readFileSync, readSync, statSync, watch} from 'node:fs'
import {dirname} from 'node:path'

import {type DaemonStatus, DaemonClient} from '../../core/daemon/client.js'
import {daemonPaths, isAlive, liveDaemon} from '../../core/daemon/files.js'
import {Daemon} from '../../core/daemon/server.js'
import {InterruptedError, NotRunningError, StoreError} from '../../core/errors.js'
import {sleep} from '../../core/rate-limiter.js'
import {formatDuration} from '../../core/units.js'
import type {Context} from '../context.js'
import {defineCommand} from '../definition.js'
import {RULES_FLAG, rulesPathFor} from '../engine-context.js'

/** How long `daemon start` waits for the daemon to answer before giving up. */
const START_TIMEOUT_MS = 15_000

function version(ctx: Context): string {
  return ctx.env.npm_package_version ?? packageVersion()
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {version: string}).version
  } catch {
    return 'unknown'
  }
}

async function status(ctx: Context): Promise<DaemonStatus | undefined> {
  if (!liveDaemon(ctx.home)) return undefined
  const client = await DaemonClient.connect(ctx.home)
  if (!client) return undefined
  try {
    return await client.status()
  } finally {
    client.close()
  }
}

function renderStatus(s: DaemonStatus): string {
  return [
    `daemon ${s.version} running (pid ${s.pid}, up ${formatDuration(s.uptimeMs)})`,
    `  broker   ${s.home}`,
    `  socket   ${s.socket}`,
    `  http     ${s.http ? `http://${s.http.address}:${s.http.port} (token in ${daemonPaths(s.home).token})` : 'off'}`,
    `  rules    ${s.rules.path} (${s.rules.rules} rules, ${s.rules.sources} sources)${s.rules.error ? `\n  rules    last edit refused: ${s.rules.error}` : ''}`,
    `  counts   ${s.counts.published} publish requests, ${s.counts.eventsAccepted} events accepted, ${s.counts.eventsProcessed} processed, ${s.counts.actionsOk} actions ok, ${s.counts.actionsFailed} failed, ${s.counts.inFlightEvents} in flight`,
  ].join('\n')
}

const HTTP_FLAGS = {
  'http-port': {kind: 'integer', summary: 'Port for HTTP ingest and metrics on 127.0.0.1 (0 picks a free one, shown by status).', default: 0, min: 0, max: 65535},
  'no-http': {kind: 'boolean', summary: 'No HTTP endpoint.'},
} as const

export const daemonStart = defineCommand({
  id: 'daemon:start',
  summary: 'Start the background daemon for this broker folder (returns once it is ready).',
  description: `Optional: every command works without it. While it runs, publishes from many clients share
transactions, \`trigger\` hands events over and returns at once, rules and sources run in the
background, and HTTP ingest and Prometheus metrics are served on 127.0.0.1 with a bearer token.
Starting it again while it runs is fine. --foreground runs it in this process (for systemd).`,
  examples: ['<%= config.bin %> daemon start', '<%= config.bin %> daemon start --http-port 8787', '<%= config.bin %> daemon start --foreground'],
  flags: {foreground: {kind: 'boolean', summary: 'Run in this process, logging to stderr, until SIGTERM.'}, ...HTTP_FLAGS, ...RULES_FLAG},
  async run({flags}, ctx): Promise<DaemonStatus | undefined> {
    ctx.local() // creates the folder and database, with private permissions, before anything else
    const running = await status(ctx)
    if (running) {
      if (!flags.foreground && !ctx.json && ctx.stdoutIsTTY) ctx.warn('already running')
      return running
    }
    if (flags.foreground) return runForeground(ctx, flags)
    return startInBackground(ctx, flags)
  },
  render: (s, ctx) => (ctx.stdoutIsTTY ? renderStatus(s) : `${s.pid}`),
})

async function runForeground(ctx: Context, flags: {'http-port': number; 'no-http': boolean; rules?: string}): Promise<undefined> {
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`)
  // A bug in one request's path must not take down the daemon every client relies on: it is
  // logged and the daemon keeps serving (each request's work runs in its own transaction or
  // savepoint, so a failure halfway leaves nothing half-written).
  process.on('unhandledRejection', (reason) => log(`internal error (still serving): ${(reason as Error)?.stack ?? String(reason)}`))
  process.on('uncaughtException', (error) => log(`internal error (still serving): ${error?.stack ?? String(error)}`))
  const daemon = new Daemon({
    home: ctx.home,
    broker: ctx.target.kind === 'file' ? undefined : ctx.broker(),
    rulesPath: rulesPathFor(ctx, flags.rules),
    httpPort: flags['no-http'] ? null : flags['http-port'],
    version: version(ctx),
    log,
  })
  await daemon.start()
  // SIGTERM or SIGINT: the first drains, the second forces.
  let signals = 0
  await new Promise<void>((resolve) => {
    const onSignal = () => {
      signals++
      if (signals === 1) log('received a stop signal: draining (send another to force)')
      daemon.stop(signals > 1).then(resolve, (error) => {
        log(`error while stopping: ${(error as Error).message}`)
        resolve()
      })
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
  })
  return undefined
}

async function startInBackground(ctx: Context, flags: {'http-port': number; 'no-http': boolean; rules?: string}): Promise<DaemonStatus> {
  const paths = daemonPaths(ctx.home)
  const logFd = openSync(paths.log, 'a', 0o600)
  const args = [process.argv[1], 'daemon', 'start', '--foreground', '--http-port', String(flags['http-port']), '--rules', rulesPathFor(ctx, flags.rules)]
  if (flags['no-http']) args.push('--no-http')
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env: ctx.childEnv(ctx.env),
  })
  closeSync(logFd)
  let exited: number | null | undefined
  child.on('exit', (code) => (exited = code))
  child.unref()
  const deadline = Date.now() + START_TIMEOUT_MS
  while (Date.now() < deadline) {
    const running = await status(ctx)
    if (running) return running
    if (exited !== undefined) break
    await sleep(50)
  }
  const tail = existsSync(paths.log) ? readFileSync(paths.log, 'utf8').trim().split('\n').slice(-3).join(' | ') : ''
  throw new StoreError(`the daemon did not start${exited !== undefined ? ` (exit ${exited})` : ''}${tail ? `: ${tail}` : ''}`, {hint: `see ${paths.log}`})
}

export const daemonStatus = defineCommand({
  id: 'daemon:status',
  summary: 'Show whether the daemon runs: pid, uptime, version, socket, HTTP address, counts (exit 3 if not running).',
  examples: ['<%= config.bin %> daemon status', '<%= config.bin %> daemon status --json | jq .http.port'],
  flags: {},
  async run(_input, ctx): Promise<DaemonStatus> {
    const running = await status(ctx)
    if (!running) throw new NotRunningError(`no daemon runs for ${ctx.home}`, {hint: 'start one with `mq daemon start` (optional: commands work without it)'})
    return running
  },
  render: renderStatus,
})

export const daemonStop = defineCommand({
  id: 'daemon:stop',
  summary: 'Stop the daemon: running actions finish first (--force stops them and hands their events back).',
  examples: ['<%= config.bin %> daemon stop', '<%= config.bin %> daemon stop --force'],
  flags: {
    force: {kind: 'boolean', summary: 'Do not wait for running actions (they are retried later); kill after 5s.'},
    timeout: {kind: 'duration', positive: true, summary: 'How long to wait for a clean stop (default 60s).', helpValue: 'DUR'},
  },
  async run({flags}, ctx): Promise<{stopped: boolean; pid?: number}> {
    const record = liveDaemon(ctx.home)
    if (!record) {
      if (ctx.stdoutIsTTY && !ctx.json) ctx.warn(`no daemon runs for ${ctx.home}`)
      return {stopped: false}
    }
    process.kill(record.pid, 'SIGTERM')
    if (flags.force) {
      await sleep(100)
      if (isAlive(record)) process.kill(record.pid, 'SIGTERM') // the second signal forces
    }
    const deadline = Date.now() + (flags.force ? 5_000 : (flags.timeout ?? 60_000))
    while (isAlive(record) && Date.now() < deadline) await sleep(50)
    if (isAlive(record)) {
      if (!flags.force) throw new StoreError(`the daemon (pid ${record.pid}) is still draining`, {hint: 'wait, or use `mq daemon stop --force`'})
      process.kill(record.pid, 'SIGKILL')
    }
    liveDaemon(ctx.home) // clears a pid file or socket a killed daemon left behind
    return {stopped: true, pid: record.pid}
  },
  render: (r, ctx) => (ctx.stdoutIsTTY && r.stopped ? `stopped the daemon (pid ${r.pid})` : undefined),
})

export const daemonLogs = defineCommand({
  id: 'daemon:logs',
  summary: 'Print the daemon log (-f follows it).',
  examples: ['<%= config.bin %> daemon logs -n 50', '<%= config.bin %> daemon logs -f'],
  flags: {
    follow: {kind: 'boolean', char: 'f', summary: 'Keep printing new lines until interrupted.'},
    lines: {kind: 'integer', char: 'n', summary: 'Lines from the end to print first.', default: 100, min: 0},
  },
  async run({flags}, ctx): Promise<undefined> {
    const path = daemonPaths(ctx.home).log
    if (!existsSync(path)) {
      if (!flags.follow) return undefined
    } else {
      const lines = readFileSync(path, 'utf8').split('\n')
      if (lines.at(-1) === '') lines.pop()
      for (const line of flags.lines === 0 ? [] : lines.slice(-flags.lines)) ctx.out.line(line)
    }
    await ctx.out.flush()
    if (!flags.follow) return undefined
    const {drain} = ctx.handleInterrupts()
    let offset = existsSync(path) ? statSync(path).size : 0
    const readNew = async () => {
      if (!existsSync(path)) return
      const size = statSync(path).size
      if (size < offset) offset = 0 // truncated
      if (size === offset) return
      const buffer = Buffer.alloc(size - offset)
      const fd = openSync(path, 'r')
      try {
        readSync(fd, buffer, 0, buffer.length, offset)
      } finally {
        closeSync(fd)
      }
      offset = size
      ctx.out.write(buffer.toString('utf8'))
      await ctx.out.flush()
    }
    // Watch the folder, not the file: the log may not exist yet, or be replaced.
    const watcher = watch(dirname(path), {persistent: false}, () => void readNew())
    ctx.release(() => watcher.close())
    while (!drain.aborted) {
      await readNew()
      await sleep(1_000, drain)
    }
    throw new InterruptedError()
  },
})
