import {closeSync, constants, openSync, readlinkSync, write} from 'node:fs'

/**
 * Buffered, back-pressure-aware writing to stdout: streams of messages are written in batches,
 * and a reader that goes away (EPIPE, e.g. `| head -1`) ends the command quietly.
 */
export class Output {
  private buffer: string[] = []
  private size = 0
  private broken = false
  /** See pipeWrites: the blocking descriptor, and the write under way (it never rejects). */
  private pipe?: {fd: number; written: Promise<void>}
  private onBroken?: () => void
  /** A write error other than the reader going away (e.g. ENOSPC): the command fails with it. */
  failure?: NodeJS.ErrnoException

  constructor(private readonly stream: NodeJS.WritableStream = process.stdout) {
    // oclif installs a listener that rethrows anything but EPIPE as an uncaught exception (a stack
    // trace); this one handles every write error, so it replaces it.
    stream.removeAllListeners('error')
    stream.on('error', (error: NodeJS.ErrnoException) => {
      this.broken = true
      if (error.code !== 'EPIPE') this.failure = error
      this.onBroken?.()
    })
  }

  /**
   * For a long stream of output whose batches need not wait until written (manual-ack
   * deliveries): when stdout is a pipe (on Linux), later batches are written through a blocking
   * descriptor of that pipe (opened anew through /proc) from libuv's thread pool, one write at a
   * time. A pipe holds only 64 KiB, which a reader such as `jq` empties in about a millisecond; a
   * stream refills it only when the event loop turns, so the reader sat idle while the next batch
   * was being taken. The thread's blocking write refills it as the reader empties it. Does nothing
   * (the stream is used) for another stdout, or when anything written earlier is still queued. A
   * reader that goes away shows as EPIPE, as on the stream; one batch more than before may have
   * been leased by then.
   */
  pipeWrites(): void {
    if (this.pipe || this.stream !== process.stdout || process.platform !== 'linux') return
    if (process.stdout.writableLength > 0 || this.size > 0) return
    try {
      // An anonymous pipe only: opening a named one (a FIFO) for writing waits for a reader.
      if (!readlinkSync('/proc/self/fd/1').startsWith('pipe:')) return
      this.pipe = {fd: openSync('/proc/self/fd/1', constants.O_WRONLY), written: Promise.resolve()}
    } catch {
      // The stream it is.
    }
  }

  /** Closes pipeWrites's descriptor, once everything was written. */
  async close(): Promise<void> {
    if (!this.pipe) return
    await this.pipe.written
    closeSync(this.pipe.fd)
    this.pipe = undefined
  }

  get isBroken(): boolean {
    return this.broken
  }

  /** Called once when the reader closes the pipe. */
  whenBroken(callback: () => void): void {
    this.onBroken = callback
  }

  line(text: string): void {
    this.write(`${text}\n`)
  }

  /** One line per item, as one piece of text (a batch of ids). */
  lines<T>(items: readonly T[], text: (item: T) => string): void {
    if (items.length === 0) return
    const texts = new Array<string>(items.length)
    for (let i = 0; i < items.length; i++) texts[i] = text(items[i])
    this.write(`${texts.join('\n')}\n`)
  }

  write(text: string): void {
    if (this.broken) return
    this.buffer.push(text)
    this.size += text.length
  }

  /**
   * Flushes, then lets the event loop deliver a write error, so the caller knows whether what it
   * wrote reached the reader before it settles the messages (auto-ack prints, then removes).
   */
  async settle(): Promise<boolean> {
    await this.flush()
    await this.pipe?.written
    await new Promise((resolve) => setImmediate(resolve))
    return !this.broken
  }

  /**
   * Writes what is buffered and waits while the pipe is full; after pipeWrites, waits only until
   * the previous batch was written (settle waits for this one too).
   */
  async flush(): Promise<void> {
    if (this.size === 0 || this.broken) return
    const text = this.buffer.join('')
    this.buffer = []
    this.size = 0
    if (this.pipe) {
      const {fd, written} = this.pipe
      const data = Buffer.from(text)
      this.pipe.written = written.then(() => this.writeAll(fd, data))
      await written
      return
    }
    if (!this.stream.write(text)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.stream.off('drain', done)
          this.stream.off('error', done)
          resolve()
        }
        this.stream.on('drain', done)
        this.stream.on('error', done)
      })
    }
  }

  /** Writes all of `data` to `fd` from the thread pool; a failure is handled as the stream's. */
  private async writeAll(fd: number, data: Buffer): Promise<void> {
    let offset = 0
    while (offset < data.length && !this.broken) {
      try {
        offset += await new Promise<number>((resolve, reject) =>
          write(fd, data, offset, data.length - offset, null, (error, count) =>
            error ? reject(error) : resolve(count),
          ),
        )
      } catch (error) {
        this.broken = true
        if ((error as NodeJS.ErrnoException).code !== 'EPIPE') this.failure = error as NodeJS.ErrnoException
        this.onBroken?.()
      }
    }
  }
}

export interface Style {
  bold(text: string): string
  dim(text: string): string
  red(text: string): string
  green(text: string): string
  yellow(text: string): string
  cyan(text: string): string
  magenta(text: string): string
}

const identity = (text: string) => text
export const PLAIN: Style = {
  bold: identity,
  dim: identity,
  red: identity,
  green: identity,
  yellow: identity,
  cyan: identity,
  magenta: identity,
}

/**
 * The one format of every `list` command (README.md, "Output"): at a terminal a table with a
 * header; in a pipe the same columns tab-separated, one row per line, no header; `emptyText` (at
 * a terminal only) when there are no rows. With --json, lists print one object per line instead
 * (`jsonLines` on the definition).
 */
export function listing(
  ctx: {stdoutIsTTY: boolean},
  headers: string[],
  rows: (string | number)[][],
  emptyText: string,
): string | undefined {
  if (rows.length === 0) return ctx.stdoutIsTTY ? emptyText : undefined
  if (ctx.stdoutIsTTY) return table(headers, rows)
  return rows.map((row) => row.map((cell) => String(cell).replace(/[\t\r\n]+/g, ' ')).join('\t')).join('\n')
}

/**
 * JSON for --json output, with the one rule for times (README.md, "Output"): every timestamp —
 * a field named `…At` (`createdAt`, `publishedAt`, `receivedAt`, `startedAt`, …) — is an ISO-8601
 * string in UTC with milliseconds, never epoch milliseconds; durations stay numbers named `…Ms`.
 */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (key, item: unknown) =>
    typeof item === 'number' && /^[a-z]+At$/.test(key) ? new Date(item).toISOString() : item,
  )
}

/** Lays out rows as aligned columns (for human output only). */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((row) => row.map(String))]
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => visibleLength(row[column] ?? ''))))
  return cells
    .map((row) =>
      row
        .map((cell, column) =>
          column === row.length - 1 ? cell : cell + ' '.repeat(widths[column] - visibleLength(cell)),
        )
        .join('  '),
    )
    .join('\n')
}

function visibleLength(text: string): number {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001B\[[0-9;]*m/g, '').length
}

/** A titled block of aligned `label  value` lines (the stats commands). */
export function keyValues(title: string, rows: [string, string | number][]): string {
  const width = Math.max(...rows.map(([key]) => key.length)) + 2
  return [title, ...rows.map(([key, value]) => `  ${key.padEnd(width)}${value}`)].join('\n')
}
