import type {TriggerSummary} from '../../core/engine/engine.js'
import {startSources} from '../../core/engine/sources/index.js'
import {InterruptedError, InvalidInputError} from '../../core/errors.js'
import {defineCommand} from '../definition.js'
import {toJson} from '../output.js'
import {engineFor, RULES_FLAG} from '../engine-context.js'

export const engineRun = defineCommand({
  id: 'engine:run',
  summary: "Run the rules' sources (schedules, watches, polls) in the foreground.",
  description: `Each event a source produces goes through the rules like \`mq trigger\`. Runs until interrupted
(Ctrl-C or SIGTERM: sources stop, running actions finish, exit 130). The daemon runs the same sources.`,
  examples: ['<%= config.bin %> engine run', '<%= config.bin %> engine run --rules ci/rules.json --json'],
  flags: {...RULES_FLAG},
  async run({flags}, ctx): Promise<undefined> {
    const {drain} = ctx.handleInterrupts()
    const {engine, rules} = await engineFor(ctx, flags.rules)
    const {sources, schedules} = rules.validated
    const active = sources.filter((s) => s.enabled !== false)
    if (active.length === 0) {
      throw new InvalidInputError(`${rules.path} declares no enabled sources`, {
        hint: 'add a "sources" entry (schedule, watch-file or poll-command); see README: Sources',
      })
    }
    const journal = ctx.local().journal
    const report = (summary: TriggerSummary) => {
      if (ctx.json) ctx.out.line(toJson(summary))
      else if (!summary.ok)
        ctx.warn(`event #${summary.seq} ${summary.type}: an action failed; see \`mq events show ${summary.seq}\``)
      void ctx.out.flush()
    }
    ctx.warn(`engine: running ${active.map((s) => `${s.type} ${s.name}`).join(', ')}`)
    const running = startSources(sources, schedules, {
      emit: async (event) => report(await engine.handle(event)),
      state: {
        load: (name) => journal.loadSourceState(name),
        save: (name, state) => journal.saveSourceState(name, state),
      },
      signal: drain,
      log: (line) => ctx.warn(line),
      baseDir: rules.dir,
    })
    await new Promise<void>((resolve) => drain.addEventListener('abort', () => resolve(), {once: true}))
    await running.stop()
    throw new InterruptedError()
  },
})
