import {expect} from 'chai'
import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'

import {jsonLines, mq, start, tempHome, waitFor} from '../helpers.js'

describe('crashes', function () {
  this.timeout(60_000)

  it('a worker killed with SIGKILL mid-message: redelivered after the visibility timeout, attempt 2', async () => {
    const home = tempHome()
    await mq(['queue', 'create', 'jobs', '--visibility-timeout', '1s'], {home})
    await mq(['publish', 'jobs', 'important'], {home})
    const pidFile = join(home, 'child.pid')
    // The command records its process group, then works for a long time.
    const worker = start(['consume', 'jobs', '--exec', `echo $$ > ${pidFile}; sleep 60`], {home})
    await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '', 'the command to start')
    worker.kill('SIGKILL')
    await worker.done
    // The command runs in its own process group; a crashed worker leaves it orphaned, so end it too.
    process.kill(-Number(readFileSync(pidFile, 'utf8')), 'SIGKILL')

    // Redelivered once the 1 s lease runs out, well within the wait (else exit 3).
    const again = await mq(['consume', 'jobs', '--wait', '10m', '--json', '--ack', 'manual'], {home})
    expect(again.code, again.stderr).to.equal(0)
    const [delivery] = jsonLines(again.stdout)
    expect(delivery).to.deep.include({body: 'important', attempt: 2})
  })

  it('a consumer killed between receive and ack loses nothing (manual ack)', async () => {
    const home = tempHome()
    await mq(['queue', 'create', 'jobs', '--visibility-timeout', '500ms'], {home})
    await mq(['publish', 'jobs', '--lines'], {home, input: 'a\nb\nc\n'})
    const consumer = start(['consume', 'jobs', '-f', '--ack', 'manual', '--json'], {home})
    await waitFor(() => consumer.lines().length === 3, 'three deliveries')
    consumer.kill('SIGKILL')
    await consumer.done
    const again = await mq(['consume', 'jobs', '-n', '3', '--wait', '10m', '--json'], {home})
    const deliveries = jsonLines(again.stdout)
    expect(deliveries.map((d) => d.body).sort()).to.deep.equal(['a', 'b', 'c'])
  })

  it('a publisher killed mid-stream leaves every message it reported intact', async () => {
    const home = tempHome()
    const publisher = start(['publish', 'jobs', '--lines'], {home, openStdin: true})
    for (let i = 0; i < 50; i++) publisher.child.stdin!.write(`m${i}\n`)
    await waitFor(() => publisher.lines().length === 50, 'fifty ids')
    publisher.kill('SIGKILL')
    await publisher.done
    const out = await mq(['consume', 'jobs', '-n', '100', '--json'], {home})
    const ids = jsonLines(out.stdout).map((d) => d.id)
    expect(ids).to.deep.equal(publisher.lines())
  })
})
