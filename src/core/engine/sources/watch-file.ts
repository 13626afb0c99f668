import {constants, type FSWatcher, watch} from 'node:fs'
import {type FileHandle, open, stat} from 'node:fs/promises'
import {basename, dirname, resolve} from 'node:path'

import {sleep} from '../../rate-limiter.js'
import {describe, isMissing, isObject, utf8Boundary} from './helpers.js'
import type {SourceRun} from './source-run.js'

// Watch-file sources: a file followed like `tail -F`, one event per line.

/** Longest line a watch-file source emits. */
export const MAX_LINE_BYTES = 1024 * 1024
/** How often a watched file is re-checked when no notification arrives (lost events, no inotify). */
export const FILE_FALLBACK_POLL_MS = 1_000
const READ_CHUNK_BYTES = 64 * 1024

/** Saved state of a watch-file source. */
interface FileState {
  /** `dev:ino` of the file the offset is in, to tell the same file from a replacement. */
  file: string
  /** Byte offset just past the last line handed over. */
  offset: number
}

interface OpenFile {
  handle: FileHandle
  id: string
  /** Where the next read starts; bytes before it are emitted or held as an unfinished line. */
  readPos: number
  /** Offset last saved. */
  savedOffset: number
}

/** A line of a followed file and the offset just past it (where reading resumes after it). */
interface Line {
  text: string
  end: number
  /** Longer than {@link MAX_LINE_BYTES}: the rest, up to the newline, was dropped. */
  cut?: boolean
}

/**
 * Splits bytes appended to a file into lines. An unfinished last line is held until its newline
 * arrives; a line longer than the limit is cut there and its remainder dropped.
 */
export class LineSplitter {
  private pending: Buffer[] = []
  private pendingBytes = 0
  /** Dropping the rest of a cut line, up to its newline. */
  private skipping = false
  /** Offset just past the last byte that is not part of an unfinished line. */
  committed = 0

  constructor(private readonly maxLineBytes = MAX_LINE_BYTES) {}

  /** Forgets any unfinished line; the next bytes pushed start at `offset`. */
  reset(offset: number): void {
    this.pending = []
    this.pendingBytes = 0
    this.skipping = false
    this.committed = offset
  }

  /** Complete lines in `chunk`, whose last byte is just before file offset `end`. */
  push(chunk: Buffer, end: number): Line[] {
    const base = end - chunk.length
    const lines: Line[] = []
    for (let start = 0; start < chunk.length;) {
      const newline = chunk.indexOf(0x0a, start)
      const stop = newline === -1 ? chunk.length : newline
      if (!this.skipping) this.collect(chunk.subarray(start, stop), base + start, lines)
      if (newline === -1) break
      if (this.skipping) {
        this.skipping = false
        this.committed = base + newline + 1
      } else {
        lines.push(this.finish(base + newline + 1))
      }
      start = newline + 1
    }
    if (this.skipping) this.committed = end
    return lines
  }

  /** The unfinished line as a line of its own (its file is finished), if there is one. */
  flush(): Line | undefined {
    if (this.pendingBytes === 0) return undefined
    return this.finish(this.committed + this.pendingBytes)
  }

  private collect(piece: Buffer, offset: number, lines: Line[]): void {
    const room = this.maxLineBytes - this.pendingBytes
    if (piece.length <= room) {
      if (piece.length > 0) this.hold(piece)
      return
    }
    const keep = utf8Boundary(piece, room)
    this.hold(piece.subarray(0, keep))
    lines.push({...this.finish(offset + keep), cut: true})
    this.skipping = true
  }

  private hold(piece: Buffer): void {
    // Copied: the caller reuses its read buffer.
    this.pending.push(Buffer.from(piece))
    this.pendingBytes += piece.length
  }

  private finish(end: number): Line {
    let bytes = Buffer.concat(this.pending, this.pendingBytes)
    this.pending = []
    this.pendingBytes = 0
    this.committed = end
    if (bytes.at(-1) === 0x0d) bytes = bytes.subarray(0, -1)
    return {text: bytes.toString('utf8'), end}
  }
}

/**
 * Follows one file like `tail -F`: appended lines become events, and renames, replacements and
 * truncations are followed. Waits on notifications for the file's folder (so creation and
 * rotation are seen), with a slow fallback poll for lost ones.
 */
export class FileTail {
  private readonly path: string
  private readonly folder: FolderWatch
  private readonly splitter = new LineSplitter()
  private file?: OpenFile
  /** Used by the first open only: a later open is always of a new file. */
  private saved?: FileState
  private firstOpen = true

  constructor(
    private readonly source: SourceRun,
    private readonly shownPath: string,
  ) {
    this.path = resolve(source.ctx.baseDir, shownPath)
    this.folder = new FolderWatch(dirname(this.path), basename(this.path))
  }

  async run(): Promise<void> {
    this.saved = await this.source.load(parseFileState)
    try {
      while (!this.source.signal.aborted) {
        this.folder.arm()
        try {
          await this.poll()
        } catch (error) {
          // Keep the file and offset: a passing error (a stale NFS handle, EIO) is retried at the next poll.
          this.source.problem(`cannot read ${this.shownPath}: ${describe(error)}`)
        }
        await this.folder.wait(FILE_FALLBACK_POLL_MS, this.source.signal)
      }
    } finally {
      this.folder.close()
      await this.file?.handle.close().catch(() => {})
    }
  }

  /** Reads everything new, following a truncation or a replacement of the file. */
  private async poll(): Promise<void> {
    while (!this.source.signal.aborted) {
      const file = this.file ?? (await this.open())
      if (!file) return
      if (Number((await file.handle.stat({bigint: true})).size) < file.readPos)
        await this.restart(file, 'was truncated')
      await this.drain(file)
      if (this.source.signal.aborted || !(await this.replaced(file))) return
      await this.retire(file)
    }
  }

  private async open(): Promise<OpenFile | undefined> {
    const [first, saved] = [this.firstOpen, this.saved]
    this.firstOpen = false
    this.saved = undefined
    // The file is missing or was replaced: its folder may have been too.
    if (!first) this.folder.renew()
    let handle: FileHandle
    try {
      // Non-blocking, or opening a FIFO would wait (and hold up stop()) until a writer came.
      handle = await open(this.path, constants.O_RDONLY | constants.O_NONBLOCK)
    } catch (error) {
      this.source.problem(
        isMissing(error)
          ? `waiting for ${this.shownPath} to appear`
          : `cannot open ${this.shownPath}: ${describe(error)}`,
      )
      return undefined
    }
    const stats = await handle.stat({bigint: true}).catch(async (error: unknown) => {
      await handle.close()
      throw error
    })
    if (!stats.isFile()) {
      await handle.close()
      this.source.problem(`${this.shownPath} is not a regular file`)
      return undefined
    }
    this.source.recovered()
    const id = `${stats.dev}:${stats.ino}`
    const size = Number(stats.size)
    // Like tail -F: resume where the last run stopped when it is the same file; skip what was there before
    // the first run ever; read all of a file that appeared (or was replaced) since.
    const resumed = saved?.file === id && size >= saved.offset
    const start = resumed ? saved.offset : saved === undefined && first ? size : 0
    if (!resumed && !(saved === undefined && first))
      this.source.log(`reading ${this.shownPath} from the start (new file)`)
    const file: OpenFile = {handle, id, readPos: start, savedOffset: -1}
    this.file = file
    this.splitter.reset(start)
    await this.saveOffset(file, start)
    return file
  }

  private async restart(file: OpenFile, why: string): Promise<void> {
    this.source.log(`${this.shownPath} ${why}; reading it from the start`)
    file.readPos = 0
    this.splitter.reset(0)
    await this.saveOffset(file, 0)
  }

  /** Reads to the end of the file, handing over each chunk's lines, until done or stopped. */
  private async drain(file: OpenFile): Promise<void> {
    const buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES)
    while (!this.source.signal.aborted) {
      const {bytesRead} = await file.handle.read(buffer, 0, buffer.length, file.readPos)
      if (bytesRead === 0) return
      file.readPos += bytesRead
      await this.emitLines(file, this.splitter.push(buffer.subarray(0, bytesRead), file.readPos))
    }
  }

  /** Emits lines in order, then saves the offset past them: only after the emits, so delivery is at-least-once. */
  private async emitLines(file: OpenFile, lines: Line[]): Promise<void> {
    let offset = file.savedOffset
    for (const line of lines) {
      // Stopping mid-batch saves what was handed over; the rest is read again next run.
      if (this.source.signal.aborted) return this.saveOffset(file, offset)
      if (line.cut)
        this.source.log(
          `a line of ${this.shownPath} ending at byte ${line.end} is longer than ${MAX_LINE_BYTES} bytes: cut`,
        )
      await this.source.emit({line: line.text, path: this.shownPath}, this.source.template.subject ?? this.shownPath)
      offset = line.end
    }
    await this.saveOffset(file, this.splitter.committed)
  }

  private async saveOffset(file: OpenFile, offset: number): Promise<void> {
    if (offset === file.savedOffset || offset < 0) return
    file.savedOffset = offset
    await this.source.save({file: file.id, offset} satisfies FileState)
  }

  /** Whether the path now names another file than the one open (rotated or replaced). A missing path is not: writers may still use the open one. */
  private async replaced(file: OpenFile): Promise<boolean> {
    try {
      const stats = await stat(this.path, {bigint: true})
      return `${stats.dev}:${stats.ino}` !== file.id
    } catch {
      // Gone, perhaps with its folder: a new watch hears the folder made again.
      this.folder.renew()
      return false
    }
  }

  /** Finishes a rotated file: its last lines, even one without a newline, then closes it. */
  private async retire(file: OpenFile): Promise<void> {
    this.source.log(`${this.shownPath} was replaced (rotated)`)
    await this.drain(file)
    const last = this.splitter.flush()
    if (last && !this.source.signal.aborted) await this.emitLines(file, [last])
    this.file = undefined
    await file.handle.close().catch(() => {})
  }
}

function parseFileState(raw: unknown): FileState | undefined {
  if (!isObject(raw) || typeof raw.file !== 'string' || !Number.isSafeInteger(raw.offset) || (raw.offset as number) < 0)
    return undefined
  return {file: raw.file, offset: raw.offset as number}
}

/**
 * Notifications for one name in a folder. Watching the folder, not the file, is what reports
 * creation, rename and replacement; if the folder is missing or the watch fails, waiting simply
 * falls back to the timeout, and the next {@link arm} tries again.
 */
class FolderWatch {
  private watcher?: FSWatcher
  private changed = false
  private wake?: () => void

  constructor(
    private readonly folder: string,
    private readonly name: string,
  ) {}

  /** Forgets earlier changes: a change from now on ends the next {@link wait} at once. */
  arm(): void {
    this.changed = false
    this.start()
  }

  /** Watches afresh, keeping changes seen: a watch on a folder that was deleted (and maybe made again) hears nothing more. */
  renew(): void {
    this.close()
    this.start()
  }

  private start(): void {
    if (this.watcher) return
    try {
      this.watcher = watch(this.folder, {persistent: false}, (_event, file) => {
        if (file === null || file === this.name) this.notify()
      })
      this.watcher.on('error', () => this.close())
    } catch {
      // The folder may not exist yet; the fallback poll goes on and the next arm() or renew() retries.
    }
  }

  /** Resolves on a change since {@link arm}, after `ms`, or on abort. */
  async wait(ms: number, signal: AbortSignal): Promise<void> {
    if (this.changed || signal.aborted) return
    const wakeup = new AbortController()
    const stop = () => wakeup.abort()
    signal.addEventListener('abort', stop, {once: true})
    this.wake = stop
    try {
      await sleep(ms, wakeup.signal)
    } finally {
      signal.removeEventListener('abort', stop)
      this.wake = undefined
    }
  }

  close(): void {
    this.watcher?.close()
    this.watcher = undefined
  }

  private notify(): void {
    this.changed = true
    this.wake?.()
  }
}
