import {expect} from 'chai'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import type {Broker} from '../../src/core/broker.js'
import {openBroker, parseBrokerUrl} from '../../src/core/open-broker.js'
import {jsonLines, mq, start, tempHome, waitFor} from '../helpers.js'
import {freePort, type NatsServer, requireNatsServer, startNatsServer} from '../nats-server.js'

/**
 * Three nats-servers with routes on loopback, one replicated queue. nats-server 2.9 takes several
 * seconds to elect leaders (longer on a busy machine): every wait here is a polled condition with
 * a generous limit, never a fixed delay.
 */
describe('a 3-node NATS cluster (real servers)', function () {
  this.timeout(240_000)
  const servers: NatsServer[] = []
  let home: string
  let all: string
  const brokers: Broker[] = []

  before(async function () {
    const binary = requireNatsServer(this)
    const routes = await Promise.all([0, 1, 2].map(() => freePort()))
    const routeList = routes.map((port) => `nats://127.0.0.1:${port}`).join(',')
    for (const [i, port] of routes.entries()) {
      servers.push(
        await startNatsServer({
          binary,
          name: `n${i + 1}`,
          args: ['--cluster_name', 'mqtest', '--cluster', `nats://127.0.0.1:${port}`, '--routes', routeList],
        }),
      )
    }
    all = `nats://${servers.map((s) => `127.0.0.1:${s.port}`).join(',')}`
    home = tempHome()
    // JetStream answers once the cluster has its meta leader.
    await waitFor(
      async () =>
        (
          await mq(['queue', 'create', 'work', '--replicas', '3', '--max-deliveries', '20'], {
            home,
            env: {MQ_URL: all},
            timeoutMs: 30_000,
          })
        ).code === 0,
      'a replicated queue',
      120_000,
      500,
    )
  })
  after(async () => {
    for (const broker of brokers) await broker.close().catch(() => {})
    await Promise.all(servers.map((s) => s.stop('SIGKILL')))
  })

  const via = (i: number) => ({home, env: {MQ_URL: `nats://127.0.0.1:${servers[i].port}`}, timeoutMs: 60_000})
  const open = (url: string) => {
    const broker = openBroker(parseBrokerUrl(url))
    brokers.push(broker)
    return broker
  }

  it('publish through one server, receive through a second, ack through the third', async () => {
    expect((await mq(['publish', 'work', 'hello'], via(0))).code).to.equal(0)
    const got = await mq(['consume', 'work', '--ack', 'manual', '--json', '--wait', '20s'], via(1))
    const [delivery] = jsonLines<{body: string; receipt: string}>(got.stdout)
    expect(delivery.body).to.equal('hello')
    const acked = await mq(['ack', delivery.receipt], via(2))
    expect(acked.code, acked.stderr).to.equal(0)
    expect(JSON.parse((await mq(['queue', 'stats', 'work', '--json'], via(0))).stdout).depth).to.equal(0)
  })

  it('SIGKILL of the stream leader under load: every acknowledged publish is handled, and an older receipt still settles', async () => {
    const control = open(all)
    await control.publish('work', [{body: 'held'}])
    const [held] = await control.receive('work', {max: 1, autoAck: false, visibilityTimeoutMs: 600_000, waitMs: 20_000})
    expect(held.body).to.equal('held')

    const handled = join(home, 'handled')
    writeFileSync(handled, '')
    const workers = [0, 1].map(() =>
      start(['consume', 'work', '-f', '--exec', `body=$(cat); echo "$body" >> "${handled}"`, '--parallel', '2'], {
        home,
        // Workers wait out the election however long nats-server 2.9 takes on a loaded runner
        // (no failover budget for long-running commands).
        env: {MQ_URL: all},
        timeoutMs: 200_000,
      }),
    )
    const acknowledged: string[] = []
    let stop = false
    const publisher = async (id: number) => {
      const broker = open(all)
      for (let i = 0; !stop && i < 400; i++) {
        const body = `p${id}-${i}`
        try {
          await broker.publish('work', [{body}])
          acknowledged.push(body)
        } catch {
          // Not acknowledged (the leader died under it): no promise was made for it.
        }
      }
    }
    const publishing = [publisher(1), publisher(2)]
    await waitFor(() => acknowledged.length >= 20, '20 acknowledged publishes', 60_000)

    const info = (await (control as unknown as {describe(): Promise<unknown>}).describe()) as {
      server: {servers: number}
    }
    expect(info.server.servers).to.equal(3)
    const leader = await streamLeader(all)
    const victim = servers.find((s) => s.name === leader)!
    await victim.stop('SIGKILL')
    await waitFor(() => acknowledged.length >= 60, '40 more acknowledged publishes after the failover', 120_000)
    stop = true
    await Promise.all(publishing)

    const lines = () => new Set(readFileSync(handled, 'utf8').split('\n').filter(Boolean))
    try {
      await waitFor(
        () => acknowledged.every((body) => lines().has(body)),
        `all ${acknowledged.length} acknowledged messages handled`,
        120_000,
        200,
      )
    } catch (error) {
      const missing = acknowledged.filter((body) => !lines().has(body))
      const stats = await mq(['queue', 'stats', 'work', '--json'], {home, env: {MQ_URL: all}})
      for (const worker of workers) worker.kill('SIGKILL')
      await Promise.all(workers.map((w) => w.done))
      throw new Error(
        `${(error as Error).message}; missing ${missing.join(' ')}; stats ${stats.stdout} ${stats.stderr}; workers: ${workers.map((w) => w.stderr.slice(-800)).join(' | ')}`,
      )
    }
    for (const worker of workers) worker.kill('SIGINT')
    await Promise.all(workers.map((w) => w.done))
    expect(await control.ack([held.receipt!])).to.deep.equal(['ok'])
  })
})

async function streamLeader(url: string): Promise<string> {
  const {connect} = await import('@nats-io/transport-node')
  const nc = await connect({servers: url.replace('nats://', '').split(',')})
  try {
    const reply = await nc.request('$JS.API.STREAM.INFO.MQ_Q_work', '', {timeout: 10_000})
    const info = JSON.parse(new TextDecoder().decode(reply.data)) as {cluster?: {leader?: string}}
    if (!info.cluster?.leader) throw new Error(`no stream leader: ${JSON.stringify(info)}`)
    return info.cluster.leader
  } finally {
    await nc.close()
  }
}
