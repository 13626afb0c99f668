import {expect} from 'chai'
import {chmodSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {StoreError} from '../../src/core/errors.js'
import {FileBroker} from '../../src/core/file-broker/index.js'
import {tempHome} from '../helpers.js'
import {brokerConformance} from './broker-conformance.js'

brokerConformance('file broker', async () => new FileBroker(tempHome()))

describe('FileBroker storage', () => {
  it('creates a private folder and database in WAL mode', async () => {
    const home = join(tempHome(), 'nested', 'broker')
    const broker = new FileBroker(home)
    await broker.publish('q', [{body: 'x'}])
    await broker.close()
    expect(statSync(home).mode & 0o777).to.equal(0o700)
    expect(statSync(join(home, 'broker.db')).mode & 0o777).to.equal(0o600)
    const header = readFileSync(join(home, 'broker.db'))
    expect(header.subarray(18, 20)).to.deep.equal(Buffer.from([2, 2])) // WAL read/write versions
  })

  it('closes idempotently', async () => {
    const broker = new FileBroker(tempHome())
    await broker.close()
    await broker.close()
  })

  it('refuses a file that is not a database, without touching it', () => {
    const home = tempHome()
    writeFileSync(join(home, 'broker.db'), 'definitely not sqlite')
    expect(() => new FileBroker(home)).to.throw(StoreError, /not a broker database/)
    expect(readFileSync(join(home, 'broker.db'), 'utf8')).to.equal('definitely not sqlite')
  })

  it('refuses a home that is a file', () => {
    const home = join(tempHome(), 'file')
    writeFileSync(home, '')
    expect(() => new FileBroker(home)).to.throw(StoreError, /not a folder/)
  })

  it('reopens an existing broker and keeps its messages', async () => {
    const home = tempHome()
    const a = new FileBroker(home)
    await a.publish('q', [{body: 'kept'}])
    await a.close()
    const b = new FileBroker(home)
    const [d] = await b.receive('q', {max: 1, autoAck: true})
    expect(d.body).to.equal('kept')
    await b.close()
  })

  it('reports a read-only folder as a store error', async function () {
    if (process.getuid?.() === 0) this.skip() // root ignores permissions; covered by the CLI test as another user
    const home = tempHome()
    chmodSync(home, 0o500)
    expect(() => new FileBroker(home)).to.throw(StoreError)
  })
})
