// The parsing floor of `mq rule match` (issue 12): read a file of JSON Lines in 64 KiB chunks, as
// mq does, and JSON.parse every line; nothing else. `node bench/floor-json.js FILE` prints the count.
import {closeSync, openSync, readSync} from 'node:fs'

const fd = openSync(process.argv[2], 'r')
const buffer = Buffer.alloc(64 * 1024)
let pending = ''
let count = 0
for (;;) {
  const read = readSync(fd, buffer, 0, buffer.length, null)
  if (read === 0) break
  const text = pending + buffer.toString('utf8', 0, read)
  const end = text.lastIndexOf('\n')
  pending = end === -1 ? text : text.slice(end + 1)
  if (end === -1) continue
  for (const line of text.slice(0, end).split('\n')) if (line !== '' && JSON.parse(line)) count++
}
if (pending !== '' && JSON.parse(pending)) count++
closeSync(fd)
console.log(count)
