/**
 * Every error mqctl reports on purpose. Each carries the process exit code it maps to
 * (README.md, "Exit codes") and a stable machine-readable `code` used in `--json` error objects.
 * The CLI turns them into one line on stderr in exactly one place (`src/cli/errors.ts`).
 */

export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  empty: 3,
  backPressure: 4,
  staleReceipt: 5,
  interrupted: 130,
} as const

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode]

export interface MqErrorOptions {
  cause?: unknown
  /** What the user can do next; appended to the message after a colon. */
  hint?: string
}

export abstract class MqError extends Error {
  abstract readonly exitCode: ExitCodeValue
  abstract readonly code: string
  hint?: string
  /** Which item of a batch failed (0-based), when the error is about one of several. */
  index?: number
  /** Names that item for people, e.g. `message 3` or `line 17`; printed before the message. */
  where?: string
  /** Structured facts for scripts, added to the `--json` error object (e.g. an `--exec` run's counts). */
  details?: Record<string, unknown>

  constructor(message: string, options: MqErrorOptions = {}) {
    super(message, {cause: options.cause})
    this.name = new.target.name
    this.hint = options.hint
  }

  /** The one line shown to a person: where, the problem, then the next step. */
  get line(): string {
    const text = this.where ? `${this.where}: ${this.message}` : this.message
    return this.hint ? `${text}; ${this.hint}` : text
  }
}

/** Bad flag, bad name, malformed input, body too large: nothing was changed. Exit 2. */
export class InvalidInputError extends MqError {
  readonly exitCode = ExitCode.usage
  readonly code: string
  constructor(message: string, options: MqErrorOptions & {code?: string} = {}) {
    super(message, options)
    this.code = options.code ?? 'invalid_input'
  }
}

/** A queue used as a topic or the other way round. Exit 2. */
export class WrongKindError extends InvalidInputError {
  constructor(
    readonly destination: string,
    readonly actualKind: 'queue' | 'topic',
    options: MqErrorOptions = {},
  ) {
    super(`${destination} is a ${actualKind}, not a ${actualKind === 'queue' ? 'topic' : 'queue'}`, {
      ...options,
      code: 'wrong_kind',
    })
  }
}

export class NotFoundError extends InvalidInputError {
  constructor(what: string, name: string, options: MqErrorOptions = {}) {
    super(`${what}${name ? ` ${name}` : ''} does not exist`, {...options, code: 'not_found'})
  }
}

/** Nothing arrived before the wait ran out. Exit 3. */
export class NothingArrivedError extends MqError {
  readonly exitCode = ExitCode.empty
  readonly code = 'empty'
}

/** Rejected by back-pressure (queue full). Exit 4. */
export class QueueFullError extends MqError {
  readonly exitCode = ExitCode.backPressure
  readonly code = 'queue_full'
  /** Ids of the messages of the batch that were stored before the queue stayed full (block policy). */
  published: {id: string}[] = []
}

/** A receipt whose lease expired (message redelivered) or that was already settled. Exit 5. */
export class StaleReceiptError extends MqError {
  readonly exitCode = ExitCode.staleReceipt
  readonly code = 'stale_receipt'
  constructor(
    message: string,
    readonly receipts: string[] = [],
    options: MqErrorOptions = {},
  ) {
    super(message, options)
  }
}

/** The broker folder or database cannot be used (unreadable, read-only, corrupt, not a broker). Exit 1. */
export class StoreError extends MqError {
  readonly exitCode = ExitCode.failure
  readonly code: string
  constructor(message: string, options: MqErrorOptions & {code?: string} = {}) {
    super(message, options)
    this.code = options.code ?? 'store'
  }
}

/**
 * What a command was working on was deleted by another process half-way (e.g. `queue delete`
 * during `dlq redrive`): the work done before stays done, the rest was not attempted. Exit 1.
 */
export class DeletedMeanwhileError extends MqError {
  readonly exitCode = ExitCode.failure
  readonly code = 'deleted_meanwhile'
}

/** An action or `--exec` command failed after its retries. Exit 1. */
export class ActionFailedError extends MqError {
  readonly exitCode = ExitCode.failure
  readonly code = 'action_failed'
}

/** The user interrupted; raised after a clean shutdown. Exit 130. */
export class InterruptedError extends MqError {
  readonly exitCode = ExitCode.interrupted
  readonly code = 'interrupted'
  constructor() {
    super('interrupted')
  }
}

export function isMqError(error: unknown): error is MqError {
  return error instanceof MqError
}

/** A failure nobody anticipated (a bug, or an environment problem without a better name). Exit 1. */
export class UnexpectedError extends MqError {
  readonly exitCode = ExitCode.failure
  readonly code = 'internal'
}

/** The daemon is not running (for `daemon status`). Exit 3. */
export class NotRunningError extends MqError {
  readonly exitCode = ExitCode.empty
  readonly code = 'not_running'
}

/** The daemon is stopping (or cannot take the request): the command does the work itself. */
export class DaemonUnavailableError extends MqError {
  readonly exitCode = ExitCode.failure
  readonly code = 'unavailable'
}
