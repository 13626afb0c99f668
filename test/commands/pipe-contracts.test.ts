import {expect} from 'chai'
import {execFileSync, spawnSync} from 'node:child_process'
import {chmodSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {copyCli, expectOneLineError, jsonLines, mq, ROOT, run, shell, tempHome} from '../helpers.js'

// What scripts in a pipe rely on (README.md, "Output", "The `--exec` contract", "Rules"): each
// test is a row of the table of issue 13, as a user met it.
describe('stream contracts and loud failures (CLI)', function () {
  this.timeout(60_000)
  let home: string
  beforeEach(() => {
    home = tempHome()
  })

  const script = (dir: string, name: string, body: string) => {
    const path = join(dir, name)
    writeFileSync(path, `#!/bin/sh\n${body}\n`)
    chmodSync(path, 0o755)
    return path
  }

  describe('rule add with a relative command', () => {
    it('stores ./deploy.sh resolved against the folder it ran in, so trigger finds it from anywhere', async () => {
      const project = tempHome('mq-project-')
      script(project, 'deploy.sh', 'echo "deployed $1" >> "$(dirname "$0")/deployed.txt"')
      const add = await run(
        [
          'rule',
          'add',
          'deploy',
          '--type',
          'git.merged',
          '--action',
          '{"type":"exec","command":["./deploy.sh","{{data.sha}}"]}',
        ],
        {home, cwd: project},
      )
      expect(add.code, add.stderr).to.equal(0)
      expect(add.stderr).to.equal('')
      const stored = JSON.parse(readFileSync(join(home, 'rules.json'), 'utf8')).rules[0]
      expect(stored.actions[0].command).to.deep.equal([join(project, 'deploy.sh'), '{{data.sha}}'])
      // Triggered from another folder: the command still resolves to the project's script.
      const trigger = await run(['trigger', 'git.merged', '--data', '{"sha":"9f2c1e"}'], {
        home,
        cwd: tempHome('mq-elsewhere-'),
      })
      expect(trigger.code, trigger.stderr).to.equal(0)
      expect(readFileSync(join(project, 'deployed.txt'), 'utf8')).to.equal('deployed 9f2c1e\n')
    })

    it('warns when the file does not exist, naming where it looked; a --rules document keeps it relative to its folder', async () => {
      const project = tempHome('mq-project-')
      const missing = await run(['rule', 'add', 'typo', '--type', 't', '--exec', './deplo.sh --fast'], {
        home,
        cwd: project,
      })
      expect(missing.code).to.equal(0)
      expect(missing.stderr).to.equal(
        `warning: ./deplo.sh does not exist (looked for ${join(project, 'deplo.sh')}); the rule was added, but its action fails until it does\n`,
      )
      // A shell command runs in the folder rule add ran in.
      expect(JSON.parse(readFileSync(join(home, 'rules.json'), 'utf8')).rules[0].actions[0]).to.deep.include({
        command: './deplo.sh --fast',
        cwd: project,
      })

      const ci = join(project, 'ci')
      mkdirSync(ci)
      script(ci, 'notify.sh', 'echo notified > "$(dirname "$0")/notified.txt"')
      const rules = join(ci, 'rules.json')
      const add = await run(
        [
          'rule',
          'add',
          'notify',
          '--type',
          'build.done',
          '--rules',
          rules,
          '--action',
          '{"type":"exec","command":["./notify.sh"]}',
        ],
        {home, cwd: project},
      )
      expect(add.code, add.stderr).to.equal(0)
      expect(add.stderr).to.equal('') // ./notify.sh is next to the rules document
      expect(JSON.parse(readFileSync(rules, 'utf8')).rules[0].actions[0].command).to.deep.equal(['./notify.sh'])
      expect((await run(['trigger', 'build.done', '--rules', rules], {home})).code).to.equal(0)
      expect(readFileSync(join(ci, 'notified.txt'), 'utf8')).to.equal('notified\n')
    })
  })

  describe('a command that cannot start', () => {
    it('--exec with a typo stops the worker at once (exit 2, the path tried); the message is released untouched', async () => {
      await run(['publish', 'jobs', '--lines'], {home, input: Array.from({length: 10}, (_, i) => `m${i}`).join('\n')})
      const cwd = tempHome('mq-cwd-')
      const result = await mq(['consume', 'jobs', '-f', '--exec', './resiz.sh'], {home, cwd})
      expect(result.code, result.stderr).to.equal(2)
      expect(result.stderr.trim().split('\n').at(-1)).to.equal(
        `error: --exec cannot start ${join(cwd, 'resiz.sh')} (./resiz.sh in ${cwd}): not found; fix the command; its message was released untouched (no attempt counted)`,
      )
      const stats = JSON.parse((await run(['queue', 'stats', 'jobs', '--json'], {home})).stdout)
      expect({ready: stats.ready, inFlight: stats.inFlight, deadLettered: stats.deadLettered}).to.deep.equal({
        ready: 10,
        inFlight: 0,
        deadLettered: 0,
      })
      const peeked = jsonLines((await run(['queue', 'peek', 'jobs', '--json'], {home})).stdout)
      expect(peeked.map((m) => m.deliveries)).to.deep.equal(Array(10).fill(0))
    })

    it('--exec of a file that is not executable: exit 2, not retried', async () => {
      await run(['publish', 'jobs', 'one'], {home})
      const cwd = tempHome('mq-cwd-')
      writeFileSync(join(cwd, 'handle.sh'), 'echo hi\n') // no x bit
      const result = await mq(['consume', 'jobs', '--exec', './handle.sh'], {home, cwd})
      expect(result.code).to.equal(2)
      expect(result.stderr).to.include(
        `cannot start ${join(cwd, 'handle.sh')} (./handle.sh in ${cwd}): not executable (permission denied)`,
      )
      expect(jsonLines((await run(['queue', 'peek', 'jobs', '--json'], {home})).stdout)[0]).to.deep.include({
        body: 'one',
        deliveries: 0,
      })
    })

    it('an exec action that cannot start is not retried: trigger exits 2 naming the path', async () => {
      writeFileSync(
        join(home, 'rules.json'),
        JSON.stringify({
          rules: [
            {
              name: 'deploy',
              pattern: {type: ['go']},
              actions: [{type: 'exec', command: ['./missing.sh']}],
              retry: {maxAttempts: 5, backoff: '1s'},
            },
          ],
        }),
      )
      const result = await run(['trigger', 'go', '--json'], {home})
      expect(result.code).to.equal(2)
      expect(JSON.parse(result.stdout).actions[0]).to.deep.include({
        attempts: 1,
        outcome: 'dead-lettered',
        cannotStart: true,
      })
      expect(JSON.parse(result.stderr.trim().split('\n').at(-1)!).error).to.deep.include({
        code: 'cannot_start',
        exitCode: 2,
      })
      expect(result.stderr).to.include(`cannot start ${join(home, 'missing.sh')} (./missing.sh in ${home}): not found`)
    })
  })

  it('-n with -f stops after N (as nats --count and kcat -c do); the rest stay queued', async () => {
    await run(['publish', 'q', '--lines'], {home, input: Array.from({length: 10}, (_, i) => `m${i}`).join('\n')})
    const result = await mq(['consume', 'q', '-f', '-n', '3'], {home})
    expect(result.code, result.stderr).to.equal(0)
    expect(result.stdout).to.equal('m0\nm1\nm2\n')
    expect(JSON.parse((await run(['queue', 'stats', 'q', '--json'], {home})).stdout).ready).to.equal(7)
    const worker = await mq(['consume', 'q', '-f', '-n', '2', '--exec', 'cat >/dev/null'], {home})
    expect(worker.code, worker.stderr).to.equal(0)
    expect(JSON.parse((await run(['queue', 'stats', 'q', '--json'], {home})).stdout).ready).to.equal(5)
  })

  it('trigger reads stdin only when asked: a `while read` loop triggers once per line', async () => {
    writeFileSync(
      join(home, 'rules.json'),
      JSON.stringify({rules: [{name: 'log', pattern: {type: ['evt']}, actions: [{type: 'file', path: 'seen.jsonl'}]}]}),
    )
    const result = await shell(
      `printf 'a\\nb\\nc\\n' > lines.txt; while read l; do MQ trigger evt --subject "$l" >/dev/null || exit 9; done < lines.txt`,
      {home, cwd: home},
    )
    expect(result.code, result.stderr).to.equal(0)
    const seen = readFileSync(join(home, 'seen.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(seen.map((e) => [e.subject, e.data])).to.deep.equal([
      ['a', undefined],
      ['b', undefined],
      ['c', undefined],
    ])
    // Asked for: --data - (stdin) and --data @FILE.
    writeFileSync(join(home, 'data.json'), '{"from":"file"}\n')
    expect((await run(['trigger', 'evt', '--data', '-'], {home, input: '{"from":"stdin"}\n'})).code).to.equal(0)
    expect((await run(['trigger', 'evt', '--data', `@${join(home, 'data.json')}`], {home})).code).to.equal(0)
    expectOneLineError(
      await run(['trigger', 'evt', '--data', '@nope.json'], {home}),
      2,
      /cannot read --data file nope\.json \(ENOENT\)/,
    )
    const data = readFileSync(join(home, 'seen.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .slice(3)
      .map((l) => JSON.parse(l).data)
    expect(data).to.deep.equal([{from: 'stdin'}, {from: 'file'}])
  })

  it('a body from stdin loses exactly one trailing newline, unless --raw', async () => {
    await shell(`echo '{"order":42}' | MQ publish orders >/dev/null`, {home})
    expect((await run(['consume', 'orders'], {home})).stdout).to.equal('{"order":42}\n')
    await run(['publish', 'orders'], {home, input: 'two\n\n'})
    await run(['publish', 'orders'], {home, input: 'crlf\r\n'})
    await run(['publish', 'orders', '--raw'], {home, input: 'raw\n'})
    const bodies = jsonLines((await run(['consume', 'orders', '-n', '3', '--json'], {home})).stdout).map((e) => e.body)
    expect(bodies).to.deep.equal(['two\n', 'crlf', 'raw\n'])
  })

  it('compound durations (1h30m, 2d12h) everywhere a duration is read', async () => {
    const before = Date.now()
    expect((await run(['publish', 'q', 'later', '--delay', '1h30m'], {home})).code).to.equal(0)
    const [peeked] = jsonLines((await run(['queue', 'peek', 'q', '--json'], {home})).stdout)
    expect(peeked.state).to.equal('delayed')
    expect((await run(['queue', 'create', 'q2', '--default-ttl', '2d12h', '--json'], {home})).stdout).to.include(
      '"defaultTtlMs":216000000',
    )
    expect((await run(['consume', 'q', '--wait', '0m0.2s'], {home})).code).to.equal(3)
    expect(Date.now() - before).to.be.below(60_000)
    expectOneLineError(await run(['publish', 'q', 'x', '--delay', '30m1h'], {home}), 2, /invalid --delay "30m1h"/)
  })

  it('purge, delete and redrive without a terminal need --yes (exit 2); --dry-run does not', async () => {
    await run(['publish', 'jobs', 'a'], {home})
    await run(['topic', 'create', 'news'], {home})
    for (const args of [
      ['queue', 'purge', 'jobs'],
      ['queue', 'delete', 'jobs'],
      ['topic', 'delete', 'news'],
      ['dlq', 'redrive', 'jobs'],
    ]) {
      expectOneLineError(
        await run(args, {home}),
        2,
        /needs confirmation, and there is no terminal to ask; pass --yes to confirm$/,
      )
    }
    expect(JSON.parse((await run(['queue', 'stats', 'jobs', '--json'], {home})).stdout).ready).to.equal(1)
    expect((await run(['dlq', 'redrive', 'jobs', '--dry-run'], {home})).code).to.equal(0)
    expect((await run(['queue', 'purge', 'jobs', '--yes'], {home})).code).to.equal(0)
    expect((await run(['queue', 'delete', 'jobs', '-y'], {home})).code).to.equal(0)
  })

  it('consume --ack manual into a pipe writes every delivery in order, and stops quietly when the reader goes away', async () => {
    // Batches of 1,000 and more than a pipe holds: written through the pipe's own descriptor
    // (Output.pipeWrites) while the next batch is taken.
    const bodies = Array.from({length: 2500}, (_, i) => `job ${i} ${'x'.repeat(100)}`)
    await run(['publish', 'jobs', '--lines'], {home, input: bodies.join('\n') + '\n'})
    const piped = await shell('MQ consume jobs -n 2500 --ack manual --json | cat', {home})
    expect([piped.code, piped.stderr]).to.deep.equal([0, ''])
    const deliveries = jsonLines<{body: string; receipt: string}>(piped.stdout)
    expect(deliveries.map((d) => d.body)).to.deep.equal(bodies)
    const acked = await run(['ack'], {home, input: deliveries.map((d) => d.receipt).join('\n') + '\n'})
    expect(acked.code).to.equal(0)
    expect(JSON.parse((await run(['queue', 'stats', 'jobs', '--json'], {home})).stdout).depth).to.equal(0)

    await run(['publish', 'jobs', '--lines'], {home, input: bodies.join('\n') + '\n'})
    const first = await shell('(MQ consume jobs -n 2500 --ack manual --json; echo "exit $?" >&2) | head -1', {home})
    expect([first.code, first.stderr]).to.deep.equal([0, 'exit 0\n'])
    expect(jsonLines(first.stdout).map((d) => d.body)).to.deep.equal([bodies[0]])
    const stats = JSON.parse((await run(['queue', 'stats', 'jobs', '--json'], {home})).stdout) as {
      depth: number
      inFlight: number
    }
    // Nothing lost: what was not read stays leased (redelivered when the lease runs out) or ready.
    expect(stats.depth).to.equal(2500)
    expect(stats.inFlight).to.be.at.least(1000).and.at.most(2000)
  })

  it('every list has one piped format: tab-separated rows, no header; --json is one object per line', async () => {
    await run(['publish', 'jobs', 'a'], {home})
    await run(['topic', 'create', 'news'], {home})
    await run(['subscribe', 'news', '--durable', 'reader', '--wait', '0'], {home})
    await run(['consume', 'jobs', '--ack', 'manual', '--json'], {home}).then((r) =>
      run(['nack', JSON.parse(r.stdout).receipt, '--dead-letter'], {home}),
    )
    const rows = async (args: string[]) =>
      (await run(args, {home})).stdout
        .trimEnd()
        .split('\n')
        .map((line) => line.split('\t'))
    expect(await rows(['queue', 'list'])).to.deep.equal([
      ['jobs', '0', '0 B', '30s', '5', 'jobs.dlq'],
      ['jobs.dlq', '1', '139 B', '30s', '5', '-'],
    ])
    expect((await rows(['topic', 'list']))[0].slice(0, 2)).to.deep.equal(['news', '0'])
    expect(await rows(['subscription', 'list'])).to.deep.equal([['reader', 'news', 'durable']])
    expect((await rows(['dlq', 'list'])).map((r) => [r[0], r[1], r[3]])).to.deep.equal([
      ['jobs.dlq', '1', 'jobs'],
      ['reader.dlq', '0', 'reader'],
    ])
    for (const list of ['queue', 'topic', 'subscription', 'dlq']) {
      const json = (await run([list, 'list', '--json'], {home})).stdout
      expect(json.endsWith('}\n'), json).to.equal(true)
      for (const line of json.trim().split('\n')) expect(JSON.parse(line)).to.be.an('object').with.property('name')
    }
  })

  it('--json prints every timestamp as ISO-8601 (one rule)', async () => {
    await run(['publish', 'jobs', 'a'], {home})
    await run(['trigger', 'tick'], {home})
    const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
    const [queue] = jsonLines((await run(['queue', 'list', '--json'], {home})).stdout)
    expect(queue.createdAt).to.match(iso)
    expect(JSON.parse((await run(['queue', 'stats', 'jobs', '--json'], {home})).stdout).createdAt).to.match(iso)
    expect(jsonLines((await run(['queue', 'peek', 'jobs', '--json'], {home})).stdout)[0].publishedAt).to.match(iso)
    expect(jsonLines((await run(['consume', 'jobs', '--json'], {home})).stdout)[0].publishedAt).to.match(iso)
    const [event] = JSON.parse((await run(['events', 'list', '--json'], {home})).stdout)
    expect(event.receivedAt).to.match(iso)
    expect(event.event.time).to.match(iso)
  })

  it('consume of a queue that does not exist says so and suggests close names', async () => {
    await run(['publish', 'jobs', 'a'], {home})
    expectOneLineError(
      await run(['consume', 'jbos'], {home}),
      2,
      /^error: queue jbos does not exist; did you mean jobs\? See `mq queue list`$/,
    )
    expectOneLineError(await run(['consume', 'zzz'], {home}), 2, /queue zzz does not exist; see `mq queue list`/)
    // Waiting for it is fine: a consumer may start before its producer.
    const waiting = await run(['consume', 'jbos', '--wait', '100ms'], {home})
    expect(waiting.code).to.equal(3)
    expect(waiting.stderr).to.match(/^queue jbos does not exist yet; waiting for it \(did you mean jobs\?\)\n/)
  })

  describe('colours and help', () => {
    it('FORCE_COLOR colours stderr in a pipe; --no-color wins, on stderr too', async () => {
      const forced = await run(['consume', 'nope'], {home, env: {FORCE_COLOR: '1', NO_COLOR: undefined}})
      expect(forced.stderr.startsWith('\u001B[31merror:\u001B[39m queue nope'), forced.stderr).to.equal(true)
      const plain = await run(['consume', 'nope', '--no-color'], {home, env: {FORCE_COLOR: '1', NO_COLOR: undefined}})
      expect(plain.stderr).to.match(/^error: queue nope/)
      expect((await run(['consume', 'nope'], {home, env: {FORCE_COLOR: '0', NO_COLOR: undefined}})).stderr).to.match(
        /^error: /,
      )
    })

    it('a mistyped flag gets a suggestion, on the fast path and through oclif alike', async () => {
      expectOneLineError(
        await mq(['publish', 'q', 'x', '--jsn'], {home}),
        2,
        /^error: unknown flag --jsn; did you mean --json\? see `mq publish --help`$/,
      )
      expectOneLineError(
        await mq(['queue', 'list', '--jsno'], {home}),
        2,
        /^error: unknown flag --jsno; did you mean --json\?/,
      )
      expectOneLineError(
        await mq(['consume', 'q', '--wiat', '1s'], {home}),
        2,
        /unknown flag --wiat; did you mean --wait\?/,
      )
      expectOneLineError(
        await mq(['consume', 'q', '--zzzzzz'], {home}),
        2,
        /^error: unknown flag --zzzzzz; see `mq consume --help`$/,
      )
    })

    it('help wraps cleanly at 80 columns and never prints an empty default', async () => {
      // Every command's help as oclif renders it 80 columns wide (what a pipe gets), in this process.
      const {Config, Help} = await import('@oclif/core')
      const config = await Config.load(ROOT)
      const help = new (class extends Help {
        text = (command: (typeof config.commands)[number]) => this.formatCommand(command)
      })(config, {maxWidth: 80, stripAnsi: true})
      const commands = config.commands.filter((c) => !c.id.startsWith('autocomplete') && !c.hidden)
      expect(commands.length).to.be.above(30)
      for (const command of commands) {
        const text = `${command.summary}\n\n${help.text(command)}`
        expect(text, command.id).to.not.include('[default: ]')
        const [body] = text.split('\nEXAMPLES\n') // examples are commands to copy, kept whole
        for (const line of body.split('\n')) expect([...line].length, `${command.id}: ${line}`).to.be.at.most(80)
        // A description paragraph is wrapped by oclif, not where the source's lines ended: no line
        // is followed by a word that would have fitted on it.
        const lines = (body.split('\nDESCRIPTION\n')[1] ?? '').split('\n')
        for (let i = 0; i + 1 < lines.length; i++) {
          const next = lines[i + 1].trim().split(' ')[0]
          if (lines[i].trim() === '' || next === '' || /^\s*[-*$]/.test(lines[i + 1])) continue
          expect([...lines[i]].length + 1 + [...next].length, `${command.id}: ragged line "${lines[i]}"`).to.be.above(
            78,
          )
        }
      }
      // And as a user sees it, through the built CLI.
      const publish = await mq(['publish', '--help'], {home})
      expect(publish.stdout).to.include('-H, --header=KEY=VALUE...  Add a header (repeatable).')
      expect(publish.stdout).to.not.include('[default: ]')
    })
  })

  it('a Node version switch (NODE_MODULE_VERSION mismatch) gets the one-line fix, exit 1', async function () {
    if (spawnSync('cc', ['--version']).status !== 0) {
      if (process.env.CI) expect.fail('cc is needed to build a module for another Node version')
      this.skip()
    }
    // A native module that registers itself as built for another Node (module version 1), as
    // better-sqlite3 does after `nvm use` to another major version.
    const root = copyCli()
    const source = join(root, 'old-abi.c')
    writeFileSync(
      source,
      `struct node_module { int nm_version; unsigned int nm_flags; void *nm_dso_handle; const char *nm_filename; void *nm_register_func; void *nm_context_register_func; const char *nm_modname; void *nm_priv; struct node_module *nm_link; };
extern void node_module_register(void *);
static struct node_module m = {1, 0, 0, "old-abi.c", 0, 0, "better_sqlite3", 0, 0};
__attribute__((constructor)) static void init(void) { node_module_register(&m); }
`,
    )
    const binary = join(root, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node')
    execFileSync('cc', ['-shared', '-fPIC', '-o', binary, source])
    const result = await mq(['publish', 'q', 'x'], {home, bin: join(root, 'bin', 'run.js')})
    expectOneLineError(
      result,
      1,
      /^error: the SQLite module was built for another Node\.js version \(module version 1; Node v[\d.]+ needs \d+\); run `cd .+ && npm rebuild better-sqlite3`$/,
    )
    expect(result.stderr).to.include(`cd ${root} && npm rebuild better-sqlite3`)
    expect(result.stderr).to.not.include('report it')
  })
})
