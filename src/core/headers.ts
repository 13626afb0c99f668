import type {Headers} from './broker.js'
import {InvalidInputError} from './errors.js'
import {printable} from './names.js'

/** Most headers one message may carry (README: Limits). */
export const MAX_HEADERS = 64
/** Longest header name, in characters; names are `[A-Za-z0-9_.-]`, so characters are bytes. */
export const MAX_HEADER_NAME_LENGTH = 128
/**
 * Most bytes all headers of one message may take as stored (JSON, UTF-8). It bounds each value too,
 * and keeps `MQ_HEADERS` and the `MQ_HEADER_*` variables of `--exec` under the kernel's 128 KiB
 * limit for one environment string.
 */
export const MAX_HEADERS_BYTES = 64 * 1024

const HEADER_NAME = new RegExp(`^[A-Za-z0-9_.-]{1,${MAX_HEADER_NAME_LENGTH}}$`)

/**
 * An empty header record with no prototype: assigning `__proto__` (a valid header name) to a plain
 * object would change its prototype instead of adding the header, silently losing it.
 */
export function newHeaders(): Headers {
  return Object.create(null) as Headers
}

/** Headers as stored: compact JSON, or null for none. */
export function encodeHeaders(headers: Headers | undefined): string | null {
  if (!headers) return null
  for (const _ in headers) return JSON.stringify(headers)
  return null
}

/**
 * The size of a message as stored and counted by every limit (`--max-body-size`, `--max-bytes`,
 * topic retention) and by the `bytes` of stats: the body's UTF-8 bytes plus the stored headers'.
 */
export function messageSize(message: {body: string; headers?: Headers}): number {
  const headers = encodeHeaders(message.headers)
  return Buffer.byteLength(message.body) + (headers === null ? 0 : Buffer.byteLength(headers))
}

/**
 * Checks one message's headers against the limits every way in shares (`-H`, `--envelopes`, the
 * daemon's HTTP and socket): names, count, NUL-free string values, total stored size.
 * @throws InvalidInputError naming the header or the limit
 */
export function validateHeaders(headers: Headers | undefined): void {
  if (!headers) return
  let count = 0
  for (const [name, value] of Object.entries(headers)) {
    count++
    if (!HEADER_NAME.test(name)) {
      throw new InvalidInputError(`header name "${printable(name, 40)}" is invalid`, {
        hint: `use letters, digits, _, . and -, up to ${MAX_HEADER_NAME_LENGTH} characters`,
      })
    }
    if (typeof value !== 'string' || value.includes('\0')) {
      throw new InvalidInputError(`header "${printable(name, 40)}" must be a string without NUL characters`)
    }
  }
  if (count > MAX_HEADERS) {
    throw new InvalidInputError(`${count} headers, over the limit of ${MAX_HEADERS} per message`, {
      code: 'too_large',
      hint: 'merge some of them, or carry the data in the body',
    })
  }
  const size = count === 0 ? 0 : Buffer.byteLength(JSON.stringify(headers))
  if (size > MAX_HEADERS_BYTES) {
    throw new InvalidInputError(`headers take ${size} bytes, over the limit of ${MAX_HEADERS_BYTES} per message`, {
      code: 'too_large',
      hint: 'carry large data in the body',
    })
  }
}
