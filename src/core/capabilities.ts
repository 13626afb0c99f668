import {InvalidInputError} from './errors.js'

/**
 * What a driver does with each feature of the Broker contract: `native` (the engine does it),
 * `emulated` (the driver builds it from other primitives; `how` says with what) or `refused` (the
 * driver fails with exit 2 and `why`, naming the alternative). One table per driver drives the
 * refusals themselves, `mq broker info`, the README table and the conformance tests.
 */
export type Support = 'native' | 'emulated' | 'refused'

export interface FeatureSupport {
  support: Support
  /** For emulated features: the mechanism; for refused ones: the reason and the alternative. */
  note?: string
}

export const FEATURES = {
  queues: 'queues, FIFO, competing consumers',
  receipts: 'receipts settled from any process',
  'stale-receipts': 'stale receipts detected (exit 5)',
  'visibility-timeout': 'per-receive --visibility-timeout',
  'nack-delay': 'nack --delay / retry backoff',
  extend: 'extend --by',
  'dead-letter': 'max deliveries → dead-letter queue',
  dedup: 'dedup ids',
  'max-length': '--max-length (reject, drop-oldest, block)',
  'max-bytes': '--max-bytes',
  delay: '--delay / --at',
  ttl: '--ttl / --default-ttl',
  'dead-letter-expired': '--dead-letter-expired',
  'expired-count': 'expired messages counted in stats (totals.expired)',
  priority: '--priority',
  peek: 'queue peek',
  redrive: 'dlq redrive',
  topics: 'topics, fan-out, global order',
  'middle-hash': '# in the middle of a pattern',
  'start-positions': '--new / --all / --since / --from-id',
  'ephemeral-subscriptions': 'ephemeral subscriptions',
  'topic-max-messages': 'topic --max-messages',
  'topic-max-bytes': 'topic --max-bytes',
  'topic-max-age': 'topic --max-age',
  replicas: '--replicas',
  rates: 'stats rates',
} as const

export type Feature = keyof typeof FEATURES

export interface BrokerCapabilities {
  /** `file` or `nats`. */
  driver: string
  features: Record<Feature, FeatureSupport>
}

/** Throws the driver's refusal for a feature it refuses; does nothing otherwise. */
export function requireFeature(capabilities: BrokerCapabilities, feature: Feature, where: string): void {
  const entry = capabilities.features[feature]
  if (entry.support !== 'refused') return
  throw new InvalidInputError(
    `${FEATURES[feature]} is not available on ${where}${entry.note ? `: ${entry.note}` : ''}`,
    {code: 'unsupported'},
  )
}

/** Everything native except what is listed (the file broker's table is all native but replicas). */
export function capabilityTable(
  driver: string,
  overrides: Partial<Record<Feature, FeatureSupport>>,
): BrokerCapabilities {
  const features = Object.fromEntries(
    Object.keys(FEATURES).map((key) => [key, overrides[key as Feature] ?? {support: 'native'}]),
  ) as Record<Feature, FeatureSupport>
  return {driver, features}
}

/** The file broker does everything itself on one folder; only replication has no meaning there. */
export const FILE_BROKER_CAPABILITIES: BrokerCapabilities = capabilityTable('file', {
  replicas: {support: 'refused', note: 'a file broker is one folder on one machine; use a nats:// broker for replicas'},
})

/** What `mq broker info` shows. */
export interface BrokerDescription {
  driver: string
  /** The broker's address, with any password hidden. */
  url: string
  server?: {name?: string; version: string; cluster?: string; servers?: number; jetstream?: boolean}
  capabilities: BrokerCapabilities
}
