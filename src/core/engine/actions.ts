import {appendFile} from 'node:fs/promises'
import {isAbsolute, resolve} from 'node:path'

import type {Broker} from '../broker.js'
import {cannotStartReason, firstWord} from '../cannot-start.js'
import {validateName} from '../names.js'
import {runChild} from '../process-group.js'
import {parseDuration} from '../units.js'
import type {CloudEvent} from './cloudevents.js'
import type {ActionSpec, ExecAction, HttpAction, PublishAction} from './rules.js'
import {eventEnvironment, renderAll, renderTemplate, renderUrl, UrlTemplateError} from './template.js'

export interface ActionContext {
  broker: Broker
  /** Relative file paths and exec working folders resolve against it (the rules file's folder). */
  baseDir: string
  env: NodeJS.ProcessEnv
  rule: string
  attempt: number
  /** Where `log` actions print, and exec output is copied. */
  log(line: string): void
  output?: NodeJS.WritableStream
  signal?: AbortSignal
}

export interface ActionResult {
  ok: boolean
  /** What ran: argv, URL, queue or file. */
  target: string
  exitCode?: number
  httpStatus?: number
  error?: string
  outputTail?: string
  /** An exec action whose program cannot start (not found, not executable): retrying cannot help. */
  cannotStart?: boolean
}

const DEFAULT_HTTP_TIMEOUT_MS = 10_000

/** Runs one action for one event, once; the engine does the retries. */
export async function runAction(action: ActionSpec, event: CloudEvent, ctx: ActionContext): Promise<ActionResult> {
  switch (action.type) {
    case 'exec':
      return runExec(action, event, ctx)
    case 'publish':
      return runPublish(action, event, ctx)
    case 'http':
      return runHttp(action, event)
    case 'file': {
      const path = isAbsolute(action.path) ? action.path : resolve(ctx.baseDir, action.path)
      try {
        await appendFile(path, `${JSON.stringify(event)}\n`, {mode: 0o600})
        return {ok: true, target: path}
      } catch (error) {
        return {ok: false, target: path, error: (error as Error).message}
      }
    }
    case 'log':
      ctx.log(JSON.stringify(event))
      return {ok: true, target: 'log'}
  }
}

/** A short description of what an action does, for listings (templates unrendered). */
export function describeAction(action: ActionSpec): string {
  switch (action.type) {
    case 'exec':
      return `exec ${Array.isArray(action.command) ? JSON.stringify(action.command) : action.command}`
    case 'publish':
      return `publish to ${action.to}`
    case 'http':
      return `http ${action.method ?? 'POST'} ${action.url}`
    case 'file':
      return `append to ${action.path}`
    case 'log':
      return 'log'
  }
}

/**
 * exec: argv with templates rendered into whole items (no shell), or with `shell: true` a fixed
 * command string; either way the event is on stdin as JSON and in MQ_EVENT_* variables.
 */
async function runExec(action: ExecAction, event: CloudEvent, ctx: ActionContext): Promise<ActionResult> {
  const argv = action.shell
    ? ['sh', '-c', action.command as string]
    : (action.command as string[]).map((item) => renderTemplate(item, event))
  const target = JSON.stringify(argv)
  const output = (chunk: Buffer) => ctx.output?.write(chunk)
  const cwd = action.cwd ? resolve(ctx.baseDir, action.cwd) : ctx.baseDir
  const end = await runChild({
    argv,
    cwd,
    env: {
      ...ctx.env,
      ...eventEnvironment(event),
      MQ_RULE: ctx.rule,
      MQ_ATTEMPT: String(ctx.attempt),
      ...renderAll(action.env, event),
    },
    stdin: JSON.stringify(event),
    stdout: output,
    stderr: output,
    tail: {max: 2_000, of: ['stdout', 'stderr']},
    timeoutMs: action.timeout ? parseDuration(action.timeout) : undefined,
    signal: ctx.signal,
  })
  const cannotStart = cannotStartReason(end, action.shell ? firstWord(action.command as string) : argv[0], cwd)
  if (cannotStart !== undefined)
    return {
      ok: false,
      target,
      exitCode: end.started ? (end.code ?? undefined) : undefined,
      error: cannotStart,
      cannotStart: true,
    }
  // A failed start (e.g. a NUL byte rendered into an argument) is a failed attempt like any other.
  if (!end.started) return {ok: false, target, error: `cannot run ${argv[0]}: ${end.error.message}`}
  if (end.error) return {ok: false, target, exitCode: 127, error: `cannot run ${argv[0]}: ${end.error.message}`}
  const outputTail = end.tail || undefined
  if (end.timedOut) return {ok: false, target, error: `timed out after ${action.timeout}`, outputTail}
  if (end.signal) return {ok: false, target, error: `killed by ${end.signal}`, outputTail}
  return {
    ok: end.code === 0,
    target,
    exitCode: end.code ?? undefined,
    error: end.code === 0 ? undefined : `exit ${end.code}`,
    outputTail,
  }
}

async function runPublish(action: PublishAction, event: CloudEvent, ctx: ActionContext): Promise<ActionResult> {
  const to = renderTemplate(action.to, event)
  const target = `${action.topic ? 'topic' : 'queue'} ${to}`
  try {
    validateName(to, 'publish target')
    const body = action.body === undefined ? JSON.stringify(event) : renderTemplate(action.body, event)
    const headers = {
      'ce-id': event.id,
      'ce-source': event.source,
      'ce-type': event.type,
      ...renderAll(action.headers, event),
    }
    const [result] = await ctx.broker.publish(to, [{body, headers}], {kind: action.topic ? 'topic' : undefined})
    return {ok: true, target, outputTail: `message ${result.id}`}
  } catch (error) {
    return {ok: false, target, error: (error as Error).message}
  }
}

/** http: the CloudEvents HTTP binding, structured (the event as JSON) or binary (ce-* headers). */
async function runHttp(action: HttpAction, event: CloudEvent): Promise<ActionResult> {
  let url: string
  try {
    url = renderUrl(action.url, event)
  } catch (error) {
    if (error instanceof UrlTemplateError) return {ok: false, target: action.url, error: error.message}
    throw error
  }
  const headers = renderAll(action.headers, event)
  let body: string | Buffer
  if (action.mode === 'binary') {
    for (const [key, value] of Object.entries(event)) {
      if (key === 'data' || key === 'data_base64' || key === 'datacontenttype' || value === undefined) continue
      headers[`ce-${key}`] = typeof value === 'string' ? value : JSON.stringify(value)
    }
    headers['content-type'] ??= event.datacontenttype ?? 'application/json'
    body =
      event.data_base64 !== undefined
        ? Buffer.from(event.data_base64, 'base64')
        : typeof event.data === 'string'
          ? event.data
          : JSON.stringify(event.data ?? null)
  } else {
    headers['content-type'] ??= 'application/cloudevents+json; charset=utf-8'
    body = JSON.stringify(event)
  }
  const timeoutMs = action.timeout ? parseDuration(action.timeout) : DEFAULT_HTTP_TIMEOUT_MS
  try {
    const response = await fetch(url, {
      method: action.method ?? 'POST',
      headers,
      body,
      signal: AbortSignal.timeout(timeoutMs),
    })
    const text = (await response.text()).slice(0, 1000)
    return {
      ok: response.ok,
      target: url,
      httpStatus: response.status,
      error: response.ok ? undefined : `HTTP ${response.status}`,
      outputTail: text || undefined,
    }
  } catch (error) {
    const reason =
      (error as Error).name === 'TimeoutError'
        ? `timed out after ${timeoutMs}ms`
        : ((error as {cause?: Error}).cause?.message ?? (error as Error).message)
    return {ok: false, target: url, error: reason}
  }
}
