import {readFileSync} from 'node:fs'

/** Whether a process exists and is not a zombie (EPERM: it does, someone else's). */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  // A killed process nobody reaped (PID 1 in some containers) still answers signals: check its state.
  return processState(pid) !== 'Z'
}

function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]
  } catch {
    return undefined
  }
}

/** The kernel's start time of a process (Linux), to tell a live owner from a later process given the same pid. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Field 22, counted after the parenthesised command name (which may contain spaces).
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null
  } catch {
    return null
  }
}

/** Alive, and the same process that recorded `started` (when both start times are known). */
export function isSameProcessAlive(pid: number, started: string | null): boolean {
  if (!isProcessAlive(pid)) return false
  const now = processStartTime(pid)
  return started === null || now === null || now === started
}
