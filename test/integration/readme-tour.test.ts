import {expect} from 'chai'
import {spawnSync} from 'node:child_process'
import {chmodSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {BIN, ROOT, shell, tempHome} from '../helpers.js'

/**
 * The README's tour, read from README.md itself so this test breaks when the README drifts: every
 * ```sh block from "## A five-minute tour" up to "## The daemon" (blocks marked ```sh terminal need
 * a person at a terminal and are left out), run top to bottom in one shell with `set -e`, on an
 * empty broker, in a folder holding the programs and files the tour names.
 */
export function tourBlocks(readme: string): string[] {
  const start = readme.indexOf('\n## A five-minute tour\n')
  const end = readme.indexOf('\n## The daemon (optional)\n')
  expect(start, 'the tour heading').to.be.above(-1)
  expect(end, 'the heading after the tour').to.be.above(start)
  return [...readme.slice(start, end).matchAll(/\n```sh\n([\s\S]*?)\n```/g)].map((match) => match[1])
}

describe('the README tour', function () {
  this.timeout(180_000)

  before(function () {
    for (const tool of ['jq', 'bash']) {
      if (spawnSync(tool, ['--version']).status !== 0) {
        if (process.env.CI) expect.fail(`${tool} is needed for the README tour`)
        this.skip()
      }
    }
  })

  it('runs top to bottom without an error', async () => {
    const blocks = tourBlocks(readFileSync(join(ROOT, 'README.md'), 'utf8'))
    expect(blocks.length).to.be.at.least(6)
    const home = tempHome()
    const folder = tempHome('mq-tour-')
    // What the tour's commands name: programs that read a body or an event on stdin, an event file,
    // sample events for `rule test` and `rule match`.
    for (const program of ['resize.sh', 'bill.sh', 'work.sh', 'deploy.sh']) {
      writeFileSync(
        join(folder, program),
        `#!/bin/sh\ncat > /dev/null\necho "${program} $*" >> "$(dirname "$0")/ran.txt"\n`,
      )
      chmodSync(join(folder, program), 0o755)
    }
    const merged = {
      specversion: '1.0',
      id: 'e-1',
      source: 'git',
      type: 'git.merged',
      data: {branch: 'main', sha: 'abc123'},
    }
    writeFileSync(join(folder, 'event.json'), JSON.stringify({...merged, id: 'e-2'}))
    mkdirSync(join(folder, 'test', 'events'), {recursive: true})
    writeFileSync(join(folder, 'test', 'events', 'merged-main.json'), JSON.stringify(merged))
    writeFileSync(join(folder, 'events.jsonl'), `${JSON.stringify(merged)}\n`)

    const script = ['set -e -o pipefail', `mq() { "${process.execPath}" "${BIN}" "$@"; }`, 'set -x', ...blocks].join(
      '\n',
    )
    writeFileSync(join(folder, 'tour.sh'), script)
    const result = await shell(`exec bash ./tour.sh`, {home, cwd: folder, timeoutMs: 170_000})
    expect(result.code, `the tour stopped:\n${result.stderr.split('\n').slice(-15).join('\n')}`).to.equal(0)
    // The programs ran: the worker, the subscription's --exec and the rule's exec action.
    const ran = readFileSync(join(folder, 'ran.txt'), 'utf8')
    expect(ran).to.include('resize.sh').and.include('bill.sh').and.include('work.sh').and.include('deploy.sh 9f2c1e')
  })
})
