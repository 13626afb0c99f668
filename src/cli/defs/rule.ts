import {readdirSync, readFileSync, statSync} from 'node:fs'
import {dirname, join} from 'node:path'

import {describeAction} from '../../core/engine/actions.js'
import {compilePattern, type MismatchExplanation, PatternError} from '../../core/engine/pattern.js'
import {anchorActionPaths} from '../../core/engine/rule-paths.js'
import type {ActionSpec, RuleSpec} from '../../core/engine/rules.js'
import {InvalidInputError, NotFoundError} from '../../core/errors.js'
import {checkJsonDepth} from '../../core/json-depth.js'
import {printable} from '../../core/names.js'
import type {Context} from '../context.js'
import {defineCommand} from '../definition.js'
import {loadRules, RULES_FLAG, rulesPathFor} from '../engine-context.js'
import {table} from '../output.js'
import {askName, askNewName} from '../prompts.js'
import {editRules} from '../../core/engine/rules-file.js'
import {importLazily} from '../../core/lazy-require.js'

const nameArg = [{name: 'name', summary: 'Rule name.'}]

async function ruleName(
  ctx: Context,
  given: string | undefined,
  rulesFlag: string | undefined,
  command: string,
): Promise<string> {
  if (given !== undefined) return given
  const names = (await loadRules(ctx, rulesFlag)).validated.rules.map((r) => r.name)
  return askName(ctx, 'rule', names, `give it as an argument: mq rule ${command} NAME`)
}

/** Edits the rules document; only the default document in the broker folder is kept private. */
async function edit(ctx: Context, rulesFlag: string | undefined, change: (rules: RuleSpec[]) => void) {
  const path = rulesPathFor(ctx, rulesFlag)
  const isDefault = rulesFlag === undefined && ctx.env.MQ_RULES === undefined
  if (isDefault) ctx.local() // make sure the broker folder exists, private
  return editRules(path, (doc) => change(doc.rules), isDefault)
}

function findIndex(rules: RuleSpec[], name: string): number {
  const index = rules.findIndex((r) => r.name === name)
  if (index === -1) throw new NotFoundError('rule', name, {hint: 'see `mq rule list`'})
  return index
}

function parseJsonFlag(text: string, flag: string): unknown {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new InvalidInputError(`${flag} is not valid JSON (${(error as Error).message})`, {code: 'bad_json'})
  }
  checkJsonDepth(value, flag)
  return value
}

export const ruleAdd = defineCommand({
  id: 'rule:add',
  summary: 'Add a rule: an event pattern and the actions to run when it matches.',
  description: `Give the pattern with --pattern (EventBridge syntax) or --type, and actions with --exec, --publish,
--http, --file, --log or --action (JSON, repeatable). At a terminal, missing parts are asked for.`,
  examples: [
    '<%= config.bin %> rule add deploy --type git.merged --pattern \'{"data":{"branch":["main"]}}\' --action \'{"type":"exec","command":["./deploy.sh","{{data.sha}}"]}\'',
    '<%= config.bin %> rule add audit --pattern \'{"type":[{"prefix":"order."}]}\' --file audit.jsonl',
    '<%= config.bin %> rule add notify --type build.failed --http https://hooks.example.com/ci --retry 5 --concurrency serial',
  ],
  args: nameArg,
  flags: {
    pattern: {kind: 'string', summary: 'Event pattern as JSON.', helpValue: 'JSON'},
    type: {kind: 'string', summary: 'Shortcut: match this event type (merged into --pattern).', helpValue: 'TYPE'},
    action: {kind: 'multiple', summary: 'An action as JSON (repeatable).', helpValue: 'JSON'},
    exec: {
      kind: 'string',
      summary: 'Action: run CMD with sh -c (event JSON on stdin, fields in $MQ_EVENT_*).',
      helpValue: 'CMD',
    },
    publish: {kind: 'string', summary: 'Action: publish the event to a queue or topic.', helpValue: 'NAME'},
    http: {kind: 'string', summary: 'Action: POST the event (CloudEvents structured mode).', helpValue: 'URL'},
    file: {kind: 'string', summary: 'Action: append the event as a JSON line.', helpValue: 'PATH'},
    log: {kind: 'boolean', summary: 'Action: print the event.'},
    retry: {kind: 'integer', summary: 'Attempts per action (default 3).', min: 1, max: 100},
    backoff: {kind: 'string', summary: 'First retry delay, doubling (default 1s).', helpValue: 'DUR'},
    concurrency: {
      kind: 'string',
      summary: 'parallel (default), serial (one run at a time), or drop (skip while running).',
      options: ['parallel', 'serial', 'drop'],
    },
    disabled: {kind: 'boolean', summary: 'Add it disabled.'},
    description: {kind: 'string', summary: 'What the rule is for.', helpValue: 'TEXT'},
    ...RULES_FLAG,
  },
  async run({args, flags}, ctx): Promise<RuleSpec> {
    const name = args.name ?? (await askNewName(ctx, 'rule name', 'give it as an argument: mq rule add NAME ...'))
    const given = flags.pattern === undefined ? {} : parseJsonFlag(flags.pattern, '--pattern')
    if (typeof given !== 'object' || given === null || Array.isArray(given)) compilePattern(given) // refuses it, naming the path
    let pattern = given as Record<string, unknown>
    if (flags.type !== undefined) pattern = {...pattern, type: [flags.type]}
    const actions: ActionSpec[] = flags.action.map((a) => parseJsonFlag(a, '--action') as ActionSpec)
    if (flags.exec !== undefined) actions.push({type: 'exec', command: flags.exec, shell: true})
    if (flags.publish !== undefined) actions.push({type: 'publish', to: flags.publish})
    if (flags.http !== undefined) actions.push({type: 'http', url: flags.http})
    if (flags.file !== undefined) actions.push({type: 'file', path: flags.file})
    if (flags.log) actions.push({type: 'log'})
    if (Object.keys(pattern).length === 0) pattern = await askPattern(ctx)
    if (actions.length === 0) actions.push(await askAction(ctx))
    // Relative programs and files mean "here", where the user typed them (see anchorActionPaths).
    const rulesPath = rulesPathFor(ctx, flags.rules)
    const isDefault = flags.rules === undefined && ctx.env.MQ_RULES === undefined
    const anchored = anchorActionPaths(actions, isDefault ? ctx.cwd : dirname(rulesPath), isDefault)
    const rule: RuleSpec = {name, pattern, actions: anchored.actions}
    if (flags.description !== undefined) rule.description = flags.description
    if (flags.disabled) rule.enabled = false
    if (flags.retry !== undefined || flags.backoff !== undefined)
      rule.retry = {maxAttempts: flags.retry, backoff: flags.backoff}
    if (flags.concurrency !== undefined) rule.concurrency = flags.concurrency as RuleSpec['concurrency']
    await edit(ctx, flags.rules, (rules) => {
      if (rules.some((r) => r.name === name))
        throw new InvalidInputError(`rule ${name} already exists`, {
          hint: `remove it first with \`mq rule remove ${name}\``,
        })
      rules.push(JSON.parse(JSON.stringify(rule)) as RuleSpec)
    })
    for (const path of anchored.missing) {
      ctx.warn(
        `warning: ${path.given} does not exist (looked for ${path.resolved}); the rule was added, but its action fails until it does`,
      )
    }
    return rule
  },
  render: (rule, ctx) =>
    ctx.stdoutIsTTY ? `added rule ${rule.name}: ${rule.actions.map(describeAction).join(', ')}` : undefined,
})

async function askPattern(ctx: Context): Promise<Record<string, unknown>> {
  if (!ctx.interactive)
    throw new InvalidInputError('missing pattern', {code: 'usage', hint: 'give --pattern JSON or --type TYPE'})
  const {input} = await importLazily<typeof import('@inquirer/prompts')>('@inquirer/prompts')
  const type = await input({message: 'Event type to match (prefix with ^ for "starts with"):', required: true})
  return {type: [type.startsWith('^') ? {prefix: type.slice(1)} : type]}
}

async function askAction(ctx: Context): Promise<ActionSpec> {
  if (!ctx.interactive)
    throw new InvalidInputError('missing action', {
      code: 'usage',
      hint: 'give --exec, --publish, --http, --file, --log or --action JSON',
    })
  const {input, select} = await importLazily<typeof import('@inquirer/prompts')>('@inquirer/prompts')
  const kind = await select({
    message: 'What should happen?',
    choices: [
      {name: 'run a command', value: 'exec'},
      {name: 'publish the event to a queue or topic', value: 'publish'},
      {name: 'POST it to a URL', value: 'http'},
      {name: 'append it to a file', value: 'file'},
      {name: 'print it', value: 'log'},
    ],
  })
  switch (kind) {
    case 'exec':
      return {
        type: 'exec',
        command: await input({message: 'Command (sh -c; the event is on stdin and in $MQ_EVENT_*):', required: true}),
        shell: true,
      }
    case 'publish':
      return {type: 'publish', to: await input({message: 'Queue or topic:', required: true})}
    case 'http':
      return {type: 'http', url: await input({message: 'URL:', required: true})}
    case 'file':
      return {type: 'file', path: await input({message: 'File:', required: true})}
    default:
      return {type: 'log'}
  }
}

export const ruleList = defineCommand({
  id: 'rule:list',
  summary: 'List rules: name, state, pattern and actions.',
  examples: ['<%= config.bin %> rule list', '<%= config.bin %> rule list --rules ci/rules.json --json'],
  flags: {...RULES_FLAG},
  async run({flags}, ctx): Promise<(RuleSpec & {enabled: boolean})[]> {
    return (await loadRules(ctx, flags.rules)).validated.rules.map((r) => ({...r.spec, enabled: r.enabled}))
  },
  render(rules, ctx) {
    if (!ctx.stdoutIsTTY) return rules.map((r) => r.name).join('\n') || undefined
    if (rules.length === 0) return 'no rules: add one with `mq rule add`'
    return table(
      ['RULE', 'STATE', 'PATTERN', 'ACTIONS'],
      rules.map((r) => [
        r.name,
        r.enabled ? 'enabled' : 'disabled',
        printable(JSON.stringify(r.pattern), 50),
        r.actions.map(describeAction).join('; '),
      ]),
    )
  },
})

export const ruleShow = defineCommand({
  id: 'rule:show',
  summary: 'Show a rule as JSON.',
  examples: ['<%= config.bin %> rule show deploy'],
  args: nameArg,
  flags: {...RULES_FLAG},
  async run({args, flags}, ctx): Promise<RuleSpec> {
    const name = await ruleName(ctx, args.name, flags.rules, 'show')
    const rule = (await loadRules(ctx, flags.rules)).validated.rules.find((r) => r.name === name)
    if (!rule) throw new NotFoundError('rule', name, {hint: 'see `mq rule list`'})
    return rule.spec
  },
  render: (rule) => JSON.stringify(rule, null, 2),
})

export const ruleRemove = defineCommand({
  id: 'rule:remove',
  summary: 'Remove a rule.',
  examples: ['<%= config.bin %> rule remove deploy'],
  args: nameArg,
  flags: {...RULES_FLAG},
  async run({args, flags}, ctx): Promise<{removed: string}> {
    const name = await ruleName(ctx, args.name, flags.rules, 'remove')
    await edit(ctx, flags.rules, (rules) => rules.splice(findIndex(rules, name), 1))
    return {removed: name}
  },
  render: (r, ctx) => (ctx.stdoutIsTTY ? `removed rule ${r.removed}` : undefined),
})

function toggle(enabled: boolean) {
  const verb = enabled ? 'enable' : 'disable'
  return defineCommand({
    id: `rule:${verb}`,
    summary: `${enabled ? 'Enable' : 'Disable'} a rule.`,
    examples: [`<%= config.bin %> rule ${verb} deploy`],
    args: nameArg,
    flags: {...RULES_FLAG},
    async run({args, flags}, ctx): Promise<{rule: string; enabled: boolean}> {
      const name = await ruleName(ctx, args.name, flags.rules, verb)
      await edit(ctx, flags.rules, (rules) => {
        rules[findIndex(rules, name)].enabled = enabled
      })
      return {rule: name, enabled}
    },
    render: (r, ctx) => (ctx.stdoutIsTTY ? `${verb}d rule ${r.rule}` : undefined),
  })
}

export const ruleEnable = toggle(true)
export const ruleDisable = toggle(false)

interface TestResult {
  file: string
  match: boolean
  expected?: 'match' | 'no-match'
  passed: boolean
  mismatch?: MismatchExplanation
}

export const ruleTest = defineCommand({
  id: 'rule:test',
  summary: 'Check sample events against a rule or a pattern file, for CI.',
  description: `For each sample event (a JSON file, or every *.json file in a folder) prints whether it matches,
and for a miss the first condition that failed and why. With --expect, exit 1 when any sample
does not do what is expected.`,
  examples: [
    '<%= config.bin %> rule test deploy test/events/merged-main.json --expect match',
    '<%= config.bin %> rule test patterns/deploy.json test/events/ --expect no-match',
  ],
  args: [
    {name: 'rule', summary: 'A rule name, or a file holding a pattern (JSON).'},
    {name: 'events', summary: 'Event files or folders of them.', variadic: true},
  ],
  flags: {
    expect: {kind: 'string', summary: 'What every sample should do.', options: ['match', 'no-match']},
    ...RULES_FLAG,
  },
  async run({argv, flags}, ctx): Promise<TestResult[]> {
    const [target, ...paths] = argv
    if (target === undefined || paths.length === 0) {
      throw new InvalidInputError('give a rule (or pattern file) and at least one event file or folder', {
        code: 'usage',
        hint: 'mq rule test RULE EVENT.json...',
      })
    }
    const pattern = await resolvePattern(ctx, target, flags.rules)
    const results = expandFiles(paths).map((file): TestResult => {
      let event: unknown
      try {
        event = JSON.parse(readFileSync(file, 'utf8'))
      } catch (error) {
        throw new InvalidInputError(`${file} is not valid JSON (${(error as Error).message})`, {code: 'bad_json'})
      }
      const mismatch = pattern.explain(event)
      const match = mismatch === undefined
      const expected = flags.expect as TestResult['expected']
      return {file, match, expected, passed: expected === undefined || (expected === 'match') === match, mismatch}
    })
    if (results.some((r) => !r.passed)) ctx.exitCode = 1
    return results
  },
  render(results, ctx) {
    return results
      .map((r) => {
        const mark = r.expected === undefined ? '' : r.passed ? 'ok   ' : 'FAIL '
        const why = r.mismatch ? `: ${r.mismatch.path}: ${r.mismatch.reason}` : ''
        return `${mark}${r.file}: ${r.match ? 'match' : `no match${why}`}`
      })
      .concat(
        ctx.exitCode
          ? [`${results.filter((r) => !r.passed).length} of ${results.length} samples did not ${results[0].expected}`]
          : [],
      )
      .join('\n')
  },
})

async function resolvePattern(ctx: Context, target: string, rulesFlag: string | undefined) {
  const isFile = (() => {
    try {
      return statSync(target).isFile()
    } catch {
      return false
    }
  })()
  if (!isFile) {
    const rule = (await loadRules(ctx, rulesFlag)).validated.rules.find((r) => r.name === target)
    if (!rule) throw new NotFoundError('rule (or pattern file)', target, {hint: 'see `mq rule list`'})
    return rule.pattern
  }
  let raw: unknown
  try {
    raw = JSON.parse(readFileSync(target, 'utf8'))
  } catch (error) {
    throw new InvalidInputError(`${target} is not valid JSON (${(error as Error).message})`, {code: 'bad_json'})
  }
  // A pattern file may hold a bare pattern or a whole rule.
  const pattern =
    typeof raw === 'object' && raw !== null && 'pattern' in raw && 'actions' in raw ? (raw as RuleSpec).pattern : raw
  try {
    return compilePattern(pattern)
  } catch (error) {
    if (error instanceof PatternError) error.where = target
    throw error
  }
}

function expandFiles(paths: string[]): string[] {
  return paths.flatMap((path) => {
    let stats
    try {
      stats = statSync(path)
    } catch {
      throw new InvalidInputError(`${path} does not exist`, {hint: 'give event files or folders of them'})
    }
    if (!stats.isDirectory()) return [path]
    const files = readdirSync(path)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => join(path, f))
    if (files.length === 0) throw new InvalidInputError(`${path} holds no .json files`)
    return files
  })
}
