#!/usr/bin/env node
// npm run bench [-- --quick] [-- queues …]: prints figures and ratios; never fails on timing.
import {cpus} from 'node:os'

import {benchAmqp} from './amqp.js'
import {benchBulk} from './bulk.js'
import {benchDaemon} from './daemon.js'
import {benchEngine} from './engine.js'
import {benchFlow} from './flow.js'
import {benchNats} from './nats.js'
import {benchPacing} from './pacing.js'
import {benchQueues} from './queues.js'
import {benchStorage} from './storage.js'
import {benchTopics} from './topics.js'

const SUITES = {
  queues: benchQueues,
  topics: benchTopics,
  flow: benchFlow,
  pacing: benchPacing,
  engine: benchEngine,
  daemon: benchDaemon,
  storage: benchStorage,
  nats: benchNats,
  amqp: benchAmqp,
  bulk: benchBulk,
}
const args = process.argv.slice(2)
const quick = args.includes('--quick')
const chosen = args.filter((a) => !a.startsWith('--'))
const names = chosen.length > 0 ? chosen : Object.keys(SUITES)

console.log(
  `mqctl benchmarks — node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}${quick ? ' (quick)' : ''}`,
)
for (const name of names) {
  if (!SUITES[name]) {
    console.error(`unknown suite ${name}; choose from ${Object.keys(SUITES).join(', ')}`)
    process.exit(2)
  }
  await SUITES[name]({quick})
}
