import type {MsgHdrs} from '@nats-io/transport-node'

import type {Headers} from '../broker.js'

/** Headers the driver sets for itself; never shown as message headers. */
export const INTERNAL_HEADER = /^(nats-|mq-internal-)/i

/** A message's own headers (first value of each), without the server's and the driver's. */
export function userHeaders(headers: MsgHdrs | undefined): Headers {
  const out: Headers = {}
  if (!headers) return out
  for (const key of headers.keys()) {
    if (INTERNAL_HEADER.test(key)) continue
    out[key] = headers.get(key)
  }
  return out
}

/** Headers of a stored message as the stream API returns them: a base64 `NATS/1.0` block. */
export function parseHeaderBlock(base64: string | undefined): Headers {
  const out: Headers = {}
  if (!base64) return out
  const lines = Buffer.from(base64, 'base64').toString('utf8').split('\r\n').slice(1)
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    const key = line.slice(0, colon).trim()
    if (INTERNAL_HEADER.test(key) || key in out) continue
    out[key] = line.slice(colon + 1).trim()
  }
  return out
}
