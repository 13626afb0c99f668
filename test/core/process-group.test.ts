import {expect} from 'chai'
import {existsSync, readFileSync, rmSync} from 'node:fs'
import {join} from 'node:path'

import {isProcessAlive} from '../../src/core/process-alive.js'
import {runChild} from '../../src/core/process-group.js'
import {tempHome, waitFor} from '../helpers.js'

// The one runner behind --exec, exec actions and poll-command sources.
describe('runChild (the child-process runner)', () => {
  let dir: string

  beforeEach(() => {
    dir = tempHome('mq-runchild-')
  })

  afterEach(() => rmSync(dir, {recursive: true, force: true}))

  it('feeds stdin, hands each output chunk over and keeps the tail of the named streams', async () => {
    const chunks: string[] = []
    const end = await runChild({
      argv: ['sh', '-c', 'cat; echo to-stderr >&2; exit 3'],
      stdin: 'from-stdin',
      stdout: (chunk) => chunks.push(`out:${chunk}`),
      stderr: (chunk) => chunks.push(`err:${chunk}`),
      tail: {max: 12, of: ['stderr']},
    })
    expect(end).to.include({started: true, code: 3, signal: null, timedOut: false, aborted: false})
    expect(chunks).to.deep.equal(['out:from-stdin', 'err:to-stderr\n'])
    // Only stderr, and only its last 12 characters.
    expect(end.started && end.tail).to.equal('to-stderr\n')
  })

  it('a timeout stops the whole process group, grandchildren included', async () => {
    const pidFile = join(dir, 'grandchild')
    const end = await runChild({argv: ['sh', '-c', `sleep 60 & echo $! > ${pidFile}; wait`], timeoutMs: 300})
    expect(end).to.include({started: true, timedOut: true, aborted: false, signal: 'SIGTERM'})
    const grandchild = Number(readFileSync(pidFile, 'utf8'))
    await waitFor(() => !isProcessAlive(grandchild), 'the grandchild to be stopped')
  })

  it('an abort (shutdown) stops the child, also when it came before the start', async () => {
    const controller = new AbortController()
    const running = runChild({argv: ['sleep', '60'], signal: controller.signal, stdout: () => {}})
    controller.abort()
    expect(await running).to.include({started: true, aborted: true, timedOut: false, signal: 'SIGTERM'})
    expect(await runChild({argv: ['sleep', '60'], signal: controller.signal})).to.include({
      aborted: true,
      signal: 'SIGTERM',
    })
  })

  it('a missing program is an error, a spawn that throws is a run that never started', async () => {
    const missing = await runChild({argv: [join(dir, 'no-such-program')]})
    expect(missing.started).to.equal(true)
    expect(missing.started && missing.error?.message).to.match(/ENOENT/)
    const nul = await runChild({argv: ['true', 'a\0b']})
    expect(nul.started).to.equal(false)
  })

  it('reapAfterExitMs kills what an exited command left in its group', async () => {
    const pidFile = join(dir, 'leftover')
    const end = await runChild({
      argv: ['sh', '-c', `sleep 60 > /dev/null 2>&1 & echo $! > ${pidFile}`],
      stdout: () => {},
      reapAfterExitMs: 1_000,
    })
    expect(end).to.include({started: true, code: 0})
    expect(existsSync(pidFile)).to.equal(true)
    const leftover = Number(readFileSync(pidFile, 'utf8'))
    await waitFor(() => !isProcessAlive(leftover), 'the leftover to be killed')
  })
})
