import {existsSync, readFileSync, statSync} from 'node:fs'
import {hostname} from 'node:os'

/** Whether a process exists and is not a zombie (EPERM: it does, someone else's). */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  // A killed process nobody reaped (PID 1 in some containers) still answers signals: check its state.
  return statFields(pid)?.[0] !== 'Z'
}

/**
 * The fields of `/proc/<pid>/stat` after the parenthesised command name (which may contain
 * spaces): state first, the start time at index 19. Undefined when it cannot be read.
 */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return undefined
  }
}

/** The kernel's start time of a process (Linux), to tell a live owner from a later process given the same pid. */
export function processStartTime(pid: number): string | null {
  if (pid === process.pid) return (ownStartTime ??= statFields(pid)?.[19] ?? null)
  return statFields(pid)?.[19] ?? null
}

/** This process's start time, read once (a read of /proc costs about a tenth of a millisecond cold). */
let ownStartTime: string | null | undefined

let procMounted: boolean | undefined

/** Alive, and the same process that recorded `started` (when both start times are known). */
export function isSameProcessAlive(pid: number, started: string | null): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  procMounted ??= existsSync('/proc/self/stat')
  if (!procMounted) return isProcessAlive(pid)
  // One read of /proc answers all three questions (exists, not a zombie, same start time).
  const fields = statFields(pid)
  if (fields === undefined || fields[0] === 'Z') return false
  const now = fields[19] ?? null
  return started === null || now === null || now === started
}

/** Whether a signal can reach `pid` (it exists; maybe a zombie nobody reaped yet). */
export function isSignalable(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

let space: string | undefined

/**
 * Names the process-id space this process lives in: `<boot id>:<pid namespace>` on Linux, the
 * host name elsewhere. A pid recorded under another name was either recorded before the machine
 * last started (its process is gone) or in another container sharing the folder (it cannot be
 * checked from here): see pidSpaceOf.
 */
export function pidSpace(): string {
  if (space !== undefined) return space
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
    space = `${boot}:${statSync('/proc/self/ns/pid').ino}`
  } catch {
    space = hostname()
  }
  return space
}

/**
 * How a pid recorded under `recorded` (a pidSpace) relates to this process: checkable here
 * ('same'), certainly gone ('earlier-boot': the machine started since; a broker folder is only
 * shared by processes of one machine, as SQLite's WAL requires), or not checkable ('other').
 */
export function pidSpaceOf(recorded: string): 'same' | 'earlier-boot' | 'other' {
  const own = pidSpace()
  if (recorded === own) return 'same'
  const boot = (name: string) => (name.includes(':') ? name.slice(0, name.indexOf(':')) : undefined)
  const recordedBoot = boot(recorded)
  return recordedBoot !== undefined && boot(own) !== undefined && recordedBoot !== boot(own) ? 'earlier-boot' : 'other'
}
