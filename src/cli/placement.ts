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

/** `--transient` of `queue create`. */
export const TRANSIENT_FLAG = {
  transient: {
    kind: 'boolean',
    summary: 'amqp:// only: a non-durable queue without arguments, which clients declaring it with default arguments (the RabbitMQ tutorial) accept.',
  },
} as const satisfies FlagSpecs

/**
 * Checks the broker replicates before asking it to (the file broker refuses, with the reason),
 * and that `--transient` goes to a broker that has transient queues (amqp://).
 */
export async function placementFromFlags(ctx: Context, replicas: number | undefined, transient = false): Promise<PlacementOptions> {
  if (replicas === undefined && !transient) return {}
  const description = await ctx.broker().describe()
  if (replicas !== undefined) requireFeature(description.capabilities, 'replicas', description.url)
  if (transient && description.capabilities.driver !== 'amqp') {
    throw new InvalidInputError(`--transient is for amqp:// brokers; queues on ${description.url} are always durable`, {code: 'unsupported', hint: 'drop --transient'})
  }
  return {...(replicas === undefined ? {} : {replicas}), ...(transient ? {transient} : {})}
}
