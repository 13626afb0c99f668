import type {CloudEvent} from './cloudevents.js'

const PLACEHOLDER = /\{\{\s*([^}]*?)\s*\}\}/g

/**
 * Renders `{{data.order.id}}`, `{{type}}`, `{{items[0].sku}}` and `{{event}}` (the whole event as
 * JSON) from an event. Strings go in as they are, other values as JSON, missing ones as "".
 * The result is always one string: callers put it into one argv item, one header, one body, never
 * into a shell command line.
 */
export function renderTemplate(template: string, event: CloudEvent): string {
  return template.replace(PLACEHOLDER, (_match, path: string) => templateValue(event, path))
}

function templateValue(event: CloudEvent, path: string): string {
  const value = path === 'event' ? event : lookup(event, path)
  if (value === undefined || value === null) return value === null ? 'null' : ''
  return typeof value === 'string' ? value : JSON.stringify(value)
}

/** `scheme://authority`: the part of a URL that chooses where a request goes. */
const ORIGIN = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#\\]*/

/**
 * Why a URL template cannot be used, or undefined. Event data may fill in the path, query and
 * fragment, but never the scheme, host or port: a value such as `1:9999/x?` would otherwise send
 * the request (and the event) somewhere the rule never named.
 */
export function urlTemplateProblem(template: string): string | undefined {
  const origin = ORIGIN.exec(template)?.[0]
  if (origin === undefined || !/^https?:\/\//i.test(origin)) return 'must be an http:// or https:// URL'
  if (origin.includes('{{'))
    return 'templates are not allowed in the scheme, host or port (event data must not choose where the request goes); put them in the path or query'
  let host: string
  try {
    host = new URL(origin).hostname
  } catch {
    return `"${origin}" is not a valid http(s) address`
  }
  if (host === '') return 'must name a host'
  return undefined
}

/** A template value that would make a URL leave the rule's path (see renderUrl). */
export class UrlTemplateError extends Error {}

/**
 * Renders a URL template (checked by urlTemplateProblem): each value is percent-encoded as one
 * path segment, query or fragment component (encodeURIComponent), so `/`, `?`, `#`, `&`, `=`, `@`
 * or `:` in event data stay data. A value that would make a whole path segment `.` or `..` is
 * refused, since URL parsers resolve those (also encoded) and would walk out of the rule's path.
 */
export function renderUrl(template: string, event: CloudEvent): string {
  const origin = ORIGIN.exec(template)?.[0]
  if (origin === undefined || origin.includes('{{'))
    throw new UrlTemplateError(`templates are not allowed in the scheme, host or port of ${template}`)
  const rest = template.slice(origin.length)
  let url = origin
  let position: 'path' | 'query' | 'fragment' = 'path'
  let segment = ''
  let segmentHasValue = false
  const endSegment = () => {
    if (segmentHasValue && /^(?:\.|%2e){1,2}$/i.test(segment))
      throw new UrlTemplateError(
        `a template value makes the path segment "${segment}", which would leave the URL's path`,
      )
    segment = ''
    segmentHasValue = false
  }
  const literal = (text: string) => {
    url += text
    for (const char of text) {
      if (position === 'path') {
        if (char === '/' || char === '\\' || char === '?' || char === '#') endSegment()
        else segment += char
        if (char === '?') position = 'query'
        else if (char === '#') position = 'fragment'
      } else if (position === 'query' && char === '#') position = 'fragment'
    }
  }
  let last = 0
  for (const match of rest.matchAll(PLACEHOLDER)) {
    literal(rest.slice(last, match.index))
    let encoded: string
    try {
      encoded = encodeURIComponent(templateValue(event, match[1]))
    } catch {
      throw new UrlTemplateError(`the value of {{${match[1]}}} is not valid Unicode text`)
    }
    url += encoded
    if (position === 'path') {
      segment += encoded
      segmentHasValue = true
    }
    last = match.index + match[0].length
  }
  literal(rest.slice(last))
  if (position === 'path') endSegment()
  return url
}

export function renderAll(templates: Record<string, string> | undefined, event: CloudEvent): Record<string, string> {
  return Object.fromEntries(Object.entries(templates ?? {}).map(([key, value]) => [key, renderTemplate(value, event)]))
}

/** Follows `a.b[2].c` into a value. */
function lookup(root: unknown, path: string): unknown {
  let value = root
  for (const part of path.split(/\.|\[(\d+)\]/).filter((p) => p !== undefined && p !== '')) {
    if (value === null || typeof value !== 'object') return undefined
    value = (value as Record<string, unknown>)[part]
  }
  return value
}

/** The event's attributes as MQ_EVENT_* variables: MQ_EVENT_ID, MQ_EVENT_TYPE, …, MQ_EVENT_DATA (JSON). */
export function eventEnvironment(event: CloudEvent): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(event)) {
    if (value === undefined || key === 'data_base64') continue
    const name = `MQ_EVENT_${key.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`
    env[name] = typeof value === 'string' ? value : JSON.stringify(value)
  }
  return env
}
