import {closeSync, constants, fstatSync, openSync, readSync, renameSync, rmSync, writeSync} from 'node:fs'

/**
 * Cache files: what is costly to make and cheap to read back (the fast launcher's compiled code,
 * src/cli/boot.ts; the rule index, src/core/engine/index-cache.ts). One format: a JSON header line
 * (what the payload was made from, its length, a CRC-32 of it), then the payload. A cache is only
 * an optimisation: one that is missing, made from something else, short, corrupt, not a regular
 * file, or open to others' writes is ignored (and made anew); failing to read or write one only
 * costs the work it would have saved.
 */

export type Crc32 = (data: Uint8Array) => number

interface Header {
  identity: unknown
  length: number
  crc: number
}

/**
 * The payload of `file` if it was made from `identity` (equal as JSON) and is intact, and the file
 * belongs to `owner` and no one else may write to it; else undefined. A link in its place is not
 * followed.
 */
export function readCacheFile(file: string, identity: unknown, owner: number, crc32: Crc32): Buffer | undefined {
  let data: Buffer
  try {
    const fd = openSync(file, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0))
    try {
      const stats = fstatSync(fd)
      if (!stats.isFile() || stats.uid !== owner || (stats.mode & 0o022) !== 0) return undefined
      // One read of the known size (readFileSync on a descriptor reads it in small pieces).
      data = Buffer.allocUnsafe(stats.size)
      let filled = 0
      while (filled < data.length) {
        const read = readSync(fd, data, filled, data.length - filled, filled)
        if (read === 0) return undefined // shorter than it said: being replaced, ignore it
        filled += read
      }
    } finally {
      closeSync(fd)
    }
  } catch {
    return undefined
  }
  try {
    const end = data.indexOf(10)
    if (end === -1 || end > 4096) return undefined
    const header = JSON.parse(data.toString('utf8', 0, end)) as Partial<Header>
    const payload = data.subarray(end + 1)
    const same =
      JSON.stringify(header.identity) === JSON.stringify(identity) &&
      header.length === payload.length &&
      header.crc === crc32(payload)
    return same ? payload : undefined
  } catch {
    return undefined
  }
}

/**
 * Writes the cache whole or not at all: a temporary file of this process (created with `mode`,
 * never through a link), then a rename over the old one. Never throws. `payload` is only made once
 * the temporary file is open: a folder that cannot be written to costs nothing more.
 */
export function writeCacheFile(
  file: string,
  identity: unknown,
  payload: () => Uint8Array,
  crc32: Crc32,
  mode: number,
): void {
  const temporary = `${file}.${process.pid}.tmp`
  let fd: number | undefined
  try {
    fd = openSync(temporary, 'wx', mode)
    const data = payload()
    const header: Header = {identity, length: data.length, crc: crc32(data)}
    writeAll(fd, Buffer.from(`${JSON.stringify(header)}\n`))
    writeAll(fd, data)
    closeSync(fd)
    fd = undefined
    renameSync(temporary, file)
  } catch {
    try {
      if (fd !== undefined) closeSync(fd)
      rmSync(temporary, {force: true})
    } catch {
      // Nothing more to undo: the cache is only an optimisation.
    }
  }
}

function writeAll(fd: number, data: Uint8Array): void {
  for (let written = 0; written < data.length;) written += writeSync(fd, data, written, data.length - written)
}
