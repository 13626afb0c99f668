import {InvalidInputError} from '../core/errors.js'
import type {Context} from './context.js'
import {importLazily} from '../core/lazy-require.js'

/**
 * Asks a person for the name of something that exists, offering the existing ones; without a
 * terminal a missing argument is a usage error (exit 2), never a prompt. Ctrl-C at any prompt is
 * an interrupt (exit 130, no error line: src/cli/errors.ts).
 */
export async function askName(ctx: Context, what: string, choices: string[], flagHint: string): Promise<string> {
  if (!ctx.interactive) throw new InvalidInputError(`missing ${what}`, {code: 'usage', hint: flagHint})
  if (choices.length === 0) return askNewName(ctx, what, flagHint)
  const {select} = await importLazily<typeof import('@inquirer/prompts')>('@inquirer/prompts')
  return select({message: `Which ${what}?`, choices: choices.map((name) => ({name, value: name}))})
}

/**
 * Asks for a name that may not exist yet (`queue create`, `topic create`, `rule add`): free text,
 * checked as it is typed by `check` (which throws InvalidInputError on a bad name); Enter accepts
 * only a valid name.
 */
export async function askNewName(
  ctx: Context,
  what: string,
  flagHint: string,
  check: (name: string) => unknown = nonEmpty(what),
): Promise<string> {
  if (!ctx.interactive) throw new InvalidInputError(`missing ${what}`, {code: 'usage', hint: flagHint})
  const prompt = await validatedInput()
  return prompt({message: `New ${what}:`, check: (name) => problemWith(check, name)})
}

export async function askText(ctx: Context, message: string, flagHint: string): Promise<string> {
  if (!ctx.interactive) throw new InvalidInputError(`missing ${message}`, {code: 'usage', hint: flagHint})
  const {input} = await importLazily<typeof import('@inquirer/prompts')>('@inquirer/prompts')
  return input({message: `${message}:`})
}

/**
 * Asks before something destructive when a person is there; `--yes` skips it. Without a terminal
 * nobody can answer, so the command refuses (exit 2) rather than go ahead unasked (as `nats`
 * needs `-f`).
 */
export async function confirm(ctx: Context, yes: boolean, message: string): Promise<void> {
  if (yes) return
  if (!ctx.interactive) {
    throw new InvalidInputError(`${message.replace(/\?$/, '')}: needs confirmation, and there is no terminal to ask`, {
      code: 'usage',
      hint: 'pass --yes to confirm',
    })
  }
  const {confirm: ask} = await importLazily<typeof import('@inquirer/prompts')>('@inquirer/prompts')
  if (!(await ask({message, default: false})))
    throw new InvalidInputError('cancelled', {code: 'cancelled', hint: 'nothing was changed'})
}

function nonEmpty(what: string): (name: string) => void {
  return (name) => {
    if (name.trim() === '') throw new InvalidInputError(`${what} is empty`)
  }
}

/** The error line `check` gives for `name`, or undefined when it passes. */
function problemWith(check: (name: string) => unknown, name: string): string | undefined {
  try {
    check(name)
    return undefined
  } catch (error) {
    if (error instanceof InvalidInputError) return error.hint ? `${error.message} (${error.hint})` : error.message
    throw error
  }
}

interface ValidatedInputConfig {
  message: string
  /** The problem with the text so far, or undefined when it is acceptable. */
  check(text: string): string | undefined
}

/**
 * A text prompt that checks the text on every keystroke and shows the problem under it, built on
 * @inquirer/core (loaded only for a person at a terminal).
 */
async function validatedInput(): Promise<(config: ValidatedInputConfig) => Promise<string>> {
  const {createPrompt, isEnterKey, useKeypress, usePrefix, useState} =
    await importLazily<typeof import('@inquirer/core')>('@inquirer/core')
  return createPrompt<string, ValidatedInputConfig>((config, done) => {
    const [value, setValue] = useState('')
    const [finished, setFinished] = useState(false)
    const [touched, setTouched] = useState(false)
    const prefix = usePrefix({status: finished ? 'done' : 'idle'})
    const problem = config.check(value)
    useKeypress((key, rl) => {
      if (finished) return
      if (isEnterKey(key)) {
        setTouched(true)
        if (config.check(value) === undefined) {
          setFinished(true)
          done(value)
        } else rl.write(value) // readline cleared its line on Enter: keep what was typed
        return
      }
      setValue(rl.line)
      setTouched(true)
    })
    if (finished) return `${prefix} ${config.message} ${value}`
    return [`${prefix} ${config.message} ${value}`, touched && problem ? `> ${problem}` : '']
  })
}
