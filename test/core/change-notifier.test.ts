import {expect} from 'chai'
import {spawn} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import {getEventListeners} from 'node:events'
import {join} from 'node:path'

import {ChangeNotifier, SIGNAL_FILE} from '../../src/core/file-broker/change-notifier.js'
import {ROOT, tempHome} from '../helpers.js'

/** A commit's signal, as Sql.signal writes it. */
function signal(folder: string): void {
  writeFileSync(join(folder, SIGNAL_FILE), '.')
}

/** A notifier on `folder` with its watch started (the first wait starts it and returns at once). */
async function watching(folder: string): Promise<ChangeNotifier> {
  const notifier = new ChangeNotifier(folder)
  await notifier.wait(notifier.mark(), 0)
  return notifier
}

describe('change notifier', () => {
  it('a wait ends at the next signal; what ended waits leave behind does not pile up on the caller’s signal', async () => {
    const folder = tempHome()
    const notifier = await watching(folder)
    const abort = new AbortController()
    try {
      for (let round = 0; round < 50; round++) {
        const waited = notifier.wait(notifier.mark(), 60_000, abort.signal)
        signal(folder)
        await waited
        // The wait under way holds one listener; those of the waits before it were let go.
        expect(getEventListeners(abort.signal, 'abort').length).to.be.at.most(1)
      }
      // An abort still ends a wait at once.
      const waited = notifier.wait(notifier.mark(), 60_000, abort.signal)
      abort.abort()
      await waited
    } finally {
      notifier.close()
    }
    expect(getEventListeners(abort.signal, 'abort')).to.deep.equal([])
  })

  it('a wait ended by a signal keeps no process alive: the process exits without its timer running out', async () => {
    const folder = tempHome()
    // The child waits up to a minute, is woken by the signal written below, and then has nothing
    // left to do: it must exit now (the test's own timeout is 30 s).
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        `import('./src/core/file-broker/change-notifier.ts').then(async ({ChangeNotifier}) => {
           const notifier = new ChangeNotifier(process.argv[1])
           await notifier.wait(notifier.mark(), 0)
           const waited = notifier.wait(notifier.mark(), 60_000)
           console.log('waiting')
           await waited
           console.log('woken')
         })`,
        folder,
      ],
      {cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit']},
    )
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk
      if (output === 'waiting\n') signal(folder)
    })
    const code = await new Promise((resolve) => child.on('exit', resolve))
    expect([code, output]).to.deep.equal([0, 'waiting\nwoken\n'])
  })
})
