import type {Broker, Delivery} from '../core/broker.js'
import {monotonicNow} from '../core/clock.js'
import {type ReceiveFn, waitBudget} from '../core/consumer.js'
import {InterruptedError, InvalidInputError} from '../core/errors.js'
import type {Context} from './context.js'
import {DeliveryPrinter} from './deliveries.js'
import {importLazily} from '../core/lazy-require.js'

type Action = 'ack' | 'retry' | 'send-back' | 'dead-letter' | 'skip' | 'quit'

interface Key {
  key: string
  action: Action
  label: string
}

export interface TriageSummary {
  acked: number
  retried: number
  /** Dead letters sent back to their queue or subscription (as `dlq redrive` does). */
  sentBack: number
  deadLettered: number
  skipped: number
}

/**
 * What is being triaged: a dead-letter queue (a key sends a message back where it came from) or
 * any other queue (a key retries it, and, when the queue has a dead-letter queue, another
 * dead-letters it). Keys that mean nothing for the queue are not offered.
 */
export type TriageTarget = {kind: 'dead-letters'; sources: string[]} | {kind: 'queue'; deadLetterQueue: string | null}

function keysFor(target: TriageTarget): Key[] {
  const keys: Key[] = [{key: 'a', action: 'ack', label: target.kind === 'dead-letters' ? 'ack (discard)' : 'ack'}]
  if (target.kind === 'dead-letters') keys.push({key: 'r', action: 'send-back', label: 'send back'})
  else {
    keys.push({key: 'r', action: 'retry', label: 'retry'})
    if (target.deadLetterQueue !== null) keys.push({key: 'd', action: 'dead-letter', label: 'dead-letter'})
  }
  keys.push({key: 's', action: 'skip', label: 'skip'}, {key: 'q', action: 'quit', label: 'quit'})
  return keys
}

/** Triage needs a person at a terminal (checked before anything else, exit 2). */
export function canTriage(ctx: Context): void {
  if (!ctx.interactive) {
    throw new InvalidInputError('--interactive needs a person at a terminal', {
      code: 'usage',
      hint: 'in scripts use --ack manual with `mq ack` and `mq nack`',
    })
  }
}

/** The dead-letter queue `queue` is, with the queues and subscriptions that feed it; else a plain queue. */
export async function triageTarget(
  broker: Broker,
  queue: string,
  deadLetterQueue: string | null,
): Promise<TriageTarget> {
  const dlq = (await broker.listDeadLetterQueues()).find((d) => d.name === queue)
  return dlq && dlq.sources.length > 0 ? {kind: 'dead-letters', sources: dlq.sources} : {kind: 'queue', deadLetterQueue}
}

/**
 * `consume --interactive`: a person sees each message and settles it with one keypress. Skipped
 * messages stay leased until the session ends, so the next one comes up; then they are released.
 * `q` releases the message shown and ends with the summary (exit 0); Ctrl-C releases it too and
 * exits 130.
 */
export async function triage(
  ctx: Context,
  receive: ReceiveFn,
  target: TriageTarget,
  options: {leaseMs: number; waitMs: number; follow: boolean},
): Promise<TriageSummary> {
  canTriage(ctx)
  const broker = ctx.broker()
  const printer = await DeliveryPrinter.create(ctx, options.leaseMs)
  const ask = await keyPrompt()
  const keys = keysFor(target)
  const summary: TriageSummary = {acked: 0, retried: 0, sentBack: 0, deadLettered: 0, skipped: 0}
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
      const keepAlive = setInterval(
        () => void broker.extend([delivery.receipt!], options.leaseMs).catch(() => {}),
        Math.max(500, options.leaseMs / 3),
      )
      const receipt = delivery.receipt!
      let action: Action
      try {
        action = await ask({message: 'Settle it:', keys})
      } catch {
        // Ctrl-C at the prompt: the message goes back as it was, then exit 130.
        await broker.nack([receipt], {uncounted: true}).catch(() => {})
        throw new InterruptedError()
      } finally {
        clearInterval(keepAlive)
      }
      if (action === 'ack') {
        await broker.ack([receipt])
        summary.acked++
      } else if (action === 'retry') {
        await broker.nack([receipt], {error: 'retried by hand'})
        summary.retried++
      } else if (action === 'send-back' && target.kind === 'dead-letters') {
        if (await sendBack(ctx, delivery, target.sources)) summary.sentBack++
      } else if (action === 'dead-letter') {
        const [outcome] = await broker.nack([receipt], {deadLetter: true, error: 'dead-lettered by hand'})
        if (outcome === 'dead-lettered') summary.deadLettered++
        else summary.retried++
      } else if (action === 'skip') {
        skipped.push(receipt)
        summary.skipped++
      } else {
        await broker.nack([receipt], {uncounted: true})
        break
      }
    }
  } finally {
    if (skipped.length > 0) await broker.nack(skipped, {error: 'skipped in triage'}).catch(() => {})
  }
  return summary
}

/**
 * Sends one dead letter back to the queue or subscription it came from, as `dlq redrive` does
 * (at the back, headers kept, `x-redrive-count` + 1): it is released as it was, then redriven.
 */
async function sendBack(ctx: Context, delivery: Delivery, sources: string[]): Promise<boolean> {
  const broker = ctx.broker()
  const headers = delivery.headers
  const source = headers['x-original-subscription'] ?? headers['x-original-queue'] ?? sources[0]
  await broker.nack([delivery.receipt!], {uncounted: true})
  const same = (m: {body: string; headers: Record<string, string>}) =>
    m.body === delivery.body &&
    JSON.stringify(Object.entries(m.headers).sort()) === JSON.stringify(Object.entries(headers).sort())
  const result = await broker.redrive(source, {filter: same, limit: 1})
  if (result.moved === 0)
    ctx.warn(
      `could not send it back to ${source}${result.stoppedFull ? ' (it is full)' : ' (another consumer took it meanwhile?)'}`,
    )
  return result.moved > 0
}

interface KeyPromptConfig {
  message: string
  keys: Key[]
}

/** A one-keypress choice, built on @inquirer/core (loaded only for a person at a terminal). */
async function keyPrompt(): Promise<(config: KeyPromptConfig) => Promise<Action>> {
  const {createPrompt, useKeypress, usePrefix, useState} =
    await importLazily<typeof import('@inquirer/core')>('@inquirer/core')
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
