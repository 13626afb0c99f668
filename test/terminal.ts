import {execFileSync, spawnSync} from 'node:child_process'

import {BIN, waitFor} from './helpers.js'

/**
 * A real terminal for interactive tests: a detached tmux session running the CLI, driven with
 * send-keys and read with capture-pane. Tests skip when tmux is missing, except under CI, where
 * that is a failure (.ci/run installs it). A suite opens terminals with {@link openTerminals}.
 */
export class Terminal {
  private constructor(readonly session: string) {}

  static available(): boolean {
    return spawnSync('tmux', ['-V']).status === 0
  }

  /** `redirect`: shell redirections of the CLI's streams, e.g. `< file` (stderr stays on the terminal). */
  static start(args: string[], env: Record<string, string>, redirect = ''): Terminal {
    const session = `mq-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
    const assignments = Object.entries({TERM: 'xterm-256color', ...env}).map(([k, v]) => `${k}=${shellQuote(v)}`)
    const command = `env -u CI -u NO_COLOR ${assignments.join(' ')} ${shellQuote(process.execPath)} ${shellQuote(BIN)} ${args.map(shellQuote).join(' ')} ${redirect}; echo "[exit $?]"; sleep 30`
    execFileSync('tmux', ['new-session', '-d', '-s', session, '-x', '120', '-y', '40', command])
    return new Terminal(session)
  }

  /** The visible screen, colours as escape codes when `escapes` is set. */
  screen(escapes = false): string {
    return execFileSync('tmux', ['capture-pane', '-p', ...(escapes ? ['-e'] : []), '-t', this.session], {
      encoding: 'utf8',
    })
  }

  /** Waits (as long as the test has time left, unless `timeoutMs`) until the screen shows `pattern`. */
  async waitFor(pattern: RegExp, what = String(pattern), timeoutMs?: number): Promise<string> {
    return waitFor(
      () => {
        const text = this.screen()
        return pattern.test(text) ? text : undefined
      },
      () => `${what} on the terminal; the screen shows:\n${this.screen()}`,
      timeoutMs,
    )
  }

  /** Sends keys as tmux names them (`Enter`, `Down`, `C-c`) or literal text with `literal`. */
  keys(keys: string[], literal = false): void {
    execFileSync('tmux', ['send-keys', '-t', this.session, ...(literal ? ['-l'] : []), ...keys])
  }

  /** A tmux format of the pane, e.g. `#{alternate_on}` (the alternate screen) or `#{cursor_flag}` (cursor shown). */
  display(format: string): string {
    return execFileSync('tmux', ['display-message', '-p', '-t', this.session, format], {encoding: 'utf8'}).trim()
  }

  /** Resizes the pane (the program gets SIGWINCH). */
  resize(columns: number, rows: number): void {
    execFileSync('tmux', ['resize-window', '-t', this.session, '-x', String(columns), '-y', String(rows)])
  }

  close(): void {
    spawnSync('tmux', ['kill-session', '-t', this.session])
  }
}

export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", "'\\''")}'`
}

/** Skips the test (or the suite, from a `before` hook) without tmux; under CI fails it instead. */
export function needsTmux(context: Mocha.Context): void {
  if (Terminal.available()) return
  if (process.env.CI) throw new Error('tmux is not installed: the terminal tests need it (.ci/run installs it)')
  context.skip()
}

/** Registers an afterEach that closes every terminal the suite's test opened; returns the opener. */
export function openTerminals(): (args: string[], env: Record<string, string>, redirect?: string) => Terminal {
  const open: Terminal[] = []
  afterEach(() => {
    for (const terminal of open.splice(0)) terminal.close()
  })
  return (args, env, redirect) => {
    const terminal = Terminal.start(args, env, redirect)
    open.push(terminal)
    return terminal
  }
}
