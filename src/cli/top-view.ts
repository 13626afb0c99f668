import type {TopQueueRow, TopRuleRow, TopSnapshot, TopTopicRow} from '../core/top.js'
import {formatDuration} from '../core/units.js'
import {PLAIN, type Style} from './output.js'

/**
 * One frame of `mq top` as lines of text: a pure function of a snapshot and the view (size, sort,
 * filter), so the same code draws the live screen, `--once` and the tests.
 */

export type TopSort = 'name' | 'depth' | 'inflight' | 'dlq' | 'in' | 'ack'

/** The keys of the live view (shown in its footer). */
export const SORT_KEYS: Record<string, TopSort> = {n: 'name', d: 'depth', i: 'inflight', x: 'dlq', p: 'in', a: 'ack'}

export interface TopView {
  /** Terminal columns and rows; `rows` Infinity for a frame printed once. */
  columns: number
  rows: number
  sort: TopSort
  /** Ascending instead of the default (names A–Z, numbers largest first). */
  reverse: boolean
  /** Only rows whose name contains this (case-insensitive). */
  filter: string
  /** The filter is being typed (the footer shows the prompt). */
  editing: boolean
  /** Keys and footer: the live view only. */
  live: boolean
  style: Style
}

export const DEFAULT_VIEW: TopView = {
  columns: 120,
  rows: Number.POSITIVE_INFINITY,
  sort: 'depth',
  reverse: false,
  filter: '',
  editing: false,
  live: false,
  style: PLAIN,
}

const BLOCKS = '▁▂▃▄▅▆▇█'

/** The last `width` values as bars, scaled to their largest; blank while there is no history. */
export function sparkline(values: number[], width: number): string {
  const shown = values.slice(-width)
  const top = Math.max(...shown, 0)
  const bars = shown.map((v) =>
    top <= 0 ? BLOCKS[0] : BLOCKS[Math.min(BLOCKS.length - 1, Math.round((v / top) * (BLOCKS.length - 1)))],
  )
  return bars.join('').padStart(width)
}

/** Counts as people read them: 950, 12.3k, 4.1M. */
export function formatCount(n: number): string {
  if (n < 10_000) return String(n)
  if (n < 1_000_000) return `${(n / 1000).toFixed(n < 100_000 ? 1 : 0)}k`
  return `${(n / 1_000_000).toFixed(1)}M`
}

export function formatRate(rate: number | null): string {
  if (rate === null) return '-'
  if (rate === 0) return '0'
  if (rate < 1) return rate.toFixed(2)
  if (rate < 10) return rate.toFixed(1)
  return formatCount(Math.round(rate))
}

interface Column<R> {
  title: string
  width: number
  cell(row: R): string
  /** Left-aligned (names); numbers are right-aligned. */
  left?: boolean
}

/** Columns laid out in `columns`: the name takes what it needs, the rest goes to the sparklines. */
function layout<R extends {name: string}>(
  rows: R[],
  columns: number,
  fixed: Column<R>[],
  sparks: {title(width: number): string; values(row: R): number[]}[],
  nameTitle: string,
  live: boolean,
): {header: string; lines: string[]} {
  const fixedWidth = fixed.reduce((sum, c) => sum + c.width + 2, 0)
  const longest = Math.max(nameTitle.length, ...rows.map((r) => r.name.length))
  const nameWidth = Math.max(8, Math.min(longest, columns - 1 - fixedWidth))
  const left = columns - 1 - fixedWidth - nameWidth
  // Two columns each (a space, and room to breathe) around every sparkline; none when too narrow.
  const sparkWidth = sparks.length === 0 ? 0 : Math.min(40, Math.floor(left / sparks.length) - 2)
  const shownSparks = sparkWidth >= 8 && live ? sparks : []
  const all: Column<R>[] = [
    {
      title: nameTitle,
      width: nameWidth,
      left: true,
      cell: (r) => (r.name.length > nameWidth ? `${r.name.slice(0, nameWidth - 1)}…` : r.name),
    },
    ...fixed,
    ...shownSparks.map((s) => ({
      title: s.title(sparkWidth).slice(0, sparkWidth),
      width: sparkWidth,
      left: true,
      cell: (r: R) => sparkline(s.values(r), sparkWidth),
    })),
  ]
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (all[i].left ? cell.padEnd(all[i].width) : cell.padStart(all[i].width)))
      .join('  ')
      .trimEnd()
      .slice(0, columns - 1)
  return {header: line(all.map((c) => c.title)), lines: rows.map((r) => line(all.map((c) => c.cell(r))))}
}

function sortRows<R extends {name: string}>(rows: R[], view: TopView, value: (row: R) => number | null): R[] {
  const sorted = [...rows].sort((a, b) => {
    if (view.sort === 'name') return a.name.localeCompare(b.name)
    return (value(b) ?? -1) - (value(a) ?? -1) || a.name.localeCompare(b.name)
  })
  return view.reverse ? sorted.reverse() : sorted
}

function queueSortValue(sort: TopSort): (row: TopQueueRow) => number | null {
  switch (sort) {
    case 'inflight':
      return (r) => r.inFlight
    case 'dlq':
      return (r) => r.deadLettered
    case 'in':
      return (r) => r.publishRate
    case 'ack':
      return (r) => r.ackRate
    default:
      return (r) => r.depth
  }
}

const SORT_TITLES: Record<TopSort, string> = {
  name: 'name',
  depth: 'depth',
  inflight: 'in flight',
  dlq: 'DLQ',
  in: 'in/s',
  ack: 'ack/s',
}

/** The frame's lines (no trailing newline, none wider than `columns - 1`). */
export function renderTop(snapshot: TopSnapshot, view: TopView = DEFAULT_VIEW): string[] {
  const s = view.style
  const match = (name: string) => view.filter === '' || name.toLowerCase().includes(view.filter.toLowerCase())
  const history = (width: number) => `(${formatDuration(snapshot.intervalMs * width)})`
  const queues = sortRows(
    snapshot.queues.filter((q) => match(q.name)),
    view,
    queueSortValue(view.sort),
  )
  const topics = sortRows(
    snapshot.topics.filter((t) => match(t.name)),
    view,
    view.sort === 'in'
      ? (t: TopTopicRow) => t.publishRate
      : view.sort === 'name'
        ? () => 0
        : (t: TopTopicRow) => t.messages,
  )
  const rules = [...snapshot.rules.filter((r) => match(r.name))].sort((a, b) => a.name.localeCompare(b.name))

  const q = layout<TopQueueRow>(
    queues,
    view.columns,
    [
      {title: 'KIND', width: 5, left: true, cell: (r) => (r.kind === 'queue' ? 'queue' : 'sub')},
      {title: 'DEPTH', width: 7, cell: (r) => formatCount(r.depth)},
      {title: 'IN FLIGHT', width: 9, cell: (r) => formatCount(r.inFlight)},
      {title: 'DELAYED', width: 7, cell: (r) => (r.delayed === null ? '-' : formatCount(r.delayed))},
      {title: 'DLQ', width: 6, cell: (r) => formatCount(r.deadLettered)},
      {title: 'IN/S', width: 6, cell: (r) => formatRate(r.publishRate)},
      {title: 'ACK/S', width: 6, cell: (r) => formatRate(r.ackRate)},
    ],
    [
      {title: (w) => `DEPTH ${history(w)}`, values: (r) => r.depthHistory},
      {title: (w) => `IN/S ${history(w)}`, values: (r) => r.rateHistory},
    ],
    'NAME',
    view.live,
  )
  const t = layout<TopTopicRow>(
    topics,
    view.columns,
    [
      {title: 'MESSAGES', width: 8, cell: (r) => formatCount(r.messages)},
      {title: 'IN/S', width: 6, cell: (r) => formatRate(r.publishRate)},
      {title: 'SUBS', width: 4, cell: (r) => String(r.subscriptions)},
      {title: 'MAX LAG', width: 7, cell: (r) => formatCount(r.maxLag)},
    ],
    [{title: (w) => `IN/S ${history(w)}`, values: (r) => r.rateHistory}],
    'NAME',
    view.live,
  )
  const r = layout<TopRuleRow>(
    rules,
    view.columns,
    [
      {
        title: 'STATE',
        width: 8,
        left: true,
        cell: (x) => (x.enabled === null ? 'removed' : x.enabled ? 'enabled' : 'disabled'),
      },
      {title: 'MATCHES', width: 7, cell: (x) => formatCount(x.matches)},
      {title: 'FAILED', width: 6, cell: (x) => formatCount(x.failures)},
      {title: 'GAVE UP', width: 7, cell: (x) => formatCount(x.deadLettered)},
      {title: 'AVG', width: 6, cell: (x) => (x.avgLatencyMs === null ? '-' : formatDuration(x.avgLatencyMs))},
      {title: 'MAX', width: 6, cell: (x) => (x.maxLatencyMs === null ? '-' : formatDuration(x.maxLatencyMs))},
    ],
    [{title: (w) => `MATCHES/S ${history(w)}`, values: (x) => x.matchHistory}],
    'NAME',
    view.live,
  )

  const time = snapshot.takenAt.slice(11, 19)
  const title = `mq top — ${snapshot.broker} — ${time} — every ${formatDuration(snapshot.intervalMs)}`
  const counts = [
    plural(snapshot.queues.filter((x) => x.kind === 'queue').length, 'queue'),
    plural(snapshot.topics.length, 'topic'),
    plural(snapshot.queues.filter((x) => x.kind === 'subscription').length, 'subscription'),
    plural(snapshot.rules.length, 'rule'),
  ].join(', ')
  const order = `sorted by ${SORT_TITLES[view.sort]}${view.reverse ? ' (reversed)' : ''}${view.filter ? ` · filter "${view.filter}"` : ''}`
  const head = [clip(`${title} · ${counts}`, view.columns), clip(order, view.columns)]

  const sections: {title: string; header: string; lines: string[]; empty: string}[] = [
    {
      title: 'QUEUES AND SUBSCRIPTIONS',
      header: q.header,
      lines: q.lines,
      empty: view.filter ? 'none match the filter' : 'no queues or subscriptions yet',
    },
    {title: 'TOPICS', header: t.header, lines: t.lines, empty: view.filter ? 'none match the filter' : 'no topics'},
    ...(snapshot.rules.length > 0 || view.live
      ? [
          {
            title: 'RULES (from the event journal)',
            header: r.header,
            lines: r.lines,
            empty: view.filter ? 'none match the filter' : 'no rules',
          },
        ]
      : []),
  ]
  const footer = view.live ? [footerLine(view)] : []
  // Fit the screen: each section keeps at least its title, header and one row; queues get the most.
  const budget = view.rows - head.length - footer.length - sections.length * 3
  const wanted = sections.map((x) => Math.max(1, x.lines.length))
  const shown = fitRows(wanted, budget)
  const body: string[] = []
  sections.forEach((section, i) => {
    body.push('', s.bold(section.title), s.dim(section.header))
    if (section.lines.length === 0) body.push(s.dim(`  ${section.empty}`))
    const rows =
      section.lines.length > shown[i]
        ? [
            ...section.lines.slice(0, shown[i] - 1),
            s.dim(`  … ${section.lines.length - shown[i] + 1} more (filter with /)`),
          ]
        : section.lines
    body.push(...rows)
  })
  const lines = [s.bold(head[0]), s.dim(head[1]), ...body]
  if (!Number.isFinite(view.rows)) return [...lines, ...footer.map((f) => s.dim(f))]
  // The footer sits on the last row.
  lines.length = Math.min(lines.length, view.rows - footer.length)
  return [
    ...lines,
    ...Array.from({length: view.rows - footer.length - lines.length}, () => ''),
    ...footer.map((f) => s.dim(f)),
  ]
}

/** Rows for each section within the budget: small sections in full, the first (queues) the rest. */
function fitRows(wanted: number[], budget: number): number[] {
  if (!Number.isFinite(budget)) return wanted
  const shown = wanted.map(() => 1)
  let left = budget - wanted.length
  // Later sections (topics, rules) are usually short: give them up to a quarter each, then queues the rest.
  for (let i = wanted.length - 1; i >= 1; i--) {
    const extra = Math.max(0, Math.min(wanted[i] - 1, Math.floor(budget / 4) - 1, left))
    shown[i] += extra
    left -= extra
  }
  shown[0] += Math.max(0, Math.min(wanted[0] - 1, left))
  return shown
}

function footerLine(view: TopView): string {
  if (view.editing) return clip(`filter: ${view.filter}▏ (Enter keeps it, Esc clears it)`, view.columns)
  const keys = Object.entries(SORT_KEYS).map(([key, sort]) => `${key} ${SORT_TITLES[sort]}`)
  return clip(`sort: ${keys.join('  ')}  r reverse  / filter  q quit`, view.columns)
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`
}

function clip(text: string, columns: number): string {
  return text.length <= columns - 1 ? text : `${text.slice(0, Math.max(0, columns - 2))}…`
}
