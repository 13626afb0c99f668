import {homedir, platform} from 'node:os'
import {join, resolve} from 'node:path'

import {InvalidInputError} from './errors.js'

/**
 * Where the broker lives. One precedence, written once: default < environment (MQ_HOME) < flag (--home).
 */
export function resolveHome(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  // An empty value is a mistake (`--home "$DIR"` with DIR unset), never a request for the default:
  // falling back would silently use another broker.
  if (flag === '' || (flag === undefined && env.MQ_HOME === '')) {
    throw new InvalidInputError(`${env.MQ_HOME === '' ? '--home or MQ_HOME' : '--home'} is empty`, {
      code: 'usage',
      hint: 'name the broker folder, or leave both unset to use the default folder',
    })
  }
  return resolve(flag ?? env.MQ_HOME ?? defaultHome(env))
}

/** The per-user data folder: XDG on Linux, Application Support on macOS, LOCALAPPDATA on Windows. */
export function defaultHome(env: NodeJS.ProcessEnv = process.env): string {
  switch (platform()) {
    case 'darwin':
      return join(homedir(), 'Library', 'Application Support', 'mqctl')
    case 'win32':
      return join(env.LOCALAPPDATA ?? join(homedir(), 'AppData', 'Local'), 'mqctl')
    default:
      return join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'mqctl')
  }
}

/** The rules document: default `<home>/rules.json` < environment (MQ_RULES) < flag (--rules). */
export function resolveRulesPath(flag: string | undefined, home: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag || env.MQ_RULES || join(home, 'rules.json'))
}
