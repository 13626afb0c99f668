import {type ConsumeLoopOptions, deliveryBatches, type ReceiveFn} from '../core/consumer.js'
import type {Delivery} from '../core/broker.js'
import {
  ActionFailedError,
  InterruptedError,
  InvalidInputError,
  NothingArrivedError,
  StoreError,
} from '../core/errors.js'
import {describeExecSummary, type ExecSummary, failedDeliveries, runExecWorker} from '../core/exec-worker.js'
import {parseRate, RateLimiter} from '../core/rate-limiter.js'
import {formatDuration} from '../core/units.js'
import type {Context} from './context.js'
import {DeliveryPrinter, execReporter} from './deliveries.js'
import {NO_PROGRESS} from './progress.js'
import type {FlagSpecs, FlagValues} from './spec.js'

/** Flags shared by `consume` and `subscribe`, with the same meaning in both. */
export const CONSUMER_FLAGS = {
  count: {
    kind: 'integer',
    char: 'n',
    summary: 'Messages to take before exiting (default 1; with -f, no limit: -f -n 3 stops after 3).',
    min: 1,
  },
  wait: {
    kind: 'duration',
    summary: 'Long poll: wait up to DUR for the -n messages, returning as soon as they arrive (default: do not wait).',
    helpValue: 'DUR',
  },
  follow: {kind: 'boolean', char: 'f', summary: 'Keep consuming until interrupted.'},
  'poll-interval': {
    kind: 'duration',
    positive: true,
    summary: 'Poll every DUR instead of waking on changes.',
    helpValue: 'DUR',
  },
  ack: {
    kind: 'string',
    summary: 'auto: settle on delivery (at most once); manual: keep a lease and print the receipt.',
    options: ['auto', 'manual'],
  },
  'visibility-timeout': {
    kind: 'duration',
    positive: true,
    summary: 'Lease length for these deliveries (default: the queue setting).',
    helpValue: 'DUR',
  },
  exec: {
    kind: 'string',
    summary: 'Run CMD once per message: body on stdin, MQ_* variables; exit 0 acks, 65 dead-letters.',
    helpValue: 'CMD',
  },
  parallel: {kind: 'integer', summary: 'With --exec: commands run at once.', default: 1, min: 1, max: 1024},
  'exec-timeout': {
    kind: 'duration',
    positive: true,
    summary: 'With --exec: kill a command after DUR and retry its message.',
    helpValue: 'DUR',
  },
  prefetch: {
    kind: 'integer',
    summary: 'Sliding window: hold at most N unacked deliveries (manual ack or --exec).',
    min: 1,
    max: 100_000,
  },
  rate: {kind: 'string', summary: 'Pace deliveries to at most RATE (e.g. 50/s, 300/m).', helpValue: 'RATE'},
} as const satisfies FlagSpecs

export interface ConsumerSettings {
  loop: Omit<ConsumeLoopOptions, 'autoAck' | 'signal'>
  autoAck: boolean
  exec?: string
  parallel: number
  execTimeoutMs?: number
}

/** Checks the combination of consumer flags and turns them into loop settings. */
export function consumerSettings(flags: FlagValues<typeof CONSUMER_FLAGS>): ConsumerSettings {
  const exec = flags.exec
  if (exec !== undefined && flags.ack === 'auto') {
    throw new InvalidInputError(
      '--exec settles each message by its exit status, so it cannot be combined with --ack auto',
      {
        hint: 'drop --ack auto',
      },
    )
  }
  if (exec === undefined && (flags.parallel !== 1 || flags['exec-timeout'] !== undefined)) {
    throw new InvalidInputError('--parallel and --exec-timeout only apply with --exec')
  }
  if (exec !== undefined && exec.trim() === '')
    throw new InvalidInputError('--exec is empty', {hint: 'give a command, e.g. --exec ./handle.sh'})
  const lease = flags['visibility-timeout']
  if (lease !== undefined && !(lease >= 1 && lease <= 12 * 3_600_000))
    throw new InvalidInputError('--visibility-timeout must be from 1ms to 12h')
  if (flags.wait !== undefined && flags['poll-interval'] !== undefined && flags['poll-interval'] <= 0) {
    throw new InvalidInputError('--poll-interval must be more than 0')
  }
  return {
    loop: {
      count: flags.count ?? (flags.follow ? Number.POSITIVE_INFINITY : 1),
      follow: flags.follow,
      waitMs: flags.wait ?? 0,
      pollIntervalMs: flags['poll-interval'],
      visibilityTimeoutMs: flags['visibility-timeout'],
      prefetch: flags.prefetch,
      rate: flags.rate === undefined ? undefined : new RateLimiter(parseRate(flags.rate)),
    },
    autoAck: exec === undefined && flags.ack !== 'manual',
    exec,
    parallel: flags.parallel,
    execTimeoutMs: flags['exec-timeout'],
  }
}

/**
 * Followers and `--exec` workers wait out another process's write lock rather than exit (an
 * `--exec` command's work is done once it ran: its ack must not be lost to a busy broker).
 */
export function waitsOutLocks(settings: ConsumerSettings): boolean {
  return settings.loop.follow || settings.exec !== undefined
}

/**
 * The consuming half of `consume` and `subscribe`: print deliveries (JSONL, human or bare bodies)
 * or run `--exec` per message, drain on the first interrupt, exit 3 when nothing arrived.
 */
export async function runConsumer(
  ctx: Context,
  receive: ReceiveFn,
  settings: ConsumerSettings,
  source: {label: string; leaseMs: number; emptyHint?: string},
): Promise<void> {
  const broker = ctx.broker()
  if (waitsOutLocks(settings)) ctx.waitOutLocks()
  const {drain, force} = ctx.handleInterrupts()
  let received = 0
  let execSummary: ExecSummary | undefined
  if (settings.exec !== undefined) {
    const summary = await runExecWorker(broker, receive, {
      ...settings.loop,
      command: settings.exec,
      parallel: settings.parallel,
      execTimeoutMs: settings.execTimeoutMs,
      visibilityTimeoutMs: source.leaseMs,
      env: ctx.childEnv(ctx.env),
      drain,
      force,
      onEvent: await execReporter(ctx),
    })
    received = summary.received
    execSummary = summary
  } else {
    const printer = await DeliveryPrinter.create(ctx, settings.autoAck ? undefined : source.leaseMs)
    const spinner = await ctx.spinner(`waiting for messages on ${source.label}`)
    const holder = settings.autoAck ? broker : await ctx.receiptHolder()
    const stillLeased = (receipts: string[]) => holder.stillLeased(receipts)
    // Draining many (`-n 10000 > file`): a bar on stderr, unless the bodies go to the same terminal.
    const draining = !settings.loop.follow && settings.loop.count > 1 && settings.autoAck
    const progress = draining ? ctx.progress(`consuming ${source.label}`, {stdoutBusy: true}) : NO_PROGRESS
    if (!settings.autoAck) ctx.out.pipeWrites()
    /**
     * A batch printed as soon as it was handed over (see ReceiveOptions.onHandOff), and its write:
     * the loop waits for it as for its own, so a reader that stops reading stops the consumer.
     */
    let printed: {batch: Delivery[]; written: Promise<void>} | undefined
    const onHandOff = (batch: Delivery[]) => {
      spinner.stop()
      printer.print(batch)
      printed = {batch, written: ctx.out.flush()}
    }
    for await (const batch of deliveryBatches(
      receive,
      {...settings.loop, autoAck: settings.autoAck, signal: drain, onHandOff: settings.autoAck ? onHandOff : undefined},
      stillLeased,
    )) {
      spinner.stop()
      if (batch === printed?.batch) await printed.written
      else printer.print(batch)
      // Auto-acked messages are gone from the broker; if they could not be written (the reader
      // went away, a full disk), they are put back rather than lost. Leased ones stay leased
      // until acked: the next batch is taken while this one is written (Output.pipeWrites).
      if (settings.autoAck ? !(await ctx.out.settle()) : (await ctx.out.flush(), ctx.out.isBroken)) {
        if (settings.autoAck) await broker.restore(batch)
        break
      }
      received += batch.length
      progress.update(received, settings.loop.count)
    }
    progress.stop()
    spinner.stop()
    await ctx.out.settle()
  }
  if (ctx.out.failure)
    throw new StoreError(`cannot write the output (${ctx.out.failure.code ?? ctx.out.failure.message})`, {
      code: 'output',
      hint: 'the messages not written stay in the queue',
    })
  if (drain.aborted && !ctx.out.isBroken) throw new InterruptedError()
  // A reader that went away ends the command quietly (Output), also before anything reached it:
  // what was taken for it was put back (README.md, "Concepts", auto-ack).
  if (received === 0 && !ctx.out.isBroken) {
    const waited = settings.loop.waitMs > 0 ? ` within ${formatDuration(settings.loop.waitMs)}` : ''
    throw new NothingArrivedError(`no message arrived on ${source.label}${waited}`, {
      hint:
        source.emptyHint ??
        (settings.loop.waitMs > 0
          ? 'wait longer, or follow with -f'
          : 'wait for one with --wait 30s, or follow with -f'),
    })
  }
  if (execSummary) reportExecSummary(ctx, execSummary)
}

/**
 * The end of an `--exec` run: a run in which any command failed exits 1 (so a CI step notices),
 * with what happened to each delivery; a clean run says so at a terminal only.
 */
function reportExecSummary(ctx: Context, summary: ExecSummary): void {
  const failed = failedDeliveries(summary)
  if (failed > 0) {
    const error = new ActionFailedError(`the command failed for ${failed} of ${describeExecSummary(summary)}`, {
      hint: 'the lines above say why; dead letters are listed by `mq dlq list`',
    })
    error.details = {summary}
    throw error
  }
  if (ctx.stderr.isTTY && !ctx.json) ctx.warn(describeExecSummary(summary))
}
