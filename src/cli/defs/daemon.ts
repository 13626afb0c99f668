import {spawn} from 'node:child_process'
import {closeSync, constants, fstatSync, readFileSync, readSync, watch} from 'node:fs'
import {dirname} from 'node:path'

import {monotonicNow} from '../../core/clock.js'
import {type DaemonStatus, DaemonClient, DaemonUnavailableError} from '../../core/daemon/client.js'
import {daemonPaths, isAlive, liveDaemon, refuseDaemonFileLinks} from '../../core/daemon/files.js'
import {Daemon} from '../../core/daemon/server.js'
import {InterruptedError, NotRunningError, StoreError} from '../../core/errors.js'
import {openNoFollow, readNoFollow} from '../../core/no-follow.js'
import {sleep} from '../../core/rate-limiter.js'
import {formatDuration} from '../../core/units.js'
import type {Context} from '../context.js'
import {defineCommand} from '../definition.js'
import {RULES_FLAG, rulesPathFor} from '../engine-context.js'

/** How long `daemon start` waits for the daemon to answer before giving up. */
const START_TIMEOUT_MS = 30_000
/** How long `daemon status` waits for a running daemon that is slow to answer. */
const STATUS_WAIT_MS = 10_000

function version(ctx: Context): string {
  return ctx.env.npm_package_version ?? packageVersion()
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {version: string})
      .version
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
    `  broker   ${s.broker}${s.broker === `file:${s.home}` ? '' : ` (folder ${s.home})`}`,
    `  socket   ${s.socket}`,
    `  http     ${s.http ? `http://${s.http.address}:${s.http.port} (token in ${daemonPaths(s.home).token})` : 'off'}`,
    `  rules    ${s.rules.path} (${s.rules.rules} rules, ${s.rules.sources} sources)${s.rules.error ? `\n  rules    last edit refused: ${s.rules.error}` : ''}`,
    `  counts   ${s.counts.published} publish requests, ${s.counts.eventsAccepted} events accepted, ${s.counts.eventsProcessed} processed, ${s.counts.actionsOk} actions ok, ${s.counts.actionsFailed} failed, ${s.counts.inFlightEvents} in flight${s.counts.held ? `, ${s.counts.held} deliveries held for clients` : ''}`,
  ].join('\n')
}

const HTTP_FLAGS = {
  'http-port': {
    kind: 'integer',
    summary: 'Port for HTTP ingest and metrics on 127.0.0.1 (0 picks a free one, shown by status).',
    default: 0,
    min: 0,
    max: 65535,
  },
  'no-http': {kind: 'boolean', summary: 'No HTTP endpoint.'},
} as const

export const daemonStart = defineCommand({
  id: 'daemon:start',
  summary: 'Start the background daemon for this broker folder (returns once it is ready).',
  description: `Optional: every command works without it. While it runs, publishes from many clients share
transactions, \`trigger\` hands events over and returns at once, rules and sources run in the
background, and HTTP ingest and Prometheus metrics are served on 127.0.0.1 with a bearer token.
Starting it again while it runs is fine. --foreground runs it in this process (for systemd).`,
  examples: [
    '<%= config.bin %> daemon start',
    '<%= config.bin %> daemon start --http-port 8787',
    '<%= config.bin %> daemon start --foreground',
  ],
  flags: {
    foreground: {kind: 'boolean', summary: 'Run in this process, logging to stderr, until SIGTERM.'},
    ...HTTP_FLAGS,
    ...RULES_FLAG,
  },
  async run({flags}, ctx): Promise<DaemonStatus | undefined> {
    ctx.local() // creates the folder and database, with private permissions, before anything else
    const record = liveDaemon(ctx.home)
    if (record) {
      // One runs (or is starting): it may be slow to answer while another process holds the write lock.
      const running = await awaitAnswer(ctx, monotonicNow() + START_TIMEOUT_MS, () => !isAlive(record))
      if (running) {
        if (!flags.foreground && !ctx.json && ctx.stdoutIsTTY) ctx.warn('already running')
        return running
      }
      if (isAlive(record)) throw notAnswering(ctx, record.pid)
    }
    if (flags.foreground) return runForeground(ctx, flags)
    return startInBackground(ctx, flags)
  },
  render: (s, ctx) => (ctx.stdoutIsTTY ? renderStatus(s) : `${s.pid}`),
})

async function runForeground(
  ctx: Context,
  flags: {'http-port': number; 'no-http': boolean; rules?: string},
): Promise<undefined> {
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`)
  // A bug in one request's path must not take down the daemon every client relies on: it is
  // logged and the daemon keeps serving (each request's work runs in its own transaction or
  // savepoint, so a failure halfway leaves nothing half-written).
  process.on('unhandledRejection', (reason) =>
    log(`internal error (still serving): ${(reason as Error)?.stack ?? String(reason)}`),
  )
  process.on('uncaughtException', (error) => log(`internal error (still serving): ${error?.stack ?? String(error)}`))
  const daemon = new Daemon({
    home: ctx.home,
    broker: ctx.target.kind === 'file' ? undefined : ctx.broker(),
    brokerName: ctx.brokerName,
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

async function startInBackground(
  ctx: Context,
  flags: {'http-port': number; 'no-http': boolean; rules?: string},
): Promise<DaemonStatus> {
  const paths = daemonPaths(ctx.home)
  refuseDaemonFileLinks(ctx.home) // said here, not only in the log of a daemon that did not start
  const logFd = openNoFollow(paths.log, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT)
  const args = [
    process.argv[1],
    'daemon',
    'start',
    '--foreground',
    '--http-port',
    String(flags['http-port']),
    '--rules',
    rulesPathFor(ctx, flags.rules),
  ]
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
  const running = await awaitAnswer(ctx, monotonicNow() + START_TIMEOUT_MS, () => exited !== undefined)
  if (running) return running
  if (exited === undefined && child.pid !== undefined) throw notAnswering(ctx, child.pid)
  const tail = (readNoFollow(paths.log) ?? '').trim().split('\n').slice(-3).join(' | ')
  throw new StoreError(
    `the daemon did not start${exited !== undefined ? ` (exit ${exited})` : ''}${tail ? `: ${tail}` : ''}`,
    {hint: `see ${paths.log}`},
  )
}

/**
 * Asks the daemon for its status until it answers, `gone()` says it exited, or the deadline
 * passes. A daemon that does not answer a request in time is busy (blocked on the broker's
 * write lock, say), not absent: it is asked again, so start reports what really happened.
 */
async function awaitAnswer(ctx: Context, deadline: number, gone: () => boolean): Promise<DaemonStatus | undefined> {
  for (;;) {
    try {
      const running = await status(ctx)
      if (running) return running
    } catch (error) {
      if (!(error instanceof DaemonUnavailableError)) throw error
    }
    if (gone() || monotonicNow() >= deadline) return undefined
    await sleep(50)
  }
}

function notAnswering(ctx: Context, pid: number, waitedMs = START_TIMEOUT_MS): StoreError {
  return new StoreError(`the daemon (pid ${pid}) runs but did not answer within ${formatDuration(waitedMs)}`, {
    hint: `it may be waiting for the broker's write lock held by another process; \`mq daemon status\` tells when it answers, see ${daemonPaths(ctx.home).log}`,
  })
}

export const daemonStatus = defineCommand({
  id: 'daemon:status',
  summary: 'Show whether the daemon runs: pid, uptime, socket, HTTP (exit 3 if not).',
  examples: ['<%= config.bin %> daemon status', '<%= config.bin %> daemon status --json | jq .http.port'],
  flags: {},
  async run(_input, ctx): Promise<DaemonStatus> {
    const record = liveDaemon(ctx.home)
    // A daemon blocked for a moment (on another process's write lock, say) still runs: wait for its answer.
    const running = record && (await awaitAnswer(ctx, monotonicNow() + STATUS_WAIT_MS, () => !isAlive(record)))
    if (running) return running
    if (record && isAlive(record)) throw notAnswering(ctx, record.pid, STATUS_WAIT_MS)
    throw new NotRunningError(`no daemon runs for ${ctx.home}`, {
      hint: 'start one with `mq daemon start` (optional: commands work without it)',
    })
  },
  render: renderStatus,
})

export const daemonStop = defineCommand({
  id: 'daemon:stop',
  summary: 'Stop the daemon: running actions finish first (--force stops them).',
  examples: ['<%= config.bin %> daemon stop', '<%= config.bin %> daemon stop --force'],
  flags: {
    force: {kind: 'boolean', summary: 'Do not wait for running actions (they are retried later); kill after 5s.'},
    timeout: {
      kind: 'duration',
      positive: true,
      summary: 'How long to wait for a clean stop (default 60s).',
      helpValue: 'DUR',
    },
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
    const deadline = monotonicNow() + (flags.force ? 5_000 : (flags.timeout ?? 60_000))
    while (isAlive(record) && monotonicNow() < deadline) await sleep(50)
    if (isAlive(record)) {
      if (!flags.force)
        throw new StoreError(`the daemon (pid ${record.pid}) is still draining`, {
          hint: 'wait, or use `mq daemon stop --force`',
        })
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
    const text = readNoFollow(path)
    if (text === undefined) {
      if (!flags.follow) return undefined
    } else {
      const lines = text.split('\n')
      if (lines.at(-1) === '') lines.pop()
      for (const line of flags.lines === 0 ? [] : lines.slice(-flags.lines)) ctx.out.line(line)
    }
    await ctx.out.flush()
    if (!flags.follow) return undefined
    const {drain} = ctx.handleInterrupts()
    let offset = text === undefined ? 0 : Buffer.byteLength(text)
    const readNew = async () => {
      let fd: number
      try {
        fd = openNoFollow(path, constants.O_RDONLY)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
        throw error
      }
      let buffer: Buffer
      try {
        const size = fstatSync(fd).size
        if (size < offset) offset = 0 // truncated
        buffer = Buffer.alloc(size - offset)
        readSync(fd, buffer, 0, buffer.length, offset)
        offset = size
      } finally {
        closeSync(fd)
      }
      if (buffer.length === 0) return
      ctx.out.write(buffer.toString('utf8'))
      await ctx.out.flush()
    }
    // Watch the folder, not the file: the log may not exist yet, or be replaced.
    const watcher = watch(dirname(path), {persistent: false}, () => void readNew().catch(() => {})) // the loop below reports errors
    ctx.release(() => watcher.close())
    while (!drain.aborted) {
      await readNew()
      await sleep(1_000, drain)
    }
    throw new InterruptedError()
  },
})
