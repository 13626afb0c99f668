import {monotonicNow} from '../core/clock.js'
import {formatDuration} from '../core/units.js'

/**
 * The one progress bar of long operations (README.md, "Progress"): count, rate and ETA on one
 * stderr line, redrawn in place. `Context.progress` hands out a real one only for a person at a
 * terminal; elsewhere a no-op.
 */
export interface Progress {
  /** `done` items so far; `total` when known; `fraction` (0–1) when the total is in another unit (bytes of a file). */
  update(done: number, total?: number, fraction?: number): void
  /** Clears the line. Idempotent. */
  stop(): void
}

export const NO_PROGRESS: Progress = {update() {}, stop() {}}

export interface ProgressLine {
  label: string
  done: number
  total?: number
  /** 0–1; defaults to done/total. */
  fraction?: number
  /** Items per second, when measured. */
  ratePerSecond?: number
  etaMs?: number
  /** What is counted (`messages`). */
  unit: string
  /** Terminal columns. */
  width: number
}

// Made on first use: building an Intl formatter costs about 10 ms, which every one-shot command
// would pay at start-up (ARCHITECTURE.md, "Two ways in").
let numberFormat: Intl.NumberFormat | undefined
const number = {format: (n: number) => (numberFormat ??= new Intl.NumberFormat('en-US')).format(n)}

/** One frame of the bar, as plain text no wider than `width`. A pure function. */
export function formatProgress(p: ProgressLine): string {
  const fraction = p.fraction ?? (p.total ? Math.min(1, p.done / p.total) : undefined)
  const count =
    p.total === undefined
      ? `${number.format(p.done)} ${p.unit}`
      : `${number.format(p.done)}/${number.format(p.total)} ${p.unit}`
  const rate = p.ratePerSecond === undefined ? '' : `  ${number.format(Math.round(p.ratePerSecond))}/s`
  const eta = p.etaMs === undefined || fraction === undefined ? '' : `  ETA ${formatDuration(p.etaMs)}`
  const percent = fraction === undefined ? '' : `${String(Math.floor(fraction * 100)).padStart(3)}% `
  const text = `${percent}${count}${rate}${eta}`
  // One column spare: writing the last one makes some terminals wrap.
  const avail = p.width - 1 - text.length - 2 - 3
  if (fraction !== undefined && avail >= 14) {
    // The bar takes what is left, up to 30 columns; the label gives way first on a narrow terminal.
    const label = p.label.length <= avail - 10 ? p.label : `${p.label.slice(0, avail - 11)}…`
    const barWidth = Math.min(30, avail - label.length)
    const filled = Math.round(fraction * barWidth)
    return `${label}  [${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ${text}`
  }
  const line = `${p.label}  ${text}`
  return line.length <= p.width - 1 ? line : `${line.slice(0, Math.max(0, p.width - 2))}…`
}

/** How long an operation must last before a bar appears (a quick one shows nothing). */
const SHOW_AFTER_MS = 300
const REDRAW_MS = 100
/** Rate and ETA are measured over this much recent time. */
const RATE_WINDOW_MS = 5_000

/** A bar on a terminal stream, redrawn at most every 100 ms. */
export class ProgressBar implements Progress {
  private readonly started: number
  private samples: {at: number; done: number; fraction?: number}[] = []
  private lastDraw = Number.NEGATIVE_INFINITY
  private drawn = false
  private latest?: {done: number; total?: number; fraction?: number}
  private timer?: NodeJS.Timeout
  private stopped = false

  constructor(
    private readonly stream: NodeJS.WritableStream & {columns?: number},
    private readonly label: string,
    private readonly unit = 'messages',
    private readonly now: () => number = monotonicNow,
  ) {
    this.started = now()
  }

  update(done: number, total?: number, fraction?: number): void {
    if (this.stopped) return
    const at = this.now()
    this.latest = {done, total, fraction}
    this.samples.push({at, done, fraction: fraction ?? (total ? done / total : undefined)})
    while (this.samples.length > 2 && this.samples[0].at < at - RATE_WINDOW_MS) this.samples.shift()
    const due = Math.max(this.started + SHOW_AFTER_MS, this.lastDraw + REDRAW_MS)
    if (at >= due) this.draw(at)
    // Too soon: the latest state is drawn when it is due, even if no update comes by then (a
    // publish blocked on a full queue still shows where it is).
    else this.timer ??= setTimeout(() => this.draw(this.now()), due - at).unref()
  }

  stop(): void {
    if (this.stopped) return
    this.stopped = true
    clearTimeout(this.timer)
    if (this.drawn) this.stream.write('\r\u001B[K')
  }

  private draw(at: number): void {
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.stopped || !this.latest) return
    this.lastDraw = at
    this.drawn = true
    const line = formatProgress({
      label: this.label,
      ...this.latest,
      ...this.measure(),
      unit: this.unit,
      width: this.stream.columns ?? 80,
    })
    this.stream.write(`\r${line}\u001B[K`)
  }

  /** Rate and ETA over the recent window (from the start until the window fills). */
  private measure(): {ratePerSecond?: number; etaMs?: number} {
    const first = this.samples[0]
    const last = this.samples.at(-1)!
    const seconds = (last.at - first.at) / 1000
    if (seconds <= 0) return {}
    const ratePerSecond = (last.done - first.done) / seconds
    if (last.fraction === undefined || first.fraction === undefined) return {ratePerSecond}
    const perSecond = (last.fraction - first.fraction) / seconds
    return {ratePerSecond, etaMs: perSecond > 0 ? ((1 - last.fraction) / perSecond) * 1000 : undefined}
  }
}
