// The plain nats.js client doing what the mq commands do, for bench/nats.js to compare against:
//   node bench/nats-plain.js publish URL STREAM N < lines     (JetStream publish, acks awaited, pipelined)
//   node bench/nats-plain.js consume URL STREAM N             (pull batches, ack each)
//   node bench/nats-plain.js pull-ack URL STREAM N            (pull, then a confirmed ack per message)
import {createInterface} from 'node:readline'

import {connect} from '@nats-io/transport-node'

const [mode, url, stream, count] = process.argv.slice(2)
const n = Number(count)
const nc = await connect({servers: url.replace('nats://', '').split(',')})
const subject = `plain.${stream}`
const WINDOW = 512

if (mode === 'publish') {
  let inFlight = []
  for await (const line of createInterface({input: process.stdin})) {
    inFlight.push(nc.request(subject, line, {timeout: 10_000}))
    if (inFlight.length >= WINDOW) {
      await Promise.all(inFlight)
      inFlight = []
    }
  }
  await Promise.all(inFlight)
} else {
  let got = 0
  while (got < n) {
    const inbox = `_INBOX.${Math.random().toString(36).slice(2)}`
    const sub = nc.subscribe(inbox)
    const batch = Math.min(500, n - got)
    nc.publish(`$JS.API.CONSUMER.MSG.NEXT.${stream}.c`, JSON.stringify({batch, expires: 1e9}), {reply: inbox})
    const acks = []
    let left = batch
    for await (const m of sub) {
      if (m.headers?.code) break
      process.stdout.write(m.data)
      process.stdout.write('\n')
      if (mode === 'consume') nc.publish(m.reply, '+ACK')
      else acks.push(nc.request(m.reply, '+ACK', {timeout: 10_000}))
      got++
      if (--left === 0) break
    }
    sub.unsubscribe()
    await Promise.all(acks)
  }
  await nc.flush()
}
await nc.close()
