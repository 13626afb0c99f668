import type {SubscriptionInfo, SubscriptionStats} from '../../core/broker.js'
import {formatDuration} from '../../core/units.js'
import type {Context} from '../context.js'
import {defineCommand} from '../definition.js'
import {keyValues, listing} from '../output.js'
import {askName, confirm} from '../prompts.js'

const nameArg = [{name: 'name', summary: 'Subscription name.'}]

async function subscriptionName(ctx: Context, given: string | undefined, command: string): Promise<string> {
  if (given !== undefined) return given
  const names = (await ctx.broker().listSubscriptions()).map((s) => s.name)
  return askName(ctx, 'subscription', names, `give it as an argument: mq subscription ${command} NAME`)
}

export const subscriptionList = defineCommand({
  id: 'subscription:list',
  summary: 'List subscriptions, durable and ephemeral.',
  examples: ['<%= config.bin %> subscription list', '<%= config.bin %> subscription list --json'],
  flags: {},
  jsonLines: true,
  run: (_input, ctx): Promise<SubscriptionInfo[]> => ctx.broker().listSubscriptions(),
  render: (subscriptions, ctx) =>
    listing(
      ctx,
      ['SUBSCRIPTION', 'PATTERN', 'KIND'],
      subscriptions.map((s) => [s.name, s.pattern, s.durable ? 'durable' : `ephemeral (pid ${s.pid})`]),
      'no subscriptions',
    ),
})

export const subscriptionStats = defineCommand({
  id: 'subscription:stats',
  summary: 'Show a subscription’s lag, in-flight deliveries and oldest unacked age.',
  examples: [
    '<%= config.bin %> subscription stats billing',
    '<%= config.bin %> subscription stats billing --json | jq .lag',
  ],
  args: nameArg,
  flags: {},
  async run({args}, ctx): Promise<SubscriptionStats> {
    return ctx.broker().subscriptionStats(await subscriptionName(ctx, args.name, 'stats'))
  },
  render(stats) {
    const rows: [string, string | number][] = [
      ['pattern', stats.pattern],
      ['topics', stats.topics.join(', ') || '-'],
      ['lag (not yet delivered)', stats.lag],
      ['in flight', stats.inFlight],
      ['awaiting redelivery', stats.pendingRedelivery],
      ['oldest unacked', stats.oldestUnackedAgeMs === null ? '-' : formatDuration(stats.oldestUnackedAgeMs)],
      ['acked', stats.totals.acked],
      [
        'dead-lettered',
        `${stats.totals.deadLettered}${stats.settings.deadLetterQueue ? ` (→ ${stats.settings.deadLetterQueue})` : ''}`,
      ],
    ]
    return keyValues(`subscription ${stats.name} (${stats.durable ? 'durable' : 'ephemeral'})`, rows)
  },
})

export const subscriptionDelete = defineCommand({
  id: 'subscription:delete',
  summary: 'Delete a subscription and its pending deliveries.',
  examples: ['<%= config.bin %> subscription delete billing --yes'],
  args: nameArg,
  flags: {yes: {kind: 'boolean', char: 'y', summary: 'Do not ask for confirmation.'}},
  async run({args, flags}, ctx): Promise<{subscription: string; deleted: true}> {
    const name = await subscriptionName(ctx, args.name, 'delete')
    await confirm(ctx, flags.yes, `Delete subscription ${name}?`)
    await ctx.broker().deleteSubscription(name)
    return {subscription: name, deleted: true}
  },
  render: (r, ctx) => (ctx.stdoutIsTTY ? `deleted subscription ${r.subscription}` : undefined),
})
