import {Buffer, isUtf8} from 'node:buffer'
import {fstatSync, readFileSync, readSync} from 'node:fs'
import type {Readable} from 'node:stream'

import type {Headers, OutgoingMessage} from '../core/broker.js'
import {InvalidInputError} from '../core/errors.js'
import {newHeaders} from '../core/headers.js'
import {printable} from '../core/names.js'

/**
 * A regular file on stdin is read this much at a time: a file up to this size is one batch (a bad
 * line rejects all of it), a larger one streams in batches of this size, in constant memory.
 */
const FILE_CHUNK_BYTES = 64 * 1024
/** Largest body read from stdin before giving up (the per-queue limit is checked by the broker). */
const STDIN_BODY_LIMIT = 256 * 1024 * 1024 + 1

const strictUtf8 = () => new TextDecoder('utf-8', {fatal: true, ignoreBOM: true})

/** Decodes UTF-8, refusing invalid bytes with a usage error instead of storing mangled text. */
export function decodeUtf8(bytes: Uint8Array, what = 'body'): string {
  try {
    return strictUtf8().decode(bytes)
  } catch {
    throw new InvalidInputError(`${what} is not valid UTF-8 text`, {
      code: 'not_utf8',
      hint: 'message bodies are text: encode binary data first (e.g. `base64`)',
    })
  }
}

/**
 * Refuses text from the command line that was not valid UTF-8, as stdin is refused. Node decodes
 * argv lossily, so an invalid byte arrives as U+FFFD and the string alone cannot tell `$'\xff'`
 * from a genuine U+FFFD. On Linux the kernel keeps the raw bytes in /proc/self/cmdline: the text
 * passes when an argument holding it is valid UTF-8 there. Where that file does not exist, any
 * U+FFFD in an argument is refused (send such text on stdin, which is checked byte for byte).
 * @param what names the text in the error, e.g. `the body argument`
 */
export function checkArgumentUtf8(text: string, what: string): void {
  if (!text.includes('\uFFFD')) return
  const genuine = rawArguments()?.some((raw) => raw.toString('utf8').includes(text) && isUtf8(raw))
  if (genuine) return
  throw new InvalidInputError(`${what} is not valid UTF-8 text`, {
    code: 'not_utf8',
    hint: 'message text is UTF-8: encode binary data first (e.g. `base64`), or send it on stdin',
  })
}

function rawArguments(): Buffer[] | undefined {
  try {
    const bytes = readFileSync('/proc/self/cmdline')
    const args: Buffer[] = []
    for (let start = 0; start < bytes.length;) {
      const end = bytes.indexOf(0, start)
      args.push(bytes.subarray(start, end === -1 ? bytes.length : end))
      start = end === -1 ? bytes.length : end + 1
    }
    return args
  } catch {
    return undefined
  }
}

/** A command's stdin (Context): its stream, set up on first use, and fd 0 when it is the process's own. */
export interface Stdin {
  readonly stdin: Readable
  readonly stdinIsTTY: boolean
  readonly stdinFd?: number
}

/** Whether `fd` is a regular file. */
export function isRegularFile(fd: number | undefined): fd is number {
  if (fd === undefined) return false
  try {
    return fstatSync(fd).isFile()
  } catch {
    return false
  }
}

/**
 * A body read from stdin loses exactly one trailing newline (`\n` or `\r\n`), the one `echo` and
 * editors add, as `nats pub` and `kcat` do; `--raw` keeps it.
 */
export function withoutTrailingNewline(text: string): string {
  if (text.endsWith('\r\n')) return text.slice(0, -2)
  if (text.endsWith('\n')) return text.slice(0, -1)
  return text
}

/**
 * The value of a flag that takes text, `-` (stdin) or `@FILE` (a file, relative to the current
 * folder), as `curl --data` does.
 */
export async function readDataFlag(
  ctx: {stdin: Readable; stdinIsTTY: boolean},
  value: string,
  flag: string,
): Promise<{text: string; what: string; from: 'argument' | 'stdin' | 'file'}> {
  if (value === '-') {
    if (ctx.stdinIsTTY)
      throw new InvalidInputError(`${flag} - reads stdin, which is a terminal`, {
        code: 'usage',
        hint: `pipe the data in, or give it as ${flag} JSON`,
      })
    return {text: await readStdinBody(ctx.stdin), what: 'the data on stdin', from: 'stdin'}
  }
  if (value.startsWith('@')) {
    const path = value.slice(1)
    let bytes: Buffer
    try {
      bytes = readFileSync(path)
    } catch (error) {
      throw new InvalidInputError(
        `cannot read ${flag} file ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
        {hint: 'check the path'},
      )
    }
    return {text: decodeUtf8(bytes, path), what: path, from: 'file'}
  }
  checkArgumentUtf8(value, flag)
  return {text: value, what: flag, from: 'argument'}
}

/** Reads all of stdin as one UTF-8 body. */
export async function readStdinBody(stdin: Readable = process.stdin): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of stdin as AsyncIterable<Buffer>) {
    chunks.push(chunk)
    size += chunk.length
    if (size > STDIN_BODY_LIMIT)
      throw new InvalidInputError('body on stdin is over 256 MiB', {code: 'too_large', hint: 'send a smaller body'})
  }
  return decodeUtf8(Buffer.concat(chunks), 'body on stdin')
}

export interface LineBatch {
  lines: string[]
  /** The 1-based stdin line number of each entry of `lines`. */
  numbers: number[]
  /** The bytes of input read for this batch (its lines, their ends, blank lines before them). */
  bytes: number
}

/**
 * Yields stdin's lines in batches as they arrive: everything readable at once is one batch, so a
 * slow producer's lines go out one by one and a fast one's in large groups. A regular file is
 * read in chunks of {@link FILE_CHUNK_BYTES} (one batch each). Blank lines are skipped; a trailing
 * `\r` is removed.
 */
export async function* stdinLineBatches(input: Stdin): AsyncGenerator<LineBatch> {
  // A file is read by descriptor: no stream (and none of the modules a file stream loads).
  const fd = input.stdinFd
  yield* lineBatches(isRegularFile(fd) ? fileChunks(fd) : (input.stdin as AsyncIterable<Buffer>), 'stdin')
}

/**
 * The rest of an open regular file, in chunks of {@link FILE_CHUNK_BYTES} read synchronously
 * (several times faster than a read stream's asynchronous reads).
 */
export async function* fileChunks(fd: number): AsyncGenerator<Buffer> {
  for (;;) {
    const buffer = Buffer.allocUnsafe(FILE_CHUNK_BYTES)
    let filled = 0
    while (filled < buffer.length) {
      const read = readSync(fd, buffer, filled, buffer.length - filled, null)
      if (read === 0) break
      filled += read
    }
    if (filled === 0) return
    yield buffer.subarray(0, filled)
    if (filled < buffer.length) return
  }
}

/** Lines of a stream of chunks (a file, stdin), batched as in {@link stdinLineBatches}. */
export async function* lineBatches(chunks: AsyncIterable<Buffer>, what: string): AsyncGenerator<LineBatch> {
  const take = lineSplitter()
  // Split on the newline byte, which never occurs inside a multi-byte UTF-8 sequence, then check
  // and decode whole lines at once: much faster than a streaming TextDecoder.
  const decode = (bytes: Buffer): string => {
    if (isUtf8(bytes)) return bytes.toString('utf8')
    let line = take.lineNumber() + 1
    for (let start = 0; ; line++) {
      const end = bytes.indexOf(10, start)
      if (!isUtf8(bytes.subarray(start, end === -1 ? bytes.length : end)) || end === -1) break
      start = end + 1
    }
    throw new InvalidInputError(`line ${line} of ${what} is not valid UTF-8 text`, {
      code: 'not_utf8',
      hint: 'message bodies are text: encode binary data first (e.g. `base64`)',
    })
  }
  let pending: Buffer | undefined
  for await (const chunk of chunks) {
    const end = chunk.lastIndexOf(10)
    if (end === -1) {
      pending = pending ? Buffer.concat([pending, chunk]) : chunk
      continue
    }
    const complete = pending ? Buffer.concat([pending, chunk.subarray(0, end)]) : chunk.subarray(0, end)
    pending = end + 1 < chunk.length ? chunk.subarray(end + 1) : undefined
    const batch = take(decode(complete), complete.length + 1)
    if (batch) yield batch
  }
  const batch = pending === undefined ? undefined : take(decode(pending), pending.length)
  if (batch) yield batch
}

/** Splits text into numbered non-blank lines, counting on from the previous call. */
function lineSplitter(): ((text: string, bytes: number) => LineBatch | undefined) & {lineNumber(): number} {
  let lineNumber = 0
  /** Bytes of blank lines not yet counted in a batch. */
  let carried = 0
  const take = (text: string, bytes: number): LineBatch | undefined => {
    const raws = text.split('\n')
    let lines: string[] = []
    let numbers: number[] = []
    if (!text.includes('\r') && !raws.includes('')) {
      // The common text: no \r, no blank line. Its lines are the pieces, numbered in a row.
      lines = raws
      numbers = new Array<number>(raws.length)
      for (let i = 0; i < raws.length; i++) numbers[i] = ++lineNumber
    } else {
      for (const raw of raws) {
        lineNumber++
        const line = raw.charCodeAt(raw.length - 1) === 13 ? raw.slice(0, -1) : raw // a trailing \r
        if (line !== '') {
          lines.push(line)
          numbers.push(lineNumber)
        }
      }
    }
    if (lines.length === 0) {
      carried += bytes
      return undefined
    }
    const batch = {lines, numbers, bytes: carried + bytes}
    carried = 0
    return batch
  }
  return Object.assign(take, {lineNumber: () => lineNumber})
}

/**
 * Parses one `--envelopes` line: a JSON object as printed by `consume --json`; `body` (string) is
 * required, `headers` (strings) and `priority` optional, the delivery fields are ignored.
 */
export function parseEnvelope(line: string, lineNumber: number): OutgoingMessage {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch (error) {
    throw new InvalidInputError(`line ${lineNumber}: malformed JSON (${(error as Error).message})`, {
      code: 'bad_envelope',
      hint: 'each line must be one JSON object such as {"body":"…","headers":{}}',
    })
  }
  const bad = (why: string): never => {
    throw new InvalidInputError(`line ${lineNumber}: ${why}`, {
      code: 'bad_envelope',
      hint: 'expected {"body":"…","headers":{"k":"v"}}',
    })
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad('not a JSON object')
  const envelope = value as Record<string, unknown>
  if (typeof envelope.body !== 'string') bad('"body" must be a string')
  const message: OutgoingMessage = {body: envelope.body as string}
  if (envelope.headers !== undefined && envelope.headers !== null) {
    if (typeof envelope.headers !== 'object' || Array.isArray(envelope.headers)) bad('"headers" must be an object')
    const headers = newHeaders()
    for (const [key, headerValue] of Object.entries(envelope.headers as object)) {
      if (typeof headerValue !== 'string') bad(`header "${printable(key, 40)}" must be a string`)
      headers[key] = headerValue as string
    }
    message.headers = headers
  }
  if (envelope.priority !== undefined) {
    if (!Number.isInteger(envelope.priority)) bad('"priority" must be a whole number')
    message.priority = envelope.priority as number
  }
  return message
}

/** Parses repeated `-H key=value` flags; a name given twice is refused rather than one value dropped. */
export function parseHeaderFlags(values: string[]): Headers | undefined {
  if (values.length === 0) return undefined
  const headers = newHeaders()
  for (const pair of values) {
    const eq = pair.indexOf('=')
    if (eq <= 0) {
      throw new InvalidInputError(`header "${printable(pair, 40)}" is not key=value`, {hint: 'write -H key=value'})
    }
    const name = pair.slice(0, eq)
    checkArgumentUtf8(pair, `header "${printable(name, 40)}"`)
    if (name in headers)
      throw new InvalidInputError(`header "${printable(name, 40)}" is given twice`, {hint: 'give each header once'})
    headers[name] = pair.slice(eq + 1)
  }
  return headers
}

/** Most receipts `receiptInbox` puts in one batch (one transaction of an ack: about 20 ms of lock). */
const MAX_RECEIPT_BATCH = 10_000

/** Receipts as they arrive (see receiptInbox). */
export interface ReceiptInbox {
  /** Every receipt that came and was not handed out yet, waiting only while none has; undefined at the end. */
  next(): Promise<string[] | undefined>
  /** Those that came since, without waiting (often none). */
  take(): string[]
  /** Stops reading stdin (the command ends early). */
  stop(): void
}

/**
 * Receipts from the arguments or stdin (receiptBatches), read in the background as they arrive, so
 * a command that settles them takes all that came while it was busy in one batch, and one that
 * waits (for a write lock) can take those that come meanwhile (`take`). A lone receipt is handed
 * out as soon as its line is read. An error of the input comes after the receipts read before it.
 */
export function receiptInbox(argv: string[], input: Stdin): ReceiptInbox {
  const pending: string[] = []
  /** Receipts handed out since the last `next()`: a batch stops growing at MAX_RECEIPT_BATCH. */
  let handedOut = 0
  let ended = false
  let failure: unknown
  let wake: (() => void) | undefined
  let room: (() => void) | undefined
  const handOut = (max: number) => {
    const receipts = pending.splice(0, max)
    handedOut += receipts.length
    room?.()
    return receipts
  }
  void (async () => {
    try {
      for await (const batch of receiptBatches(argv, input)) {
        for (const receipt of batch) pending.push(receipt)
        wake?.()
        // Reads no further ahead than a batch: a long file streams in constant memory.
        while (pending.length >= MAX_RECEIPT_BATCH) await new Promise<void>((resolve) => (room = resolve))
      }
    } catch (error) {
      failure = error
    } finally {
      ended = true
      wake?.()
    }
  })()
  return {
    async next() {
      while (pending.length === 0 && !ended) await new Promise<void>((resolve) => (wake = resolve))
      handedOut = 0
      if (pending.length > 0) return handOut(MAX_RECEIPT_BATCH)
      if (failure !== undefined) throw failure
      return undefined
    },
    take: () => handOut(MAX_RECEIPT_BATCH - handedOut),
    stop() {
      if (!ended) input.stdin.destroy()
    },
  }
}

/** Reads receipts from arguments, or one per stdin line when there are none. */
export async function* receiptBatches(argv: string[], input: Stdin): AsyncGenerator<string[]> {
  if (argv.length > 0) {
    yield argv
    return
  }
  if (input.stdinIsTTY)
    throw new InvalidInputError('no receipts given', {hint: 'pass receipts as arguments or one per line on stdin'})
  for await (const batch of stdinLineBatches(input))
    yield batch.lines.map((line) => line.trim()).filter((line) => line !== '')
}
