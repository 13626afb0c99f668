import {expect} from 'chai'
import {readdirSync} from 'node:fs'
import {join} from 'node:path'

import {DEFINITION_MODULES, ROOT, run, type RunResult, tempHome} from '../helpers.js'

/**
 * The in-process tier (`run`) stands in for the built CLI in most command tests: it must answer
 * exactly as a process does, and know every command.
 */
describe('commands run in-process', () => {
  it('knows every module of command definitions', () => {
    const files = readdirSync(join(ROOT, 'src', 'cli', 'defs')).filter((name) => name.endsWith('.ts'))
    expect(Object.keys(DEFINITION_MODULES).sort()).to.deep.equal(files.map((name) => name.replace(/\.ts$/, '')).sort())
  })

  it('gives the same exit code, stdout and stderr as the built CLI', async () => {
    const inProcess = tempHome()
    const processes = tempHome()
    const cases: {args: string[]; input?: string}[] = [
      {args: ['publish', 'q', 'hello']},
      {args: ['publish', 'q', '--lines'], input: 'a\nb\n'},
      {args: ['queue', 'stats', 'q']},
      {args: ['consume', 'q', '-n', '2']},
      {args: ['consume', 'missing']},
      {args: ['consume', 'missing', '--json']},
      {args: ['publish', 'bad name', 'x']},
      {args: ['publish', 'q', '--priority', 'high', 'x']},
      {args: ['--json', 'queue', 'list']},
      {args: ['ack', 'not-a-receipt']},
      {args: ['trigger', 'order.created', '--data', '{"id": 1}', '--json']},
    ]
    const strip = (r: RunResult) => ({code: r.code, stdout: r.stdout.replace(/"(publishedAt|time|createdAt|seq)":[^,}]+/g, ''), stderr: r.stderr})
    for (const {args, input} of cases) {
      const expected = strip(await run(args, {home: processes, input}))
      const actual = strip(await run(args, {home: inProcess, input}))
      expect(actual, args.join(' ')).to.deep.equal(expected)
    }
  })
})
