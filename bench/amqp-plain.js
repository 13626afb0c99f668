// A plain amqplib client doing what the mq commands do, for bench/amqp.js to compare against:
//   node bench/amqp-plain.js publish URL QUEUE < lines   (durable queue, persistent messages, confirms awaited, windowed)
//   node bench/amqp-plain.js consume URL QUEUE N         (basic.consume with a prefetch, ack each, print the bodies)
import {createInterface} from 'node:readline'

import amqp from 'amqplib'

const [mode, url, queue, count] = process.argv.slice(2)
const WINDOW = 512
const PREFETCH = 500

const connection = await amqp.connect(url)
if (mode === 'publish') {
  const channel = await connection.createConfirmChannel()
  await channel.assertQueue(queue, {durable: true})
  let inFlight = []
  const confirmed = (body) =>
    new Promise((resolve, reject) =>
      channel.publish('', queue, Buffer.from(body), {persistent: true}, (error) => (error ? reject(error) : resolve())),
    )
  for await (const line of createInterface({input: process.stdin})) {
    inFlight.push(confirmed(line))
    if (inFlight.length >= WINDOW) {
      await Promise.all(inFlight)
      inFlight = []
    }
  }
  await Promise.all(inFlight)
  await channel.close()
} else if (mode === 'consume') {
  const n = Number(count)
  const channel = await connection.createChannel()
  await channel.prefetch(PREFETCH)
  let got = 0
  await new Promise((resolve) => {
    void channel.consume(queue, (message) => {
      if (!message || got >= n) return
      process.stdout.write(message.content)
      process.stdout.write('\n')
      channel.ack(message)
      if (++got === n) resolve()
    })
  })
  await channel.close() // after the acks: a channel's close-ok follows everything sent on it
} else {
  console.error(`unknown mode ${mode}`)
  process.exit(2)
}
await connection.close()
