import {leaveOpenAtExit} from '../core/store/database.js'
import {execute} from './definition.js'
import {parseFast} from './fast.js'
// Generated at build time from the definitions marked `fast: true` (scripts/fast-commands.ts):
// reading the flag here would mean loading every definition on each start.
import {FAST_COMMANDS} from './fast-commands.js'

/**
 * Runs `argv` on the fast path when it is a plain invocation of a hot command; returns the exit
 * code, or undefined to let oclif handle the command line. `MQ_NO_FAST=1` always defers to oclif.
 * The caller must exit the process with the code at once (see leaveOpenAtExit).
 */
export async function runFast(argv: string[]): Promise<number | undefined> {
  if (process.env.MQ_NO_FAST) return undefined
  // A command in a topic (`rule match`) is two words.
  const words = FAST_COMMANDS[argv[0] ?? ''] ? 1 : FAST_COMMANDS[`${argv[0]} ${argv[1]}`] ? 2 : 0
  if (words === 0) return undefined
  const definition = await FAST_COMMANDS[argv.slice(0, words).join(' ')]()
  const input = parseFast(definition, argv.slice(words))
  if (!input) return undefined
  // bin/run.js exits as soon as this returns: a hot command need not checkpoint the WAL on its way out.
  leaveOpenAtExit()
  return execute(definition, input)
}

const GLOBAL_WITH_VALUE = new Set(['--home', '--broker', '--prefix'])
const GLOBAL_SWITCHES = new Set(['--json', '--no-color', '--non-interactive'])

/**
 * `mq --home DIR publish …` works like `mq publish … --home DIR`: global flags given before the
 * command move after it (oclif only reads flags after the command).
 */
export function globalFlagsLast(argv: string[]): string[] {
  const leading: string[] = []
  let i = 0
  while (i < argv.length) {
    const token = argv[i]
    const name = token.split('=')[0]
    if (GLOBAL_SWITCHES.has(token)) leading.push(token)
    else if (GLOBAL_WITH_VALUE.has(name) && token.includes('=')) leading.push(token)
    else if (GLOBAL_WITH_VALUE.has(token) && i + 1 < argv.length) leading.push(token, argv[++i])
    else break
    i++
  }
  return leading.length === 0 ? argv : [...argv.slice(i), ...leading]
}
