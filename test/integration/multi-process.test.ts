import {expect} from 'chai'
import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'

import {jsonLines, mq, run, start, tempHome, waitFor} from '../helpers.js'

describe('many processes on one broker folder (no daemon)', function () {
  this.timeout(120_000)

  it('4 publishers and 4 --exec workers: every message processed exactly once, none lost', async () => {
    const home = tempHome()
    const log = join(home, 'processed.log')
    const streamed = 40 // per publisher, through one `publish --lines`
    const singles = 5 // per publisher, one `mq publish` process each, while the streams run
    // Each command appends the body as one line with a single write (O_APPEND keeps it whole).
    const workers = Array.from({length: 4}, () =>
      start(['consume', 'work', '-f', '--parallel', '2', '--exec', `body=$(cat); echo "$body" >> ${log}`], {home}),
    )
    const publishers = Array.from({length: 4}, async (_, p) => {
      const lines = Array.from({length: streamed}, (_, i) => `p${p}-line-${i}`).join('\n') + '\n'
      const stream = mq(['publish', 'work', '--lines'], {home, input: lines})
      const codes: (number | null)[] = []
      for (let i = 0; i < singles; i++) codes.push((await mq(['publish', 'work', `p${p}-single-${i}`], {home})).code)
      return [(await stream).code, ...codes]
    })
    for (const codes of await Promise.all(publishers)) expect(new Set(codes)).to.deep.equal(new Set([0]))

    const total = 4 * (streamed + singles)
    const processedLines = () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [])
    await waitFor(() => processedLines().length >= total, `${total} processed messages`)
    await waitFor(
      async () => JSON.parse((await run(['queue', 'stats', 'work', '--json'], {home})).stdout).depth === 0,
      'an empty queue',
    )
    // A worker the others left nothing to may still be starting on a busy machine: signal each
    // once it waits for commits (its interrupt handling is set up before its first receive).
    await Promise.all(workers.map((worker) => worker.watching()))
    for (const worker of workers) worker.kill('SIGTERM')
    const exits = await Promise.all(workers.map((w) => w.done))
    expect(exits.map((e) => e.code)).to.deep.equal([130, 130, 130, 130])

    const processed = processedLines()
    const expected = Array.from({length: 4}, (_, p) => [
      ...Array.from({length: streamed}, (_, i) => `p${p}-line-${i}`),
      ...Array.from({length: singles}, (_, i) => `p${p}-single-${i}`),
    ]).flat()
    expect(processed.length).to.equal(total)
    expect([...processed].sort()).to.deep.equal([...expected].sort())
    const stats = JSON.parse((await run(['queue', 'stats', 'work', '--json'], {home})).stdout)
    expect(stats.totals).to.deep.include({published: total, acked: total, deadLettered: 0})
  })

  it('competing consumers without --exec each get disjoint messages', async () => {
    const home = tempHome()
    await run(['publish', 'q', '--lines'], {home, input: Array.from({length: 2000}, (_, i) => `m${i}`).join('\n')})
    const consumers = Array.from({length: 4}, () =>
      mq(['consume', 'q', '-n', '2000', '--json', '--ack', 'manual'], {home}),
    )
    const outputs = await Promise.all(consumers)
    const bodies = outputs.flatMap((o) => jsonLines(o.stdout).map((e) => e.body as string))
    expect(bodies.length).to.equal(2000)
    expect(new Set(bodies).size).to.equal(2000)
  })
})
