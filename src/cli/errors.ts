import {
  InterruptedError,
  InvalidInputError,
  isMqError,
  type MqError,
  StoreError,
  UnexpectedError,
} from '../core/errors.js'

/**
 * The one place errors become an exit code and a line on stderr (README.md, "Exit codes"): one
 * line saying what went wrong and what to do next; a JSON object too with --json; a stack only with DEBUG.
 */
export function reportError(
  error: unknown,
  options: {
    json: boolean
    commandId?: string
    color?: boolean
    stderr?: NodeJS.WritableStream
    env?: NodeJS.ProcessEnv
  },
): number {
  const mq = toMqError(error, options.commandId)
  const stderr = options.stderr ?? process.stderr
  if ((options.env ?? process.env).DEBUG) console.error(error)
  // Ctrl-C (or SIGTERM) after a clean shutdown is not an error worth a line.
  if (mq instanceof InterruptedError) return mq.exitCode
  if (options.json) {
    stderr.write(
      `${JSON.stringify({error: {code: mq.code, message: mq.line, exitCode: mq.exitCode, ...mq.details}})}\n`,
    )
  } else {
    const prefix = options.color ? '\u001B[31merror:\u001B[39m' : 'error:'
    stderr.write(`${prefix} ${oneLine(mq.line)}\n`)
  }
  return mq.exitCode
}

/** Known errors pass through; oclif parse errors become usage errors; anything else is a failure. */
export function toMqError(error: unknown, commandId?: string): MqError {
  if (isMqError(error)) {
    // oclif rewrites the message of an error thrown while parsing a flag; undo that.
    if (/^Parsing --/.test(error.message)) {
      error.message = cleanOclifMessage(error.message)
      error.hint ??= helpHint(commandId)
    }
    return error
  }
  const cause = (error as {cause?: unknown})?.cause
  if (isMqError(cause)) return cause
  const native = nativeModuleError(error)
  if (native) return native
  // Ctrl-C at a prompt (inquirer closes it and rejects): an interrupt like any other, exit 130.
  if ((error as Error)?.name === 'ExitPromptError') return new InterruptedError()
  const oclifExit = (error as {oclif?: {exit?: number}})?.oclif?.exit
  const message = cleanOclifMessage((error as Error)?.message ?? String(error))
  if (oclifExit === 2 || /^(Nonexistent flag|Unexpected argument|Missing required|Expected )/.test(message)) {
    return new InvalidInputError(message.replace(/\.$/, ''), {hint: helpHint(commandId), code: 'usage'})
  }
  return new UnexpectedError(`unexpected failure: ${message}`, {
    cause: error,
    hint: 'rerun with DEBUG=1 for details and report it',
  })
}

function helpHint(commandId?: string): string {
  return commandId ? `see \`mq ${commandId.replaceAll(':', ' ')} --help\`` : 'see `mq --help`'
}

/**
 * oclif wraps a flag's own error as "Parsing --x \n\t<our message>\nSee more help with --help":
 * keep the message itself, one line.
 */
function cleanOclifMessage(text: string): string {
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !/^See more help with/.test(line) && !/^Parsing --[\w-]+$/.test(line))
  return lines.join(' ') || text.trim()
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ')
}

/**
 * better-sqlite3 is a native module built for one Node.js version; after a switch (nvm, a system
 * upgrade) loading it fails with NODE_MODULE_VERSION in the message. That is not a bug to report
 * but one command to run, in the folder mqctl is installed in (README.md, "Install").
 */
export function nativeModuleError(error: unknown): StoreError | undefined {
  const message = (error as Error)?.message ?? ''
  const match = /NODE_MODULE_VERSION (\d+)[\s\S]*NODE_MODULE_VERSION (\d+)/.exec(message)
  if (!match || !/better[-_]sqlite3/.test(message)) return undefined
  const file = /'([^']*better[-_]sqlite3[^']*\.node)'/.exec(message)?.[1]
  const root = file ? /^(.*)[/\\]node_modules[/\\]better-sqlite3[/\\]/.exec(file)?.[1] : undefined
  const fix = root ? `cd ${root} && npm rebuild better-sqlite3` : 'npm rebuild better-sqlite3'
  return new StoreError(
    `the SQLite module was built for another Node.js version (module version ${match[1]}; Node ${process.version} needs ${match[2]})`,
    {
      code: 'native_module',
      hint: `run \`${fix}\``,
      cause: error,
    },
  )
}
