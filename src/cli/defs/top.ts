import {TopSampler, type TopSnapshot} from '../../core/top.js'
import {defineCommand} from '../definition.js'
import {loadRules, RULES_FLAG} from '../engine-context.js'
import {runTopScreen} from '../top-screen.js'
import {DEFAULT_VIEW, renderTop, SORT_KEYS, type TopSort} from '../top-view.js'

const SORTS = Object.values(SORT_KEYS)

export default defineCommand({
  id: 'top',
  summary: 'Watch queues, subscriptions, topics and rules live: depth, rates, DLQ, lag.',
  description: `A full-screen view refreshed every --interval: every queue and subscription with its depth, in
flight, delayed and dead-lettered messages, publish and ack rates and sparklines of depth and rate;
topics with their lag; rules with matches, failures and action latency from the event journal. Keys:
n d i x p a sort (name, depth, in flight, DLQ, in/s, ack/s), r reverses, / filters by name, Esc
clears the filter, q or Ctrl-C quits (exit 0). Without a terminal, or with --once, it prints one
frame (plain text); --json prints the snapshot as one JSON object.`,
  examples: [
    '<%= config.bin %> top',
    '<%= config.bin %> top --sort in --filter orders',
    '<%= config.bin %> top --once',
    "<%= config.bin %> top --json | jq '.queues[] | select(.deadLettered > 0) | .name'",
  ],
  flags: {
    once: {kind: 'boolean', summary: 'Print one frame and exit (the default without a terminal).'},
    interval: {kind: 'duration', positive: true, summary: 'Time between samples (default 1s).', helpValue: 'DUR'},
    sort: {kind: 'string', summary: 'Sort queues and topics by this column.', options: SORTS, default: 'depth'},
    filter: {kind: 'string', summary: 'Only names containing TEXT.', helpValue: 'TEXT'},
    ...RULES_FLAG,
  },
  async run({flags}, ctx): Promise<TopSnapshot | undefined> {
    const intervalMs = flags.interval ?? 1_000
    let rules: {name: string; enabled: boolean}[] = []
    const sampler = new TopSampler({
      broker: ctx.broker(),
      // The journal and the rules stay in the local folder on any broker.
      journal: ctx.local().journal,
      rules: async () => {
        // Read each sample, so edits show; an invalid edit keeps the rules last read (as the daemon does).
        try {
          rules = (await loadRules(ctx, flags.rules)).validated.rules.map((r) => ({name: r.name, enabled: r.enabled}))
        } catch {
          // keep them
        }
        return rules
      },
      intervalMs,
    })
    const view = {sort: flags.sort as TopSort, filter: flags.filter ?? ''}
    if (!flags.once && !ctx.json && ctx.stdoutIsTTY && ctx.stdinIsTTY) {
      await runTopScreen(ctx, sampler, {...view, intervalMs})
      return undefined
    }
    const snapshot = await sampler.sample()
    if (ctx.json) return filterSnapshot(snapshot, view.filter)
    // One frame: as wide as the terminal, or wide enough for long names in a pipe; never escapes there.
    const columns = ctx.stdoutIsTTY ? ((ctx.stdout as NodeJS.WriteStream).columns ?? DEFAULT_VIEW.columns) : 160
    ctx.out.line(renderTop(snapshot, {...DEFAULT_VIEW, ...view, columns, style: await ctx.style()}).join('\n'))
    return undefined
  },
})

function filterSnapshot(snapshot: TopSnapshot, filter: string): TopSnapshot {
  if (filter === '') return snapshot
  const match = (row: {name: string}) => row.name.toLowerCase().includes(filter.toLowerCase())
  return {
    ...snapshot,
    queues: snapshot.queues.filter(match),
    topics: snapshot.topics.filter(match),
    rules: snapshot.rules.filter(match),
  }
}
