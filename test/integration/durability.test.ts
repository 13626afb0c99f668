import {expect} from 'chai'
import {execFile, execFileSync} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {promisify} from 'node:util'

import {BIN, mq, tempHome, waiterRows, waitFor} from '../helpers.js'

/** Whether strace runs here; under CI its absence is a failure (.ci/run installs it). */
function needsStrace(context: Mocha.Context): void {
  try {
    execFileSync('strace', ['-V'], {stdio: 'ignore'})
  } catch {
    if (process.env.CI) throw new Error('strace is not installed: the durability tests need it (.ci/run installs it)')
    context.skip()
  }
}

interface Traced {
  stdout: string
  /** The system calls that touch the WAL or stdout, in the order they completed (`at`: epoch ms). */
  calls: {call: 'wal-write' | 'wal-sync' | 'stdout'; line: string; at: number}[]
}

/**
 * Runs `mq args` under strace and lists its WAL writes, WAL syncs and writes to stdout;
 * `meanwhile` runs while it does.
 */
async function traced(home: string, args: string[], meanwhile?: () => Promise<void>): Promise<Traced> {
  const log = join(home, `strace.${Math.random().toString(36).slice(2)}`)
  const running = promisify(execFile)(
    'strace',
    [
      '-f',
      '-qq',
      '-ttt',
      '-e',
      'trace=openat,pwrite64,write,writev,fdatasync,fsync',
      '-o',
      log,
      process.execPath,
      BIN,
      ...args,
    ],
    {env: {...process.env, MQ_HOME: home}},
  )
  await meanwhile?.()
  const {stdout} = await running
  const walFds = new Set<string>()
  const unfinished = new Map<string, string>() // pid → the call's start, until it is resumed
  const calls: Traced['calls'] = []
  for (const raw of readFileSync(log, 'utf8').split('\n')) {
    const match = /^(\d+)\s+(\d+\.\d+)\s+(.*)$/.exec(raw)
    if (!match) continue
    const [, pid, time, rest] = match
    const at = Number(time) * 1000
    let line = rest
    if (line.endsWith('<unfinished ...>')) {
      unfinished.set(pid, line.slice(0, -'<unfinished ...>'.length))
      continue
    }
    const resumed = /^<\.\.\. \w+ resumed>(.*)$/.exec(line)
    if (resumed) {
      line = (unfinished.get(pid) ?? '') + resumed[1]
      unfinished.delete(pid)
    }
    const call = /^(\w+)\((\d+|AT_FDCWD)?/.exec(line)
    if (!call) continue
    const [, name, fd] = call
    const result = /=\s*(-?\d+)/.exec(line.slice(line.lastIndexOf(')')))?.[1]
    if (name === 'openat' && /-wal"/.test(line) && result !== undefined && Number(result) >= 0) walFds.add(result)
    else if (name === 'pwrite64' && walFds.has(fd)) calls.push({call: 'wal-write', line, at})
    else if ((name === 'fdatasync' || name === 'fsync') && walFds.has(fd)) calls.push({call: 'wal-sync', line, at})
    else if ((name === 'write' || name === 'writev') && fd === '1') calls.push({call: 'stdout', line, at})
  }
  return {stdout, calls}
}

/** Asserts that the first write to stdout comes after a WAL sync that follows the last WAL write before it. */
function expectSyncedBeforeOutput({calls}: Traced, wroteItself: boolean): void {
  const output = calls.findIndex((c) => c.call === 'stdout')
  expect(output, 'the command printed nothing').to.be.greaterThan(-1)
  const before = calls.slice(0, output)
  const lastWrite = before.map((c) => c.call).lastIndexOf('wal-write')
  if (wroteItself) expect(lastWrite, 'the command wrote nothing to the WAL').to.be.greaterThan(-1)
  const syncs = before.slice(lastWrite + 1).filter((c) => c.call === 'wal-sync')
  const trace = calls.map((c) => c.line).join('\n')
  expect(syncs.length, `no WAL sync between the last WAL write and the output:\n${trace}`).to.be.greaterThan(0)
}

describe('durability: nothing is reported before it is on disk', function () {
  this.timeout(60_000)

  beforeEach(function () {
    needsStrace(this)
  })

  it('publish prints the id only after the WAL holding the message was synced', async () => {
    const home = tempHome()
    await mq(['publish', 'q', 'warm-up'], {home}) // the broker and its WAL exist
    const run = await traced(home, ['publish', 'q', 'hello'])
    expect(run.stdout.trim()).to.match(/^\d+$/)
    expectSyncedBeforeOutput(run, true)
  })

  it('an auto-ack consume prints the message only after its removal was synced (at most once)', async () => {
    const home = tempHome()
    await mq(['publish', 'q', 'hello'], {home})
    const run = await traced(home, ['consume', 'q'])
    expect(run.stdout).to.equal('hello\n')
    expectSyncedBeforeOutput(run, true)
  })

  it('a waiting consumer handed a message writes nothing before printing it, and syncs first', async () => {
    const home = tempHome()
    await mq(['queue', 'create', 'q'], {home})
    let published = 0
    const run = await traced(home, ['consume', 'q', '--wait', '60s'], async () => {
      await waitFor(() => waiterRows(home).length > 0, 'the consumer to wait on q')
      published = Date.now()
      await mq(['publish', 'q', 'hello'], {home})
    })
    expect(run.stdout).to.equal('hello\n')
    const output = run.calls.findIndex((c) => c.call === 'stdout')
    // What the consumer did from the publish to its output: no write of its own (the publish gave
    // it the message in its own commit), and a sync (of the publisher's commit) before it printed.
    const between = run.calls.slice(0, output).filter((c) => c.at >= published)
    const trace = run.calls.map((c) => `${c.at} ${c.line}`).join('\n')
    expect(
      between.filter((c) => c.call === 'wal-write'),
      `published at ${published}:\n${trace}`,
    ).to.deep.equal([])
    expect(
      between.filter((c) => c.call === 'wal-sync').length,
      `published at ${published}:\n${trace}`,
    ).to.be.greaterThan(0)
  })

  it('a publish answered by dedup (it writes nothing) still syncs before it answers', async () => {
    const home = tempHome()
    const first = await mq(['publish', 'q', 'hello', '--dedup-id', 'x'], {home})
    const run = await traced(home, ['publish', 'q', 'hello', '--dedup-id', 'x'])
    expect(run.stdout.trim()).to.equal(first.stdout.trim())
    expectSyncedBeforeOutput(run, false)
  })
})
