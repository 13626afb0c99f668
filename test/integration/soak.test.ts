import {expect} from 'chai'
import {spawn} from 'node:child_process'
import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {BIN, daemonStatus, run, sleep, start, startDaemon, tempHome, waitFor} from '../helpers.js'

/**
 * The timed soak (30 s of load) runs on its own schedule, with MQ_TEST_SOAK=1 (MQ_TEST_SOAK_MS
 * to change its length). Every `npm test` runs the same mix bounded by counts instead: it ends
 * when the work is done, however busy the machine, and checks the same accounting.
 */
const SOAK_MS = process.env.MQ_TEST_SOAK ? Number(process.env.MQ_TEST_SOAK_MS ?? 30_000) : 0
/** Lines each streaming publisher sends, and one-shot publish+trigger rounds, without the timed soak. */
const LINES = 100
const ROUNDS = 12

describe('soak: publishers, consumers and triggers through the daemon', function () {
  this.timeout(SOAK_MS + 180_000)

  const what = SOAK_MS
    ? `runs ${SOAK_MS / 1000} s`
    : `runs ${2 * LINES} streamed and ${ROUNDS} one-shot publishes and triggers`
  it(`${what} and every message and event is accounted for`, async () => {
    const home = tempHome()
    const consumed = join(home, 'consumed.log')
    writeFileSync(
      join(home, 'rules.json'),
      JSON.stringify({
        rules: [{name: 'ticks', pattern: {type: ['soak.tick']}, actions: [{type: 'file', path: 'ticks.jsonl'}]}],
      }),
    )
    await startDaemon(home)
    const consumers = [0, 1].map(() =>
      start(['consume', 'soak', '-f', '--parallel', '2', '--exec', `body=$(cat); echo "$body" >> ${consumed}`], {home}),
    )
    // Two streaming publishers, one line every 20 ms, each line its own request through the daemon.
    const streams = [0, 1].map(() => start(['publish', 'soak', '--lines'], {home, openStdin: true}))
    let sent = 0
    const expected: string[] = []
    const deadline = Date.now() + SOAK_MS
    const more = () => (SOAK_MS ? Date.now() < deadline : sent < LINES)
    const feeding = (async () => {
      while (more()) {
        for (const [index, stream] of streams.entries()) {
          const body = `stream${index}-${sent}`
          expected.push(body)
          stream.child.stdin!.write(`${body}\n`)
        }
        sent++
        await sleep(20)
      }
      for (const stream of streams) stream.child.stdin!.end()
    })()
    // A shell loop of one-shot publishes and triggers: a process per call, as scripts do.
    const until = SOAK_MS
      ? `end=$(( $(date +%s) + ${SOAK_MS / 1000} )); while [ $(date +%s) -lt $end ]`
      : `while [ $i -lt ${ROUNDS} ]`
    const loop = spawn(
      'sh',
      [
        '-c',
        `i=0; ${until}; do node ${BIN} publish soak "single-$i" > /dev/null || exit 1; node ${BIN} trigger soak.tick --data $i > /dev/null || exit 1; i=$((i+1)); done; echo $i`,
      ],
      {
        env: {...process.env, MQ_HOME: home},
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    )
    let loopOutput = ''
    loop.stdout!.on('data', (chunk) => (loopOutput += chunk))
    const loopCode = await new Promise<number | null>((resolve) => loop.on('exit', resolve))
    await feeding
    const streamResults = await Promise.all(streams.map((s) => s.done))
    expect(loopCode).to.equal(0)
    expect(streamResults.map((r) => r.code)).to.deep.equal([0, 0])
    const singles = Number(loopOutput.trim())
    for (let i = 0; i < singles; i++) expected.push(`single-${i}`)

    await waitFor(
      async () => JSON.parse((await run(['queue', 'stats', 'soak', '--json'], {home})).stdout).depth === 0,
      'the queue to drain',
    )
    await waitFor(
      () =>
        existsSync(consumed) && readFileSync(consumed, 'utf8').split('\n').filter(Boolean).length >= expected.length,
      'every message consumed',
    )
    await waitFor(
      async () =>
        JSON.parse((await run(['events', 'list', '--status', 'pending', '--json'], {home})).stdout).length === 0,
      'every event processed',
    )
    for (const consumer of consumers) consumer.kill('SIGTERM')
    await Promise.all(consumers.map((c) => c.done))

    const lines = readFileSync(consumed, 'utf8').split('\n').filter(Boolean)
    expect(lines.length, 'no message consumed twice').to.equal(expected.length)
    expect([...lines].sort()).to.deep.equal([...expected].sort())
    const ticks = readFileSync(join(home, 'ticks.jsonl'), 'utf8').trim().split('\n')
    expect(ticks).to.have.length(singles)
    const events = JSON.parse((await run(['events', 'list', '--json', '-n', '100000'], {home})).stdout)
    expect(events.filter((e: {status: string}) => e.status === 'done')).to.have.length(singles)
    expect((await daemonStatus(home))!.counts.eventsAccepted).to.equal(singles)
    if (SOAK_MS) expect(singles).to.be.greaterThan(10)
    else expect(singles).to.equal(ROUNDS)
  })
})
