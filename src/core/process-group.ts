import type {ChildProcess} from 'node:child_process'

/** Grace between SIGTERM and SIGKILL when a command is stopped. */
export const KILL_GRACE_MS = 2_000

/**
 * Stops a command started with `detached: true` (its own process group): SIGTERM to the whole
 * group, so `sh -c 'sleep 100'` takes its children with it, then SIGKILL after a grace period.
 */
export function stopGroup(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const group = -child.pid
  try {
    process.kill(group, 'SIGTERM')
  } catch {
    return
  }
  setTimeout(() => {
    try {
      process.kill(group, 'SIGKILL')
    } catch {
      // already gone
    }
  }, KILL_GRACE_MS).unref()
}

/** Keeps the last `max` characters of a stream's output. */
export class OutputTail {
  private text = ''
  constructor(private readonly max = 2_000) {}
  add(chunk: Buffer | string): void {
    this.text = (this.text + chunk.toString()).slice(-this.max)
  }
  toString(): string {
    return this.text
  }
}
