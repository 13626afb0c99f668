import {type ChildProcess, spawn, spawnSync} from 'node:child_process'
import {accessSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {request} from 'node:http'
import {connect} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {freePort} from './nats-server.js'

/**
 * One real RabbitMQ node (Debian's rabbitmq-server) for the whole mocha run, started lazily by the
 * first suite that calls `rabbitmq()`, shared by every test file, and stopped by pid in the root
 * after-all hook (test/hooks.ts) or when the test process exits. Everything is private to the run:
 * node name, loopback ports (AMQP, management, Erlang distribution, epmd), data and log folders in
 * a temp dir, its own Erlang cookie. Without the server the suites skip with a reason locally and
 * fail under CI (`CI` set): .ci/run installs rabbitmq-server and python3-pika.
 *
 * Tests isolate themselves by naming: queues, topics and vhost-free names with a unique prefix.
 */

const CANDIDATES = ['/usr/lib/rabbitmq/bin/rabbitmq-server', '/usr/lib/rabbitmq/sbin/rabbitmq-server']
const MISSING = 'rabbitmq-server is not installed (apt-get install rabbitmq-server python3-pika)'
/** A boot takes 20-40 s on a loaded 2-core runner; more when other suites compete for the CPU. */
export const RABBITMQ_BOOT_TIMEOUT_MS = 180_000

export function rabbitmqServerBinary(): string | undefined {
  // Debian's /usr/sbin/rabbitmq-server is a wrapper that switches to the `rabbitmq` user and
  // writes to /var/log; the script it wraps runs as whoever calls it, with the environment below.
  for (const candidate of [process.env.MQ_TEST_RABBITMQ_SERVER, ...CANDIDATES]) {
    if (!candidate) continue
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not there: try the next one
    }
  }
  return undefined
}

export interface RabbitMq {
  /** amqp://guest:guest@127.0.0.1:PORT (guest may log in from loopback only, which is where we are) */
  url: string
  amqpPort: number
  /** The mqctl broker URL: `url` with `?management=` (listing, policies and unacked counts need it). */
  brokerUrl: string
  /** http://127.0.0.1:PORT of the management plugin (same guest credentials) */
  managementUrl: string
  managementPort: number
  nodeName: string
  pid: number
  dir: string
  /** How long the boot took, for the log line. */
  bootMs: number
  /** The node's log so far (for failure messages). */
  log(): string
}

let node: Promise<RabbitMq> | undefined
let stopNode: (() => Promise<void>) | undefined

/**
 * In a `before` hook (with `this.timeout(RABBITMQ_BOOT_TIMEOUT_MS + 10_000)`): the shared node,
 * booted on first use, or this suite skipped (locally) / failed (CI) when the server is missing.
 */
export async function requireRabbitMq(context: Mocha.Context): Promise<RabbitMq> {
  context.timeout(RABBITMQ_BOOT_TIMEOUT_MS + 15_000)
  const binary = rabbitmqServerBinary()
  if (!binary) {
    if (process.env.CI) throw new Error(`${MISSING}: CI must run the RabbitMQ tests`)
    console.log(`      (skipped: ${MISSING})`)
    context.skip()
  }
  return rabbitmq(binary)
}

/** Debian's python3 with pika (the RabbitMQ tutorial's client), or the suite skipped / failed under CI. */
export function requirePika(context: Mocha.Context): string {
  const python = '/usr/bin/python3'
  const found = spawnSync(python, ['-c', 'import pika'], {stdio: 'ignore'})
  if (found.status === 0) return python
  const missing = 'python3-pika is not installed for /usr/bin/python3 (apt-get install python3-pika)'
  if (process.env.CI) throw new Error(`${missing}: CI must run the RabbitMQ interop tests`)
  console.log(`      (skipped: ${missing})`)
  context.skip()
}

/** The shared node (booted on the first call). */
export function rabbitmq(binary = rabbitmqServerBinary()): Promise<RabbitMq> {
  if (!binary) return Promise.reject(new Error(MISSING))
  node ??= startRabbitMq(binary)
  return node
}

/** Stops the shared node if one was started (root after-all hook). */
export async function stopRabbitMq(): Promise<void> {
  const stop = stopNode
  stopNode = undefined
  node = undefined
  await stop?.()
}

async function startRabbitMq(binary: string): Promise<RabbitMq> {
  const started = Date.now()
  const dir = mkdtempSync(join(tmpdir(), 'mq-rabbitmq-'))
  const [amqpPort, managementPort, distPort, epmdPort] = await distinctFreePorts(4)
  const nodeName = `mqtest${process.pid}@localhost`
  for (const sub of ['mnesia', 'log', 'home']) mkdirSync(join(dir, sub))
  writeFileSync(join(dir, 'enabled_plugins'), '[rabbitmq_management].\n')
  writeFileSync(
    join(dir, 'rabbitmq.conf'),
    [
      `listeners.tcp.default = 127.0.0.1:${amqpPort}`,
      `management.tcp.ip = 127.0.0.1`,
      `management.tcp.port = ${managementPort}`,
      // Tests fill queues quickly on a small disk; the default 50 MB free-disk alarm would block them.
      'disk_free_limit.absolute = 1MB',
      // Queue figures of the management API (stats, in flight) are sampled: sample often in tests.
      'collect_statistics_interval = 100',
      'log.console = false',
      'log.file.level = info',
      '',
    ].join('\n'),
  )
  writeFileSync(join(dir, 'rabbitmq-env.conf'), '')
  // Resolve host names from the hosts table only: where no DNS server answers, Erlang's resolver
  // would otherwise wait for time-outs while the node boots.
  writeFileSync(join(dir, 'inetrc'), '{lookup, [file, native]}.\n{host, {127,0,0,1}, ["localhost"]}.\n')
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    LANG: 'C.UTF-8',
    // The Erlang cookie is created in $HOME: a private one, so no other node can talk to this one.
    HOME: join(dir, 'home'),
    RABBITMQ_NODENAME: nodeName,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(amqpPort),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_PID_FILE: join(dir, 'rabbitmq.pid'),
    // Run the Erlang VM in place of the script (no shell in between), so the pid we hold is the
    // node's; -noinput because nothing types into its shell.
    RABBITMQ_ALLOW_INPUT: 'true',
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-noinput',
    ERL_EPMD_ADDRESS: '127.0.0.1',
    ERL_EPMD_PORT: String(epmdPort),
    ERL_INETRC: join(dir, 'inetrc'),
  }
  // epmd is normally started by the VM as a daemon that outlives it. Started here in the
  // foreground, on its own port, it is a child with a pid we stop with the node.
  const epmd = spawn('epmd', ['-port', String(epmdPort), '-address', '127.0.0.1'], {
    env,
    stdio: 'ignore',
    detached: true,
  })
  if (!(await waitForPort(epmdPort, 10_000))) {
    killGroup(epmd, 'SIGKILL')
    rmSync(dir, {recursive: true, force: true})
    throw new Error(`epmd did not listen on 127.0.0.1:${epmdPort}`)
  }
  const server = spawn(binary, [], {env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], detached: true})
  let output = ''
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000)
  }
  server.stdout!.on('data', collect)
  server.stderr!.on('data', collect)
  const watchdog = startWatchdog([server, epmd])
  const logFile = join(dir, 'log', `${nodeName}.log`)
  const log = () => {
    try {
      return readFileSync(logFile, 'utf8')
    } catch {
      return output
    }
  }

  let stopped: Promise<void> | undefined
  const stop = () => {
    stopped ??= (async () => {
      await terminate(server, 30_000)
      await terminate(epmd, 5_000)
      watchdog.kill('SIGKILL')
      process.removeListener('exit', killNow)
      rmSync(dir, {recursive: true, force: true})
    })()
    return stopped
  }
  // Last resort when mocha exits without its after-all hook (an uncaught error, process.exit):
  // synchronous kills only.
  const killNow = () => {
    for (const child of [server, epmd, watchdog]) killGroup(child, 'SIGKILL')
  }
  process.once('exit', killNow)
  stopNode = stop

  const managementUrl = `http://127.0.0.1:${managementPort}`
  const deadline = started + RABBITMQ_BOOT_TIMEOUT_MS
  let exited: string | undefined
  server.once('exit', (code, signal) => {
    exited = `rabbitmq-server exited (${signal ?? code})`
  })
  for (;;) {
    if (exited) {
      const reason = `${exited}: ${tail(log() + output)}`
      await stop()
      throw new Error(reason)
    }
    if ((await amqpListening(amqpPort)) && (await managementAnswers(managementUrl))) break
    if (Date.now() > deadline) {
      const reason = `rabbitmq-server did not get ready in ${RABBITMQ_BOOT_TIMEOUT_MS / 1000} s: ${tail(log() + output)}`
      await stop()
      throw new Error(reason)
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  const bootMs = Date.now() - started
  console.log(`      (rabbitmq-server ${nodeName} ready on 127.0.0.1:${amqpPort} in ${(bootMs / 1000).toFixed(1)} s)`)
  return {
    url: `amqp://guest:guest@127.0.0.1:${amqpPort}`,
    brokerUrl: `amqp://guest:guest@127.0.0.1:${amqpPort}?management=${managementUrl}`,
    amqpPort,
    managementUrl,
    managementPort,
    nodeName,
    pid: server.pid!,
    dir,
    bootMs,
    log,
  }
}

function tail(text: string): string {
  return text.slice(-1500)
}

async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>()
  while (ports.size < count) ports.add(await freePort())
  return [...ports]
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) return
  try {
    // Each child leads its own process group (detached): the node's helpers (erl_child_setup,
    // inet_gethost) go with it.
    process.kill(-child.pid, signal)
  } catch {
    // already gone
  }
}

/** SIGTERM (the VM shuts down cleanly), then SIGKILL after `graceMs`. */
async function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    killGroup(child, 'SIGKILL')
    return
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  killGroup(child, 'SIGTERM')
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
  // helpers left in the group
  try {
    process.kill(-child.pid!, 'SIGKILL')
  } catch {
    // none left
  }
}

async function waitForPort(port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({host: '127.0.0.1', port})
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (open) return true
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return false
}

/**
 * A tiny process that outlives a SIGKILLed mocha by at most a second and then kills the node and
 * epmd: nothing of a test run survives it.
 */
function startWatchdog(children: ChildProcess[]): ChildProcess {
  const groups = children.map((child) => child.pid!).filter(Boolean)
  const script = `
const [parent, ...groups] = process.argv.slice(1).map(Number)
setInterval(() => {
  try { process.kill(parent, 0) } catch {
    for (const g of groups) { try { process.kill(-g, 'SIGKILL') } catch {} }
    process.exit(0)
  }
}, 1000)`
  const watchdog = spawn(process.execPath, ['-e', script, String(process.pid), ...groups.map(String)], {
    stdio: 'ignore',
    detached: true,
  })
  watchdog.unref()
  return watchdog
}

/** True once the AMQP listener answers the protocol header with connection.start (a method frame). */
function amqpListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({host: '127.0.0.1', port})
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(2000, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => socket.write(Buffer.from('AMQP\x00\x00\x09\x01', 'latin1')))
    socket.once('data', (chunk: Buffer) => done(chunk[0] === 1))
  })
}

/** True once the management API answers an authenticated request. */
function managementAnswers(base: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      `${base}/api/overview`,
      {headers: {authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}`}, timeout: 2000},
      (res) => {
        res.resume()
        resolve(res.statusCode === 200)
      },
    )
    req.once('timeout', () => req.destroy())
    req.once('error', () => resolve(false))
    req.end()
  })
}
