import {expect} from 'chai'

import {jsonLines, run, sleep, start, tempHome, waitFor} from '../helpers.js'

describe('manual ack, nack and extend (CLI)', () => {
  let home: string
  beforeEach(() => {
    home = tempHome()
  })

  async function receiveManual(queue: string, extra: string[] = []) {
    const out = await run(['consume', queue, '--ack', 'manual', '--json', ...extra], {home})
    expect(out.code, out.stderr).to.equal(0)
    return jsonLines<{id: string; receipt: string; attempt: number; body: string}>(out.stdout)
  }

  it('keeps the lease and prints the receipt; ack removes the message', async () => {
    await run(['publish', 'q', 'work'], {home})
    const [delivery] = await receiveManual('q')
    expect(delivery.receipt).to.be.a('string')
    const stats = JSON.parse((await run(['queue', 'stats', 'q', '--json'], {home})).stdout)
    expect(stats.inFlight).to.equal(1)
    const acked = await run(['ack', delivery.receipt], {home})
    expect(acked.code).to.equal(0)
    expect(JSON.parse((await run(['queue', 'stats', 'q', '--json'], {home})).stdout).depth).to.equal(0)
  })

  it('in a pipe without --json prints the body on stdout and the receipt on stderr', async () => {
    await run(['publish', 'q', 'work'], {home})
    const out = await run(['consume', 'q', '--ack', 'manual'], {home})
    expect(out.stdout).to.equal('work\n')
    expect(out.stderr).to.match(/receipt \d+\.\S{8}/)
  })

  it('acks receipts read from stdin: consume --json | jq -r .receipt | ack', async () => {
    await run(['publish', 'q', '--lines'], {home, input: 'a\nb\nc\n'})
    const deliveries = await receiveManual('q', ['-n', '3'])
    const acked = await run(['ack', '--json'], {home, input: deliveries.map((d) => d.receipt).join('\n') + '\n'})
    expect(acked.code).to.equal(0)
    expect(JSON.parse(acked.stdout)).to.deep.equal({settled: 3, stale: []})
  })

  it('exits 5 on a stale receipt and changes nothing; the receipt of the redelivery works', async () => {
    await run(['publish', 'q', 'slow'], {home})
    const [first] = await receiveManual('q', ['--visibility-timeout', '200ms'])
    // Redelivered once the lease runs out: waited for, not timed.
    const [second] = await receiveManual('q', ['--wait', '10m'])
    expect(second.attempt).to.equal(2)
    const stale = await run(['ack', first.receipt], {home})
    expect(stale.code).to.equal(5)
    expect(stale.stderr.trim().split('\n')).to.have.length(1)
    expect(stale.stderr).to.match(/stale/)
    const stats = JSON.parse((await run(['queue', 'stats', 'q', '--json'], {home})).stdout)
    expect(stats.inFlight).to.equal(1)
    expect((await run(['ack', second.receipt], {home})).code).to.equal(0)
    expect((await run(['ack', second.receipt], {home})).code).to.equal(5)
  })

  it('acks each receipt as its line arrives on stdin, without waiting for more or for the end', async () => {
    await run(['publish', 'q', '--lines'], {home, input: 'a\nb\n'})
    const [a, b] = await receiveManual('q', ['-n', '2'])
    const depth = async () => JSON.parse((await run(['queue', 'stats', 'q', '--json'], {home})).stdout).depth
    const ack = start(['ack', '--json'], {home, openStdin: true})
    ack.child.stdin!.write(`${a.receipt}\n`)
    await waitFor(async () => (await depth()) === 1, 'the first receipt to be acked while stdin stays open')
    ack.child.stdin!.write(`${b.receipt}\n`)
    await waitFor(async () => (await depth()) === 0, 'the second receipt to be acked')
    ack.child.stdin!.end()
    const out = await ack.done
    expect(out.code, out.stderr).to.equal(0)
    expect(JSON.parse(out.stdout)).to.deep.equal({settled: 2, stale: []})
  })

  it('acks the good receipts of a batch and exits 5 for the stale one', async () => {
    await run(['publish', 'q', '--lines'], {home, input: 'a\nb\n'})
    const [a, b] = await receiveManual('q', ['-n', '2'])
    await run(['ack', a.receipt], {home})
    const out = await run(['ack', a.receipt, b.receipt, '--json'], {home})
    expect(out.code).to.equal(5)
    expect(JSON.parse(out.stdout)).to.deep.equal({settled: 1, stale: [a.receipt]})
    expect(JSON.parse(out.stderr).error.code).to.equal('stale_receipt')
  })

  it('refuses a garbled receipt with exit 2 and settles nothing', async () => {
    await run(['publish', 'q', 'x'], {home})
    const [d] = await receiveManual('q')
    const out = await run(['ack', d.receipt, 'garbage; rm -rf /'], {home})
    expect(out.code).to.equal(2)
    expect(out.stderr).to.match(/is not a receipt/)
    expect(JSON.parse((await run(['queue', 'stats', 'q', '--json'], {home})).stdout).inFlight).to.equal(1)
  })

  it('nack redelivers (after --delay), and --dead-letter moves to the DLQ with the reason', async () => {
    // Held back: a delay no process start can outlast, so nothing is ready.
    await run(['publish', 'held', 'x'], {home})
    const [held] = await receiveManual('held')
    expect((await run(['nack', held.receipt, '--delay', '1h'], {home})).code).to.equal(0)
    expect((await run(['consume', 'held'], {home})).code).to.equal(3)
    expect(JSON.parse((await run(['queue', 'stats', 'held', '--json'], {home})).stdout)).to.include({
      delayed: 1,
      inFlight: 0,
    })
    // Redelivered once a short delay is over: waited for, not timed.
    await run(['publish', 'q', 'x'], {home})
    const [d1] = await receiveManual('q')
    expect((await run(['nack', d1.receipt, '--delay', '300ms'], {home})).code).to.equal(0)
    const [d2] = await receiveManual('q', ['--wait', '10m'])
    expect(d2.attempt).to.equal(2)
    expect((await run(['nack', d2.receipt, '--dead-letter', '--reason', 'bad input'], {home})).code).to.equal(0)
    const dead = jsonLines((await run(['consume', 'q.dlq', '--json'], {home})).stdout)[0]
    expect(dead.headers).to.deep.include({
      'x-dead-letter-reason': 'rejected',
      'x-last-error': 'bad input',
      'x-original-queue': 'q',
    })
  })

  it('extend keeps the lease alive past the visibility timeout', async () => {
    await run(['publish', 'q', 'x'], {home})
    const [d] = await receiveManual('q', ['--visibility-timeout', '300ms'])
    expect((await run(['extend', d.receipt, '--by', '10m'], {home})).code).to.equal(0)
    // Time passing is the subject: past the visibility timeout, the extended lease still holds.
    await sleep(500)
    expect((await run(['consume', 'q'], {home})).code).to.equal(3)
    expect((await run(['ack', d.receipt], {home})).code).to.equal(0)
  })

  it('extend without --by is a usage error', async () => {
    const out = await run(['extend', '1.abcdefgh'], {home})
    expect(out.code).to.equal(2)
  })
})
