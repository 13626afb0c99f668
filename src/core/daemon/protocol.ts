import {createConnection, type Socket} from 'node:net'

import type {ErrorCode} from '../errors.js'

/**
 * The daemon's local protocol: newline-delimited JSON over a Unix socket in the broker folder.
 * Every request has an `id`; the reply carries the same `id` and either `result` or `error`.
 */

export interface Request {
  id: number
  op: 'publish' | 'trigger' | 'status'
  [field: string]: unknown
}

export interface Reply {
  id: number
  result?: unknown
  error?: {code: ErrorCode; message: string; exitCode: number; published?: {id: string}[]}
}

/** Splits a byte stream into JSON lines. */
export function onJsonLines(socket: Socket, handle: (value: unknown) => void, onBad: (line: string) => void): void {
  let buffered = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => {
    buffered += chunk
    let end = buffered.indexOf('\n')
    while (end !== -1) {
      const line = buffered.slice(0, end)
      buffered = buffered.slice(end + 1)
      if (line.trim() !== '') {
        let value: unknown
        try {
          value = JSON.parse(line)
        } catch {
          onBad(line)
          end = buffered.indexOf('\n')
          continue
        }
        handle(value)
      }
      end = buffered.indexOf('\n')
    }
  })
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
