import {Parser} from '@oclif/core'
import {expect} from 'chai'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import {findFastCommands, render} from '../../scripts/fast-commands.js'
import type {CommandDefinition} from '../../src/cli/definition.js'
import {parseFast} from '../../src/cli/fast.js'
import {FAST_COMMANDS} from '../../src/cli/fast-commands.js'
import {oclifCommand} from '../../src/cli/oclif-adapter.js'
import {type FlagSpec, GLOBAL_FLAGS} from '../../src/cli/spec.js'
import {mq, ROOT, run, tempHome} from '../helpers.js'

// The launcher runs hot commands with its own small parser (src/cli/fast.ts) and hands anything it
// does not take to oclif. Both must read a command line the same way: where oclif refuses one, the
// fast parser must hand it over (so the user gets oclif's exit code and message), and where both
// take it they must agree on every value.

type Outcome =
  {ok: true; args: Record<string, unknown>; argv: string[]; flags: Record<string, unknown>} | {ok: false; error: string}

async function oclifParse(definition: CommandDefinition, argv: string[]): Promise<Outcome> {
  const command = oclifCommand(definition) as unknown as {flags: never; args: never; strict: boolean}
  try {
    const parsed = await Parser.parse(argv, {flags: command.flags, args: command.args, strict: command.strict})
    return {ok: true, args: parsed.args, argv: parsed.argv as string[], flags: normalize(definition, parsed.flags)}
  } catch (error) {
    return {ok: false, error: (error as Error).message.split('\n')[0]}
  }
}

function fastParse(definition: CommandDefinition, argv: string[]): Outcome | undefined {
  const parsed = parseFast(definition, argv)
  return parsed && {ok: true, args: parsed.args, argv: parsed.argv, flags: normalize(definition, parsed.flags)}
}

/** oclif leaves a switch that was not given undefined, the fast parser false: the same to every command. */
function normalize(definition: CommandDefinition, flags: Record<string, unknown>): Record<string, unknown> {
  const specs: Record<string, FlagSpec> = {...definition.flags, ...GLOBAL_FLAGS}
  const out: Record<string, unknown> = {}
  for (const [name, spec] of Object.entries(specs)) {
    const value = flags[name]
    if (spec.kind === 'boolean') out[name] = Boolean(value)
    else if (value !== undefined) out[name] = value
  }
  return out
}

/** A well-formed value of a flag, and values the flag must refuse. */
function samples(spec: FlagSpec): {good: string[]; bad: string[]} {
  switch (spec.kind) {
    case 'integer': {
      const low = spec.min ?? 0
      const bad = ['x', '1.5', '']
      if (spec.min !== undefined) bad.push(String(spec.min - 1))
      if (spec.max !== undefined) bad.push(String(spec.max + 1))
      return {good: [String(low), String(spec.max ?? low + 7)], bad}
    }
    case 'duration':
      return {good: ['250ms', '5s', '2m'], bad: ['soon', '-1s', ...(spec.positive ? ['0'] : [])]}
    case 'size':
      return {good: ['1KiB', '2048'], bad: ['big']}
    case 'string':
      return spec.options
        ? {good: [...spec.options], bad: ['nope', '']}
        : {good: ['text', 'a b', '-dash', '=x', ''], bad: []}
    case 'multiple':
      return {good: ['k=v'], bad: []}
    case 'boolean':
      return {good: [], bad: []}
  }
}

/** The hot commands' arguments for a plain call (positional values that are valid for parsing). */
const POSITIONAL: Record<string, string[]> = {
  publish: ['q', 'hello'],
  consume: ['q'],
  ack: ['r1', 'r2'],
  nack: ['r1'],
  extend: ['r1'],
  subscribe: ['orders.*'],
  trigger: ['order.created'],
  'rule match': ['events.jsonl', '-'],
}

interface Case {
  argv: string[]
  /** The fast parser must take it (a common, well-formed call), not only agree. */
  fast?: boolean
}

/** Every flag of a command, given well and badly, plus the command-line shapes around flags. */
function cases(definition: CommandDefinition): Case[] {
  const positional = POSITIONAL[definition.id.replaceAll(':', ' ')]
  const list: Case[] = [
    {argv: positional, fast: true},
    {argv: [], fast: true},
  ]
  for (const [name, spec] of Object.entries({...definition.flags, ...GLOBAL_FLAGS} as Record<string, FlagSpec>)) {
    const long = `--${name}`
    if (spec.kind === 'boolean') {
      list.push({argv: [...positional, long], fast: true}, {argv: [long, ...positional], fast: true})
      list.push(
        {argv: [...positional, `${long}=true`]},
        {argv: [...positional, `--no-${name}`]},
        {argv: [...positional, long, long]},
      )
      if (spec.char)
        list.push({argv: [...positional, `-${spec.char}`], fast: true}, {argv: [...positional, `-${spec.char}x`]})
      continue
    }
    const {good, bad} = samples(spec)
    for (const value of good) {
      list.push(
        {argv: [...positional, long, value], fast: value !== '' && !value.startsWith('-') && !value.startsWith('=')},
        {argv: [...positional, `${long}=${value}`]},
      )
      if (spec.char)
        list.push(
          {argv: [...positional, `-${spec.char}`, value], fast: true},
          {argv: [...positional, `-${spec.char}${value}`]},
        )
    }
    for (const value of bad)
      list.push({argv: [...positional, long, value]}, {argv: [...positional, `${long}=${value}`]})
    // A missing value, a value that is a flag, and a flag given twice.
    list.push({argv: [...positional, long]}, {argv: [long, ...positional]}, {argv: [...positional, long, '--json']})
    if (good.length > 0) list.push({argv: [...positional, long, good[0], long, good.at(-1)!]})
    if (spec.env) list.push({argv: [...positional, long, good[0] ?? 'x']})
  }
  // Shapes around flags: unknown ones, help, the `--` separator, extra or odd positionals.
  list.push(
    {argv: [...positional, '--nope']},
    {argv: [...positional, '-Z']},
    {argv: [...positional, '--help']},
    {argv: [...positional, '-h']},
    {argv: ['--', ...positional]},
    {argv: [...positional, '--', '--json']},
    {argv: [...positional, 'extra']},
    {argv: [...positional, '-']},
    {argv: [...positional, '-5']},
    {argv: [...positional, '---json']},
    {argv: [...positional, '--=x']},
  )
  return list
}

describe('the fast command list and parser agree with the definitions and oclif', () => {
  it('the launcher runs exactly the definitions marked fast: true (src/cli/fast-commands.ts is in sync)', async () => {
    const generated = readFileSync(join(ROOT, 'src', 'cli', 'fast-commands.ts'), 'utf8')
    expect(generated, 'run `npm run build` to regenerate src/cli/fast-commands.ts').to.equal(
      render(await findFastCommands()),
    )
    for (const [name, load] of Object.entries(FAST_COMMANDS)) {
      const definition = await load()
      expect(definition.fast, name).to.equal(true)
      expect([definition.id.replaceAll(':', ' '), ...(definition.aliases ?? [])]).to.include(name)
    }
    expect(Object.keys(FAST_COMMANDS).sort()).to.deep.equal(Object.keys(POSITIONAL).sort())
  })

  for (const name of Object.keys(POSITIONAL)) {
    it(`${name}: every flag, well and badly given, reads the same as oclif reads it`, async () => {
      const definition = await FAST_COMMANDS[name]()
      const saved = {...process.env}
      // No environment fallback (e.g. MQ_RULES) leaks in from the shell running the tests.
      for (const spec of Object.values({...definition.flags, ...GLOBAL_FLAGS} as Record<string, FlagSpec>))
        if (spec.env) delete process.env[spec.env]
      try {
        const disagreements: string[] = []
        for (const {argv, fast} of cases(definition)) {
          const viaOclif = await oclifParse(definition, argv)
          const viaFast = fastParse(definition, argv)
          const shown = `${name} ${JSON.stringify(argv)}`
          if (!viaOclif.ok) {
            // oclif refuses it: the fast parser must hand it over, so the user gets oclif's error.
            if (viaFast) disagreements.push(`${shown}: oclif refuses it (${viaOclif.error}), the fast parser takes it`)
          } else if (viaFast) {
            if (JSON.stringify(viaFast) !== JSON.stringify(viaOclif))
              disagreements.push(`${shown}: fast ${JSON.stringify(viaFast)} ≠ oclif ${JSON.stringify(viaOclif)}`)
          } else if (fast) {
            disagreements.push(`${shown}: a plain call the fast parser hands to oclif`)
          }
        }
        expect(disagreements).to.deep.equal([])
      } finally {
        Object.assign(process.env, saved)
      }
    })
  }

  it('environment fallbacks read the same (MQ_RULES for --rules)', async () => {
    const definition = await FAST_COMMANDS.trigger()
    const saved = process.env.MQ_RULES
    process.env.MQ_RULES = '/tmp/from-env.json'
    try {
      for (const argv of [['order.created'], ['order.created', '--rules', '/tmp/from-flag.json']]) {
        const viaFast = fastParse(definition, argv)
        expect(viaFast, JSON.stringify(argv)).to.deep.equal(await oclifParse(definition, argv))
        expect(viaFast?.ok && viaFast.flags.rules).to.equal(argv[2] ?? '/tmp/from-env.json')
      }
    } finally {
      if (saved === undefined) delete process.env.MQ_RULES
      else process.env.MQ_RULES = saved
    }
  })

  // The same bad command lines through the launcher, with and without the fast path.
  describe('bad input: the same exit code and message on both paths', () => {
    let home: string
    before(() => {
      home = tempHome()
    })

    const bad = [
      ['publish', 'q', 'x', '--priority', '12'],
      ['publish', 'q', 'x', '--delay', 'soon'],
      ['consume', 'q', '-n', '0'],
      ['consume', 'q', '--ack', 'later'],
      ['ack', '--nope', 'r1'],
      ['nack', 'r1', '--delay'],
      ['extend', 'r1', '--by', '-1s'],
      ['subscribe', 'a.*', '--max-deliveries', 'x'],
      ['trigger', 'order.created', '--data'],
      ['publish', 'q', 'x', '-n', '1'],
      // A value that names a flag is a missing value to oclif (the fast parser used to run these).
      ['consume', 'q', '--exec', '--json'],
      ['subscribe', 'a.*', '--durable=--json'],
      ['rule', 'match', '--rules'],
    ]
    for (const argv of bad) {
      it(argv.join(' '), async () => {
        // The launcher hands the command line to oclif (bin/run.js: runFast answers undefined) …
        const words = FAST_COMMANDS[argv[0]] ? 1 : 2
        expect(
          parseFast(await FAST_COMMANDS[argv.slice(0, words).join(' ')](), argv.slice(words)),
          'the fast parser takes it',
        ).to.equal(undefined)
        // … whose answer is a usage error: exit 2, one line (a JSON object with --json).
        const result = await run(argv, {home})
        expect(result.code, result.stderr).to.equal(2)
        expect(result.stderr.trim().split('\n'), result.stderr).to.have.length(1)
        expect(result.stderr).to.match(argv.includes('--json') ? /^\{"error":\{"code":"usage"/ : /^error: /)
      })
    }

    it('the built CLI answers them the same with and without the fast path (MQ_NO_FAST=1)', async function () {
      this.timeout(120_000) // two processes per command line on a busy machine
      for (const argv of [bad[0], bad[6], bad[10], bad[12]]) {
        const fast = await mq(argv, {home})
        const oclif = await mq(argv, {home, env: {MQ_NO_FAST: '1'}})
        expect(fast.code, fast.stderr).to.equal(2)
        expect({code: fast.code, stderr: fast.stderr, stdout: fast.stdout}, argv.join(' ')).to.deep.equal({
          code: oclif.code,
          stderr: oclif.stderr,
          stdout: oclif.stdout,
        })
        // and the in-process tier the other command tests use answers as the built CLI does
        expect(await run(argv, {home}), argv.join(' ')).to.deep.equal(fast)
      }
    })
  })
})
