import {expect} from 'chai'
import {execFileSync} from 'node:child_process'
import {mkdirSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {jsonLines, run, startDaemon, stopDaemon, tempHome} from '../helpers.js'

/** A 2 MiB filesystem (tmpfs, as root); undefined where mounting is not possible. */
function smallFilesystem(): string | undefined {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return undefined
  const dir = tempHome('mq-small-fs-')
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', dir], {stdio: 'ignore'})
    return dir
  } catch {
    return undefined
  }
}

describe('a full disk with the daemon running', function () {
  this.timeout(300_000)
  let mounted: string | undefined

  afterEach(async () => {
    if (!mounted) return
    await stopDaemon(join(mounted, 'broker'))
    execFileSync('umount', ['-l', mounted], {stdio: 'ignore'})
    mounted = undefined
  })

  it('consumers and acks work again once a little space is freed, and no acknowledged message is lost', async function () {
    mounted = smallFilesystem()
    if (!mounted) this.skip() // needs root and tmpfs
    const home = join(mounted, 'broker')
    mkdirSync(home, {mode: 0o700})
    const spare = join(mounted, 'spare')
    writeFileSync(spare, Buffer.alloc(300 * 1024)) // what the user frees later
    await startDaemon(home)

    // Publishers (through the daemon) fill the disk; each id printed is an acknowledged publish.
    const bodies = Array.from({length: 4000}, (_, i) => `m${i}-${'x'.repeat(1000)}`)
    const filling = await run(['publish', 'q', '--lines'], {home, input: bodies.join('\n') + '\n'})
    expect(filling.code, 'the disk should fill up').to.equal(1)
    expect(filling.stderr).to.match(/disk .* is full/)
    const published = bodies.slice(0, filling.stdout.split('\n').filter(Boolean).length)
    expect(published.length).to.be.greaterThan(100)

    rmSync(spare) // 300 KB back: consumers (which free space) must work again
    const leased = await run(['consume', 'q', '-n', '100000', '--ack', 'manual', '--json'], {home})
    expect(leased.code, leased.stderr).to.equal(0)
    const deliveries = jsonLines(leased.stdout)
    expect(deliveries.map((d) => d.body)).to.deep.equal(published)
    const acked = await run(['ack'], {home, input: deliveries.map((d) => d.receipt).join('\n') + '\n'})
    expect(acked.code, acked.stderr).to.equal(0)
    const stats = JSON.parse((await run(['queue', 'stats', 'q', '--json'], {home})).stdout)
    expect(stats.depth).to.equal(0)
    expect(stats.totals).to.deep.include({published: published.length, acked: published.length})
    // And publishing works again too.
    expect((await run(['publish', 'q', 'after'], {home})).code).to.equal(0)
  })
})
