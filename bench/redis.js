// Redis as a yardstick for the benchmarks (issue 12): a redis-server started on a free loopback
// port with a temp folder and `appendfsync always` (every write fsynced before its reply, as the
// file broker's commits are), stopped by pid; and a minimal RESP client with pipelining.
//   node bench/redis.js blpop PORT KEY N   (a consumer process: prints each popped value)
import {spawn, spawnSync} from 'node:child_process'
import {createServer, connect} from 'node:net'

import {tempHome} from './lib.js'

export function redisInstalled() {
  return spawnSync('redis-server', ['--version']).status === 0
}

async function freePort() {
  const server = createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Starts redis-server (appendonly yes, appendfsync always) and resolves once it answers PING. */
export async function startRedis() {
  const dir = tempHome()
  const port = await freePort()
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--save',
      '',
      '--daemonize',
      'no',
    ],
    {stdio: 'ignore'},
  )
  const deadline = Date.now() + 20_000
  for (;;) {
    try {
      const client = await RedisClient.connect(port)
      await client.call('PING')
      client.close()
      break
    } catch (error) {
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`redis-server did not start: ${error.message}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  return {
    port,
    async stop() {
      if (child.exitCode !== null) return
      const exited = new Promise((resolve) => child.on('exit', resolve))
      process.kill(child.pid, 'SIGTERM')
      await exited
    },
  }
}

/** A RESP2 client: `call` sends one command; several calls without awaiting are pipelined. */
export class RedisClient {
  static connect(port) {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('error', reject)
      socket.once('connect', () => {
        socket.off('error', reject)
        socket.setNoDelay(true)
        resolve(new RedisClient(socket))
      })
    })
  }

  constructor(socket) {
    this.socket = socket
    this.pending = []
    this.buffer = Buffer.alloc(0)
    socket.on('data', (chunk) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
      for (;;) {
        const parsed = parse(this.buffer, 0)
        if (!parsed) break
        this.buffer = this.buffer.subarray(parsed.end)
        const {resolve, reject} = this.pending.shift()
        if (parsed.value instanceof Error) reject(parsed.value)
        else resolve(parsed.value)
      }
    })
    socket.on('error', (error) => {
      for (const {reject} of this.pending.splice(0)) reject(error)
    })
  }

  call(...args) {
    let out = `*${args.length}\r\n`
    for (const arg of args) {
      const text = String(arg)
      out += `$${Buffer.byteLength(text)}\r\n${text}\r\n`
    }
    this.socket.write(out)
    return new Promise((resolve, reject) => this.pending.push({resolve, reject}))
  }

  close() {
    this.socket.destroy()
  }
}

function parse(buffer, start) {
  const lineEnd = buffer.indexOf('\r\n', start)
  if (lineEnd === -1) return undefined
  const type = String.fromCharCode(buffer[start])
  const line = buffer.toString('utf8', start + 1, lineEnd)
  const next = lineEnd + 2
  if (type === '+') return {value: line, end: next}
  if (type === '-') return {value: new Error(line), end: next}
  if (type === ':') return {value: Number(line), end: next}
  if (type === '$') {
    const length = Number(line)
    if (length === -1) return {value: null, end: next}
    if (buffer.length < next + length + 2) return undefined
    return {value: buffer.toString('utf8', next, next + length), end: next + length + 2}
  }
  if (type === '*') {
    const count = Number(line)
    if (count === -1) return {value: null, end: next}
    const items = []
    let at = next
    for (let i = 0; i < count; i++) {
      const item = parse(buffer, at)
      if (!item) return undefined
      items.push(item.value)
      at = item.end
    }
    return {value: items, end: at}
  }
  throw new Error(`unexpected RESP type ${type}`)
}

// A BLPOP consumer in its own process, so that its wake-up is measured as mq consume's is.
if (process.argv[2] === 'blpop') {
  const [port, key, count] = process.argv.slice(3)
  const client = await RedisClient.connect(Number(port))
  process.stdout.write('ready\n')
  for (let i = 0; i < Number(count); i++) {
    const [, value] = await client.call('BLPOP', key, 0)
    process.stdout.write(`${value}\n`)
  }
  client.close()
}
