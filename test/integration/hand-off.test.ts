import {expect} from 'chai'

import {mq, start, tempHome, waiterRows, waitFor} from '../helpers.js'

/** How many consumers wait on a queue of the broker in `home`, not yet handed anything. */
const waiting = (home: string) => waiterRows(home).filter((row) => row.handed === null).length
const registrations = (home: string) => waiterRows(home).length

/** A new broker with queue q and a `consume q -f` waiting on it. */
async function waitingConsumer() {
  const home = tempHome()
  await mq(['queue', 'create', 'q'], {home})
  const consumer = start(['consume', 'q', '-f'], {home})
  await waitFor(() => waiting(home) === 1, 'the consumer to wait on q')
  return {home, consumer}
}

describe('hand-off to waiting consumers, across processes', function () {
  this.timeout(60_000)

  it('a consumer killed while it waits is never handed a message: the next publish stays queued', async () => {
    const {home, consumer} = await waitingConsumer()
    consumer.kill('SIGKILL')
    expect((await consumer.done).signal).to.equal('SIGKILL')
    await mq(['publish', 'q', 'kept'], {home})
    expect(registrations(home)).to.equal(0) // the publish removed the dead consumer's registration
    expect((await mq(['consume', 'q'], {home})).stdout).to.equal('kept\n')
  })

  it('an interrupted consumer takes its registration back', async () => {
    const {home, consumer} = await waitingConsumer()
    consumer.kill('SIGINT')
    expect((await consumer.done).code).to.equal(130)
    expect(registrations(home)).to.equal(0)
    await mq(['publish', 'q', 'kept'], {home})
    expect((await mq(['consume', 'q'], {home})).stdout).to.equal('kept\n')
  })

  it('competing consumers: every message handed out is printed exactly once', async () => {
    const home = tempHome()
    await mq(['queue', 'create', 'q'], {home})
    const consumers = [0, 1, 2].map(() => start(['consume', 'q', '-f'], {home}))
    await waitFor(() => waiting(home) === 3, 'three consumers to wait on q')
    const sent = Array.from({length: 12}, (_, i) => `m${i}`)
    for (const body of sent) await mq(['publish', 'q', body], {home})
    const printed = () => consumers.flatMap((c) => c.lines())
    await waitFor(
      () => printed().length >= sent.length,
      () => `12 lines, got ${printed().join(' ')}`,
    )
    for (const consumer of consumers) consumer.kill('SIGTERM')
    await Promise.all(consumers.map((c) => c.done))
    expect(printed().sort()).to.deep.equal([...sent].sort())
    // Each consumer prints its messages in publish order.
    for (const consumer of consumers) {
      const numbers = consumer.lines().map((line) => Number(line.slice(1)))
      expect(numbers).to.deep.equal([...numbers].sort((a, b) => a - b))
    }
    const stats = JSON.parse((await mq(['queue', 'stats', 'q', '--json'], {home})).stdout) as {
      depth: number
      totals: {published: number; acked: number}
    }
    expect([stats.depth, stats.totals.published, stats.totals.acked]).to.deep.equal([0, 12, 12])
  })
})
