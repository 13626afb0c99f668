import {expect} from 'chai'
import {type ChildProcess, spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {chmodSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync} from 'node:fs'
import {createConnection, type Socket} from 'node:net'
import {dirname, join} from 'node:path'

import {isProcessAlive} from '../../src/core/process-alive.js'
import {
  daemonHttp,
  daemonStart,
  daemonStatus,
  mq,
  ROOT,
  run,
  sleep,
  start,
  startDaemon,
  stopDaemon,
  tempHome,
  waitFor,
} from '../helpers.js'

const NOBODY = 65_534
const asRoot = process.getuid?.() === 0

/** Plain node processes a test started (fake servers, lock holders), killed after it. */
const helpers = new Set<ChildProcess>()

function node(code: string, args: string[], options: {uid?: number; gid?: number} = {}) {
  const child = spawn(process.execPath, ['-e', code, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    uid: options.uid,
    gid: options.gid,
  })
  helpers.add(child)
  const output = {stdout: '', stderr: '', child}
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (output.stdout += text))
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (output.stderr += text))
  return output
}

/**
 * A server run as user `nobody` on `path` that answers every request line like a daemon would
 * ("published, id fake") and prints what it received. Inline code: `nobody` cannot read files in
 * the test's private temp folders.
 */
async function fakeDaemon(path: string) {
  const code = `
    const net = require('node:net')
    net.createServer((socket) => {
      socket.on('data', (data) => {
        process.stdout.write('got: ' + data.toString())
        for (const line of data.toString().split('\\n').filter(Boolean)) {
          try { socket.write(JSON.stringify({id: JSON.parse(line).id, result: [{id: 'fake'}]}) + '\\n') } catch {}
        }
      })
    }).listen(process.argv[1], () => console.log('listening'))
  `
  const fake = node(code, [path], {uid: NOBODY, gid: NOBODY})
  await waitFor(() => fake.stdout.includes('listening') || fake.child.exitCode !== null, `a fake daemon on ${path}`)
  expect(fake.stdout, fake.stderr).to.include('listening')
  return fake
}

/** A temp folder like /tmp (sticky, writable by all), so the test can play another user in it. */
function sharedTemp(): string {
  const folder = tempHome('mq-shared-tmp-')
  chmodSync(folder, 0o1777)
  return folder
}

/** A broker folder whose path is too long for a socket in it. */
function deepHome(parent: string): string {
  const home = join(parent, 'a-broker-folder-with-a-long-name'.repeat(3), 'and-deeper-still')
  mkdirSync(home, {recursive: true, mode: 0o700})
  expect(join(home, 'daemon.sock').length).to.be.greaterThan(108)
  return home
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

  afterEach(() => {
    for (const child of helpers) child.kill('SIGKILL')
    helpers.clear()
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
    expect((await daemonStatus(home))!.pid).to.equal(pid)
    expect((await daemonStatus(home))!.counts.published).to.equal(1)
    expect((await run(['consume', 'jobs'], {home})).stdout).to.equal('still served\n')
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
    expect((await daemonStatus(home))!.pid).to.equal(pid)
  })

  describe('its socket', () => {
    before(function () {
      if (!asRoot) this.skip() // playing another user takes root
    })

    it('a deep folder: a look-alike socket another user bound in the shared temp folder gets nothing', async () => {
      const shared = sharedTemp()
      const env = {TMPDIR: shared}
      const home = deepHome(shared)
      // Where the socket of a deep folder used to go: predictable, in the shared temp folder.
      const predicted = join(shared, `mqctl-0-${createHash('sha256').update(home).digest('hex').slice(0, 16)}.sock`)
      const fake = await fakeDaemon(predicted)

      const published = await mq(['publish', 'jobs', 'secret'], {home, env})
      expect(published.code, published.stderr).to.equal(0)
      expect((await mq(['consume', 'jobs'], {home, env})).stdout).to.equal('secret\n')

      const running = await startDaemon(home, {env})
      expect(running.socket).to.not.equal(predicted)
      const folder = statSync(dirname(running.socket))
      expect(folder.uid).to.equal(0)
      expect(folder.mode & 0o777).to.equal(0o700)
      const through = await mq(['publish', 'jobs', 'secret through the daemon'], {home, env})
      expect(through.code, through.stderr).to.equal(0)
      expect((await daemonStatus(home, env))!.counts.published).to.equal(1)
      expect((await mq(['consume', 'jobs'], {home, env})).stdout).to.equal('secret through the daemon\n')
      expect(fake.stdout).to.not.include('got:')
    })

    it('a socket folder another user made first is refused by the daemon and by clients', async () => {
      const shared = sharedTemp()
      const env = {TMPDIR: shared}
      const home = deepHome(shared)
      // Another user makes the folder the socket would go in, open to all, and binds a socket there.
      const folder = join(shared, 'mqctl-0')
      const made = node(
        `require('node:fs').mkdirSync(process.argv[1], {mode: 0o777}); require('node:fs').chmodSync(process.argv[1], 0o777)`,
        [folder],
        {uid: NOBODY, gid: NOBODY},
      )
      await waitFor(() => made.child.exitCode !== null, 'the folder to be made')
      expect(statSync(folder).uid).to.equal(NOBODY)
      const fake = await fakeDaemon(
        join(folder, `${createHash('sha256').update(home).digest('hex').slice(0, 16)}.sock`),
      )

      const published = await mq(['publish', 'jobs', 'secret'], {home, env})
      expect(published.code, published.stderr).to.equal(0)
      expect((await mq(['consume', 'jobs'], {home, env})).stdout).to.equal('secret\n')
      expect(fake.stdout).to.not.include('got:')

      const refused = await daemonStart(home, {env})
      expect(refused.code).to.equal(1)
      expect(refused.stderr).to.match(
        /refusing to put the daemon's socket in .*mqctl-0: .* belongs to another user \(uid 65534\)/,
      )
      expect(await daemonStatus(home, env)).to.equal(undefined)
    })

    it('a socket in the broker folder owned by another user is not spoken to', async () => {
      const home = tempHome()
      chmodSync(home, 0o777) // a folder others can write to, as a shared one might be
      const fake = await fakeDaemon(join(home, 'daemon.sock'))
      const published = await run(['publish', 'jobs', 'secret'], {home})
      expect(published.code, published.stderr).to.equal(0)
      expect(fake.stdout).to.not.include('got:')
      expect((await run(['consume', 'jobs'], {home})).stdout).to.equal('secret\n')
    })
  })

  describe('links in the broker folder', () => {
    /** A file outside the broker folder, and a link to it in the folder in place of `name`. */
    function plant(home: string, name: string) {
      const outside = join(tempHome('mq-outside-'), 'precious.txt')
      const content = 'a file outside the broker folder, long enough to pass for a token\n'
      writeFileSync(outside, content, {mode: 0o644})
      chmodSync(outside, 0o644)
      symlinkSync(outside, join(home, name))
      return {
        untouched() {
          expect(readFileSync(outside, 'utf8'), `${name}: the target's content`).to.equal(content)
          expect(statSync(outside).mode & 0o777, `${name}: the target's mode`).to.equal(0o644)
        },
      }
    }

    const refused = (result: {code: number | null; stderr: string}, name: string) => {
      expect(result.code, result.stderr).to.equal(1)
      expect(result.stderr).to.include(`${name} is a symbolic link: mqctl does not follow links in the broker folder`)
    }

    it('changes.signal: a commit refuses it rather than write through it', async () => {
      const home = tempHome()
      expect((await run(['queue', 'create', 'jobs'], {home})).code).to.equal(0)
      rmSync(join(home, 'changes.signal'), {force: true})
      const target = plant(home, 'changes.signal')
      refused(await run(['publish', 'jobs', 'x'], {home}), 'changes.signal')
      target.untouched()
    })

    for (const name of ['daemon.log', 'daemon.token', 'daemon.pid', 'daemon.json']) {
      it(`${name}: the daemon does not start, and nothing is written through it`, async () => {
        const home = tempHome()
        expect((await run(['queue', 'create', 'jobs'], {home})).code).to.equal(0)
        const target = plant(home, name)
        refused(await daemonStart(home), name)
        target.untouched()
        expect(await daemonStatus(home)).to.equal(undefined)
      })
    }

    it('daemon.log: `daemon logs` does not read through it', async () => {
      const home = tempHome()
      plant(home, 'daemon.log')
      const logs = await run(['daemon', 'logs'], {home})
      refused(logs, 'daemon.log')
      expect(logs.stdout).to.equal('')
    })

    it('.rules.json.tmp (where the rules document is written first): a rules edit refuses it', async () => {
      const home = tempHome()
      const target = plant(home, '.rules.json.tmp')
      refused(await run(['rule', 'add', 'r', '--type', 'x', '--action', '{"type":"log"}'], {home}), '.rules.json.tmp')
      target.untouched()
    })

    it('rules.json.lock: a rules edit refuses it at once', async () => {
      const home = tempHome()
      const target = plant(home, 'rules.json.lock')
      const added = await run(['rule', 'add', 'r', '--type', 'x', '--action', '{"type":"log"}'], {home})
      refused(added, 'rules.json.lock')
      target.untouched()
    })
  })

  it('daemon start waits for a daemon that is busy on the write lock, and tells the truth', async () => {
    const home = tempHome()
    const {pid, socket} = await startDaemon(home)
    // Another process holds the broker's write lock until told to let go.
    const holder = node(
      `const db = new (require(process.argv[1]))(process.argv[2]); db.exec('BEGIN IMMEDIATE'); console.log('locked')
       setInterval(() => {}, 1000); process.on('SIGUSR1', () => { db.exec('COMMIT'); process.exit(0) })`,
      [join(ROOT, 'node_modules', 'better-sqlite3'), join(home, 'broker.db')],
    )
    await waitFor(() => holder.stdout.includes('locked'), 'the lock holder')
    // The daemon's next write blocks it (for up to its 10 s busy timeout): wait until a request goes unanswered.
    const probe = new RawClient(socket)
    await waitFor(
      async () => {
        const before = probe.replies.length
        probe.socket.write('{"id":1,"op":"status"}\n')
        try {
          await waitFor(() => probe.replies.length > before, 'an answer', 500)
          return false
        } catch {
          return true
        }
      },
      'the daemon to be blocked on the lock',
      20_000,
    )
    probe.socket.destroy()

    const again = start(['daemon', 'start', '--json'], {home})
    // The lock is held until start has answered: the daemon is free only between its busy
    // timeouts (10 s), which start's window (30 s) must wait for.
    await Promise.race([again.done, sleep(45_000)])
    holder.child.kill('SIGUSR1')
    const result = await again.done
    expect(result.code, result.stderr).to.equal(0)
    expect(JSON.parse(result.stdout).pid).to.equal(pid)
    expect((await daemonStatus(home))!.pid).to.equal(pid)
  })

  // One daemon for these tests: each uses its own event ids and queues.
  describe('HTTP', () => {
    let home: string
    let http: ReturnType<typeof daemonHttp>
    before(async () => {
      home = tempHome()
      http = daemonHttp(home, await startDaemon(home))
    })
    after(() => stopDaemon(home))
    const post = (path: string, body: string, headers: Record<string, string> = {}) =>
      http(path, {method: 'POST', body, headers})
    const event = (id: string, data: unknown) =>
      JSON.stringify({specversion: '1.0', id, source: 'test', type: 'web.x', data})

    it('an event nested 20,000 deep gets 400 alone; 90 valid events sent with it are all accepted', async () => {
      // Written out by hand: JSON.stringify itself cannot nest that deep.
      const deep = event('deep', 0).replace('"data":0', `"data":${'['.repeat(20_000)}${']'.repeat(20_000)}`)
      const structured = {'content-type': 'application/cloudevents+json'}
      const responses = await Promise.all([
        post('/events', deep, structured),
        ...Array.from({length: 90}, (_, i) => post('/events', event(`ok-${i}`, {i}), structured)),
      ])
      const [bad, ...good] = responses
      expect(bad.status).to.equal(400)
      expect(((await bad.json()) as {error: {message: string}}).error.message).to.match(/nested deeper than \d+ levels/)
      expect(good.map((r) => r.status)).to.deep.equal(Array.from({length: 90}, () => 202))
      const listed = JSON.parse((await run(['events', 'list', '--json', '--limit', '1000'], {home})).stdout) as {
        event: {id: string}
      }[]
      const ids = listed.map((e) => e.event.id)
      expect(ids.filter((id) => id.startsWith('ok-'))).to.have.length(90)
      expect(ids).to.not.include('deep')
    })

    it('header values are read as UTF-8 (Zürich stays Zürich); bad UTF-8 in one is 400', async () => {
      // What curl sends from a UTF-8 terminal: the UTF-8 bytes (fetch puts each char of this string on the wire as one byte).
      const utf8 = Buffer.from('Zürich').toString('latin1')
      const created = await post('/queues/cities/messages', 'hello', {'mq-header-city': utf8})
      expect(created.status, await created.clone().text()).to.equal(201)
      const peeked = await run(['queue', 'peek', 'cities', '--json'], {home})
      expect(JSON.parse(peeked.stdout).headers).to.deep.equal({city: 'Zürich'})
      const latin1 = await post('/queues/cities/messages', 'hello', {'mq-header-city': 'Z\u00fcrich'}) // one byte 0xFC: not UTF-8
      expect(latin1.status).to.equal(400)
      expect(((await latin1.json()) as {error: {message: string}}).error.message).to.match(
        /header mq-header-city is not valid UTF-8/,
      )
    })

    it('?priority= must be an integer: empty or text is 400, nothing stored', async () => {
      for (const query of ['priority=', 'priority=abc', 'priority=1.5', 'priority=%20']) {
        const response = await post(`/queues/jobs/messages?${query}`, 'x')
        expect(response.status, query).to.equal(400)
        expect(((await response.json()) as {error: {message: string}}).error.message, query).to.match(/priority/)
      }
      expect((await post('/queues/jobs/messages?priority=3', 'x')).status).to.equal(201)
      expect(JSON.parse((await run(['queue', 'stats', 'jobs', '--json'], {home})).stdout).depth).to.equal(1)
    })
  })
})
