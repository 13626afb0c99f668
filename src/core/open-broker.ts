import {resolve} from 'node:path'

import type {Broker} from './broker.js'
import {resolveHome} from './config.js'
import {InvalidInputError} from './errors.js'
import {FileBroker} from './file-broker/index.js'
import type {LockWaiter} from './lock-wait.js'
import {validateName} from './names.js'

/** A NATS address: the seed servers and how to authenticate, parsed from `nats://…`. */
export interface NatsTarget {
  kind: 'nats'
  /** `host:port` of each seed server. */
  servers: string[]
  user?: string
  pass?: string
  token?: string
  /** A NATS credentials file (`?creds=FILE`). */
  credsFile?: string
  /** Namespaces every stream, subject and bucket (`--prefix` or `?prefix=`). */
  prefix: string
  /** The address as shown to people: the password or token replaced by `***`. */
  display: string
}

export interface FileTarget {
  kind: 'file'
  home: string
}

/** A RabbitMQ address parsed from `amqp://user:pass@host:5672/vhost[?management=URL]`. */
export interface AmqpTarget {
  kind: 'amqp'
  /** The address amqplib connects to (with the password; never shown). */
  url: string
  host: string
  port: number
  vhost: string
  user: string
  pass: string
  tls: boolean
  /** The management HTTP API (`?management=http://host:15672`), for listing, policies and unacked counts. */
  management?: string
  /** The address as shown to people: the password replaced by `***`. */
  display: string
}

export type BrokerTarget = NatsTarget | AmqpTarget | FileTarget

export interface BrokerSelection {
  /** `--broker` */
  brokerFlag?: string
  /** `--home` */
  homeFlag?: string
  /** `--prefix` */
  prefix?: string
}

/**
 * Which broker a command uses. One precedence, written once:
 * `--broker` > `MQ_URL` > `--home` / `MQ_HOME` > the per-user folder.
 * `--broker` together with `--home` is a usage error (they name two different brokers).
 * The local folder (`home`) still holds what stays local on any broker: rules, the event journal
 * and the daemon's files.
 */
export function selectBroker(
  selection: BrokerSelection,
  env: NodeJS.ProcessEnv = process.env,
): {target: BrokerTarget; home: string} {
  if (selection.brokerFlag !== undefined && selection.homeFlag !== undefined) {
    throw new InvalidInputError('--broker and --home name two different brokers', {
      hint: 'give one of them (--home DIR is the same as --broker file:DIR)',
    })
  }
  const url = selection.brokerFlag ?? (env.MQ_URL || undefined)
  const home = resolveHome(selection.homeFlag, env)
  if (url === undefined) return {target: {kind: 'file', home}, home}
  const target = parseBrokerUrl(url, selection.prefix ?? (env.MQ_PREFIX || undefined))
  return {target, home: target.kind === 'file' ? target.home : home}
}

/** `nats://[user:pass@|token@]h1:4222,h2:4222[?creds=FILE&prefix=NAME]` or `file:DIR`. */
export function parseBrokerUrl(url: string, prefixOverride?: string): BrokerTarget {
  if (url.startsWith('file:')) {
    const path = url.slice('file:'.length).replace(/^\/\/(?=\/)/, '')
    if (path === '')
      throw new InvalidInputError(`broker URL ${url} names no folder`, {hint: 'use file:DIR, e.g. file:/srv/mq'})
    return {kind: 'file', home: resolve(path)}
  }
  if (/^amqps?:\/\//.test(url)) return parseAmqpUrl(url)
  const match = /^nats:\/\/(?:([^@/?]*)@)?([^/?]+)\/?(?:\?(.*))?$/.exec(url)
  if (!match) {
    throw new InvalidInputError(`cannot read the broker URL "${hidePassword(url)}"`, {
      hint: 'use nats://host:4222[,host2:4222] (user:pass@ or token@ before the hosts, ?creds=FILE, ?prefix=NAME), amqp://user:pass@host:5672/vhost or file:DIR',
    })
  }
  const [, auth, hostList, query] = match
  const servers = hostList
    .split(',')
    .map((host) => host.trim())
    .filter(Boolean)
    .map((host) => (/:\d+$/.test(host) ? host : `${host}:4222`))
  for (const server of servers) {
    if (!/^[\w.-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(server))
      throw new InvalidInputError(`"${server}" in the broker URL is not host:port`)
  }
  if (servers.length === 0)
    throw new InvalidInputError('the broker URL names no server', {hint: 'e.g. nats://127.0.0.1:4222'})
  const target: NatsTarget = {kind: 'nats', servers, prefix: '', display: ''}
  if (auth !== undefined) {
    const colon = auth.indexOf(':')
    if (colon === -1) target.token = decodeURIComponent(auth)
    else {
      target.user = decodeURIComponent(auth.slice(0, colon))
      target.pass = decodeURIComponent(auth.slice(colon + 1))
    }
  }
  const params = new URLSearchParams(query ?? '')
  for (const key of params.keys()) {
    if (key !== 'creds' && key !== 'prefix')
      throw new InvalidInputError(`unknown broker URL parameter "${key}"`, {hint: 'known: creds, prefix'})
  }
  if (params.has('creds')) target.credsFile = resolve(params.get('creds')!)
  const prefix = prefixOverride ?? params.get('prefix') ?? ''
  if (prefix !== '') {
    validateName(prefix, 'prefix')
    if (prefix.includes('.'))
      throw new InvalidInputError(`prefix "${prefix}" may not contain dots`, {hint: 'use letters, digits, _ and -'})
  }
  target.prefix = prefix
  target.display = `nats://${target.user !== undefined ? `${target.user}:***@` : target.token !== undefined ? '***@' : ''}${servers.join(',')}${prefix ? `?prefix=${prefix}` : ''}`
  return target
}

/** `amqp[s]://[user[:pass]@]host[:port][/vhost][?management=http://host:15672]`; user and password default to guest. */
function parseAmqpUrl(url: string): AmqpTarget {
  const match =
    /^(amqps?):\/\/(?:([^@/?]*)@)?([\w.-]+|\[[0-9a-fA-F:]+\])(?::(\d{1,5}))?(?:\/([^?]*))?(?:\?(.*))?$/.exec(url)
  if (!match) {
    throw new InvalidInputError(`cannot read the broker URL "${hidePassword(url)}"`, {
      hint: 'use amqp://user:pass@host:5672/vhost (add ?management=http://host:15672 for listing and stats)',
    })
  }
  const [, scheme, auth, host, portText, vhostText, query] = match
  const tls = scheme === 'amqps'
  const port = portText ? Number(portText) : tls ? 5671 : 5672
  if (!(port >= 1 && port <= 65_535)) throw new InvalidInputError(`port ${portText} in the broker URL is out of range`)
  let user = 'guest'
  let pass = 'guest'
  if (auth !== undefined) {
    const colon = auth.indexOf(':')
    user = decodeURIComponent(colon === -1 ? auth : auth.slice(0, colon))
    pass = colon === -1 ? '' : decodeURIComponent(auth.slice(colon + 1))
  }
  const vhost = vhostText === undefined || vhostText === '' ? '/' : decodeURIComponent(vhostText)
  const params = new URLSearchParams(query ?? '')
  for (const key of params.keys()) {
    if (key !== 'management')
      throw new InvalidInputError(`unknown broker URL parameter "${key}"`, {hint: 'known: management'})
  }
  let management: string | undefined
  if (params.has('management')) {
    const given = params.get('management')!
    if (!/^https?:\/\/[^/?#\s]+\/?$/.test(given))
      throw new InvalidInputError(`?management=${given} is not an http(s)://host:port address`, {
        hint: 'e.g. ?management=http://127.0.0.1:15672',
      })
    management = given.replace(/\/$/, '')
  }
  const path = vhost === '/' ? '' : `/${encodeURIComponent(vhost)}`
  const base = `${host}:${port}${path}`
  const connectUrl = `${scheme}://${encodeURIComponent(user)}:${encodeURIComponent(pass)}@${base}`
  const display = `${scheme}://${auth !== undefined ? `${user}:***@` : ''}${base}${management ? `?management=${management}` : ''}`
  return {kind: 'amqp', url: connectUrl, host, port, vhost, user, pass, tls, management, display}
}

export function hidePassword(url: string): string {
  return url.replace(
    /^(nats:\/\/|amqps?:\/\/)([^@/?]*)@/,
    (_all, scheme: string, auth: string) =>
      `${scheme}${auth.includes(':') ? `${auth.slice(0, auth.indexOf(':'))}:***` : '***'}@`,
  )
}

/**
 * The broker for a target. The NATS and AMQP drivers (and their client libraries) are imported
 * only when a nats:// or amqp:// broker is used, on the first call, so file-broker commands load none of it.
 */
export function openBroker(target: BrokerTarget): Broker {
  if (target.kind === 'file') return new FileBroker(target.home)
  if (target.kind === 'amqp') {
    return lazyBroker(async (waiter) => {
      const {AmqpBroker} = await import('./amqp-broker/index.js')
      return AmqpBroker.connect(target, waiter)
    })
  }
  return lazyBroker(async (waiter) => {
    const {JetStreamBroker} = await import('./nats-broker/index.js')
    return JetStreamBroker.connect(target, waiter)
  })
}

/**
 * A Broker whose methods wait for the real one to open; `close` before any use opens nothing.
 * `waitOutOutages` is remembered and handed to the driver when it opens.
 */
function lazyBroker(open: (waiter?: LockWaiter) => Promise<Broker>): Broker {
  let opened: Promise<Broker> | undefined
  let closed = false
  let waiter: LockWaiter | undefined
  const get = () => (opened ??= open(waiter))
  return new Proxy({} as Broker, {
    get(_target, property) {
      if (property === 'then') return undefined
      if (property === 'waitOutOutages') {
        return (given: LockWaiter) => {
          waiter = given
          void opened?.then(
            (broker) => broker.waitOutOutages?.(given),
            () => {},
          )
        }
      }
      if (property === 'close') {
        return async () => {
          if (closed) return
          closed = true
          if (opened) await (await opened.catch(() => undefined))?.close()
        }
      }
      return async (...args: unknown[]) => {
        const broker = await get()
        const method = (broker as unknown as Record<PropertyKey, (...a: unknown[]) => unknown>)[property]
        if (typeof method !== 'function') throw new TypeError(`the broker has no ${String(property)}`)
        return method.apply(broker, args)
      }
    },
  })
}
