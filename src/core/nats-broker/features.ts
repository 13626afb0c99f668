import {type BrokerCapabilities, capabilityTable} from '../capabilities.js'

/** `2.9.10` → comparable parts. */
export function versionAtLeast(version: string, wanted: string): boolean {
  const have = version.split(/[.-]/).map((part) => Number.parseInt(part, 10) || 0)
  const want = wanted.split('.').map(Number)
  for (let i = 0; i < want.length; i++) {
    if ((have[i] ?? 0) !== want[i]) return (have[i] ?? 0) > want[i]
  }
  return true
}

/**
 * What the JetStream driver does on a server of this version. The native paths of newer servers
 * (per-message TTL from 2.11, scheduled messages from 2.12) are not used: mqctl's CI can only run
 * Debian's 2.9, so delays and TTLs are emulated on every version (schedule.ts), which newer servers
 * run just the same.
 */
export function natsCapabilities(version: string): BrokerCapabilities {
  const bytesSafe = versionAtLeast(version, '2.11.0')
  return capabilityTable('nats', {
    'stale-receipts': {
      support: 'emulated',
      note: 'a lease record per delivery, settled by compare-and-set (JetStream itself acks any old receipt)',
    },
    'visibility-timeout': {
      support: 'emulated',
      note: 'consumer ack_wait = the queue setting; another length is a -NAK delay right after delivery',
    },
    extend: {support: 'emulated', note: '-NAK with a delay restarts the lease at --by'},
    'dead-letter': {
      support: 'emulated',
      note: 'the receive that meets delivery max+1 copies the message to the dead-letter queue with x-dead-letter-* headers',
    },
    'max-length': {
      support: 'emulated',
      note: 'max_msgs with discard new; drop-oldest deletes the oldest ready message and retries; block retries until room',
    },
    'max-bytes': bytesSafe
      ? {support: 'native', note: 'max_bytes counts subject, headers and body (mqctl counts bodies only)'}
      : {
          support: 'refused',
          note: `file storage on this version drops old messages instead of rejecting past max_bytes (nats-server#4771); use --max-length, or a server ≥ 2.11`,
        },
    delay: {
      support: 'emulated',
      note: 'a not-before header; a receive that meets the message early gives it back with a -NAK delayed to its time (not counted as an attempt)',
    },
    ttl: {
      support: 'emulated',
      note: 'an expires-at header checked when a receive meets the message: dropped or dead-lettered (--dead-letter-expired), counted as expired',
    },
    priority: {
      support: 'emulated',
      note: 'a subject and a consumer per priority level used (made on its first publish), pulled highest first',
    },
    peek: {support: 'native', note: 'stream message get by sequence'},
    redrive: {
      support: 'emulated',
      note: 'republished at the back of its queue, then deleted from the dead-letter queue; into a subscription: refused (a republish reaches every subscription)',
    },
    'ephemeral-subscriptions': {
      support: 'native',
      note: 'consumers with an inactivity threshold: gone 30 s after their process died',
    },
    'middle-hash': {
      support: 'emulated',
      note: 'the server filters up to the first #, mqctl matches the rest and skips the others',
    },
    'topic-max-messages': {support: 'emulated', note: 'purge keeping N on the topic subject after each publish'},
    'topic-max-bytes': {
      support: 'refused',
      note: 'JetStream counts bytes per stream, not per subject: use --max-messages or --max-age',
    },
    'topic-max-age': {support: 'emulated', note: 'older messages are skipped when read'},
    replicas: {support: 'native', note: 'num_replicas on each stream and consumer'},
    rates: {
      support: 'emulated',
      note: 'each process writes its per-minute publish and ack counts to a small stream; stats add them up',
    },
  })
}
