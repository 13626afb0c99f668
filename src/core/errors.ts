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

/**
 * Every `code` an error object can carry (`--json`, the daemon's replies, HTTP ingest), with the
 * exit code it goes with and what it means. README.md ("Exit codes") shows the same table; a test
 * keeps the two in sync. Add a code here before using it: the error classes only take these.
 */
export const ERROR_CODES = {
  // exit 2: usage and invalid input; nothing was changed
  invalid_input: {exitCode: ExitCode.usage, meaning: 'an invalid value (name, flag value, header, priority, TTL, …)'},
  usage: {
    exitCode: ExitCode.usage,
    meaning: 'bad or missing flag or argument, unknown command, or a prompt needed outside a terminal',
  },
  cancelled: {exitCode: ExitCode.usage, meaning: 'the confirmation prompt was declined'},
  not_found: {exitCode: ExitCode.usage, meaning: 'the queue, topic, subscription, rule or event does not exist'},
  wrong_kind: {exitCode: ExitCode.usage, meaning: 'a queue used as a topic, or a topic as a queue'},
  settings_differ: {exitCode: ExitCode.usage, meaning: 'created again with other settings than the existing ones'},
  pattern_differs: {exitCode: ExitCode.usage, meaning: 'a durable subscription name reused with another pattern'},
  too_large: {exitCode: ExitCode.usage, meaning: "a body over the destination's size limit (or over 256 MiB on stdin)"},
  not_utf8: {exitCode: ExitCode.usage, meaning: 'a body that is not UTF-8 text'},
  bad_envelope: {exitCode: ExitCode.usage, meaning: 'a --jsonl line that is not a {"body","headers"} envelope'},
  bad_json: {exitCode: ExitCode.usage, meaning: 'malformed JSON in a flag or a file'},
  bad_receipt: {exitCode: ExitCode.usage, meaning: 'a receipt that is not one mqctl issued'},
  bad_filter: {exitCode: ExitCode.usage, meaning: 'an invalid --filter expression'},
  bad_pattern: {exitCode: ExitCode.usage, meaning: 'an invalid topic pattern or event pattern'},
  bad_schedule: {exitCode: ExitCode.usage, meaning: 'an invalid cron expression or interval'},
  bad_event: {exitCode: ExitCode.usage, meaning: 'an invalid CloudEvent'},
  bad_rules: {exitCode: ExitCode.usage, meaning: 'an unreadable or invalid rules file'},
  too_deep: {
    exitCode: ExitCode.usage,
    meaning: 'a pattern, event data or rules document nested deeper than 256 levels',
  },
  bad_request: {exitCode: ExitCode.usage, meaning: "a malformed request on the daemon's socket"},
  unsupported: {
    exitCode: ExitCode.usage,
    meaning: 'a feature the selected broker (driver or server version) cannot honour safely',
  },
  cannot_start: {
    exitCode: ExitCode.usage,
    meaning:
      'an `--exec` command or exec action that cannot start (not found or not executable): the worker stops, the message is released untouched',
  },
  // exit 3
  empty: {
    exitCode: ExitCode.empty,
    meaning: 'nothing arrived before the wait ran out (for `trigger --require-match`: no rule matched)',
  },
  not_running: {exitCode: ExitCode.empty, meaning: 'the daemon is not running (`daemon status`)'},
  // exit 4
  queue_full: {
    exitCode: ExitCode.backPressure,
    meaning: 'the queue is full (overflow policy `reject`, or `block` past its wait)',
  },
  // exit 5
  stale_receipt: {
    exitCode: ExitCode.staleReceipt,
    meaning: 'the lease expired (the message was redelivered) or it was already settled',
  },
  // exit 1: runtime failures
  store: {exitCode: ExitCode.failure, meaning: 'the broker folder or database cannot be used'},
  no_broker: {exitCode: ExitCode.failure, meaning: 'no broker in the folder (and the command does not create one)'},
  not_a_broker: {exitCode: ExitCode.failure, meaning: 'the folder or file is not an mqctl broker'},
  corrupt: {exitCode: ExitCode.failure, meaning: 'the database is damaged'},
  too_new: {exitCode: ExitCode.failure, meaning: 'the broker was written by a newer mqctl'},
  read_only: {exitCode: ExitCode.failure, meaning: 'the broker folder or database is read-only'},
  busy: {exitCode: ExitCode.failure, meaning: "another process held the broker's write lock too long"},
  disk_full: {exitCode: ExitCode.failure, meaning: 'the disk holding the broker is full'},
  io: {exitCode: ExitCode.failure, meaning: 'an I/O error on the broker'},
  output: {exitCode: ExitCode.failure, meaning: 'the output could not be written (a full disk, a closed pipe)'},
  deleted_meanwhile: {
    exitCode: ExitCode.failure,
    meaning: 'what the command worked on was deleted by another process half-way',
  },
  action_failed: {
    exitCode: ExitCode.failure,
    meaning: 'an `--exec` command failed for some messages (retried, dead-lettered or its lease lost)',
  },
  unreachable: {
    exitCode: ExitCode.failure,
    meaning: 'the broker server could not be reached (connection refused, no JetStream, bad credentials)',
  },
  timeout: {exitCode: ExitCode.failure, meaning: 'the broker server did not answer in time'},
  unavailable: {
    exitCode: ExitCode.failure,
    meaning: 'the daemon could not take the request (the command then does the work itself)',
  },
  native_module: {
    exitCode: ExitCode.failure,
    meaning:
      'the SQLite module was built for another Node.js version (after a Node switch): run `npm rebuild better-sqlite3`',
  },
  internal: {
    exitCode: ExitCode.failure,
    meaning: 'an unexpected failure (a bug): run again with DEBUG=1 and report it',
  },
  // exit 130
  interrupted: {exitCode: ExitCode.interrupted, meaning: 'interrupted (SIGINT/SIGTERM) after a clean shutdown'},
} as const satisfies Record<string, {exitCode: ExitCodeValue; meaning: string}>

/** A machine-readable error code (see {@link ERROR_CODES}). */
export type ErrorCode = keyof typeof ERROR_CODES

/** The error codes that go with one exit code. */
export type ErrorCodeFor<E extends ExitCodeValue> = {
  [K in ErrorCode]: (typeof ERROR_CODES)[K]['exitCode'] extends E ? K : never
}[ErrorCode]

export interface MqErrorOptions {
  cause?: unknown
  /** What the user can do next; appended to the message after a colon. */
  hint?: string
}

export abstract class MqError extends Error {
  abstract readonly exitCode: ExitCodeValue
  abstract readonly code: ErrorCode
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
  readonly code: ErrorCodeFor<typeof ExitCode.usage>
  constructor(message: string, options: MqErrorOptions & {code?: ErrorCodeFor<typeof ExitCode.usage>} = {}) {
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
  readonly code = 'empty' as const
}

/** Rejected by back-pressure (queue full). Exit 4. */
export class QueueFullError extends MqError {
  readonly exitCode = ExitCode.backPressure
  readonly code = 'queue_full' as const
  /** Ids of the messages of the batch that were stored before the queue stayed full (block policy). */
  published: {id: string}[] = []
}

/** A receipt whose lease expired (message redelivered) or that was already settled. Exit 5. */
export class StaleReceiptError extends MqError {
  readonly exitCode = ExitCode.staleReceipt
  readonly code = 'stale_receipt' as const
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
  readonly code: ErrorCodeFor<typeof ExitCode.failure>
  constructor(message: string, options: MqErrorOptions & {code?: ErrorCodeFor<typeof ExitCode.failure>} = {}) {
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
  readonly code = 'deleted_meanwhile' as const
}

/** An action or `--exec` command failed after its retries. Exit 1. */
export class ActionFailedError extends MqError {
  readonly exitCode = ExitCode.failure
  readonly code = 'action_failed' as const
}

/** The user interrupted; raised after a clean shutdown. Exit 130. */
export class InterruptedError extends MqError {
  readonly exitCode = ExitCode.interrupted
  readonly code = 'interrupted' as const
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
  readonly code = 'internal' as const
}

/** The daemon is not running (for `daemon status`). Exit 3. */
export class NotRunningError extends MqError {
  readonly exitCode = ExitCode.empty
  readonly code = 'not_running' as const
}

/** The daemon is stopping (or cannot take the request): the command does the work itself. */
export class DaemonUnavailableError extends MqError {
  readonly exitCode = ExitCode.failure
  readonly code = 'unavailable' as const
}
