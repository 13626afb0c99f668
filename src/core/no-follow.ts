import {
  closeSync,
  constants,
  fchmodSync,
  linkSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs'

import {basename, dirname, join} from 'node:path'

import {StoreError} from './errors.js'
import {isProcessAlive} from './process-alive.js'

/**
 * Files of the broker folder are opened without following a symbolic link in their place: a
 * link there (planted, or left by a mistake) would make mqctl write or chmod a file outside the
 * folder. Such a link is refused with a clear error instead. (O_NOFOLLOW is 0 where the platform
 * lacks it, Windows.)
 */
const NOFOLLOW = constants.O_NOFOLLOW ?? 0

export function linkRefused(path: string, cause?: unknown): StoreError {
  return new StoreError(`${path} is a symbolic link: mqctl does not follow links in the broker folder`, {
    cause,
    hint: `remove ${path} (mqctl makes a new one)`,
  })
}

/** Opens `path` with `flags` (O_* constants), refusing a symbolic link. */
export function openNoFollow(path: string, flags: number, mode = 0o600): number {
  try {
    return openSync(path, flags | NOFOLLOW, mode)
  } catch (error) {
    // ELOOP: the last part of the path is a link (EMLINK on FreeBSD).
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ELOOP' || code === 'EMLINK') throw linkRefused(path, error)
    throw error
  }
}

/** The file's text, or undefined when it does not exist; a link in its place is refused. */
export function readNoFollow(path: string): string | undefined {
  let fd: number
  try {
    fd = openNoFollow(path, constants.O_RDONLY)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  try {
    return readFileSync(fd, 'utf8')
  } finally {
    closeSync(fd)
  }
}

let temporaries = 0

/**
 * Writes the whole file (user-only permissions); `exclusive` fails with EEXIST if anything is
 * there. The text is written under a temporary name first and then put in place in one step
 * (link, or rename), so a reader never sees the file empty or half-written: a process reading
 * the daemon's pid file while it is being claimed would otherwise take it for garbage.
 */
export function writeNoFollow(path: string, text: string, options: {exclusive?: boolean} = {}): void {
  if (!options.exclusive) refuseLinks(path) // rename would replace a link rather than refuse it
  removeDeadTemporaries(path)
  const temporary = `${path}.${process.pid}.${++temporaries}.tmp`
  const fd = openNoFollow(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL)
  try {
    try {
      fchmodSync(fd, 0o600)
      writeSync(fd, text)
    } finally {
      closeSync(fd)
    }
    // link() fails with EEXIST when anything, a link included, is in the way.
    if (options.exclusive) linkOrWrite(temporary, path, text)
    else renameSync(temporary, path)
  } finally {
    rmSync(temporary, {force: true})
  }
}

/**
 * Removes the temporaries of `path` that processes which have since died left behind (killed
 * between writing one and putting it in place): `<name>.<pid>.<n>.tmp` whose pid is not running.
 */
function removeDeadTemporaries(path: string): void {
  const prefix = `${basename(path)}.`
  let names: string[]
  try {
    names = readdirSync(dirname(path))
  } catch {
    return // the caller's own open says what is wrong with the folder
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue
    const pid = /^(\d+)\.\d+\.tmp$/.exec(name.slice(prefix.length))?.[1]
    if (pid !== undefined && Number(pid) !== process.pid && !isProcessAlive(Number(pid))) {
      rmSync(join(dirname(path), name), {force: true})
    }
  }
}

/** Links `temporary` to `path`; where the filesystem has no hard links, writes `path` exclusively instead. */
function linkOrWrite(temporary: string, path: string, text: string): void {
  try {
    linkSync(temporary, path)
  } catch (error) {
    if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error
    const fd = openNoFollow(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL)
    try {
      writeSync(fd, text)
    } finally {
      closeSync(fd)
    }
  }
}

/** Refuses any of `paths` that is a symbolic link (missing ones are fine). */
export function refuseLinks(...paths: string[]): void {
  for (const path of paths) {
    try {
      if (lstatSync(path).isSymbolicLink()) throw linkRefused(path)
    } catch (error) {
      // Missing, or its folder is not one: that is for the caller's own checks to say.
      const code = (error as NodeJS.ErrnoException).code
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error
    }
  }
}
