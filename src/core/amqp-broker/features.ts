import {type BrokerCapabilities, capabilityTable, type FeatureSupport} from '../capabilities.js'

const NEEDS_MANAGEMENT =
  'needs the management API: add ?management=http://HOST:15672 to the broker URL (rabbitmq-plugins enable rabbitmq_management)'

/** The refusal of what only the management HTTP API can answer, when the URL gives none. */
export function managementRefusal(what: string): string {
  return `${what} ${NEEDS_MANAGEMENT}`
}

/**
 * What the AMQP driver does on RabbitMQ (README: "Running on RabbitMQ"). Receipts are AMQP
 * delivery tags, bound to the channel of the process that received them: they are settled by that
 * process (in-process, the daemon, an `--exec` worker), never by another one.
 */
export function amqpCapabilities(management: boolean): BrokerCapabilities {
  const withManagement = (feature: FeatureSupport): FeatureSupport =>
    management ? feature : {support: 'refused', note: NEEDS_MANAGEMENT}
  return capabilityTable('amqp', {
    receipts: {
      support: 'refused',
      note: 'AMQP delivery tags belong to the channel that received them: run `mq daemon start --broker amqp://…` so receipts are held and settled by the daemon, or use --exec',
    },
    'stale-receipts': {support: 'emulated', note: "the holder of the channel keeps each delivery's lease and timer"},
    'visibility-timeout': {
      support: 'emulated',
      note: 'a timer in the holding process puts the message back (republished with its attempt count); if the process dies RabbitMQ requeues it',
    },
    'nack-delay': {
      support: 'emulated',
      note: 'republished into a wait queue mq~delay.QUEUE.MS (message TTL, dead-lettered back into the queue)',
    },
    extend: {support: 'emulated', note: 'the holder moves its timer'},
    'dead-letter': {
      support: 'emulated',
      note: 'the receive that meets delivery max+1 (or a nack on the last one) publishes to the dead-letter queue with x-dead-letter-* headers, then acks',
    },
    dedup: {
      support: 'refused',
      note: 'RabbitMQ has no deduplication (the plugin is not shipped): publish without --dedup-id, or use a nats:// or file broker',
    },
    'max-length': {
      support: 'native',
      note: 'x-max-length with x-overflow reject-publish / drop-head; block retries a rejected publish until room; counts ready messages only',
    },
    'max-bytes': {support: 'native', note: 'x-max-length-bytes; counts bodies of ready messages only'},
    delay: {
      support: 'emulated',
      note: 'a wait queue per delay (message TTL, dead-lettered into the queue); delays are rounded up to 2 significant digits',
    },
    ttl: {
      support: 'native',
      note: 'the expiration property and x-message-ttl; a message that expires inside a classic queue is removed when it reaches the head; --dead-letter-expired is refused',
    },
    'dead-letter-expired': {
      support: 'refused',
      note: "expired messages are discarded; use a policy with dead-letter-exchange for RabbitMQ's own dead-lettering",
    },
    'expired-count': {
      support: 'refused',
      note: 'RabbitMQ discards a message whose TTL ran out inside the queue without counting it: totals.expired stays 0',
    },
    priority: {
      support: 'native',
      note: 'classic priority queues (x-max-priority 9): queues made by `queue create --priorities` or by a first publish with --priority; refused on other queues',
    },
    peek: {
      support: 'refused',
      note: 'AMQP has no peek: basic.get with requeue counts as a delivery (redelivered); look with `mq consume --json` on a copy or in the management UI',
    },
    redrive: {
      support: 'emulated',
      note: 'each dead letter is republished into its queue with x-redrive-count, then acked',
    },
    'middle-hash': {support: 'native', note: 'topic exchange bindings have the same * and # rules'},
    'start-positions': {
      support: 'emulated',
      note: 'ephemeral subscriptions read the topic log (a RabbitMQ stream, mq~log) from any position; durable ones are queues that start with new messages (others refused)',
    },
    'ephemeral-subscriptions': {
      support: 'emulated',
      note: 'a reader of the topic log with an exclusive marker queue: gone with its connection',
    },
    'topic-max-messages': {support: 'emulated', note: 'older messages of the topic are skipped when the log is read'},
    'topic-max-bytes': {
      support: 'refused',
      note: 'the topic log (one RabbitMQ stream) is sized as a whole, not per topic: use --max-messages or --max-age',
    },
    'topic-max-age': {
      support: 'emulated',
      note: 'older messages are skipped when the log is read (the log keeps 7 days)',
    },
    replicas: {
      support: 'refused',
      note: 'the driver makes classic queues (priorities, transient queues); replicate with RabbitMQ policies or use a nats:// broker',
    },
    rates: withManagement({support: 'native', note: "the management API's message rates"}),
  })
}
