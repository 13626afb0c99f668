// HTTP load generator for bench/daemon.js, run as its own process: POSTs structured CloudEvents
// to the daemon with `concurrency` requests in flight for `seconds`, and prints how many got 202.
import {Agent, request} from 'node:http'

const [port, token, concurrency, seconds] = process.argv.slice(2).map((v, i) => (i === 1 ? v : Number(v)))
const agent = new Agent({keepAlive: true, maxSockets: Number(concurrency)})
const deadline = Date.now() + Number(seconds) * 1000
let accepted = 0
let failed = 0
let n = 0
function post() {
  return new Promise((resolve) => {
    const body = JSON.stringify({
      specversion: '1.0',
      id: `load-${process.pid}-${n++}`,
      source: 'bench',
      type: 'load.test',
      data: {n},
    })
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/events',
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/cloudevents+json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        res.resume()
        res.on('end', () => {
          if (res.statusCode === 202) accepted++
          else failed++
          resolve()
        })
      },
    )
    req.on('error', () => {
      failed++
      resolve()
    })
    req.end(body)
  })
}
const started = Date.now()
await Promise.all(
  Array.from({length: Number(concurrency)}, async () => {
    while (Date.now() < deadline) await post()
  }),
)
process.stdout.write(JSON.stringify({accepted, failed, ms: Date.now() - started}) + '\n')
agent.destroy()
