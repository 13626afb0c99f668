import {expect} from 'chai'
import {appendFileSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import type {CloudEvent} from '../../../src/core/engine/cloudevents.js'
import {parseCron, parseSchedule, type Schedule} from '../../../src/core/engine/cron.js'
import type {EventTemplate, SourceSpec} from '../../../src/core/engine/rules.js'
import {
  LineSplitter,
  MAX_LINE_BYTES,
  nextSlot,
  type RunningSources,
  type SourceContext,
  type SourceStateStore,
  startSources,
} from '../../../src/core/engine/sources/index.js'
import {sleep, tempHome, waitFor} from '../../helpers.js'

/** Keeps state in memory, copied as a JSON file store would. */
class MemoryState implements SourceStateStore {
  readonly saved = new Map<string, unknown>()
  async load(name: string): Promise<unknown> {
    return structuredClone(this.saved.get(name))
  }
  async save(name: string, state: unknown): Promise<void> {
    this.saved.set(name, structuredClone(state))
  }
}

interface Harness {
  events: CloudEvent[]
  /** Emits to reject before accepting again, as an engine whose journal fails would. */
  failures: number
  /** How long each emit takes to resolve (a slow journal). */
  delayMs: number
  /** Emits begun, finished or not. */
  attempts: number
  logs: string[]
  state: MemoryState
  dir: string
  controller: AbortController
  start(sources: SourceSpec[], schedules?: Map<string, Schedule>): RunningSources
  /** `data` of the events so far. */
  data<T = Record<string, unknown>>(): T[]
}

const running: RunningSources[] = []

/** Sources writing to one temp folder and one in-memory state store, which restarts reuse. */
function harness(dir = tempHome('mq-sources-'), state = new MemoryState()): Harness {
  const h: Harness = {
    events: [],
    failures: 0,
    delayMs: 0,
    attempts: 0,
    logs: [],
    state,
    dir,
    controller: new AbortController(),
    start(sources, schedules = new Map()) {
      const ctx: SourceContext = {
        emit: async (event) => {
          h.attempts++
          if (h.delayMs > 0) await sleep(h.delayMs)
          if (h.failures > 0 && h.failures--) throw new Error('journal full')
          h.events.push(event)
        },
        state: h.state,
        signal: h.controller.signal,
        log: (line) => h.logs.push(line),
        baseDir: h.dir,
      }
      const started = startSources(sources, schedules, ctx)
      running.push(started)
      return started
    },
    data: <T>() => h.events.map((event) => event.data as T),
  }
  return h
}

const tick: EventTemplate = {type: 'test.tick'}

function scheduleSource(name: string, every: string, event: EventTemplate = tick): SourceSpec {
  return {name, type: 'schedule', every, event}
}

/** Schedules as rules validation makes them: parsed, by source name. */
function schedulesOf(...sources: SourceSpec[]): Map<string, Schedule> {
  const map = new Map<string, Schedule>()
  for (const s of sources)
    if (s.type === 'schedule') map.set(s.name, parseSchedule(s.every ? `every ${s.every}` : s.cron!))
  return map
}

const scheduledTimes = (h: Harness) => h.data<{scheduledAt: string}>().map((d) => Date.parse(d.scheduledAt))

describe('startSources', () => {
  afterEach(async () => {
    // A failed test must not leave sources running into the next one.
    await Promise.all(running.splice(0).map((sources) => sources.stop()))
  })

  describe('schedule', () => {
    it('fires an interval schedule repeatedly, without drift, until stopped', async () => {
      const h = harness()
      const spec = scheduleSource('ticker', '100ms', {type: 'test.tick', subject: 'nightly', data: {job: 'backup'}})
      const sources = h.start([spec], schedulesOf(spec))
      await waitFor(() => h.events.length >= 4, '4 ticks')
      await sources.stop()
      const count = h.events.length
      const times = scheduledTimes(h)
      // Each slot is the previous one plus whole intervals: timer lateness does not add up (a busy
      // machine may make it skip a slot, never shift the phase).
      for (let i = 1; i < times.length; i++) {
        expect(times[i] - times[i - 1]).to.be.above(0)
        expect((times[i] - times[i - 1]) % 100).to.equal(0)
      }
      expect(h.events[0]).to.include({type: 'test.tick', source: 'mqctl://sources/ticker', subject: 'nightly'})
      expect(h.events[0].data).to.deep.equal({job: 'backup', scheduledAt: new Date(times[0]).toISOString()})
      expect(h.state.saved.get('ticker')).to.deep.equal({lastFireAt: new Date(times.at(-1)!).toISOString()})
      await sleep(250)
      expect(h.events.length).to.equal(count)
    })

    it('fires a cron schedule at the slots it computes; data absent or not an object', async () => {
      const h = harness()
      // A cron-kind schedule on 150 ms slots: real cron slots are whole minutes, too slow for a test.
      const fast: Schedule = {
        kind: 'cron',
        cron: parseCron('* * * * *'),
        expression: '* * * * *',
        next: (after) => new Date((Math.floor(after.getTime() / 150) + 1) * 150),
      }
      const cron = (name: string, event: EventTemplate): SourceSpec => ({
        name,
        type: 'schedule',
        cron: '* * * * *',
        event,
      })
      const sources = h.start(
        [cron('bare', {type: 'test.cron'}), cron('text', {type: 'test.cron', data: 'hello'})],
        new Map([
          ['bare', fast],
          ['text', fast],
        ]),
      )
      await waitFor(() => h.events.length >= 6, '3 ticks of each')
      await sources.stop()
      const bySource = (name: string) => h.events.filter((e) => e.source === `mqctl://sources/${name}`)
      expect(bySource('text').map((e) => e.data)).to.deep.equal(bySource('text').map(() => 'hello'))
      const bare = bySource('bare')
      const slots = bare.map((e) => Date.parse((e.data as {scheduledAt: string}).scheduledAt))
      // Every event is for a slot of the schedule, in order, and fired no earlier than due.
      slots.forEach((slot, i) => {
        expect(slot % 150).to.equal(0)
        if (i > 0) expect(slot).to.be.above(slots[i - 1])
        expect(Date.parse(bare[i].time!)).to.be.at.least(slot)
      })
      expect(h.state.saved.get('bare')).to.deep.equal({lastFireAt: new Date(slots.at(-1)!).toISOString()})
    })

    it('computes the next cron slot from the last one, skipping slots missed while stopped', () => {
      const cron = parseSchedule('*/15 * * * *')
      const at = (time: string) => new Date(`2024-01-01T${time}Z`)
      expect(nextSlot(cron, at('00:07:00'), at('00:07:30')).toISOString()).to.equal(at('00:15:00').toISOString())
      // Three hours stopped: the next slot from now, not the 12 missed ones.
      expect(nextSlot(cron, at('00:15:00'), at('03:20:00')).toISOString()).to.equal(at('03:30:00').toISOString())
      // A slot due right now still fires.
      expect(nextSlot(cron, at('00:00:00'), at('00:15:00')).toISOString()).to.equal(at('00:15:00').toISOString())
      // The clock behind the last fire (a restart on a skewed clock) does not fire that slot again.
      expect(nextSlot(cron, at('00:15:00'), at('00:14:00')).toISOString()).to.equal(at('00:30:00').toISOString())
      const interval = parseSchedule('every 100ms')
      expect(nextSlot(interval, new Date(1_000), new Date(1_050)).getTime()).to.equal(1_100)
      expect(nextSlot(interval, new Date(1_000), new Date(5_432)).getTime()).to.equal(5_500)
    })

    it('does not fire a slot twice across a restart, nor catch up missed slots', async () => {
      const h = harness()
      const spec = scheduleSource('ticker', '200ms')
      let sources = h.start([spec], schedulesOf(spec))
      await waitFor(() => h.events.length >= 1, 'the first tick')
      await sources.stop()
      sources = h.start([spec], schedulesOf(spec))
      await waitFor(() => h.events.length >= 2, 'a tick after the restart')
      await sources.stop()
      const [first, second] = scheduledTimes(h)
      // A later slot in phase, not the first one again (a slow restart may skip one).
      expect(second - first).to.be.above(0)
      expect((second - first) % 200).to.equal(0)

      // Saved an hour ago: 18,000 slots were missed; only the next one (in phase) fires.
      const last = Date.now() - 3_600_000
      const later = harness(tempHome(), new MemoryState())
      await later.state.save('ticker', {lastFireAt: new Date(last).toISOString()})
      const started = Date.now()
      const resumed = later.start([spec], schedulesOf(spec))
      await waitFor(() => later.events.length >= 1, 'the next slot')
      await resumed.stop()
      // Catching up would fire slots from the past hour: every slot fired is one due from now on.
      for (const time of scheduledTimes(later)) {
        expect(time).to.be.at.least(started - 1)
        expect((time - last) % 200).to.equal(0)
      }
    })

    it('skips disabled sources and stops when the context signal aborts; stop() is idempotent', async () => {
      const h = harness()
      const on = scheduleSource('on', '100ms')
      const off = {...scheduleSource('off', '100ms'), enabled: false}
      const sources = h.start([on, off], schedulesOf(on, off))
      await waitFor(() => h.events.length >= 2, '2 ticks')
      h.controller.abort()
      await sleep(20)
      const count = h.events.length
      await sleep(250)
      expect(h.events.length).to.equal(count)
      expect(h.events.every((e) => e.source === 'mqctl://sources/on')).to.equal(true)
      await Promise.all([sources.stop(), sources.stop()])
      await sources.stop()
    })

    it('logs a schedule it cannot use instead of throwing', async () => {
      const h = harness()
      const sources = h.start([scheduleSource('zero', '0s')])
      await waitFor(() => h.logs.some((l) => l.startsWith('source zero:')), 'a log line')
      await sources.stop()
      expect(h.events).to.deep.equal([])
    })
  })

  describe('watch-file', () => {
    const lines = (h: Harness) => h.data<{line: string}>().map((d) => d.line)
    const tail = (path = 'app.log'): SourceSpec => ({
      name: 'tail',
      type: 'watch-file',
      path,
      event: {type: 'test.line'},
    })
    /** Resolves once the source has opened the file (it saves its starting offset). */
    const opened = (h: Harness) => waitFor(() => h.state.saved.has('tail'), 'the file to be opened')
    const savedOffset = (h: Harness) => (h.state.saved.get('tail') as {offset: number}).offset

    it('starts at the end, emits new lines in order, holds a partial line until its newline', async () => {
      const h = harness()
      const file = join(h.dir, 'app.log')
      writeFileSync(file, 'old 1\nold 2\n')
      h.start([tail()])
      await opened(h)
      appendFileSync(file, 'a\nb\r\nc')
      await waitFor(() => h.events.length >= 2, 'two lines')
      await sleep(100)
      expect(lines(h)).to.deep.equal(['a', 'b'])
      appendFileSync(file, 'd\n\n')
      await waitFor(() => h.events.length >= 4, 'the completed line')
      expect(lines(h)).to.deep.equal(['a', 'b', 'cd', ''])
      expect(h.events[0]).to.include({type: 'test.line', source: 'mqctl://sources/tail', subject: 'app.log'})
      expect(h.events[0].data).to.deep.equal({line: 'a', path: 'app.log'})
      await waitFor(() => savedOffset(h) === readFileSync(file).length, 'the offset saved')
    })

    it('resumes from the saved offset after a restart, without duplicates', async () => {
      const h = harness()
      const file = join(h.dir, 'app.log')
      writeFileSync(file, 'before\n')
      let sources = h.start([tail()])
      await opened(h)
      appendFileSync(file, 'one\n')
      await waitFor(() => h.events.length >= 1, 'one')
      appendFileSync(file, 'fo')
      await sleep(50)
      await sources.stop()
      appendFileSync(file, 'ur\nfive\n')
      sources = h.start([tail()])
      await waitFor(() => h.events.length >= 3, 'the lines written while stopped')
      appendFileSync(file, 'six\n')
      await waitFor(() => h.events.length >= 4, 'six')
      await sleep(50)
      expect(lines(h)).to.deep.equal(['one', 'four', 'five', 'six'])
    })

    it('reads a file replaced while stopped from its start', async () => {
      const h = harness()
      const file = join(h.dir, 'app.log')
      writeFileSync(file, 'x\n')
      const sources = h.start([tail()])
      await opened(h)
      await sources.stop()
      renameSync(file, `${file}.1`)
      writeFileSync(file, 'new 1\nnew 2\n')
      h.start([tail()])
      await waitFor(() => h.events.length >= 2, 'the new file')
      expect(lines(h)).to.deep.equal(['new 1', 'new 2'])
    })

    it('follows rotation by rename and re-create, finishing the old file first', async () => {
      const h = harness()
      const file = join(h.dir, 'app.log')
      writeFileSync(file, '')
      h.start([tail()])
      await opened(h)
      appendFileSync(file, 'a\n')
      await waitFor(() => h.events.length >= 1, 'a')
      renameSync(file, `${file}.1`)
      // The writer has not reopened yet: it still appends to the renamed file.
      appendFileSync(`${file}.1`, 'b\nlast without newline')
      writeFileSync(file, 'c\n')
      await waitFor(() => h.events.length >= 4, 'the lines of both files')
      appendFileSync(file, 'd\n')
      await waitFor(() => h.events.length >= 5, 'd')
      expect(lines(h)).to.deep.equal(['a', 'b', 'last without newline', 'c', 'd'])
      expect(h.logs.join('\n')).to.include('rotated')
    })

    it('starts over after a truncation', async () => {
      const h = harness()
      const file = join(h.dir, 'app.log')
      writeFileSync(file, 'old\n')
      h.start([tail()])
      await opened(h)
      appendFileSync(file, 'a\nb\n')
      await waitFor(() => h.events.length >= 2, 'a and b')
      writeFileSync(file, '')
      await waitFor(() => h.logs.some((l) => l.includes('truncated')), 'the truncation')
      appendFileSync(file, 'c\n')
      await waitFor(() => h.events.length >= 3, 'c')
      expect(lines(h)).to.deep.equal(['a', 'b', 'c'])
      await waitFor(() => savedOffset(h) === 2, 'the new offset saved')
    })

    it('waits for a missing file, then reads it from its start', async () => {
      const h = harness()
      h.start([tail()])
      await waitFor(() => h.logs.some((l) => l.includes('waiting for app.log')), 'the waiting log')
      writeFileSync(join(h.dir, 'app.log'), 'x\ny\n')
      await waitFor(() => h.events.length >= 2, 'the lines of the new file')
      expect(lines(h)).to.deep.equal(['x', 'y'])
    })

    it('waits for a missing folder too (fallback poll)', async () => {
      const h = harness()
      h.start([tail('logs/app.log')])
      await waitFor(() => h.logs.length > 0, 'the waiting log')
      mkdirSync(join(h.dir, 'logs'))
      writeFileSync(join(h.dir, 'logs', 'app.log'), 'hello\n')
      await waitFor(() => h.events.length >= 1, 'the line', 5_000)
      expect(h.events[0].data).to.deep.equal({line: 'hello', path: 'logs/app.log'})
      expect(h.events[0].subject).to.equal('logs/app.log')
    })

    it('follows a file whose folder is deleted and made again', async () => {
      const h = harness()
      mkdirSync(join(h.dir, 'logs'))
      writeFileSync(join(h.dir, 'logs', 'app.log'), '')
      h.start([tail('logs/app.log')])
      await opened(h)
      rmSync(join(h.dir, 'logs'), {recursive: true})
      await sleep(100)
      mkdirSync(join(h.dir, 'logs'))
      writeFileSync(join(h.dir, 'logs', 'app.log'), 'again\n')
      await waitFor(() => h.events.length >= 1, 'the line of the new file', 5_000)
      appendFileSync(join(h.dir, 'logs', 'app.log'), 'more\n')
      await waitFor(() => h.events.length >= 2, 'more', 5_000)
      expect(lines(h)).to.deep.equal(['again', 'more'])
    })

    it('logs an event the engine rejects and goes on', async () => {
      const h = harness()
      const file = join(h.dir, 'app.log')
      writeFileSync(file, '')
      h.start([tail()])
      await opened(h)
      h.failures = 1
      appendFileSync(file, 'lost\nkept\n')
      await waitFor(() => h.events.length >= 1, 'the next line')
      expect(lines(h)).to.deep.equal(['kept'])
      expect(h.logs.join('\n')).to.include('journal full')
      await waitFor(() => savedOffset(h) === 10, 'the offset past both lines')
    })

    it('lets an emit in flight finish on stop, saving the offset past it only', async () => {
      const h = harness()
      const file = join(h.dir, 'app.log')
      writeFileSync(file, '')
      let sources = h.start([tail()])
      await opened(h)
      h.delayMs = 200
      appendFileSync(file, 'a\nb\n')
      await waitFor(() => h.attempts === 1, 'the first emit to begin')
      await sources.stop()
      expect(lines(h)).to.deep.equal(['a'])
      expect(savedOffset(h)).to.equal(2)
      h.delayMs = 0
      sources = h.start([tail()])
      await waitFor(() => h.events.length >= 2, 'the rest after a restart')
      expect(lines(h)).to.deep.equal(['a', 'b'])
    })

    it('cuts a line longer than 1 MiB and logs it', async () => {
      const h = harness()
      const file = join(h.dir, 'app.log')
      writeFileSync(file, '')
      h.start([tail()])
      await opened(h)
      appendFileSync(file, `${'x'.repeat(MAX_LINE_BYTES + 10)}\nnext\n`)
      await waitFor(() => h.events.length >= 2, 'two lines')
      expect(lines(h).map((l) => l.length)).to.deep.equal([MAX_LINE_BYTES, 4])
      expect(h.logs.join('\n')).to.include('cut')
    })
  })

  describe('LineSplitter', () => {
    it('splits bytes fed one at a time, with CRLF and multi-byte characters', () => {
      const splitter = new LineSplitter()
      const input = Buffer.from('é1\r\n€\n\nrest')
      const out: {text: string; end: number}[] = []
      for (let i = 0; i < input.length; i++) out.push(...splitter.push(input.subarray(i, i + 1), i + 1))
      expect(out.map((l) => l.text)).to.deep.equal(['é1', '€', ''])
      expect(out.map((l) => l.end)).to.deep.equal([5, 9, 10])
      expect(splitter.committed).to.equal(10)
      expect(splitter.flush()).to.deep.equal({text: 'rest', end: 14})
    })

    it('cuts a long line on a character boundary and drops its rest', () => {
      const splitter = new LineSplitter(5)
      // é is 2 bytes: the first 5 bytes would split the third one.
      const out = splitter.push(Buffer.from('ééé\nok\n'), 10)
      expect(out).to.deep.equal([
        {text: 'éé', end: 4, cut: true},
        {text: 'ok', end: 10},
      ])
      expect(splitter.committed).to.equal(10)
    })
  })

  describe('poll-command', () => {
    /** Counts runs in runs.txt and prints value.txt (relative: the command runs in baseDir). */
    const poll = (every = '100ms', command = ['sh', '-c', 'echo run >> runs.txt; cat value.txt']): SourceSpec => ({
      name: 'poll',
      type: 'poll-command',
      command,
      every,
      event: {type: 'test.changed'},
    })
    /** Sets value.txt in one step (a rename): a poll never reads it half-written. */
    const setValue = (h: Harness, text: string) => {
      writeFileSync(join(h.dir, 'value.tmp'), text)
      renameSync(join(h.dir, 'value.tmp'), join(h.dir, 'value.txt'))
    }
    const runs = (h: Harness) => {
      try {
        return readFileSync(join(h.dir, 'runs.txt'), 'utf8').split('\n').length - 1
      } catch {
        return 0
      }
    }
    const afterRuns = async (h: Harness, more: number) => {
      const target = runs(h) + more
      await waitFor(() => runs(h) >= target, `${more} more runs`)
    }

    it('records a baseline, then emits on change only', async () => {
      const h = harness()
      setValue(h, 'a')
      h.start([poll()])
      await waitFor(() => h.state.saved.has('poll'), 'the baseline')
      await afterRuns(h, 2)
      expect(h.events).to.deep.equal([])
      setValue(h, 'b')
      await waitFor(() => h.events.length >= 1, 'the change')
      await afterRuns(h, 3)
      expect(h.data()).to.deep.equal([{output: 'b', previousOutput: 'a', exitCode: 0}])
      expect(h.events[0]).to.include({type: 'test.changed', source: 'mqctl://sources/poll'})
      const saved = h.state.saved.get('poll') as {hash: string; output: string}
      expect(saved.output).to.equal('b')
      expect(saved.hash).to.match(/^sha256:[0-9a-f]{64}$/)
    })

    it('compares with the saved output after a restart', async () => {
      const h = harness()
      setValue(h, 'a')
      let sources = h.start([poll()])
      await waitFor(() => h.state.saved.has('poll'), 'the baseline')
      await sources.stop()
      setValue(h, 'b')
      sources = h.start([poll()])
      await waitFor(() => h.events.length >= 1, 'the change made while stopped')
      expect(h.data()).to.deep.equal([{output: 'b', previousOutput: 'a', exitCode: 0}])
      await sources.stop()
      // Unchanged across a restart: nothing new.
      h.start([poll()])
      await afterRuns(h, 3)
      expect(h.events).to.have.length(1)
    })

    it('reports the exit code and logs a failing command once', async () => {
      const h = harness()
      setValue(h, 'a')
      // The interval is also the timeout: a short one, on a busy machine, would add "timed out" lines between.
      h.start([poll('1s', ['sh', '-c', 'echo run >> runs.txt; cat value.txt; echo oops >&2; exit 3'])])
      await waitFor(() => h.state.saved.has('poll'), 'the baseline')
      setValue(h, 'b')
      await waitFor(() => h.events.length >= 1, 'the change')
      expect(h.data()).to.deep.equal([{output: 'b', previousOutput: 'a', exitCode: 3}])
      expect(h.logs.filter((l) => l.includes('exited with 3: oops'))).to.have.length(1)
    })

    it('logs a missing executable instead of throwing', async () => {
      const h = harness()
      const sources = h.start([poll('100ms', ['./no-such-command', 'x'])])
      await waitFor(() => h.logs.some((l) => l.includes('could not start ./no-such-command')), 'the log line')
      await sleep(250)
      await sources.stop()
      expect(h.events).to.deep.equal([])
      expect(h.logs.filter((l) => l.includes('could not start'))).to.have.length(1)
    })

    it('kills a command that outlives its interval, and a running one on stop', async () => {
      const h = harness()
      let sources = h.start([poll('200ms', ['sleep', '5'])])
      await waitFor(() => h.logs.some((l) => l.includes('timed out after 200ms')), 'the timeout')
      await sources.stop()

      sources = h.start([poll('30s', ['sh', '-c', 'echo $$ > pid.txt; exec sleep 30'])])
      const pid = await waitFor(() => {
        try {
          return Number(readFileSync(join(h.dir, 'pid.txt'), 'utf8'))
        } catch {
          return 0
        }
      }, 'the command to start')
      // stop kills it (waiting for it to end would outlast the test's timeout)
      await sources.stop()
      expect(() => process.kill(pid, 0)).to.throw(/ESRCH/)
    })
  })
})
