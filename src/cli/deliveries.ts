import type {Delivery} from '../core/broker.js'
import {formatDuration} from '../core/units.js'
import type {ExecEvent} from '../core/exec-worker.js'
import type {Context} from './context.js'
import type {Style} from './output.js'

/**
 * The `--json` envelope of each delivery, one line (`publish --envelopes` reads it back): `id`,
 * `queue` or `topic` and `subscription`, `body`, `headers`, `attempt`, `receipt` (manual ack),
 * `publishedAt` (ISO-8601, as `toJson` writes times). Written out field by field rather than through
 * `toJson` of an object: a stream of deliveries (`consume -n 100000 --json`) spends about a fifth
 * of the time on it (no object per delivery, no replacer call per field, one ISO time per distinct
 * publish time). test/commands/deliveries.test.ts checks it against `toJson`.
 */
export function envelopeLines(): (delivery: Delivery) => string {
  let lastTime = Number.NaN
  let lastIso = ''
  return (delivery) => {
    if (delivery.publishedAt !== lastTime) {
      lastTime = delivery.publishedAt
      lastIso = JSON.stringify(new Date(lastTime).toISOString())
    }
    let text = `{"id":${JSON.stringify(delivery.id)}`
    if (delivery.queue !== undefined) text += `,"queue":${JSON.stringify(delivery.queue)}`
    if (delivery.topic !== undefined) text += `,"topic":${JSON.stringify(delivery.topic)}`
    if (delivery.subscription !== undefined) text += `,"subscription":${JSON.stringify(delivery.subscription)}`
    text += `,"body":${JSON.stringify(delivery.body)},"headers":${JSON.stringify(delivery.headers)},"attempt":${JSON.stringify(delivery.attempt)}`
    if (delivery.receipt !== undefined) text += `,"receipt":${JSON.stringify(delivery.receipt)}`
    return `${text},"publishedAt":${lastIso}}`
  }
}

/**
 * Writes deliveries the way README.md ("Output" under "Concepts") describes: JSONL with --json;
 * for a person, a header line, the body and its headers and receipt; in a pipe, the bare bodies, one per line (receipts of manual
 * acks then go to stderr, so stdout stays pure).
 */
export class DeliveryPrinter {
  private constructor(
    private readonly ctx: Context,
    private readonly style: Style,
    private readonly leaseMs?: number,
  ) {}

  private readonly jsonLine = envelopeLines()

  static async create(ctx: Context, leaseMs?: number): Promise<DeliveryPrinter> {
    return new DeliveryPrinter(ctx, await ctx.style(), leaseMs)
  }

  print(deliveries: Delivery[]): void {
    const {ctx} = this
    for (const delivery of deliveries) {
      if (ctx.json) ctx.out.line(this.jsonLine(delivery))
      else if (ctx.stdoutIsTTY) ctx.out.write(this.human(delivery))
      else {
        ctx.out.line(delivery.body)
        if (delivery.receipt) ctx.warn(`receipt ${delivery.receipt} (message ${delivery.id})`)
      }
    }
  }

  private human(delivery: Delivery): string {
    const s = this.style
    const where = delivery.queue ?? `${delivery.topic} ${s.dim(`(${delivery.subscription ?? 'ephemeral'})`)}`
    const time = new Date(delivery.publishedAt).toISOString().replace('T', ' ').slice(0, 19)
    const lines = [
      `${s.bold(s.cyan(`#${delivery.id}`))} ${where} ${s.dim(`attempt ${delivery.attempt} · ${time}`)}`,
      delivery.body,
    ]
    for (const [key, value] of Object.entries(delivery.headers)) lines.push(s.dim(`  ${key}: ${value}`))
    if (delivery.receipt) {
      const lease = this.leaseMs === undefined ? '' : ` (ack within ${formatDuration(this.leaseMs)})`
      lines.push(s.yellow(`  receipt ${delivery.receipt}`) + s.dim(lease))
    }
    return `${lines.join('\n')}\n\n`
  }
}

/** One stderr line per `--exec` outcome worth telling: failures always, successes at a terminal. */
export async function execReporter(ctx: Context): Promise<(event: ExecEvent) => void> {
  const s = await ctx.style('stderr')
  const verbose = Boolean(ctx.stderr.isTTY) && !ctx.json
  return (event) => {
    // The run ends with the error line that says so (and which path was tried).
    if (event.cannotStart !== undefined) return
    const id = `message ${event.delivery.id} (attempt ${event.delivery.attempt})`
    const took = formatDuration(event.durationMs)
    switch (event.outcome) {
      case 'acked':
        if (verbose) ctx.warn(`${s.green('✓')} ${id} done in ${took}`)
        break
      case 'retry':
        ctx.warn(`${s.yellow('↻')} ${id} failed (${event.error}); it will be retried`)
        break
      case 'dead-lettered':
        ctx.warn(`${s.red('✗')} ${id} dead-lettered (${event.error})`)
        break
      case 'released':
        ctx.warn(`${s.yellow('↩')} ${id} released for redelivery (interrupted)`)
        break
      case 'lease-lost':
        ctx.warn(`${s.red('!')} ${id}: ${event.error}; it may be processed again`)
        break
    }
  }
}
