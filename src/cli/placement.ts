import type {PlacementOptions} from '../core/broker.js'
import {requireFeature} from '../core/capabilities.js'
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

/** Checks the broker replicates before asking it to (the file broker refuses, with the reason). */
export async function placementFromFlags(ctx: Context, replicas: number | undefined): Promise<PlacementOptions> {
  if (replicas === undefined) return {}
  const description = await ctx.broker().describe()
  requireFeature(description.capabilities, 'replicas', description.url)
  return {replicas}
}
