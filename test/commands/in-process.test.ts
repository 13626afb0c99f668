import {expect} from 'chai'
import {readdirSync} from 'node:fs'
import {join} from 'node:path'

import {DEFINITION_MODULES, mq, ROOT, run, type RunResult, tempHome} from '../helpers.js'

/**
 * The in-process tier (`run`) stands in for the built CLI in most command tests: it must answer
 * exactly as a process does, and know every command.
 */
describe('commands run in-process', () => {
  it('knows every module of command definitions', () => {
    const files = readdirSync(join(ROOT, 'src', 'cli', 'defs')).filter((name) => name.endsWith('.ts'))
    expect(Object.keys(DEFINITION_MODULES).sort()).to.deep.equal(files.map((name) => name.replace(/\.ts$/, '')).sort())
  })

  it('gives the same exit code, stdout and stderr as the built CLI', async function () {
    this.timeout(120_000) // twenty CLI processes, one after the other, on a busy machine
    const inProcess = tempHome()
    const processes = tempHome()
    const cases: {args: string[]; input?: string}[] = [
      {args: ['publish', 'q', 'hello']},
      {args: ['publish', 'q', '--lines'], input: 'a\nb\n'},
      {args: ['queue', 'peek', 'q', '--json']},
      {args: ['consume', 'q', '-n', '2']},
      {args: ['consume', 'missing']},
      {args: ['consume', 'missing', '--json']},
      {args: ['publish', 'bad name', 'x']},
      {args: ['publish', 'q', '--priority', 'high', 'x']},
      {args: ['--json', 'queue', 'list']},
      {args: ['ack', 'not-a-receipt']},
      {args: ['trigger', 'order.created', '--data', '{"id": 1}', '--json']},
      // What the fast parser hands to oclif, and commands only oclif parses.
      {args: ['consume', 'q', '--nope']},
      {args: ['nack', 'r1', '--delay']},
      {args: ['--json', 'publish', 'q', 'x', '--ttl', 'soon']},
      {args: ['queue', 'create', 'other', '--max-length', 'x']},
      {args: ['queue', 'stats', 'q', 'extra']},
      {args: ['rule', 'add', 'r', '--type', 't', '--log']},
      {args: ['rule', 'list', '--json']},
      {args: ['daemon', 'status']},
    ]
    const strip = (r: RunResult, home: string) => ({
      code: r.code,
      stdout: r.stdout.replace(/"(publishedAt|time|createdAt|seq|id|durationMs)":[^,}]+/g, ''),
      stderr: r.stderr.replaceAll(home, 'HOME'),
    })
    for (const {args, input} of cases) {
      const expected = strip(await mq(args, {home: processes, input}), processes)
      const actual = strip(await run(args, {home: inProcess, input}), inProcess)
      expect(actual, args.join(' ')).to.deep.equal(expected)
    }
  })
})
