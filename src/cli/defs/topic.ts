import type {TopicInfo, TopicSettings, TopicStats} from '../../core/broker.js'
import {validateName} from '../../core/names.js'
import {formatDuration, formatSize} from '../../core/units.js'
import type {Context} from '../context.js'
import {defineCommand} from '../definition.js'
import {keyValues, listing} from '../output.js'
import {placementFromFlags, REPLICAS_FLAG} from '../placement.js'
import {askName, askNewName, confirm} from '../prompts.js'

const topicArg = [{name: 'topic', summary: 'Topic name.'}]

async function topicName(ctx: Context, given: string | undefined, command: string): Promise<string> {
  if (given !== undefined) return validateName(given, 'topic name')
  if (command === 'create')
    return askNewName(ctx, 'topic name', 'give it as an argument: mq topic create TOPIC', (name) =>
      validateName(name, 'topic name'),
    )
  const names = (await ctx.broker().listTopics()).map((t) => t.name)
  return askName(ctx, 'topic', names, `give it as an argument: mq topic ${command} TOPIC`)
}

function describeRetention(s: TopicSettings): string {
  const limits = [`${formatDuration(s.maxAgeMs)}`]
  if (s.maxMessages !== null) limits.push(`${s.maxMessages} messages`)
  if (s.maxBytes !== null) limits.push(formatSize(s.maxBytes))
  return `keeps up to ${limits.join(', ')}`
}

export const topicCreate = defineCommand({
  id: 'topic:create',
  summary: 'Declare a topic with its retention (idempotent).',
  description:
    'Messages are kept until the oldest passes any limit (default: 7 days), so late subscribers can replay them.',
  examples: [
    '<%= config.bin %> topic create orders',
    '<%= config.bin %> topic create metrics --max-age 1h --max-messages 100000 --max-bytes 64MiB',
  ],
  args: topicArg,
  flags: {
    'max-age': {
      kind: 'duration',
      positive: true,
      summary: 'Discard messages older than DUR (default 7d).',
      helpValue: 'DUR',
    },
    'max-messages': {kind: 'integer', summary: 'Keep at most N messages.', min: 1},
    'max-bytes': {kind: 'size', summary: 'Keep at most SIZE of messages (bodies plus headers).', helpValue: 'SIZE'},
    'max-body-size': {
      kind: 'size',
      summary: 'Largest accepted message: body plus headers (default 1MiB).',
      helpValue: 'SIZE',
    },
    ...REPLICAS_FLAG,
  },
  async run({args, flags}, ctx): Promise<TopicInfo> {
    const placement = await placementFromFlags(ctx, flags.replicas)
    return ctx.broker().declareTopic(
      await topicName(ctx, args.topic, 'create'),
      {
        maxAgeMs: flags['max-age'],
        maxMessages: flags['max-messages'],
        maxBytes: flags['max-bytes'],
        maxBodyBytes: flags['max-body-size'],
      },
      placement,
    )
  },
  render: (topic, ctx) => (ctx.stdoutIsTTY ? `topic ${topic.name}: ${describeRetention(topic.settings)}` : undefined),
})

export const topicList = defineCommand({
  id: 'topic:list',
  summary: 'List topics with their retained messages.',
  examples: ['<%= config.bin %> topic list', '<%= config.bin %> topic list --json'],
  flags: {},
  jsonLines: true,
  run: (_input, ctx): Promise<TopicInfo[]> => ctx.broker().listTopics(),
  render: (topics, ctx) =>
    listing(
      ctx,
      ['TOPIC', 'MESSAGES', 'SIZE', 'RETENTION'],
      topics.map((t) => [t.name, t.messages, formatSize(t.bytes), describeRetention(t.settings)]),
      'no topics yet: `mq publish --topic NAME BODY` creates one',
    ),
})

export const topicStats = defineCommand({
  id: 'topic:stats',
  summary: "Show a topic's messages, oldest age, totals and subscriptions.",
  examples: ['<%= config.bin %> topic stats orders', '<%= config.bin %> topic stats orders --json'],
  args: topicArg,
  flags: {},
  async run({args}, ctx): Promise<TopicStats> {
    return ctx.broker().topicStats(await topicName(ctx, args.topic, 'stats'))
  },
  render(stats) {
    const rows: [string, string | number][] = [
      ['messages', stats.messages],
      ['size', formatSize(stats.bytes)],
      ['oldest', stats.oldestAgeMs === null ? '-' : formatDuration(stats.oldestAgeMs)],
      ['retention', describeRetention(stats.settings)],
      ['published', stats.totals.published],
      ['discarded (retention)', stats.totals.discarded],
      ['subscriptions', stats.subscriptions.join(', ') || '-'],
    ]
    return keyValues(`topic ${stats.name}`, rows)
  },
})

export const topicDelete = defineCommand({
  id: 'topic:delete',
  summary: 'Delete a topic and its retained messages.',
  examples: ['<%= config.bin %> topic delete scratch --yes'],
  args: topicArg,
  flags: {yes: {kind: 'boolean', char: 'y', summary: 'Do not ask for confirmation.'}},
  async run({args, flags}, ctx): Promise<{topic: string; deleted: number}> {
    const topic = await topicName(ctx, args.topic, 'delete')
    await confirm(ctx, flags.yes, `Delete topic ${topic} and its messages?`)
    return {topic, ...(await ctx.broker().deleteTopic(topic))}
  },
  render: (r, ctx) => (ctx.stdoutIsTTY ? `deleted topic ${r.topic} (${r.deleted} messages)` : undefined),
})
