import {InvalidInputError} from '../core/errors.js'
import type {Context} from './context.js'

/**
 * Asks a person for a missing name, offering the existing ones; without a terminal a missing
 * argument is a usage error (exit 2), never a prompt.
 */
export async function askName(ctx: Context, what: string, choices: string[], flagHint: string): Promise<string> {
  if (!ctx.interactive) throw new InvalidInputError(`missing ${what}`, {code: 'usage', hint: flagHint})
  const {input, select} = await import('@inquirer/prompts')
  if (choices.length === 0) return (await input({message: `${what}:`, required: true})).trim()
  return select({message: `Which ${what}?`, choices: choices.map((name) => ({name, value: name}))})
}

export async function askText(ctx: Context, message: string, flagHint: string): Promise<string> {
  if (!ctx.interactive) throw new InvalidInputError(`missing ${message}`, {code: 'usage', hint: flagHint})
  const {input} = await import('@inquirer/prompts')
  return input({message: `${message}:`})
}

/** Asks before something destructive, when a person is there to ask; `--yes` skips it. */
export async function confirm(ctx: Context, yes: boolean, message: string): Promise<void> {
  if (yes || !ctx.interactive) return
  const {confirm: ask} = await import('@inquirer/prompts')
  if (!(await ask({message, default: false}))) throw new InvalidInputError('cancelled', {code: 'cancelled', hint: 'nothing was changed'})
}
