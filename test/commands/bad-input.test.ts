import {expect} from 'chai'
import {chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {expectOneLineError, jsonLines, run, tempHome, worldReadableCli} from '../helpers.js'

async function depth(home: string, queue: string): Promise<number> {
  const out = await run(['queue', 'stats', queue, '--json'], {home})
  return out.code === 0 ? JSON.parse(out.stdout).depth : -1
}

describe('bad input (CLI)', () => {
  let home: string
  beforeEach(() => {
    home = tempHome()
  })

  it('bad names: exit 2, nothing created', async () => {
    for (const name of ['a..b', 'has space', '.lead', 'x'.repeat(201), 'sémantique', 'a/b']) {
      expectOneLineError(await run(['publish', name, 'x'], {home}), 2, /name/)
    }
    expect((await run(['queue', 'list', '--json'], {home})).stdout.trim()).to.equal('')
  })

  it('unknown flags and bad flag values: exit 2 with a pointer to --help', async () => {
    expectOneLineError(await run(['publish', 'q', 'x', '--bogus'], {home}), 2, /--help/)
    expectOneLineError(await run(['consume', 'q', '--wait', 'soon'], {home}), 2, /invalid --wait "soon"/)
    expectOneLineError(await run(['consume', 'q', '-n', '0'], {home}), 2, /--count must be at least 1/)
    expectOneLineError(await run(['consume', 'q', '--ack', 'sometimes'], {home}), 2, /--ack/)
    expectOneLineError(await run(['nosuchcommand'], {home}), 2, /nosuchcommand/)
  })

  it('a body over the limit: exit 2, nothing stored', async () => {
    await run(['queue', 'create', 'small', '--max-body-size', '1KiB'], {home})
    expectOneLineError(
      await run(['publish', 'small', 'x'.repeat(1025)], {home}),
      2,
      /1025 bytes, over the 1024-byte limit/,
    )
    expectOneLineError(await run(['publish', 'small'], {home, input: 'y'.repeat(5000)}), 2, /over the 1024-byte limit/)
    expect(await depth(home, 'small')).to.equal(0)
    // the default limit is 1 MiB
    expectOneLineError(
      await run(['publish', 'big'], {home, input: Buffer.alloc(1024 * 1024 + 1, 97)}),
      2,
      /over the 1048576-byte limit/,
    )
  })

  it('a line over the limit in --lines names the line and publishes nothing from the file', async () => {
    await run(['queue', 'create', 'small', '--max-body-size', '10'], {home})
    const file = join(home, 'lines.txt')
    writeFileSync(file, 'ok\nfine\n' + 'z'.repeat(11) + '\nafter\n')
    const result = await run(['publish', 'small', '--lines'], {home, input: readFileSync(file)})
    expectOneLineError(result, 2, /^error: line 3: body is 11 bytes/)
    expect(await depth(home, 'small')).to.equal(0)
  })

  it('a malformed --envelopes line is named, and nothing from the batch is published', async () => {
    const good = JSON.stringify({body: 'a', headers: {k: 'v'}})
    for (const [bad, why] of [
      ['{"body": "unterminated', /line 2: malformed JSON/],
      ['{"headers": {}}', /line 2: "body" must be a string/],
      ['{"body": "x", "headers": {"n": 1}}', /line 2: header "n" must be a string/],
      ['[1,2]', /line 2: not a JSON object/],
    ] as const) {
      const result = await run(['publish', 'env', '--envelopes'], {home, input: `${good}\n${bad}\n${good}\n`})
      expectOneLineError(result, 2, why)
    }
    expect(await depth(home, 'env')).to.equal(-1)
  })

  it('binary (invalid UTF-8) bodies are refused', async () => {
    expectOneLineError(
      await run(['publish', 'q'], {home, input: Buffer.from([0xff, 0xfe, 0x00, 0x80])}),
      2,
      /not valid UTF-8/,
    )
    expectOneLineError(
      await run(['publish', 'q', '--lines'], {home, input: Buffer.from([0x61, 0x0a, 0xc3, 0x28, 0x0a])}),
      2,
      /not valid UTF-8/,
    )
  })

  it('an empty body is one empty message, from stdin as from an argument', async () => {
    expect((await run(['publish', 'q'], {home, input: ''})).code).to.equal(0)
    expect((await run(['publish', 'q', ''], {home})).code).to.equal(0)
    const envelopes = jsonLines((await run(['consume', 'q', '-n', '2', '--json'], {home})).stdout)
    expect(envelopes.map((envelope) => envelope.body)).to.deep.equal(['', ''])
  })

  it('odd header names are refused', async () => {
    expectOneLineError(await run(['publish', 'q', 'x', '-H', 'novalue'], {home}), 2, /key=value/)
    expectOneLineError(await run(['publish', 'q', 'x', '-H', 'bad name=1'], {home}), 2, /header name/)
  })

  it('using a queue where a topic is expected is exit 2, naming what it is', async () => {
    await run(['publish', 'jobs', 'x'], {home})
    expectOneLineError(await run(['publish', 'jobs', 'y', '--topic'], {home}), 2, /jobs is a queue, not a topic/)
  })

  it('with --json, errors are a JSON object on stderr', async () => {
    const result = await run(['publish', 'a..b', 'x', '--json'], {home})
    expect(result.code).to.equal(2)
    const {error} = JSON.parse(result.stderr)
    expect(error.code).to.equal('invalid_input')
    expect(error.message).to.match(/empty segment/)
  })

  it('a missing queue name without a terminal is exit 2, not a prompt', async () => {
    expectOneLineError(await run(['consume'], {home}), 2, /missing queue/)
    expectOneLineError(await run(['queue', 'stats'], {home}), 2, /missing queue/)
  })

  it('a corrupted broker.db: exit 1, and the file is left alone', async () => {
    writeFileSync(join(home, 'broker.db'), Buffer.alloc(4096, 7))
    expectOneLineError(await run(['publish', 'q', 'x'], {home}), 1, /not a broker database/)
    expect(readFileSync(join(home, 'broker.db'))).to.deep.equal(Buffer.alloc(4096, 7))
  })

  it('a broker.db damaged inside (valid header, garbage pages): exit 1', async () => {
    await run(['publish', 'q', '--lines'], {home, input: 'x\n'.repeat(2000)})
    const file = join(home, 'broker.db')
    const bytes = readFileSync(file)
    bytes.fill(0x5a, 100, bytes.length) // keep the 100-byte header, wreck the rest
    writeFileSync(file, bytes)
    for (const extra of readdirSync(home).filter((f) => f !== 'broker.db')) writeFileSync(join(home, extra), '')
    const result = await run(['consume', 'q'], {home})
    expectOneLineError(result, 1, /corrupt|not a broker/)
  })

  it('a foreign SQLite database is not a broker: exit 1, and it is left exactly as it was', async () => {
    const {default: Database} = await import('better-sqlite3')
    const file = join(home, 'broker.db')
    const db = new Database(file)
    db.exec('CREATE TABLE accounts (id INTEGER)')
    db.close()
    chmodSync(file, 0o644)
    const before = readFileSync(file)
    for (const command of [
      ['queue', 'list'],
      ['publish', 'q', 'x'],
      ['consume', 'q'],
    ]) {
      expectOneLineError(await run(command, {home}), 1, /not an mqctl broker/)
    }
    expect(statSync(file).mode & 0o777).to.equal(0o644)
    expect(readFileSync(file)).to.deep.equal(before) // still in rollback-journal mode, not switched to WAL
    expect(readdirSync(home)).to.deep.equal(['broker.db'])
  })

  it('a broker folder on a pseudo-filesystem (/proc): exit 1 at once, no hang', async function () {
    if (!existsSync('/proc/self')) this.skip()
    for (const folder of ['/proc/self/mq-broker', '/proc/1/mq/broker']) {
      expectOneLineError(
        await run(['queue', 'list'], {home: folder, timeoutMs: 60_000}),
        1,
        /cannot create the broker folder/,
      )
    }
  })

  it('a home that is a file: exit 1', async () => {
    const file = join(home, 'plain-file')
    writeFileSync(file, '')
    expectOneLineError(await run(['publish', 'q', 'x'], {home: file}), 1, /is not a folder/)
  })

  it('an unwritable broker folder: exit 1 with a next step', async function () {
    if (process.getuid?.() !== 0) {
      chmodSync(home, 0o500)
      expectOneLineError(await run(['publish', 'q', 'x'], {home}), 1, /not writable|cannot create/)
      return
    }
    // As root permissions are not enforced, so run the CLI as nobody against a folder it may only read.
    const folder = join(home, 'ro')
    mkdirSync(folder)
    await run(['publish', 'q', 'kept'], {home: folder})
    chmodSync(home, 0o755)
    chownSync(folder, 65534, 65534)
    chmodSync(folder, 0o500)
    for (const file of readdirSync(folder)) {
      chownSync(join(folder, file), 65534, 65534)
      chmodSync(join(folder, file), 0o400)
    }
    const result = await run(['publish', 'q', 'x'], {home: folder, uid: 65534, gid: 65534, bin: worldReadableCli()})
    expectOneLineError(result, 1, /not writable/)
    chmodSync(folder, 0o700)
    for (const file of readdirSync(folder)) chmodSync(join(folder, file), 0o600)
    expect(await depth(folder, 'q')).to.equal(1)
  })
})
