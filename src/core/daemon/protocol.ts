import type {Socket} from 'node:net'

import {type ErrorCode, InvalidInputError} from '../errors.js'
import {requireLazily} from '../lazy-require.js'

/**
 * The daemon's local protocol: newline-delimited JSON over a Unix socket private to the user.
 * Every request has an `id`; the reply carries the same `id` and either `result` or `error`.
 */

export interface Request {
  id: number
  op: Op
  [field: string]: unknown
}

/**
 * `publish`, `trigger`, `status`; and for brokers whose receipts are bound to one connection
 * (amqp://), the daemon as receipt holder: `receive` (manual ack) and `ack`, `nack`, `extend`,
 * `still-leased` of the receipts it issued; `cancel` stops a waiting `receive` of the same client.
 */
export const OPS = [
  'publish',
  'trigger',
  'status',
  'receive',
  'ack',
  'nack',
  'extend',
  'still-leased',
  'cancel',
] as const
export type Op = (typeof OPS)[number]
/** The receipt-holder requests: each names the broker it means (`broker`), so a daemon never settles for another one. */
export const HOLDER_OPS: ReadonlySet<string> = new Set(['receive', 'ack', 'nack', 'extend', 'still-leased'])

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

/** Why a line could not be read: `fatal` means the stream is unusable and is closed. */
export interface BadFrame {
  message: string
  fatal: boolean
}

/** Splits a byte stream into JSON lines of at most `maxBytes` bytes. */
export function onJsonLines(
  socket: Socket,
  handle: (value: unknown) => void,
  onBad: (problem: BadFrame) => void,
  maxBytes = MAX_FRAME_BYTES,
): void {
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
      onBad({
        message: `malformed request: ${error instanceof SyntaxError ? error.message : 'not UTF-8 text'}`,
        fatal: false,
      })
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
  if (!isRecord(value))
    throw bad(
      `expected a JSON object, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`,
    )
  if (frameId(value) === null) throw bad('"id" must be an integer')
  if (typeof value.op !== 'string' || !(OPS as readonly string[]).includes(value.op))
    throw bad(`unknown "op" ${JSON.stringify(value.op) ?? 'undefined'}`)
  if (value.op === 'publish') {
    if (typeof value.name !== 'string') throw bad('"name" must be a string')
    if (!Array.isArray(value.messages) || !value.messages.every(isRecord))
      throw bad('"messages" must be an array of objects')
    if (value.options !== undefined && !isRecord(value.options)) throw bad('"options" must be an object')
  }
  if (value.op === 'trigger' && value.wait !== undefined && typeof value.wait !== 'boolean')
    throw bad('"wait" must be true or false')
  if (HOLDER_OPS.has(value.op) && typeof value.broker !== 'string') throw bad('"broker" must be a string')
  if (value.op === 'receive') {
    const sub = value.subscription
    if (
      sub !== undefined
        ? !(isRecord(sub) && typeof sub.pattern === 'string' && typeof sub.durable === 'string') ||
          value.queue !== undefined
        : typeof value.queue !== 'string'
    ) {
      throw bad('"queue" must be a string, or "subscription" an object with "pattern" and "durable"')
    }
    if (!isRecord(value.options)) throw bad('"options" must be an object')
    const {max, visibilityTimeoutMs, waitMs, pollIntervalMs} = value.options
    if (!(Number.isSafeInteger(max) && (max as number) >= 1)) throw bad('"options.max" must be a positive integer')
    for (const [key, ms] of Object.entries({visibilityTimeoutMs, waitMs, pollIntervalMs})) {
      if (ms !== undefined && !(typeof ms === 'number' && Number.isFinite(ms) && ms >= 0))
        throw bad(`"options.${key}" must be a number of milliseconds`)
    }
  }
  if (value.op === 'ack' || value.op === 'nack' || value.op === 'extend' || value.op === 'still-leased') {
    if (!Array.isArray(value.receipts) || !value.receipts.every((r) => typeof r === 'string'))
      throw bad('"receipts" must be an array of strings')
  }
  if (value.op === 'nack' && value.options !== undefined && !isRecord(value.options))
    throw bad('"options" must be an object')
  if (value.op === 'extend' && !(typeof value.byMs === 'number' && Number.isFinite(value.byMs) && value.byMs > 0))
    throw bad('"byMs" must be a positive number')
  if (value.op === 'cancel' && !Number.isSafeInteger(value.request)) throw bad('"request" must be an integer')
  return value as Request
}

/** Connects to a socket, failing fast (the caller then works without the daemon). */
export function connect(path: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    // node:net is loaded only when a daemon runs: most commands never connect.
    const {createConnection} = requireLazily('node:net') as typeof import('node:net')
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
