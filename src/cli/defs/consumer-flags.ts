import type {ConsumeLoopOptions} from '../../core/consumer.js'
import {InvalidInputError} from '../../core/errors.js'
import type {FlagSpecs, FlagValues} from '../spec.js'

/** Flags shared by `consume` and `subscribe`, with the same meaning in both. */
export const CONSUMER_FLAGS = {
  count: {kind: 'integer', char: 'n', summary: 'Messages to take before exiting.', default: 1, min: 1},
  wait: {kind: 'duration', summary: 'Long poll: wait up to DUR for the first message (with --exec: for all -n); default: do not wait.', helpValue: 'DUR'},
  follow: {kind: 'boolean', char: 'f', summary: 'Keep consuming until interrupted.'},
  'poll-interval': {kind: 'duration', summary: 'Poll every DUR instead of waking on changes.', helpValue: 'DUR'},
  ack: {kind: 'string', summary: 'auto: settle on delivery (at most once); manual: keep a lease and print the receipt.', options: ['auto', 'manual']},
  'visibility-timeout': {kind: 'duration', summary: 'Lease length for these deliveries (default: the queue setting).', helpValue: 'DUR'},
  exec: {kind: 'string', summary: 'Run CMD once per message: body on stdin, MQ_* variables; exit 0 acks, 65 dead-letters.', helpValue: 'CMD'},
  parallel: {kind: 'integer', summary: 'With --exec: commands run at once.', default: 1, min: 1, max: 1024},
  'exec-timeout': {kind: 'duration', summary: 'With --exec: kill a command after DUR and retry its message.', helpValue: 'DUR'},
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
    throw new InvalidInputError('--exec settles each message by its exit status, so it cannot be combined with --ack auto', {
      hint: 'drop --ack auto',
    })
  }
  if (exec === undefined && (flags.parallel !== 1 || flags['exec-timeout'] !== undefined)) {
    throw new InvalidInputError('--parallel and --exec-timeout only apply with --exec')
  }
  if (exec !== undefined && exec.trim() === '') throw new InvalidInputError('--exec is empty', {hint: 'give a command, e.g. --exec ./handle.sh'})
  if (flags.wait !== undefined && flags['poll-interval'] !== undefined && flags['poll-interval'] <= 0) {
    throw new InvalidInputError('--poll-interval must be more than 0')
  }
  return {
    loop: {
      count: flags.count,
      follow: flags.follow,
      waitMs: flags.wait ?? 0,
      pollIntervalMs: flags['poll-interval'],
      visibilityTimeoutMs: flags['visibility-timeout'],
    },
    autoAck: exec === undefined && flags.ack !== 'manual',
    exec,
    parallel: flags.parallel,
    execTimeoutMs: flags['exec-timeout'],
  }
}
