import type {TopSampler, TopSnapshot} from '../core/top.js'
import {sleep} from '../core/rate-limiter.js'
import type {Context} from './context.js'
import {renderTop, SORT_KEYS, type TopView} from './top-view.js'

const ENTER_ALTERNATE_SCREEN = '\u001B[?1049h\u001B[?25l'
const LEAVE_ALTERNATE_SCREEN = '\u001B[?25h\u001B[?1049l'

/**
 * The live `mq top`: the alternate screen, a frame per sample and per key or resize, keys read
 * raw from the terminal. The terminal is given back (main screen, cursor, cooked input) however
 * it ends: q, Ctrl-C, a signal or an error.
 */
export async function runTopScreen(
  ctx: Context,
  sampler: TopSampler,
  start: Pick<TopView, 'sort' | 'filter'> & {intervalMs: number},
): Promise<void> {
  const {stdin, stdout} = ctx
  const tty = stdout as NodeJS.WriteStream
  const input = stdin as NodeJS.ReadStream
  const style = await ctx.style()
  const view: TopView = {
    columns: 80,
    rows: 24,
    sort: start.sort,
    reverse: false,
    filter: start.filter,
    editing: false,
    live: true,
    style,
  }
  const stop = new AbortController()
  const {drain} = ctx.handleInterrupts()
  drain.addEventListener('abort', () => stop.abort(), {once: true})
  let snapshot: TopSnapshot | undefined

  const draw = () => {
    if (!snapshot || stop.signal.aborted) return
    view.columns = tty.columns ?? 80
    view.rows = tty.rows ?? 24
    const lines = renderTop(snapshot, view)
    // Home, each line cleared to its end, then everything below: no flicker, no leftovers.
    stdout.write(`\u001B[H${lines.map((line) => `${line}\u001B[K`).join('\r\n')}\u001B[J`)
  }

  /** One key; false if it means nothing here. */
  const key = (k: string): boolean => {
    if (view.editing) {
      if (k === '\r' || k === '\n') view.editing = false
      else if (k === '\u001B') Object.assign(view, {editing: false, filter: ''})
      else if (k === '\u007F' || k === '\b') view.filter = view.filter.slice(0, -1)
      else if (k >= ' ') view.filter += k
      else return false
    } else if (k in SORT_KEYS) view.sort = SORT_KEYS[k]
    else if (k === 'r') view.reverse = !view.reverse
    else if (k === '/') view.editing = true
    else if (k === '\u001B') view.filter = ''
    else return false
    return true
  }
  const onKey = (data: Buffer | string) => {
    const text = String(data)
    // An escape sequence (arrows, function keys) is one chunk: not a key of ours.
    if (text.length > 1 && text.startsWith('\u001B')) return
    let changed = false
    for (const k of text) {
      if (k === '\u0003' || (!view.editing && (k === 'q' || k === 'Q'))) return stop.abort() // Ctrl-C comes as a key in raw mode
      changed = key(k) || changed
    }
    if (changed) draw()
  }

  let restored = false
  const restore = () => {
    if (restored) return
    restored = true
    input.off('data', onKey)
    tty.off('resize', draw)
    if (input.isTTY) input.setRawMode(false)
    input.pause()
    stdout.write(LEAVE_ALTERNATE_SCREEN)
  }
  // However the process ends, the terminal is given back.
  ctx.release(restore)
  process.once('exit', restore)
  ctx.release(() => process.off('exit', restore))

  stdout.write(ENTER_ALTERNATE_SCREEN)
  if (input.isTTY) input.setRawMode(true)
  input.on('data', onKey)
  input.resume()
  tty.on('resize', draw) // SIGWINCH

  while (!stop.signal.aborted) {
    snapshot = await sampler.sample()
    draw()
    await sleep(start.intervalMs, stop.signal)
  }
  restore()
}
