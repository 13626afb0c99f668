import {constants, type FSWatcher, watch} from 'node:fs'

import {openNoFollow} from '../no-follow.js'

/** How often a waiting consumer re-checks when no change notification arrives. */
export const FALLBACK_POLL_MS = 1_000

/**
 * How long waiters wait on after a change whose `onChange` wrote something out (see
 * ChangeNotifier.onChange).
 */
export const GIVE_WAY_MS = 1

/** A mark taken before the watch started (see ChangeNotifier.mark). */
const UNWATCHED = -1

/** The file every committing process writes a byte to (see Sql.signal). */
export const SIGNAL_FILE = 'changes.signal'

/**
 * Opens the signal file for writing (created user-only). A symbolic link in its place is refused,
 * never written through: a commit would otherwise write into whatever file it points at.
 */
export function openSignalFile(path: string): number {
  return openNoFollow(path, constants.O_WRONLY | constants.O_CREAT)
}

/**
 * Wakes long-polling consumers when another process commits to the broker: each commit that
 * changed something writes to `changes.signal`, and a watch on the folder (inotify on Linux)
 * reports it, so waiting costs no CPU. A slow fallback poll covers file systems without
 * notifications and lost events.
 */
export class ChangeNotifier {
  private watcher?: FSWatcher
  /** Whether the watch was set up (or tried: it may have failed, and then waits poll). */
  private started = false
  /** Bumped on every change, so each waiter can tell whether one happened since its mark. */
  private generation = 0
  private waiters = new Set<() => void>()
  /** What ended waits left to undo (see wait): their timers and abort listeners. */
  private leftovers: (() => void)[] = []
  private closed = false
  /** See onChange. */
  private hooks = new Set<() => boolean>()

  constructor(private readonly folder: string) {}

  /**
   * Marks now: a `wait(mark)` returns at once if a change happened after this. The watch starts
   * only when something first has to wait (most publishes and receives never do), so a mark
   * taken before then cannot tell: its `wait` starts the watch and returns at once, and the
   * caller tries again under a real mark.
   */
  mark(): number {
    return this.started ? this.generation : UNWATCHED
  }

  /**
   * Resolves at the first change after `mark`, after `timeoutMs`, or on abort. A wait that ended
   * leaves its timer (unreferenced: it keeps no process alive) and its abort listener to the next
   * wait, or to close, to clear: on a consumer woken by a change, clearing them came before what
   * it was woken for, and cost it as much as reading its message (clearTimeout and
   * removeEventListener, about 35 µs each when the process had been idle; bench/storage.js,
   * wake-up). A leftover that fires finds its wait over and does nothing.
   */
  async wait(mark: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    this.clearLeftovers()
    if (mark === UNWATCHED) {
      this.start()
      return
    }
    if (this.generation !== mark || timeoutMs <= 0 || signal?.aborted) return
    await new Promise<void>((resolve) => {
      const done = () => {
        if (!this.waiters.delete(done)) return
        resolve()
        timer.unref()
        this.leftovers.push(() => {
          clearTimeout(timer)
          signal?.removeEventListener('abort', done)
        })
      }
      const timer = setTimeout(done, Math.min(timeoutMs, 2 ** 31 - 1))
      signal?.addEventListener('abort', done, {once: true})
      this.waiters.add(done)
    })
  }

  /**
   * Runs `hook` on every change until the returned function is called, in the watch's callback,
   * before the waiters are woken: for a waiting receive to take what was handed to it at once
   * (FileBroker.receive). When a hook returns true (it wrote something out), the waiters are woken
   * GIVE_WAY_MS later, not at once: a write to a pipe wakes its reader on the writer's CPU, and
   * the reader then waits until the writer stops, so the process goes back to waiting first and
   * the reader of the line runs at once (ARCHITECTURE.md, "Hand-off to waiting consumers").
   */
  onChange(hook: () => boolean): () => void {
    this.hooks.add(hook)
    return () => this.hooks.delete(hook)
  }

  close(): void {
    this.closed = true
    this.watcher?.close()
    this.watcher = undefined
    this.wakeAll()
    this.clearLeftovers()
  }

  private wakeAll(): void {
    for (const wake of [...this.waiters]) wake()
  }

  private clearLeftovers(): void {
    if (this.leftovers.length === 0) return
    for (const clear of this.leftovers) clear()
    this.leftovers = []
  }

  private start(): void {
    if (this.started || this.closed) return
    this.started = true
    try {
      this.watcher = watch(this.folder, {persistent: false}, (_event, file) => {
        if (file && String(file) !== SIGNAL_FILE) return
        this.generation++
        let wrote = false
        for (const hook of this.hooks) if (hook()) wrote = true
        if (wrote) setTimeout(() => this.wakeAll(), GIVE_WAY_MS)
        else this.wakeAll()
      })
      this.watcher.on('error', () => {
        // Notifications are an optimisation; the fallback poll keeps consumers correct without them.
        this.watcher?.close()
      })
    } catch {
      // Same: no watch (e.g. inotify limits reached) means waiting falls back to polling.
    }
  }
}
