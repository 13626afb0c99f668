import type {TriggerSummary} from '../engine/engine.js'
import {type Broker, hasQueueCounters, type QueueStats} from '../broker.js'

interface ActionStats {
  count: number
  durationMs: number
}

/**
 * Counters the daemon keeps while it runs, and the Prometheus text exposition of them together
 * with the broker's queue and topic figures (read at scrape time).
 */
export class Metrics {
  readonly counts = {published: 0, eventsAccepted: 0, eventsProcessed: 0, actionsOk: 0, actionsFailed: 0, held: 0}
  /** rule → outcome → count and total duration. */
  private readonly actions = new Map<string, Map<string, ActionStats>>()

  recordSummary(summary: TriggerSummary): void {
    for (const action of summary.actions) {
      if (action.outcome === 'ok') this.counts.actionsOk++
      else if (action.outcome === 'dead-lettered') this.counts.actionsFailed++
      const byOutcome = this.actions.get(action.rule) ?? new Map<string, ActionStats>()
      this.actions.set(action.rule, byOutcome)
      const stats = byOutcome.get(action.outcome) ?? {count: 0, durationMs: 0}
      stats.count++
      stats.durationMs += action.durationMs
      byOutcome.set(action.outcome, stats)
    }
  }

  async render(broker: Broker): Promise<string> {
    const lines: string[] = []
    const metric = (
      name: string,
      type: 'gauge' | 'counter',
      help: string,
      samples: [Record<string, string>, number][],
    ) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
      for (const [labels, value] of samples) lines.push(`${name}${formatLabels(labels)} ${value}`)
    }
    const queues = await broker.listQueues()
    let inFlight: number[]
    let stats: QueueStats['totals'][]
    if (hasQueueCounters(broker)) {
      inFlight = await Promise.all(queues.map((q) => broker.inFlight(q.name)))
      stats = await Promise.all(queues.map((q) => broker.queueTotals(q.name)))
    } else {
      const full = await Promise.all(queues.map((q) => broker.queueStats(q.name)))
      inFlight = full.map((s) => s.inFlight)
      stats = full.map((s) => s.totals)
    }
    metric(
      'mq_queue_depth',
      'gauge',
      'Messages held by a queue (ready, delayed and in flight).',
      queues.map((q) => [{queue: q.name}, q.depth]),
    )
    metric(
      'mq_queue_in_flight',
      'gauge',
      'Deliveries of a queue awaiting their ack.',
      queues.map((q, i) => [{queue: q.name}, inFlight[i]]),
    )
    metric(
      'mq_queue_bytes',
      'gauge',
      'Body bytes held by a queue.',
      queues.map((q) => [{queue: q.name}, q.bytes]),
    )
    metric(
      'mq_queue_published_total',
      'counter',
      'Messages published to a queue.',
      queues.map((q, i) => [{queue: q.name}, stats[i].published]),
    )
    metric(
      'mq_queue_acked_total',
      'counter',
      'Messages acknowledged from a queue.',
      queues.map((q, i) => [{queue: q.name}, stats[i].acked]),
    )
    metric(
      'mq_queue_dead_lettered_total',
      'counter',
      'Messages a queue sent to its dead-letter queue.',
      queues.map((q, i) => [{queue: q.name}, stats[i].deadLettered]),
    )
    const topics = await broker.listTopics()
    metric(
      'mq_topic_messages',
      'gauge',
      'Messages retained by a topic.',
      topics.map((t) => [{topic: t.name}, t.messages]),
    )
    const runs: [Record<string, string>, number][] = []
    for (const [rule, byOutcome] of this.actions)
      for (const [outcome, s] of byOutcome) runs.push([{rule, outcome}, s.count])
    metric('mq_actions_total', 'counter', 'Rule actions finished by this daemon, by outcome.', runs)
    // A summary without quantiles: _sum and _count per rule and outcome.
    lines.push(
      '# HELP mq_action_duration_seconds Time spent on rule actions (all attempts), by outcome.',
      '# TYPE mq_action_duration_seconds summary',
    )
    for (const [rule, byOutcome] of this.actions) {
      for (const [outcome, s] of byOutcome) {
        lines.push(`mq_action_duration_seconds_sum${formatLabels({rule, outcome})} ${s.durationMs / 1000}`)
        lines.push(`mq_action_duration_seconds_count${formatLabels({rule, outcome})} ${s.count}`)
      }
    }
    metric('mq_daemon_events_accepted_total', 'counter', 'Events handed to this daemon.', [
      [{}, this.counts.eventsAccepted],
    ])
    metric('mq_daemon_publish_requests_total', 'counter', 'Publish requests group-committed by this daemon.', [
      [{}, this.counts.published],
    ])
    return `${lines.join('\n')}\n`
  }
}

function formatLabels(labels: Record<string, string>): string {
  const entries = Object.entries(labels)
  if (entries.length === 0) return ''
  return `{${entries.map(([k, v]) => `${k}="${v.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n')}"`).join(',')}}`
}
