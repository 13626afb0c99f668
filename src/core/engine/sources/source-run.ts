import {buildEvent} from '../cloudevents.js'
import type {EventTemplate, SourceSpec} from '../rules.js'
import {describe} from './helpers.js'
import type {SourceContext} from './index.js'

/** One source's link to the engine: events, state and log lines, all labelled with its name. */
export class SourceRun {
  private lastProblem?: string

  constructor(
    readonly spec: SourceSpec,
    readonly ctx: SourceContext,
    readonly signal: AbortSignal,
  ) {}

  get name(): string {
    return this.spec.name
  }

  get template(): EventTemplate {
    return this.spec.event
  }

  log(message: string): void {
    this.ctx.log(`source ${this.name}: ${message}`)
  }

  /** Logs a problem unless it is the one logged last, so a condition that lasts is one line, not one per poll. */
  problem(message: string): void {
    if (message === this.lastProblem) return
    this.lastProblem = message
    this.log(message)
  }

  /** The condition behind the last {@link problem} is over: the next one is logged again. */
  recovered(): void {
    this.lastProblem = undefined
  }

  /** Builds and hands over one event; a failure is logged, never thrown, so one bad event stops nothing. */
  async emit(data: unknown, subject = this.template.subject): Promise<void> {
    try {
      const event = buildEvent({
        type: this.template.type,
        source: this.template.source ?? `mqctl://sources/${this.name}`,
        subject,
        data,
      })
      await this.ctx.emit(event, this.name)
    } catch (error) {
      this.log(`could not emit an event: ${describe(error)}`)
    }
  }

  /** The saved state if `parse` accepts it; unreadable or foreign state counts as none. */
  async load<T>(parse: (raw: unknown) => T | undefined): Promise<T | undefined> {
    let raw: unknown
    try {
      raw = await this.ctx.state.load(this.name)
    } catch (error) {
      this.log(`could not load saved state, starting afresh: ${describe(error)}`)
      return undefined
    }
    if (raw === undefined) return undefined
    const state = parse(raw)
    if (state === undefined) this.log('ignoring saved state of an unexpected shape')
    return state
  }

  async save(state: unknown): Promise<void> {
    try {
      await this.ctx.state.save(this.name, state)
    } catch (error) {
      this.log(`could not save state: ${describe(error)}`)
    }
  }
}
