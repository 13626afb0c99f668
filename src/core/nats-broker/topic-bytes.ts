import {messageSize} from '../headers.js'
import type {JsClient} from './client.js'
import {userHeaders} from './headers.js'

/** Messages per pull while counting. */
const BATCH = 1_000

/**
 * Bytes per topic, which JetStream does not keep (it counts bytes per stream): a headers-only
 * consumer reads the topics' stored headers, whose `Nats-Msg-Size` gives each body's size, so
 * nothing but headers crosses the wire. Counted as mqctl counts (body plus the user's headers, see
 * `messageSize`). The time it takes grows with the messages stored (README "Running on a NATS cluster").
 */
export async function topicBytes(
  client: JsClient,
  stream: string,
  filter: string,
  topicOf: (subject: string) => string,
): Promise<Record<string, number>> {
  const bytes: Record<string, number> = {}
  const created = await client.api<{name: string; num_pending: number}>(`CONSUMER.CREATE.${stream}`, {
    stream_name: stream,
    config: {
      ack_policy: 'none',
      deliver_policy: 'all',
      filter_subject: filter,
      headers_only: true,
      inactive_threshold: 30_000 * 1_000_000,
      max_waiting: 1,
    },
  })
  try {
    for (let left = created.num_pending; left > 0;) {
      const pulled = await client.pull(stream, created.name, Math.min(BATCH, left), 0)
      if (pulled.length === 0) break
      left -= pulled.length
      for (const msg of pulled) {
        const size = Number(msg.headers?.get('Nats-Msg-Size')) || 0
        const topic = topicOf(msg.subject)
        const headerBytes = messageSize({body: '', headers: userHeaders(msg.headers)})
        bytes[topic] = (bytes[topic] ?? 0) + size + headerBytes
      }
    }
  } finally {
    await client.api(`CONSUMER.DELETE.${stream}.${created.name}`).catch(() => {})
  }
  return bytes
}
