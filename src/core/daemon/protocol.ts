import {createConnection, type Socket} from 'node:net'

import {type ErrorCode, InvalidInputError} from '../errors.js'

/**
 * The daemon's local protocol: newline-delimited JSON over a Unix socket private to the user.
 * Every request has an `id`; the reply carries the same `id` and either `result` or `error`.
 */

export interface Request {
  id: number
  op: 'publish' | 'trigger' | 'status'
  [field: string]: unknown
}

export interface Reply {
  /** null when the frame was too broken to carry an id. */
  id: number | null
  result?: unknown
  error?: {code: ErrorCode; message: string; exitCode: number; published?: {id: string}[]}
}

/**
 * Longest frame either side accepts. A line that grows past it without a newline is cut off, so
 * a peer cannot make the daemon buffer without bound; a client whose request is bigger sends it
 * to the folder itself instead.
 */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024

const OPS = new Set(['publish', 'trigger', 'status'])

/** Why a line could not be read: `fatal` means the stream is unusable and is closed. */
export interface BadFrame {
  message: string
  fatal: boolean
}

/** Splits a byte stream into JSON lines of at most `maxBytes` bytes. */
export function onJsonLines(socket: Socket, handle: (value: unknown) => void, onBad: (problem: BadFrame) => void, maxBytes = MAX_FRAME_BYTES): void {
  let pending: Buffer[] = []
  let pendingBytes = 0
  let broken = false
  const decoder = new TextDecoder('utf-8', {fatal: true})
  const line = (bytes: Buffer) => {
    let value: unknown
    try {
      const text = decoder.decode(bytes)
      if (text.trim() === '') return
      value = JSON.parse(text)
    } catch (error) {
      onBad({message: `malformed request: ${error instanceof SyntaxError ? error.message : 'not UTF-8 text'}`, fatal: false})
      return
    }
    handle(value)
  }
  const tooLong = () => {
    broken = true
    pending = []
    onBad({message: `request line over the ${maxBytes}-byte limit`, fatal: true})
  }
  socket.on('data', (chunk: Buffer) => {
    if (broken) return
    let start = 0
    // Only the new chunk is searched: a long line arriving in many pieces costs linear time.
    for (let end = chunk.indexOf(0x0a); end !== -1; end = chunk.indexOf(0x0a, start)) {
      const tail = chunk.subarray(start, end)
      if (pendingBytes + tail.length > maxBytes) return tooLong()
      const bytes = pendingBytes === 0 ? tail : Buffer.concat([...pending, tail])
      pending = []
      pendingBytes = 0
      start = end + 1
      line(bytes)
      if (broken || socket.destroyed) return
    }
    if (start < chunk.length) {
      pendingBytes += chunk.length - start
      if (pendingBytes > maxBytes) return tooLong()
      pending.push(chunk.subarray(start))
    }
  })
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The request id of a frame if it has a usable one, so even a refused frame's reply can be matched. */
export function frameId(value: unknown): number | null {
  return isRecord(value) && Number.isSafeInteger(value.id) ? (value.id as number) : null
}

/** Checks a frame's shape before anything reads it: a peer may send any JSON at all. */
export function parseRequest(value: unknown): Request {
  const bad = (what: string) => new InvalidInputError(`malformed request: ${what}`, {code: 'bad_request'})
  if (!isRecord(value)) throw bad(`expected a JSON object, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`)
  if (frameId(value) === null) throw bad('"id" must be an integer')
  if (typeof value.op !== 'string' || !OPS.has(value.op)) throw bad(`unknown "op" ${JSON.stringify(value.op) ?? 'undefined'}`)
  if (value.op === 'publish') {
    if (typeof value.name !== 'string') throw bad('"name" must be a string')
    if (!Array.isArray(value.messages) || !value.messages.every(isRecord)) throw bad('"messages" must be an array of objects')
    if (value.options !== undefined && !isRecord(value.options)) throw bad('"options" must be an object')
  }
  if (value.op === 'trigger' && value.wait !== undefined && typeof value.wait !== 'boolean') throw bad('"wait" must be true or false')
  return value as Request
}

/** Connects to a socket, failing fast (the caller then works without the daemon). */
export function connect(path: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path)
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error('timed out connecting to the daemon'))
    }, timeoutMs)
    socket.once('connect', () => {
      clearTimeout(timer)
      resolve(socket)
    })
    socket.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
  })
}
