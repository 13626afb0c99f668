import {expect} from 'chai'

import {writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {jsonLines, run, shell, start, tempHome, waiterRows, waitFor} from '../helpers.js'

describe('publish and consume (CLI)', () => {
  let home: string
  beforeEach(() => {
    home = tempHome()
  })

  it('publishes the argument and prints the id; consume prints the body', async () => {
    const published = await run(['publish', 'hello', 'Hello World!'], {home})
    expect(published.code).to.equal(0)
    expect(published.stdout.trim()).to.match(/^\d+$/)
    const consumed = await run(['consume', 'hello'], {home})
    expect(consumed.code).to.equal(0)
    expect(consumed.stdout).to.equal('Hello World!\n')
  })

  it('reads the body from stdin, never stdin when a body argument is given', async () => {
    await run(['publish', 'q'], {home, input: 'from stdin\nsecond line'})
    await run(['publish', 'q', 'from arg'], {home, input: 'ignored'})
    const out = await run(['consume', 'q', '-n', '5', '--json'], {home})
    expect(jsonLines(out.stdout).map((e) => e.body)).to.deep.equal(['from stdin\nsecond line', 'from arg'])
  })

  it('prints JSON envelopes with id, queue, body, headers, attempt, publishedAt', async () => {
    const {stdout} = await run(['publish', 'q', '{"n":1}', '-H', 'type=created', '-H', 'trace=a=b', '--json'], {home})
    const result = JSON.parse(stdout)
    expect(result).to.deep.include({destination: 'q', kind: 'queue'})
    const out = await run(['consume', 'q', '--json'], {home})
    const [envelope] = jsonLines(out.stdout)
    expect(envelope).to.deep.include({
      id: result.id,
      queue: 'q',
      body: '{"n":1}',
      attempt: 1,
      headers: {type: 'created', trace: 'a=b'},
    })
    expect(Date.parse(envelope.publishedAt as string)).to.be.closeTo(Date.now(), 10_000)
    expect(envelope).to.not.have.property('receipt')
  })

  it('publishes each stdin line with --lines, in order, skipping blank lines', async () => {
    const out = await run(['publish', 'q', '--lines'], {home, input: 'one\ntwo\r\n\nthree'})
    expect(out.stdout.trim().split('\n')).to.have.length(3)
    const consumed = await run(['consume', 'q', '-n', '10'], {home})
    expect(consumed.stdout).to.equal('one\ntwo\nthree\n')
  })

  it('publishes --lines from a regular file on stdin in pieces: every line once, in order; a bad line keeps the earlier pieces', async () => {
    // Several 64 KiB reads, lines with multi-byte characters crossing the read boundaries.
    const lines = Array.from({length: 12_000}, (_, i) => `line ${i} ${'é€'.repeat(i % 7)}`)
    const file = join(home, 'lines.txt')
    writeFileSync(file, `${lines.join('\n')}\n`)
    const published = await shell(`MQ publish q --lines < "${file}"`, {home, timeoutMs: 60_000})
    expect(published.code, published.stderr).to.equal(0)
    expect(published.stdout.trim().split('\n')).to.have.length(lines.length)
    const consumed = await run(['consume', 'q', '-n', '20000'], {home})
    expect(consumed.stdout).to.equal(`${lines.join('\n')}\n`)
    // Invalid UTF-8 on line 11,000 (past the first read): named with its line number, and what came before it was published.
    writeFileSync(
      file,
      Buffer.concat([
        Buffer.from(`${lines.slice(0, 10_999).join('\n')}\n`),
        Buffer.from([0xff, 0x0a]),
        Buffer.from('after\n'),
      ]),
    )
    const bad = await shell(`MQ publish bad --lines < "${file}"`, {home, timeoutMs: 60_000})
    expect(bad.code).to.equal(2)
    expect(bad.stderr).to.match(/line 11000 of stdin is not valid UTF-8/)
    const stats = JSON.parse((await run(['queue', 'stats', 'bad', '--json'], {home})).stdout)
    expect(stats.depth).to.be.greaterThan(0).and.lessThan(10_999)
  })

  it('streams --lines: each line is published as it arrives, not at EOF', async () => {
    const publisher = start(['publish', 'q', '--lines'], {home, openStdin: true})
    publisher.child.stdin!.write('first\n')
    const consumed = await run(['consume', 'q', '--wait', '10m'], {home})
    expect(consumed.stdout).to.equal('first\n')
    publisher.child.stdin!.end('second\n')
    expect((await publisher.done).code).to.equal(0)
  })

  it('round-trips consume --json | publish --envelopes with body and headers', async () => {
    await run(['publish', 'src', 'a\nb "quoted"', '-H', 'k=v'], {home})
    await run(['publish', 'src', 'second'], {home})
    const exported = await run(['consume', 'src', '-n', '10', '--json'], {home})
    const imported = await run(['publish', 'dst', '--envelopes'], {home, input: exported.stdout})
    expect(imported.code).to.equal(0)
    const out = jsonLines((await run(['consume', 'dst', '-n', '10', '--json'], {home})).stdout)
    expect(out.map((e) => [e.body, e.headers])).to.deep.equal([
      ['a\nb "quoted"', {k: 'v'}],
      ['second', {}],
    ])
  })

  it('exits 3 when nothing arrives, and says so on one line', async () => {
    await run(['queue', 'create', 'empty'], {home})
    const out = await run(['consume', 'empty'], {home})
    expect(out.code).to.equal(3)
    expect(out.stdout).to.equal('')
    expect(out.stderr.trim().split('\n')).to.have.length(1)
    expect(out.stderr).to.match(/no message arrived on empty/)
  })

  it('long-polls with --wait: returns as soon as another process publishes', async () => {
    // A wait longer than the test's timeout: only a consumer that returns on arrival passes.
    const consumer = start(['consume', 'later', '--wait', '10m'], {home})
    await consumer.watching()
    await run(['publish', 'later', 'arrived'], {home})
    const result = await consumer.done
    expect(result.code).to.equal(0)
    expect(result.stdout).to.equal('arrived\n')
  })

  it('--wait runs out with exit 3 (how long it waited: bench/pacing.js, test/core/clock.test.ts)', async () => {
    const out = await run(['consume', 'nothing', '--wait', '400ms'], {home})
    expect(out.code).to.equal(3)
    expect(out.stderr).to.match(/no message arrived on nothing/)
  })

  it('--poll-interval polls at a fixed pace instead', async () => {
    const consumer = start(['consume', 'polled', '--wait', '10m', '--poll-interval', '100ms'], {home})
    await consumer.openedBroker() // a polling consumer watches nothing
    await run(['publish', 'polled', 'x'], {home})
    expect((await consumer.done).stdout).to.equal('x\n')
  })

  it('takes -n messages and leaves the rest', async () => {
    await run(['publish', 'q', '--lines'], {home, input: '1\n2\n3\n4\n5\n'})
    expect((await run(['consume', 'q', '-n', '3'], {home})).stdout).to.equal('1\n2\n3\n')
    expect((await run(['consume', 'q', '-n', '3'], {home})).stdout).to.equal('4\n5\n')
  })

  it('follows with -f until interrupted, then exits 130', async () => {
    const consumer = start(['consume', 'live', '-f'], {home})
    await run(['publish', 'live', 'one'], {home})
    await run(['publish', 'live', 'two'], {home})
    await waitFor(() => consumer.lines().length === 2, 'both messages')
    consumer.kill('SIGINT')
    const result = await consumer.done
    expect(result.stdout).to.equal('one\ntwo\n')
    expect(result.code).to.equal(130)
  })

  it('follows with -f: each message handed to it while it waits is printed once, in order', async () => {
    await run(['queue', 'create', 'live'], {home})
    const consumer = start(['consume', 'live', '-f'], {home})
    const bodies = ['one', 'two', 'three', 'four']
    for (const [index, body] of bodies.entries()) {
      // Published while the consumer waits on its registration, so the publish hands it over.
      await waitFor(
        () => waiterRows(home).some((row) => row.pid === consumer.pid && row.handed === null),
        'the consumer to wait',
      )
      await run(['publish', 'live', body], {home})
      await waitFor(() => consumer.lines().length === index + 1, `message ${index + 1}`)
    }
    consumer.kill('SIGINT')
    expect((await consumer.done).stdout).to.equal('one\ntwo\nthree\nfour\n')
    expect((await run(['consume', 'live'], {home})).stdout).to.equal('')
  })

  it('follows with -f: a message handed to it after its reader went away is put back, not lost', async () => {
    await run(['queue', 'create', 'live'], {home})
    const consumer = start(['consume', 'live', '-f'], {home})
    await waitFor(
      () => waiterRows(home).some((row) => row.pid === consumer.pid && row.handed === null),
      'the consumer to wait',
    )
    consumer.child.stdout!.destroy()
    await run(['publish', 'live', 'kept'], {home})
    const result = await consumer.done
    expect(result.code, result.stderr).to.equal(0)
    expect((await run(['consume', 'live'], {home})).stdout).to.equal('kept\n')
  })

  it('runs the same through oclif as through the fast launcher', async () => {
    const env = {MQ_NO_FAST: '1'}
    const published = await run(['publish', 'slow', 'via oclif', '-H', 'a=1', '--json'], {home, env})
    expect(published.code).to.equal(0)
    const consumed = await run(['consume', 'slow', '--json'], {home, env})
    expect(jsonLines(consumed.stdout)[0]).to.deep.include({body: 'via oclif', headers: {a: '1'}})
  })
})
