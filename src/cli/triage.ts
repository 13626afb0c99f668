import {monotonicNow} from '../core/clock.js'
import {type ReceiveFn, waitBudget} from '../core/consumer.js'
import {InterruptedError, InvalidInputError} from '../core/errors.js'
import type {Context} from './context.js'
import {DeliveryPrinter} from './deliveries.js'

type Action = 'ack' | 'retry' | 'dead-letter' | 'skip' | 'quit'

const KEYS: {key: string; action: Action; label: string}[] = [
  {key: 'a', action: 'ack', label: 'ack'},
  {key: 'r', action: 'retry', label: 'retry'},
  {key: 'd', action: 'dead-letter', label: 'dead-letter'},
  {key: 's', action: 'skip', label: 'skip'},
  {key: 'q', action: 'quit', label: 'quit'},
]

export interface TriageSummary {
  acked: number
  retried: number
  deadLettered: number
  skipped: number
}

/**
 * `consume --interactive`: a person sees each message and settles it with one keypress. Skipped
 * messages stay leased until the session ends, so the next one comes up; then they are released.
 */
export async function triage(
  ctx: Context,
  receive: ReceiveFn,
  options: {leaseMs: number; waitMs: number; follow: boolean},
): Promise<TriageSummary> {
  if (!ctx.interactive) {
    throw new InvalidInputError('--interactive needs a person at a terminal', {
      code: 'usage',
      hint: 'in scripts use --ack manual with `mq ack` and `mq nack`',
    })
  }
  const broker = ctx.broker()
  const printer = await DeliveryPrinter.create(ctx, options.leaseMs)
  const ask = await keyPrompt()
  const summary: TriageSummary = {acked: 0, retried: 0, deadLettered: 0, skipped: 0}
  const skipped: string[] = []
  const deadline = monotonicNow() + options.waitMs
  try {
    for (;;) {
      const [delivery] = await receive({
        max: 1,
        autoAck: false,
        visibilityTimeoutMs: options.leaseMs,
        waitMs: waitBudget(options, deadline),
      })
      if (!delivery) break
      printer.print([delivery])
      await ctx.out.flush()
      // Reading takes time: keep the lease while the person decides.
      const keepAlive = setInterval(() => void broker.extend([delivery.receipt!], options.leaseMs).catch(() => {}), Math.max(500, options.leaseMs / 3))
      let action: Action
      try {
        action = await ask({message: 'Settle it:', keys: KEYS})
      } catch {
        action = 'quit' // Ctrl-C at the prompt
      } finally {
        clearInterval(keepAlive)
      }
      const receipt = delivery.receipt!
      if (action === 'ack') {
        await broker.ack([receipt])
        summary.acked++
      } else if (action === 'retry') {
        await broker.nack([receipt], {error: 'retried by hand'})
        summary.retried++
      } else if (action === 'dead-letter') {
        const [outcome] = await broker.nack([receipt], {deadLetter: true, error: 'dead-lettered by hand'})
        if (outcome === 'dead-lettered') summary.deadLettered++
        else {
          ctx.warn('this queue has no dead-letter queue: the message was released instead')
          summary.retried++
        }
      } else if (action === 'skip') {
        skipped.push(receipt)
        summary.skipped++
      } else {
        await broker.nack([receipt], {error: 'released: triage ended'})
        throw new InterruptedError()
      }
    }
  } finally {
    if (skipped.length > 0) await broker.nack(skipped, {error: 'skipped in triage'}).catch(() => {})
  }
  return summary
}

interface KeyPromptConfig {
  message: string
  keys: {key: string; action: Action; label: string}[]
}

/** A one-keypress choice, built on @inquirer/core (loaded only for a person at a terminal). */
async function keyPrompt(): Promise<(config: KeyPromptConfig) => Promise<Action>> {
  const {createPrompt, useKeypress, usePrefix, useState} = await import('@inquirer/core')
  return createPrompt<Action, KeyPromptConfig>((config, done) => {
    const [chosen, setChosen] = useState<string | undefined>(undefined)
    const prefix = usePrefix({status: chosen ? 'done' : 'idle'})
    useKeypress((key) => {
      const choice = config.keys.find((k) => k.key === key.name)
      if (choice && !chosen) {
        setChosen(choice.label)
        done(choice.action)
      }
    })
    if (chosen) return `${prefix} ${config.message} ${chosen}`
    return `${prefix} ${config.message} ${config.keys.map((k) => `[${k.key}] ${k.label}`).join('  ')}`
  })
}
