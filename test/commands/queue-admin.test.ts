import {expect} from 'chai'
import {readdirSync, readFileSync} from 'node:fs'
import {join, relative} from 'node:path'

import {jsonLines, ROOT, run, tempHome} from '../helpers.js'

describe('queue admin (CLI)', () => {
  let home: string
  beforeEach(() => {
    home = tempHome()
  })

  it('the RabbitMQ "hello" tutorial: declare, send, receive and print', async () => {
    expect((await run(['queue', 'create', 'hello'], {home})).code).to.equal(0)
    expect((await run(['queue', 'create', 'hello'], {home})).code).to.equal(0) // declaring again is fine
    await run(['publish', 'hello', 'Hello World!'], {home})
    const received = await run(['consume', 'hello', '--wait', '5s'], {home})
    expect(received.stdout).to.equal('Hello World!\n')
  })

  it('create sets settings; a conflicting re-declare is exit 2; update changes them', async () => {
    const created = await run(
      [
        'queue',
        'create',
        'jobs',
        '--visibility-timeout',
        '2m',
        '--max-deliveries',
        '3',
        '--dead-letter-queue',
        'jobs.failed',
        '--json',
      ],
      {home},
    )
    expect(JSON.parse(created.stdout).settings).to.deep.include({
      visibilityTimeoutMs: 120_000,
      maxDeliveries: 3,
      deadLetterQueue: 'jobs.failed',
    })
    const conflict = await run(['queue', 'create', 'jobs', '--max-deliveries', '4'], {home})
    expect(conflict.code).to.equal(2)
    expect(conflict.stderr).to.match(/already exists with other settings \(maxDeliveries\).*queue update/)
    const updated = await run(['queue', 'update', 'jobs', '--max-deliveries', '4', '--json'], {home})
    expect(JSON.parse(updated.stdout).settings.maxDeliveries).to.equal(4)
    expect((await run(['queue', 'update', 'missing', '--max-deliveries', '4'], {home})).code).to.equal(2)
  })

  it('list prints tab-separated rows (no header) when piped and JSON lines with --json', async () => {
    await run(['publish', 'b', 'x'], {home})
    await run(['publish', 'a', 'x'], {home})
    expect((await run(['queue', 'list'], {home})).stdout).to.equal(
      'a\t1\t1 B\t30s\t5\ta.dlq\nb\t1\t1 B\t30s\t5\tb.dlq\n',
    )
    const list = jsonLines<{name: string; depth: number}>((await run(['queue', 'list', '--json'], {home})).stdout)
    expect(list.map((q: {name: string; depth: number}) => [q.name, q.depth])).to.deep.equal([
      ['a', 1],
      ['b', 1],
    ])
  })

  it('stats shows ready, in-flight, delayed, dead-lettered and the oldest age', async () => {
    await run(['publish', 'jobs', '--lines'], {home, input: 'a\nb\nc\n'})
    await run(['consume', 'jobs', '--ack', 'manual'], {home})
    const dead = await run(['consume', 'jobs', '--ack', 'manual', '--json'], {home})
    await run(['nack', '--dead-letter', JSON.parse(dead.stdout).receipt], {home})
    const stats = JSON.parse((await run(['queue', 'stats', 'jobs', '--json'], {home})).stdout)
    expect(stats).to.deep.include({ready: 1, inFlight: 1, delayed: 0, deadLettered: 1})
    expect(stats.oldestAgeMs).to.be.a('number')
    const human = await run(['queue', 'stats', 'jobs'], {home})
    expect(human.stdout)
      .to.match(/ready\s+1/)
      .and.to.match(/in flight\s+1/)
      .and.to.match(/dead-lettered \(jobs\.dlq\)\s+1/)
  })

  it('peek shows messages without delivering them', async () => {
    await run(['publish', 'jobs', '--lines'], {home, input: 'a\nb\n'})
    expect((await run(['queue', 'peek', 'jobs'], {home})).stdout).to.equal('a\nb\n')
    const peeked = jsonLines((await run(['queue', 'peek', 'jobs', '--json', '-n', '1'], {home})).stdout)
    expect(peeked).to.have.length(1)
    expect(peeked[0]).to.deep.include({body: 'a', state: 'ready', deliveries: 0})
    const [delivered] = jsonLines((await run(['consume', 'jobs', '--json'], {home})).stdout)
    expect(delivered.attempt).to.equal(1)
  })

  it('purge and delete', async () => {
    await run(['publish', 'jobs', '--lines'], {home, input: 'a\nb\n'})
    expect(JSON.parse((await run(['queue', 'purge', 'jobs', '--yes', '--json'], {home})).stdout)).to.deep.equal({
      queue: 'jobs',
      purged: 2,
    })
    expect(JSON.parse((await run(['queue', 'delete', 'jobs', '--yes', '--json'], {home})).stdout)).to.deep.equal({
      queue: 'jobs',
      deleted: 0,
    })
    expect((await run(['queue', 'delete', 'jobs', '--yes'], {home})).code).to.equal(2)
  })

  it('every command has help with examples', async () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8'))
    for (const [id, command] of Object.entries<{examples?: string[]}>(manifest.commands)) {
      expect(command.examples?.length ?? 0, `${id} has examples`).to.be.greaterThan(0)
    }
    const help = await run(['consume', '--help'], {home})
    expect(help.code).to.equal(0)
    expect(help.stdout)
      .to.match(/EXAMPLES/)
      .and.to.match(/--exec/)
  })

  it('the README command reference covers every command', () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8'))
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    for (const id of Object.keys(manifest.commands)) {
      expect(readme, `README documents ${id} (run npm run readme)`).to.include(`## \`mqctl ${id.replaceAll(':', ' ')}`)
    }
  })

  it('oclif.manifest.json lists every command in src/commands', () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8'))
    const dir = join(ROOT, 'src', 'commands')
    const files = (readdirSync(dir, {recursive: true}) as string[]).filter((f) => f.endsWith('.ts'))
    const ids = files.map((f) =>
      relative(dir, join(dir, f))
        .replace(/\.ts$/, '')
        .replace(/\/index$/, '')
        .split('/')
        .join(':'),
    )
    expect(Object.keys(manifest.commands).sort()).to.include.members(ids.sort())
  })
})
