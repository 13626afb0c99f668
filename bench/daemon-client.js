// A load-generating client for bench/daemon.js, run as its own process: publishes `count` messages
// one at a time (each waits until it is durable), directly on the folder or through the daemon.
// It prints "ready" once connected, starts on a line on stdin, and prints its elapsed time.
import {DaemonClient} from '../dist/core/daemon/client.js'
import {FileBroker} from '../dist/core/file-broker/index.js'

const [mode, home, count, queue] = process.argv.slice(2)
const publisher = mode === 'daemon' ? await DaemonClient.connect(home) : new FileBroker(home)
if (!publisher) throw new Error('no daemon')
process.stdout.write('ready\n')
await new Promise((resolve) => process.stdin.once('data', resolve))
const started = performance.now()
for (let i = 0; i < Number(count); i++) await publisher.publish(queue, [{body: `m${i}`}], {})
process.stdout.write(`${performance.now() - started}\n`)
process.stdin.destroy()
if (mode === 'daemon') publisher.close()
else await publisher.close()
