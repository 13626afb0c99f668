// Issue 5 benchmarks: pattern matching throughput in-process, and the cost of `mq trigger` with no
// matching rule next to bare `node -e ''`.
import {rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {buildEvent} from '../dist/core/engine/cloudevents.js'
import {RuleMatcher} from '../dist/core/engine/matcher.js'
import {validateDocument} from '../dist/core/engine/rules.js'
import {BIN, fmt, header, median, pinned, rate, report, ROOT, tempHome, timesMs, wallMs} from './lib.js'

export function rulesOf(count) {
  // Varied, realistic patterns: exact types, prefixes, numeric ranges, anything-but, exists, $or.
  return Array.from({length: count}, (_, i) => ({
    name: `rule-${i}`,
    pattern: [
      {type: [`order.${i}.created`]},
      {type: [{prefix: `svc${i}.`}], data: {level: ['error', 'fatal']}},
      {type: ['payment.settled'], data: {amount: [{numeric: ['>', i * 10, '<=', i * 10 + 100]}]}},
      {source: [{'anything-but': [`src-${i}`]}], type: [`audit.${i}`], data: {user: [{exists: true}]}},
      {$or: [{type: [`a.${i}`]}, {data: {region: [`r${i}`]}}], subject: [{suffix: `/${i}`}]},
    ][i % 5],
    actions: [{type: 'log'}],
  }))
}

/** JSON Lines CloudEvents that exercise every kind of rule above, some matching, most not. */
export function eventLines(count) {
  const types = (i) =>
    [
      `order.${(i * 7919) % 10000}.created`,
      'payment.settled',
      `svc${(i * 31) % 10000}.crashed`,
      `audit.${(i * 13) % 10000}`,
      `a.${i % 10000}`,
      'user.login',
    ][i % 6]
  const lines = []
  for (let i = 0; i < count; i++) {
    lines.push(
      JSON.stringify({
        specversion: '1.0',
        id: String(i),
        source: `src-${i % 50}`,
        type: types(i),
        subject: `items/${i % 100}`,
        time: '2026-01-31T12:00:00Z',
        data: {
          amount: (i * 37) % 100000,
          level: i % 3 ? 'info' : 'error',
          user: 'u1',
          region: `r${i % 20}`,
          order: {id: i, lines: [{sku: 'a', qty: 2}]},
        },
      }),
    )
  }
  return `${lines.join('\n')}\n`
}

/**
 * `mq rule match` over many events, whole process: flat in the rule count? Each rule count twice:
 * cold (no rule index cache: read, validate and index the rules document, then write the cache)
 * and warm (the cache the cold run wrote, read back: src/core/engine/index-cache.ts).
 */
export function benchRuleMatch({quick = false} = {}) {
  const events = quick ? 50_000 : 200_000
  header(`engine: mq rule match over ${fmt(events)} events, whole process (best of ${quick ? 1 : 3})`)
  const home = tempHome()
  const file = join(home, 'events.jsonl')
  writeFileSync(file, eventLines(events))
  const wall = {}
  const cpu = {}
  const best = (key, times) => {
    wall[key] = Math.min(wall[key] ?? Infinity, times.wall)
    cpu[key] = Math.min(cpu[key] ?? Infinity, times.cpu)
  }
  const counts = [10, 1000, 10000]
  for (const count of counts) writeFileSync(join(home, `rules-${count}.json`), JSON.stringify({rules: rulesOf(count)}))
  const match = (input, count) =>
    timesMs(...pinned(process.execPath, [BIN, 'rule', 'match', input, '--rules', join(home, `rules-${count}.json`)]), {
      env: {...process.env, MQ_HOME: home},
    })
  const noCache = () => rmSync(join(home, 'cache'), {recursive: true, force: true})
  const floor = join(ROOT, 'bench', 'floor-json.js')
  // Interleaved rounds, best of each, so load changes hit every rule count alike.
  for (let run = 0; run < (quick ? 1 : 3); run++) {
    best('floor', timesMs(...pinned(process.execPath, [floor, file])))
    for (const count of counts) {
      noCache()
      best(`cold ${count}`, match(file, count))
      best(`warm ${count}`, match(file, count))
    }
  }
  // What no matcher can beat: reading the file and JSON.parse of every line (bench/floor-json.js).
  report(
    'floor: read + JSON.parse each line (wall; by CPU time)',
    `${fmt(rate(events, wall.floor))} events/s (${fmt(rate(events, cpu.floor))}/s)`,
    '(floor)',
  )
  for (const cache of ['cold', 'warm']) {
    for (const count of counts) {
      const key = `${cache} ${count}`
      const target = count === 10 ? '(baseline)' : '≥ 200,000 events/s'
      const perSecond = rate(events, wall[key])
      report(
        `${fmt(count)} rules, ${cache} (wall; by CPU time: ${fmt(rate(events, cpu[key]))}/s)`,
        `${fmt(perSecond)} events/s = ${fmt(wall.floor / wall[key])}× floor`,
        target,
        count === 10 ? undefined : perSecond >= 200_000,
      )
    }
    const ratio = wall[`${cache} 10000`] / wall[`${cache} 10`]
    report(
      `10,000 rules vs 10, ${cache}: slowdown (wall)`,
      `${fmt(ratio)}× (CPU time: ${fmt(cpu[`${cache} 10000`] / cpu[`${cache} 10`])}×)`,
      '≤ 2×',
      ratio <= 2,
    )
  }
  // Loading and indexing the rules is paid once per process: with one event it is all there is.
  const one = join(home, 'one.jsonl')
  writeFileSync(one, eventLines(1))
  for (const count of counts) {
    noCache()
    const cold = match(one, count)
    const warm = match(one, count)
    report(
      `start-up with ${fmt(count)} rules (one event), cold / warm`,
      `${fmt(cold.wall)} / ${fmt(warm.wall)} ms wall, ${fmt(cold.cpu)} / ${fmt(warm.cpu)} ms CPU`,
      '',
    )
  }
}

export async function benchEngine({quick = false} = {}) {
  benchRuleMatch({quick})
  header('engine: matching throughput, in-process (RuleMatcher)')
  const events = Array.from({length: 1000}, (_, i) =>
    buildEvent({
      type: ['order.7.created', 'payment.settled', 'svc3.crashed', 'audit.12', 'user.login'][i % 5],
      source: `src-${i % 50}`,
      subject: `items/${i % 100}`,
      data: {
        amount: (i * 37) % 5000,
        level: i % 3 ? 'info' : 'error',
        user: 'u1',
        region: `r${i % 20}`,
        order: {id: i, lines: [{sku: 'a', qty: 2}]},
      },
    }),
  )
  // One rule that has to look at several fields of every event, and matches some of them.
  const single = [
    {
      name: 'one',
      pattern: {
        type: ['payment.settled', 'order.7.created'],
        data: {amount: [{numeric: ['>', 1000]}], level: ['error', 'info']},
      },
      actions: [{type: 'log'}],
    },
  ]
  const perSecond = {}
  for (const count of [1, 10, 1000, 10000]) {
    const {rules} = validateDocument({rules: count === 1 ? single : rulesOf(count)}, 'bench')
    const matcher = new RuleMatcher(rules)
    const seconds = quick ? 0.5 : 2
    let matched = 0
    let processed = 0
    const deadline = performance.now() + seconds * 1000
    while (performance.now() < deadline) {
      for (const event of events) matched += matcher.match(event).length
      processed += events.length
    }
    perSecond[count] = processed / seconds
    const target = count === 1 ? '≥ 100,000 events/s' : count === 10 ? '(baseline)' : 'event-ruler: 220k/s (JVM)'
    report(
      `${fmt(count)} rule${count === 1 ? '' : 's'}: the rule index`,
      `${fmt(Math.round(perSecond[count]))} events/s (${fmt(matched)} matches)`,
      target,
      count === 1 ? perSecond[count] >= 100_000 : undefined,
    )
  }
  report(
    '10,000 rules vs 10 (in-process)',
    `${fmt(perSecond[10] / perSecond[10000])}× slower`,
    '≤ 2×',
    perSecond[10] / perSecond[10000] <= 2,
  )

  header('engine: mq trigger with no matching rule (side by side, interleaved)')
  const home = tempHome()
  writeFileSync(join(home, 'rules.json'), JSON.stringify({rules: rulesOf(20)}))
  const env = {...process.env, MQ_HOME: home}
  const node = []
  const trigger = []
  for (let i = 0; i < (quick ? 7 : 21); i++) {
    node.push(wallMs(process.execPath, ['-e', '']))
    trigger.push(wallMs(process.execPath, [BIN, 'trigger', 'nothing.matches'], {env}))
  }
  report("node -e '' median wall", `${fmt(median(node))} ms`, '(baseline)')
  report(
    'mq trigger (20 rules, none match) median wall',
    `${fmt(median(trigger))} ms = ${fmt(median(trigger) / median(node))}×`,
    '≤ 2.0× node',
    median(trigger) / median(node) <= 2,
  )
}
