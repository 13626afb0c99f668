import {isAbsolute, resolve} from 'node:path'

import type {ChildEnd} from './process-group.js'

/** Exit statuses with which a shell says the command itself could not run (POSIX: not executable, not found). */
const NOT_EXECUTABLE = 126
const NOT_FOUND = 127

/**
 * Why a command could not start at all, or undefined when it ran (README.md, "The `--exec`
 * contract"): the program is missing or not executable (ENOENT, EACCES, or a shell's exit 126 or
 * 127). Such a failure is the same for every message, so retrying it would only drain the queue
 * into its dead letters; callers stop instead. Names the path that was tried.
 * @param program the program as written: argv[0], or the first word of a shell command
 * @param cwd the folder a relative program is looked up in
 */
export function cannotStartReason(end: ChildEnd, program: string, cwd: string): string | undefined {
  const tried = program.includes('/')
    ? isAbsolute(program)
      ? program
      : `${resolve(cwd, program)} (${program} in ${cwd})`
    : `${program} (searched in PATH)`
  const code = !end.started || end.error ? (end.error as NodeJS.ErrnoException).code : undefined
  if (code === 'ENOENT' || (end.started && !end.error && !end.timedOut && !end.aborted && end.code === NOT_FOUND))
    return `cannot start ${tried}: not found`
  if (
    code === 'EACCES' ||
    (end.started && !end.error && !end.timedOut && !end.aborted && end.code === NOT_EXECUTABLE)
  ) {
    return `cannot start ${tried}: not executable (permission denied)`
  }
  return undefined
}

/** The program a shell command line runs first: its first word (good enough to name in an error). */
export function firstWord(command: string): string {
  return command.trim().split(/\s+/)[0] ?? command
}
