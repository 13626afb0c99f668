import {expect} from 'chai'
import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {jsonLines, run, sleep, start, tempHome, waitFor} from '../helpers.js'

describe('consume --exec (the --exec contract)', () => {
  let home: string
  beforeEach(() => {
    home = tempHome()
  })

  it('runs the command with the body on stdin and the metadata in MQ_* variables; exit 0 acks', async () => {
    const out = join(home, 'out.txt')
    await run(['publish', 'jobs', 'the body', '-H', 'content-type=text/plain', '-H', 'x.trace-id=7'], {home})
    const script = `{ cat; echo; env | grep ^MQ_ | sort; } > ${out}`
    const result = await run(['consume', 'jobs', '--exec', script], {home})
    expect(result.code, result.stderr).to.equal(0)
    const text = readFileSync(out, 'utf8')
    expect(text.startsWith('the body\n')).to.equal(true)
    expect(text).to.match(/^MQ_MESSAGE_ID=\d+$/m)
    expect(text).to.match(/^MQ_QUEUE=jobs$/m)
    expect(text).to.match(/^MQ_ATTEMPT=1$/m)
    expect(text).to.match(/^MQ_RECEIPT=\d+\.\S{8}$/m)
    expect(text).to.match(/^MQ_PUBLISHED_AT=\d{4}-\d\d-\d\dT/m)
    expect(text).to.match(/^MQ_HEADER_CONTENT_TYPE=text\/plain$/m)
    expect(text).to.match(/^MQ_HEADER_X_TRACE_ID=7$/m)
    expect(JSON.parse((await run(['queue', 'stats', 'jobs', '--json'], {home})).stdout).depth).to.equal(0)
  })

  it('never runs the body as shell code', async () => {
    const marker = join(home, 'pwned')
    const hostile = [
      `$(touch ${marker})`,
      `\`touch ${marker}\``,
      `; touch ${marker}`,
      `' ; touch ${marker}; '`,
      `"\ntouch ${marker}\n"`,
    ]
    for (const body of hostile) await run(['publish', 'jobs', body, '-H', `h=$(touch ${marker})`], {home})
    const result = await run(
      ['consume', 'jobs', '-n', '10', '--exec', 'cat > /dev/null; echo "$MQ_HEADER_H" > /dev/null'],
      {home},
    )
    expect(result.code, result.stderr).to.equal(0)
    expect(existsSync(marker)).to.equal(false)
  })

  it('exit 65 dead-letters at once', async () => {
    await run(['publish', 'jobs', 'bad'], {home})
    const result = await run(['consume', 'jobs', '--exec', 'echo "cannot parse" >&2; exit 65'], {home})
    expect(result.code).to.equal(1)
    expect(result.stderr).to.match(/dead-lettered/)
    const [dead] = jsonLines((await run(['consume', 'jobs.dlq', '--json'], {home})).stdout)
    expect(dead.headers).to.deep.include({
      'x-dead-letter-reason': 'rejected',
      'x-dead-letter-attempts': '1',
      'x-original-queue': 'jobs',
    })
    expect((dead.headers as Record<string, string>)['x-last-error']).to.match(/exit 65: cannot parse/)
  })

  it('other failures retry with backoff until max deliveries, then dead-letter', async () => {
    await run(
      ['queue', 'create', 'jobs', '--max-deliveries', '3', '--retry-backoff', '50ms', '--retry-backoff-max', '100ms'],
      {home},
    )
    await run(['publish', 'jobs', 'flaky'], {home})
    const attempts = join(home, 'attempts')
    const result = await run(
      ['consume', 'jobs', '-n', '3', '--wait', '10m', '--exec', `echo $MQ_ATTEMPT >> ${attempts}; exit 1`],
      {home},
    )
    expect(result.code).to.equal(1)
    expect(result.stderr).to.match(
      /error: the command failed for 3 of 3 deliveries: 2 retried \(back in the queue for a later attempt\), 1 dead-lettered/,
    )
    expect(readFileSync(attempts, 'utf8')).to.equal('1\n2\n3\n')
    const [dead] = jsonLines((await run(['consume', 'jobs.dlq', '--json'], {home})).stdout)
    expect(dead.headers).to.deep.include({
      'x-dead-letter-reason': 'max-deliveries',
      'x-dead-letter-attempts': '3',
      'x-last-error': 'exit 1',
    })
  })

  it('--exec-timeout kills a stuck command and retries its message', async () => {
    await run(['queue', 'create', 'jobs', '--retry-backoff', '10ms', '--retry-backoff-max', '10ms'], {home})
    await run(['publish', 'jobs', 'x'], {home})
    const attempts = join(home, 'attempts')
    const result = await run(
      [
        'consume',
        'jobs',
        '-n',
        '2',
        '--wait',
        '10m',
        '--exec-timeout',
        '300ms',
        '--exec',
        `echo $MQ_ATTEMPT >> ${attempts}; [ "$MQ_ATTEMPT" = 2 ] || sleep 30`,
      ],
      {home},
    )
    // the first attempt failed (and was retried): the run says so and exits 1
    expect(result.code, result.stderr).to.equal(1)
    expect(result.stderr).to.match(/failed for 1 of 2 deliveries: 1 acked, 1 retried/)
    expect(readFileSync(attempts, 'utf8')).to.equal('1\n2\n')
    expect(result.stderr).to.match(/timed out/)
    expect(JSON.parse((await run(['queue', 'stats', 'jobs', '--json'], {home})).stdout).depth).to.equal(0)
  })

  it('extends the lease while the command runs', async () => {
    await run(['queue', 'create', 'jobs', '--visibility-timeout', '300ms'], {home})
    await run(['publish', 'jobs', 'long'], {home})
    // The command runs until the test lets it end.
    const [started, go] = [join(home, 'started'), join(home, 'go')]
    const worker = start(['consume', 'jobs', '--exec', `touch ${started}; while [ ! -f ${go} ]; do sleep 0.05; done`], {
      home,
    })
    await waitFor(() => existsSync(started), 'the command to start')
    // Time passing is the subject here: twice the visibility timeout, after which the message
    // must still be leased, not redelivered.
    await sleep(600)
    expect((await run(['consume', 'jobs'], {home})).code).to.equal(3)
    writeFileSync(go, '')
    const result = await worker.done
    expect(result.code, result.stderr).to.equal(0)
    expect(JSON.parse((await run(['queue', 'stats', 'jobs', '--json'], {home})).stdout).depth).to.equal(0)
  })

  it('runs up to --parallel commands at once', async () => {
    await run(['publish', 'jobs', '--lines'], {home, input: 'a\nb\nc\nd\n'})
    // Each command waits until all four run at once; with less parallelism they would time out (exit 1).
    const dir = join(home, 'running')
    const script = `mkdir -p ${dir}; touch ${dir}/$MQ_MESSAGE_ID; i=0; while [ $(ls ${dir} | wc -l) -lt 4 ]; do i=$((i+1)); [ $i -gt 200 ] && exit 1; sleep 0.05; done`
    const result = await run(['consume', 'jobs', '-n', '4', '--parallel', '4', '--exec', script], {home})
    expect(result.code, result.stderr).to.equal(0)
    expect(result.stderr).to.not.match(/failed/)
    expect(JSON.parse((await run(['queue', 'stats', 'jobs', '--json'], {home})).stdout).depth).to.equal(0)
  })

  it('drains on SIGINT: the running command finishes and is acked, then exit 130', async () => {
    await run(['publish', 'jobs', '--lines'], {home, input: 'a\nb\n'})
    const done = join(home, 'done')
    const running = join(home, 'running')
    const go = join(home, 'go')
    // Each command runs until the test lets it end.
    const worker = start(
      [
        'consume',
        'jobs',
        '-f',
        '--exec',
        `touch ${running}; while [ ! -e ${go} ]; do sleep 0.05; done; echo $MQ_MESSAGE_ID >> ${done}`,
      ],
      {home},
    )
    await waitFor(() => existsSync(running), 'the first command to start')
    // The signal is pending in the worker before the command can see the file and end, so the
    // worker drains (starts nothing more) before it learns the command ended.
    worker.kill('SIGINT')
    writeFileSync(go, '')
    const result = await worker.done
    expect(result.code).to.equal(130)
    expect(readFileSync(done, 'utf8').trim().split('\n')).to.have.length(1)
    const stats = JSON.parse((await run(['queue', 'stats', 'jobs', '--json'], {home})).stdout)
    expect({ready: stats.ready, inFlight: stats.inFlight}).to.deep.equal({ready: 1, inFlight: 0})
  })

  it('exits 1 when a command failed and its message was dead-lettered, and says what happened', async () => {
    await run(['queue', 'create', 'jobs', '--max-deliveries', '1'], {home})
    await run(['publish', 'jobs', '--lines'], {home, input: 'a\nb\n'})
    const result = await run(['consume', 'jobs', '-n', '2', '--exec', 'body=$(cat); [ "$body" = a ] || exit 3'], {home})
    expect(result.code, result.stderr).to.equal(1)
    expect(result.stderr).to.match(/^error: the command failed for 1 of 2 deliveries: 1 acked, 1 dead-lettered; /m)
    expect(JSON.parse((await run(['queue', 'stats', 'jobs.dlq', '--json'], {home})).stdout).depth).to.equal(1)
    // with --json the same error is a JSON object on stderr
    await run(['publish', 'jobs', 'c'], {home})
    const json = await run(['consume', 'jobs', '--json', '--exec', 'exit 3'], {home})
    expect(json.code).to.equal(1)
    const errorLine = json.stderr.split('\n').find((line) => line.startsWith('{"error"'))
    const error = JSON.parse(errorLine ?? 'null') as {
      error: {code: string; message: string; exitCode: number; summary: unknown}
    }
    expect(error.error).to.include({code: 'action_failed', exitCode: 1})
    expect(error.error.summary).to.deep.equal({
      received: 1,
      acked: 0,
      retried: 0,
      deadLettered: 1,
      released: 0,
      leaseLost: 0,
    })
    expect(error.error.message).to.match(/failed for 1 of 1 delivery: 1 dead-lettered/)
  })

  it('exits 3 when there was nothing to run', async () => {
    await run(['queue', 'create', 'idle'], {home})
    expect((await run(['consume', 'idle', '--exec', 'true'], {home})).code).to.equal(3)
  })

  it('refuses --exec with --ack auto, and --parallel without --exec', async () => {
    expect((await run(['consume', 'q', '--exec', 'true', '--ack', 'auto'], {home})).code).to.equal(2)
    expect((await run(['consume', 'q', '--parallel', '2'], {home})).code).to.equal(2)
  })
})
