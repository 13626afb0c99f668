import {homedir, platform} from 'node:os'
import {join, resolve} from 'node:path'

/**
 * Where the broker lives. One precedence, written once: default < environment (MQ_HOME) < flag (--home).
 */
export function resolveHome(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const chosen = flag || env.MQ_HOME || defaultHome(env)
  return resolve(chosen)
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
