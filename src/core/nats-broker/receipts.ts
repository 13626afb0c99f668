/**
 * Receipts on a nats:// broker: `n.<base64url of the delivery's ack subject>.<lease>.<until>[.<early>]`.
 * The ack subject is JetStream's own address of the delivery (any process settles it); `lease` is
 * the sequence of the delivery's lease record when it was issued (0: none was needed, a first
 * delivery), the base of the compare-and-set that makes stale receipts exact; `until` is when the
 * lease runs out (epoch ms); `early` counts deliveries before the message's --delay was over.
 */

/** What the ack subject of a delivery says, plus what its receipt carries. */
export interface AckInfo {
  subject: string
  stream: string
  consumer: string
  count: number
  streamSeq: number
  deliverySeq: number
  publishedAt: number
  /** The lease record's sequence when the receipt was issued (0: none then). */
  leaseSeq?: number
  /** When the lease given with the receipt runs out (epoch ms). */
  until?: number
  /** Deliveries before the message's --delay was over, which are not attempts. */
  early: number
}

export function formatReceipt(ackSubject: string, leaseSeq: number, until: number, early: number): string {
  return `n.${Buffer.from(ackSubject).toString('base64url')}.${leaseSeq}.${until}${early > 0 ? `.${early}` : ''}`
}

/** The delivery a receipt names, or undefined when it is not one of this driver's receipts. */
export function parseReceipt(receipt: string): AckInfo | undefined {
  const match = /^n\.([\w-]+)\.(\d{1,16})\.(\d{1,16})(?:\.(\d{1,6}))?$/.exec(receipt)
  const ack = match ? parseAckSubject(Buffer.from(match[1], 'base64url').toString('utf8')) : undefined
  if (!ack) return undefined
  ack.leaseSeq = Number(match![2])
  ack.until = Number(match![3])
  ack.early = Number(match![4] ?? 0)
  return ack
}

/**
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<delivery seq>.<ns>.<pending>` (servers
 * before 2.10), or the longer form with domain and account hash in front and a token behind.
 */
export function parseAckSubject(subject: string): AckInfo | undefined {
  const tokens = subject.split('.')
  if (tokens[0] !== '$JS' || tokens[1] !== 'ACK') return undefined
  const at = tokens.length === 9 ? 2 : tokens.length >= 11 ? 4 : -1
  if (at === -1) return undefined
  const numeric = tokens.slice(at + 2, at + 6)
  if (!numeric.every((t) => /^\d{1,20}$/.test(t))) return undefined
  const [count, streamSeq, deliverySeq] = numeric.map(Number)
  if (!(count >= 1 && streamSeq >= 1 && deliverySeq >= 1)) return undefined
  return {
    subject,
    stream: tokens[at],
    consumer: tokens[at + 1],
    count,
    streamSeq,
    deliverySeq,
    publishedAt: Math.round(Number(BigInt(tokens[at + 5]) / 1000n) / 1000),
    early: 0,
  }
}
