import {fstatSync, readFileSync} from 'node:fs'
import type {Readable} from 'node:stream'

import type {Headers, OutgoingMessage} from '../core/broker.js'
import {InvalidInputError} from '../core/errors.js'
import {printable} from '../core/names.js'

/** Regular files up to this size are read whole, so a bad line rejects the whole file atomically. */
const WHOLE_FILE_LIMIT = 64 * 1024 * 1024
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

export function stdinIsFile(stdin: Readable = process.stdin): boolean {
  if (stdin !== process.stdin) return false
  try {
    return fstatSync(0).isFile()
  } catch {
    return false
  }
}

/** Reads all of stdin as one UTF-8 body. */
export async function readStdinBody(stdin: Readable = process.stdin): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of stdin as AsyncIterable<Buffer>) {
    chunks.push(chunk)
    size += chunk.length
    if (size > STDIN_BODY_LIMIT) throw new InvalidInputError('body on stdin is over 256 MiB', {code: 'too_large', hint: 'send a smaller body'})
  }
  return decodeUtf8(Buffer.concat(chunks), 'body on stdin')
}

export interface LineBatch {
  lines: string[]
  /** The 1-based stdin line number of each entry of `lines`. */
  numbers: number[]
}

/**
 * Yields stdin's lines in batches as they arrive: everything readable at once is one batch, so a
 * slow producer's lines go out one by one and a fast one's in large groups. A regular file small
 * enough is one batch. Blank lines are skipped; a trailing `\r` is removed.
 */
export async function* stdinLineBatches(stdin: Readable = process.stdin): AsyncGenerator<LineBatch> {
  let lineNumber = 0
  const take = (text: string): LineBatch | undefined => {
    const lines: string[] = []
    const numbers: number[] = []
    for (const raw of text.split('\n')) {
      lineNumber++
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw
      if (line !== '') {
        lines.push(line)
        numbers.push(lineNumber)
      }
    }
    return lines.length > 0 ? {lines, numbers} : undefined
  }
  if (stdinIsFile(stdin) && fstatSync(0).size <= WHOLE_FILE_LIMIT) {
    const text = decodeUtf8(readFileSync(0), 'stdin')
    const batch = take(text.endsWith('\n') ? text.slice(0, -1) : text)
    if (batch) yield batch
    return
  }
  const decoder = strictUtf8()
  let pending = ''
  try {
    for await (const chunk of stdin as AsyncIterable<Buffer>) {
      const text = pending + decoder.decode(chunk, {stream: true})
      const end = text.lastIndexOf('\n')
      if (end === -1) {
        pending = text
        continue
      }
      pending = text.slice(end + 1)
      const batch = take(text.slice(0, end))
      if (batch) yield batch
    }
    const rest = pending + decoder.decode()
    const batch = rest === '' ? undefined : take(rest)
    if (batch) yield batch
  } catch (error) {
    if (error instanceof TypeError) {
      throw new InvalidInputError(`line ${lineNumber + 1} of stdin is not valid UTF-8 text`, {
        code: 'not_utf8',
        hint: 'message bodies are text: encode binary data first (e.g. `base64`)',
      })
    }
    throw error
  }
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
    throw new InvalidInputError(`line ${lineNumber}: ${why}`, {code: 'bad_envelope', hint: 'expected {"body":"…","headers":{"k":"v"}}'})
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad('not a JSON object')
  const envelope = value as Record<string, unknown>
  if (typeof envelope.body !== 'string') bad('"body" must be a string')
  const message: OutgoingMessage = {body: envelope.body as string}
  if (envelope.headers !== undefined && envelope.headers !== null) {
    if (typeof envelope.headers !== 'object' || Array.isArray(envelope.headers)) bad('"headers" must be an object')
    const headers: Headers = {}
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

/** Parses repeated `-H key=value` flags. */
export function parseHeaderFlags(values: string[]): Headers | undefined {
  if (values.length === 0) return undefined
  const headers: Headers = {}
  for (const pair of values) {
    const eq = pair.indexOf('=')
    if (eq <= 0) {
      throw new InvalidInputError(`header "${printable(pair, 40)}" is not key=value`, {hint: 'write -H key=value'})
    }
    headers[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  return headers
}

/** Reads receipts from arguments, or one per stdin line when there are none. */
export async function* receiptBatches(argv: string[], stdinIsTTY: boolean, stdin: Readable = process.stdin): AsyncGenerator<string[]> {
  if (argv.length > 0) {
    yield argv
    return
  }
  if (stdinIsTTY) throw new InvalidInputError('no receipts given', {hint: 'pass receipts as arguments or one per line on stdin'})
  for await (const batch of stdinLineBatches(stdin)) yield batch.lines.map((line) => line.trim()).filter((line) => line !== '')
}
