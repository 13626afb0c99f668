import {expect} from 'chai'
import {readFileSync} from 'node:fs'
import {join, resolve} from 'node:path'

import {InvalidInputError} from '../../src/core/errors.js'
import {parseBrokerUrl, selectBroker} from '../../src/core/open-broker.js'
import {mq, ROOT, tempHome} from '../helpers.js'

describe('broker selection', () => {
  const env = {HOME: '/home/u', XDG_DATA_HOME: '/data'}

  it('precedence: --broker > MQ_URL > --home / MQ_HOME > the per-user folder', () => {
    expect(selectBroker({}, env).target).to.deep.equal({kind: 'file', home: resolve('/data/mqctl')})
    expect(selectBroker({}, {...env, MQ_HOME: '/a'}).target).to.deep.equal({kind: 'file', home: '/a'})
    expect(selectBroker({homeFlag: '/b'}, {...env, MQ_HOME: '/a'}).target).to.deep.equal({kind: 'file', home: '/b'})
    const viaEnv = selectBroker({homeFlag: '/b'}, {...env, MQ_URL: 'nats://n1:4222'})
    expect(viaEnv.target.kind).to.equal('nats')
    // The folder still holds what stays local (rules, journal, daemon files).
    expect(viaEnv.home).to.equal('/b')
    const viaFlag = selectBroker({brokerFlag: 'file:/c'}, {...env, MQ_URL: 'nats://n1:4222'})
    expect(viaFlag).to.deep.equal({target: {kind: 'file', home: '/c'}, home: '/c'})
  })

  it('--broker together with --home is a usage error', () => {
    expect(() => selectBroker({brokerFlag: 'nats://n1', homeFlag: '/b'}, env)).to.throw(
      InvalidInputError,
      /--broker and --home/,
    )
  })

  it('reads server lists, credentials, creds files and prefixes, and hides secrets', () => {
    const target = parseBrokerUrl('nats://bob:p%40ss@h1:4222,h2?prefix=team1')
    expect(target).to.deep.include({
      kind: 'nats',
      servers: ['h1:4222', 'h2:4222'],
      user: 'bob',
      pass: 'p@ss',
      prefix: 'team1',
    })
    expect((target as {display: string}).display).to.equal('nats://bob:***@h1:4222,h2:4222?prefix=team1')
    const token = parseBrokerUrl('nats://s3cret@127.0.0.1:4333?creds=/etc/mq.creds', 'other')
    expect(token).to.deep.include({token: 's3cret', credsFile: '/etc/mq.creds', prefix: 'other'})
    expect((token as {display: string}).display).to.not.include('s3cret')
  })

  it('refuses what it cannot read, with the URL forms', () => {
    for (const bad of [
      'amqp://h:x',
      'amqp://h?colour=red',
      'amqp://h?management=ftp://m',
      'redis://h',
      'nats://',
      'nats://h:x',
      'nats://h?colour=red',
      'file:',
      'nats://h?prefix=a.b',
    ]) {
      expect(() => parseBrokerUrl(bad), bad).to.throw(InvalidInputError)
    }
  })

  for (const [driver, library] of [
    ['NATS', '"@nats-io/'],
    ['AMQP', '"amqplib"'],
  ]) {
    it(`the fast launcher reaches the ${driver} client only through importLazily (file-broker commands never load it)`, () => {
      const text = readFileSync(join(ROOT, 'dist', 'fast', 'launcher.cjs'), 'utf8') // run `npm run build` first
      const mentions = text.split(library).length - 1
      expect(mentions).to.be.at.least(1)
      expect(text.split(`importLazily(${library}`).length - 1).to.equal(mentions)
    })
  }

  it('a publish loads only its own driver: the folder never loads amqplib or the NATS client, amqp:// never loads SQLite', async () => {
    const home = tempHome()
    const env = {NODE_DEBUG: 'module'} // Node names every module it loads on stderr
    const local = await mq(['publish', 'q', 'm'], {home, env})
    expect(local.code).to.equal(0)
    expect(local.stderr).to.include('better_sqlite3.node')
    expect(local.stderr).to.not.match(/amqplib|@nats-io/)
    // Nothing listens on port 1: the connection is refused at once, after amqplib was loaded.
    const remote = await mq(['publish', 'q', 'm', '--broker', 'amqp://guest:guest@127.0.0.1:1'], {home, env})
    expect(remote.code).to.not.equal(0)
    expect(remote.stderr).to.include('amqplib')
    expect(remote.stderr).to.not.include('better_sqlite3.node')
  })
})
