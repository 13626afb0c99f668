import type {ReceiptHolder} from '../../core/broker.js'
import {StaleReceiptError} from '../../core/errors.js'
import type {Context} from '../context.js'
import {receiptInbox} from '../input.js'
import {toJson} from '../output.js'

export interface SettleSummary {
  /** Receipts settled as asked. */
  settled: number
  /** Of those, messages that went to a dead-letter queue. */
  deadLettered?: number
  /** Messages released instead of dead-lettered, their queue having no dead-letter queue. */
  released?: number
  stale: string[]
}

/**
 * The shared body of `ack`, `nack` and `extend`: receipts from the arguments or one per stdin line,
 * settled in batches (one transaction for all that arrived while the previous batch was settled;
 * `more` hands the settle those arriving while it waits, see AckOptions), stale ones reported with
 * exit 5.
 */
export async function settleReceipts(
  ctx: Context,
  argv: string[],
  settle: (holder: ReceiptHolder, receipts: string[], more: () => string[]) => Promise<string[]>,
  options: {wantedDeadLetter?: boolean} = {},
): Promise<SettleSummary> {
  const holder = await ctx.receiptHolder()
  const summary: SettleSummary = {settled: 0, stale: []}
  const inbox = receiptInbox(argv, ctx)
  try {
    for (let receipts = await inbox.next(); receipts; receipts = await inbox.next()) {
      const batch = receipts
      // The outcomes follow the receipts handed over, in order: `more` adds its own to the batch.
      const outcomes = await settle(holder, batch, () => {
        const more = inbox.take()
        for (const receipt of more) batch.push(receipt)
        return more
      })
      outcomes.forEach((outcome, index) => {
        if (outcome === 'stale') summary.stale.push(batch[index])
        else {
          summary.settled++
          if (outcome === 'dead-lettered') summary.deadLettered = (summary.deadLettered ?? 0) + 1
          if (outcome === 'released' && options.wantedDeadLetter) summary.released = (summary.released ?? 0) + 1
        }
      })
    }
  } finally {
    inbox.stop()
  }
  if (summary.released)
    ctx.warn(
      `note: ${summary.released} message${summary.released === 1 ? ' was' : 's were'} released, not dead-lettered: ${summary.released === 1 ? 'its queue has' : 'their queues have'} no dead-letter queue`,
    )
  if (summary.stale.length > 0) {
    if (ctx.json) ctx.out.line(toJson(summary))
    await ctx.out.flush()
    const shown = summary.stale.slice(0, 3).join(', ') + (summary.stale.length > 3 ? ', …' : '')
    const of =
      summary.settled > 0
        ? `${summary.stale.length} of ${summary.stale.length + summary.settled} receipts are`
        : summary.stale.length === 1
          ? 'the receipt is'
          : 'the receipts are'
    throw new StaleReceiptError(
      `${of} stale (${shown}): the lease ran out and the message was redelivered, or it was already settled`,
      summary.stale,
      {
        hint:
          summary.settled > 0
            ? 'the other receipts were settled; extend leases with `mq extend` for long work'
            : 'extend leases with `mq extend` for long work',
      },
    )
  }
  return summary
}

export function renderSettled(verb: string) {
  return (summary: SettleSummary, ctx: Context): string | undefined => {
    if (!ctx.stdoutIsTTY) return undefined
    const dead = summary.deadLettered ? ` (${summary.deadLettered} dead-lettered)` : ''
    return `${verb} ${summary.settled} message${summary.settled === 1 ? '' : 's'}${dead}`
  }
}
