import {expect} from 'chai'
import {existsSync, readFileSync} from 'node:fs'
import {createConnection, type Socket} from 'node:net'
import {join} from 'node:path'

import {isProcessAlive} from '../../src/core/process-alive.js'
import {mq, tempHome, waitFor} from '../helpers.js'

/** Daemons started by a test, stopped (or killed) after it so none outlives the suite. */
const daemons = new Map<string, NodeJS.ProcessEnv | undefined>()

async function startDaemon(home: string, env?: NodeJS.ProcessEnv, extra: string[] = []) {
  daemons.set(home, env)
  const result = await mq(['daemon', 'start', ...extra], {home, env})
  expect(result.code, result.stderr).to.equal(0)
  return status(home, env)
}

async function status(home: string, env?: NodeJS.ProcessEnv) {
  const result = await mq(['daemon', 'status', '--json'], {home, env})
  return result.code === 0 ? JSON.parse(result.stdout) : undefined
}

function killDaemon(home: string): void {
  const file = join(home, 'daemon.pid')
  if (!existsSync(file)) return
  try {
    process.kill(JSON.parse(readFileSync(file, 'utf8')).pid, 'SIGKILL')
  } catch {
    // already gone
  }
}

/** A raw connection to the daemon's socket, collecting the reply lines. */
class RawClient {
  readonly socket: Socket
  replies: Record<string, unknown>[] = []
  closed = false
  private buffered = ''

  constructor(path: string) {
    this.socket = createConnection(path)
    this.socket.setEncoding('utf8')
    this.socket.on('data', (chunk: string) => {
      this.buffered += chunk
      const lines = this.buffered.split('\n')
      this.buffered = lines.pop()!
      for (const line of lines) this.replies.push(JSON.parse(line))
    })
    this.socket.on('error', () => {})
    this.socket.on('close', () => (this.closed = true))
  }

  async ask(line: string): Promise<Record<string, unknown>> {
    const before = this.replies.length
    this.socket.write(line)
    await waitFor(() => this.replies.length > before || this.closed, `a reply to ${line.slice(0, 60)}`)
    expect(this.replies.length, `a reply to ${line.slice(0, 60)}`).to.be.greaterThan(before)
    return this.replies[before]
  }
}

describe('the daemon under hostile input', function () {
  this.timeout(90_000)

  afterEach(async () => {
    for (const [home, env] of daemons) {
      await mq(['daemon', 'stop', '--force'], {home, env})
      killDaemon(home)
    }
    daemons.clear()
  })

  it('answers every malformed frame on its socket with an error and keeps serving', async () => {
    const home = tempHome()
    const {pid, socket} = await startDaemon(home)
    const client = new RawClient(socket)
    const frames = [
      'null',
      '42',
      '"text"',
      '[]',
      '[1,2]',
      '{}',
      '{"id":1}',
      '{"id":"x","op":"status"}',
      '{"id":2,"op":"nope"}',
      '{"id":3,"op":"publish"}',
      '{"id":4,"op":"publish","name":"q","messages":null}',
      '{"id":5,"op":"publish","name":"q","messages":[null]}',
      '{"id":6,"op":"publish","name":7,"messages":[{"body":"x"}]}',
      '{"id":7,"op":"publish","name":"q","messages":[{"body":"x"}],"options":null}',
      '{"id":8,"op":"trigger","event":null}',
      '{"id":9,"op":"trigger","event":{"specversion":"1.0"}}',
      'not json',
      '{"id":10,',
    ]
    for (const frame of frames) {
      const reply = await client.ask(`${frame}\n`)
      expect(reply.error, frame).to.be.an('object')
      expect((reply.error as {exitCode: number}).exitCode, frame).to.equal(2)
      expect(isProcessAlive(pid), `the daemon after ${frame}`).to.equal(true)
    }
    // The same connection still works, and so does everyone else's.
    const ok = await client.ask('{"id":11,"op":"status"}\n')
    expect(ok).to.include({id: 11})
    expect((ok.result as {pid: number}).pid).to.equal(pid)
    client.socket.destroy()
    const published = await mq(['publish', 'jobs', 'still served'], {home})
    expect(published.code, published.stderr).to.equal(0)
    expect((await status(home)).pid).to.equal(pid)
    expect((await mq(['consume', 'jobs'], {home})).stdout).to.equal('still served\n')
  })

  it('cuts off a line that never ends (error, connection closed) and keeps serving', async () => {
    const home = tempHome()
    const {pid, socket} = await startDaemon(home)
    const client = new RawClient(socket)
    // 64 MiB without a newline, written while the daemon is free to stop reading it.
    const chunk = Buffer.alloc(1024 * 1024, 'a'.charCodeAt(0))
    chunk[0] = '"'.charCodeAt(0)
    for (let i = 0; i < 64 && !client.closed; i++) {
      if (!client.socket.write(i === 0 ? chunk : chunk.subarray(1))) {
        await waitFor(() => client.socket.writableLength === 0 || client.closed, 'the daemon to read on')
      }
    }
    await waitFor(() => client.closed, 'the daemon to close the connection')
    expect(client.replies).to.have.length(1)
    expect((client.replies[0].error as {message: string}).message).to.match(/over the \d+-byte limit/)
    expect(isProcessAlive(pid)).to.equal(true)
    expect((await status(home)).pid).to.equal(pid)
  })
})
