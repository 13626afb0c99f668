import type {CloudEvent} from './cloudevents.js'

const PLACEHOLDER = /\{\{\s*([^}]*?)\s*\}\}/g

/**
 * Renders `{{data.order.id}}`, `{{type}}`, `{{items[0].sku}}` and `{{event}}` (the whole event as
 * JSON) from an event. Strings go in as they are, other values as JSON, missing ones as "".
 * The result is always one string: callers put it into one argv item, one header, one body, never
 * into a shell command line.
 */
export function renderTemplate(template: string, event: CloudEvent): string {
  return template.replace(PLACEHOLDER, (_match, path: string) => {
    const value = path === 'event' ? event : lookup(event, path)
    if (value === undefined || value === null) return value === null ? 'null' : ''
    return typeof value === 'string' ? value : JSON.stringify(value)
  })
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
