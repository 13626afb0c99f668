import {existsSync} from 'node:fs'
import {isAbsolute, resolve} from 'node:path'

import {firstWord} from '../cannot-start.js'
import type {ActionSpec} from './rules.js'

/** A relative path in an action that points at nothing (yet), for a warning. */
export interface MissingPath {
  /** As written in the action. */
  given: string
  /** Where it was looked for. */
  resolved: string
}

/**
 * Anchors the relative programs of new exec actions (`mq rule add`; README.md, "Rules"). At run
 * time the engine resolves them against the rules document's folder. For the default document, which lives
 * in the broker folder, that is not where the user typed them: there `absolute` is set and they
 * are stored resolved against `base` (the folder `rule add` ran in). A `--rules` document keeps
 * them relative, to its own folder, so a repository can carry its rules. Either way, a program
 * or cwd that does not exist is reported (templates are left alone).
 */
export function anchorActionPaths(
  actions: ActionSpec[],
  base: string,
  absolute: boolean,
): {actions: ActionSpec[]; missing: MissingPath[]} {
  const missing: MissingPath[] = []
  const anchor = (path: string): string => (absolute && !isAbsolute(path) ? resolve(base, path) : path)
  const check = (given: string, from: string) => {
    if (given.includes('{{')) return
    const resolved = resolve(from, given)
    if (!existsSync(resolved)) missing.push({given, resolved})
  }
  const anchored = actions.map((action): ActionSpec => {
    if (action.type !== 'exec') return action
    const next = {...action}
    if (next.cwd !== undefined) {
      check(next.cwd, base)
      next.cwd = anchor(next.cwd)
    } else if (absolute && next.shell) {
      // A shell command's words cannot be rewritten safely: run it where `rule add` ran instead.
      next.cwd = base
    }
    const runsIn = next.cwd === undefined ? base : resolve(base, next.cwd)
    const program = next.shell ? firstWord(next.command as string) : (next.command as string[])[0]
    // A bare name (no slash) is looked up in PATH, as a shell does: not a path to anchor.
    if (typeof program !== 'string' || !program.includes('/')) return next
    check(program, runsIn)
    if (!next.shell && absolute && !isAbsolute(program))
      next.command = [resolve(runsIn, program), ...(next.command as string[]).slice(1)]
    return next
  })
  return {actions: anchored, missing}
}
