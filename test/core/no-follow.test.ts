import {expect} from 'chai'
import {spawnSync} from 'node:child_process'
import {readdirSync, readFileSync, symlinkSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {writeNoFollow} from '../../src/core/no-follow.js'
import {tempHome} from '../helpers.js'

/** A pid that surely belongs to no running process: one of a child that has exited. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], {encoding: 'utf8'}).stdout.trim())
}

describe('writing broker-folder files (no-follow.ts)', () => {
  it('puts the text in place whole and leaves no temporary behind', () => {
    const folder = tempHome()
    writeNoFollow(join(folder, 'daemon.state'), 'one')
    writeNoFollow(join(folder, 'daemon.state'), 'two')
    expect(readFileSync(join(folder, 'daemon.state'), 'utf8')).to.equal('two')
    expect(readdirSync(folder)).to.deep.equal(['daemon.state'])
  })

  it('removes temporaries a killed writer left, not those of a running one', () => {
    const folder = tempHome()
    const dead = `daemon.state.${deadPid()}.3.tmp`
    const running = `daemon.state.${process.ppid}.1.tmp` // the test runner's parent is alive
    const other = `daemon.token.${deadPid()}.1.tmp` // another file's: left to its own writer
    for (const name of [dead, running, other]) writeFileSync(join(folder, name), 'half')
    writeNoFollow(join(folder, 'daemon.state'), 'whole')
    expect(readdirSync(folder).sort()).to.deep.equal(['daemon.state', other, running].sort())
  })

  it('refuses a symbolic link in the file’s place', () => {
    const folder = tempHome()
    symlinkSync(join(folder, 'elsewhere'), join(folder, 'daemon.state'))
    expect(() => writeNoFollow(join(folder, 'daemon.state'), 'x')).to.throw(/is a symbolic link/)
  })
})
