import {resolveRulesPath} from '../core/config.js'
import {Engine} from '../core/engine/engine.js'
import {type LoadedRules, readRules} from '../core/engine/rules-file.js'
import type {Context} from './context.js'

/** The --rules flag shared by every command that reads the rules document. */
export const RULES_FLAG = {
  rules: {
    kind: 'string',
    summary: 'Rules document (env MQ_RULES; default: rules.json in the broker folder).',
    helpValue: 'PATH',
    env: 'MQ_RULES',
  },
} as const

export function rulesPathFor(ctx: Context, flag: string | undefined): string {
  return resolveRulesPath(flag, ctx.home, ctx.env)
}

export async function loadRules(ctx: Context, flag: string | undefined): Promise<LoadedRules> {
  return readRules(rulesPathFor(ctx, flag))
}

/** An engine on this command's broker and rules; `log` actions print to stdout (stderr with --json). */
export async function engineFor(
  ctx: Context,
  flag: string | undefined,
  signal?: AbortSignal,
): Promise<{engine: Engine; rules: LoadedRules}> {
  const rules = await loadRules(ctx, flag)
  const broker = ctx.broker()
  const engine = new Engine({
    broker,
    // The journal stays in the local folder on any broker (see README, "Running on a NATS cluster").
    journal: ctx.local().journal,
    rules: rules.validated,
    baseDir: rules.dir,
    env: ctx.childEnv(ctx.env),
    log: (line) => (ctx.json ? ctx.stderr.write(`${line}\n`) : ctx.out.line(line)),
    output: ctx.stderr,
    signal,
  })
  return {engine, rules}
}
