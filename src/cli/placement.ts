import type {PlacementOptions} from '../core/broker.js'
import {requireFeature} from '../core/capabilities.js'
import {InvalidInputError} from '../core/errors.js'
import type {Context} from './context.js'
import type {FlagSpecs} from './spec.js'

/** `--replicas` of `queue create` and `topic create`. */
export const REPLICAS_FLAG = {
  replicas: {
    kind: 'integer',
    summary: 'Copies on different servers, nats:// only (default: 3 with at least 3 servers, else 1).',
    min: 1,
    max: 5,
  },
} as const satisfies FlagSpecs

/** `--transient` of `queue create` (amqp:// only). */
export const TRANSIENT_FLAG = {
  transient: {
    kind: 'boolean',
    summary:
      'amqp:// only: a non-durable queue without arguments, so clients declaring it with default arguments (the RabbitMQ tutorial) can declare it too.',
  },
} as const satisfies FlagSpecs

/** `--priorities` of `queue create` (a RabbitMQ priority queue; other brokers always have priorities). */
export const PRIORITIES_FLAG = {
  priorities: {
    kind: 'boolean',
    summary:
      'amqp:// only: make a priority queue (x-max-priority 9) so --priority is honoured; a first publish with --priority does too.',
  },
} as const satisfies FlagSpecs

/** Checks the broker replicates before asking it to (the file broker refuses, with the reason). */
export async function placementFromFlags(
  ctx: Context,
  replicas: number | undefined,
  transient = false,
  priorities = false,
): Promise<PlacementOptions> {
  if (replicas === undefined && !transient && !priorities) return {}
  const description = await ctx.broker().describe()
  if (replicas !== undefined) requireFeature(description.capabilities, 'replicas', description.url)
  if (priorities) requireFeature(description.capabilities, 'priority', description.url)
  if (transient && description.driver !== 'amqp') {
    throw new InvalidInputError(`--transient is for amqp:// brokers, not ${description.url}`, {
      code: 'unsupported',
      hint: 'queues are always durable here: drop --transient',
    })
  }
  return {
    ...(replicas === undefined ? {} : {replicas}),
    ...(transient ? {transient} : {}),
    ...(priorities ? {priorities} : {}),
  }
}
