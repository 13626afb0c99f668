// The storage floor for the queue benchmarks (issue 12): bare better-sqlite3 on mqctl's own schema
// and settings (WAL, synchronous=FULL), doing the statements mqctl does and nothing else: no
// validation, no output, no CLI. The broker folder must exist with the queue created (mq queue create).
//   node bench/floor-storage.js publish HOME QUEUE FILE   one transaction per 64 KiB of lines, as
//                                                         `mq publish --lines < FILE` reads them
//   node bench/floor-storage.js consume HOME QUEUE N      DELETE … RETURNING, 1,000 rows a transaction
import {closeSync, openSync, readSync} from 'node:fs'
import {join} from 'node:path'

import Database from 'better-sqlite3'

const [mode, home, queue, arg] = process.argv.slice(2)
const db = new Database(join(home, 'broker.db'))
db.pragma('busy_timeout = 5000')
db.pragma('synchronous = FULL')
if (db.pragma('journal_mode', {simple: true}) !== 'wal') throw new Error('not a WAL database')
const destId = db.prepare("SELECT id FROM destinations WHERE name = ? AND kind = 'queue'").pluck().get(queue)
if (destId === undefined) throw new Error(`no queue ${queue} in ${home}`)

const counted = (column, by) => {
  db.prepare(`UPDATE destinations SET ${column} = ${column} + ? WHERE id = ?`).run(by, destId)
}

if (mode === 'publish') {
  const ROWS = 64
  const placeholders = (n) => Array(n).fill('(?, 0, 0, ?, ?, NULL, ?, ?, NULL)').join(', ')
  const insert = (n) =>
    db.prepare(
      `INSERT INTO messages (dest_id, state, priority, visible_at, published_at, expires_at, size, body, headers) VALUES ${placeholders(n)}`,
    )
  const full = insert(ROWS)
  const publish = db.transaction((lines) => {
    const now = Date.now()
    for (let start = 0; start < lines.length; start += ROWS) {
      const chunk = lines.slice(start, start + ROWS)
      const values = []
      for (const line of chunk) values.push(destId, now, now, Buffer.byteLength(line), line)
      ;(chunk.length === ROWS ? full : insert(chunk.length)).run(values)
    }
    counted('published_total', lines.length)
  })
  const fd = openSync(arg, 'r')
  const buffer = Buffer.alloc(64 * 1024)
  let pending = ''
  for (;;) {
    const read = readSync(fd, buffer, 0, buffer.length, null)
    if (read === 0) break
    const text = pending + buffer.toString('utf8', 0, read)
    const end = text.lastIndexOf('\n')
    if (end === -1) {
      pending = text
      continue
    }
    pending = text.slice(end + 1)
    publish.immediate(
      text
        .slice(0, end)
        .split('\n')
        .filter((line) => line !== ''),
    )
  }
  if (pending !== '') publish.immediate([pending])
  closeSync(fd)
} else if (mode === 'consume') {
  const take = db.prepare(
    `DELETE FROM messages WHERE id IN (
       SELECT id FROM messages WHERE dest_id = ? AND state = 0 ORDER BY priority DESC, id LIMIT ?)
     RETURNING id, body, headers, attempts + 1 AS attempts, published_at, priority, expires_at, ref_id`,
  )
  const batch = db.transaction((limit) => {
    const rows = take.all(destId, limit)
    counted('acked_total', rows.length)
    return rows
  })
  let left = Number(arg)
  while (left > 0) {
    const rows = batch.immediate(Math.min(1000, left))
    if (rows.length === 0) throw new Error(`queue ${queue} ran out with ${left} to go`)
    left -= rows.length
  }
} else {
  console.error('usage: floor-storage.js publish HOME QUEUE FILE | consume HOME QUEUE N')
  process.exit(2)
}
// Like mq's fast path, the connection is left open at exit: no checkpoint, the WAL stays.
