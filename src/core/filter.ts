import {InvalidInputError} from './errors.js'
import {printable} from './names.js'

/** The parts of a message a filter looks at. */
export interface Filterable {
  body: string
  headers: Record<string, string>
}

/**
 * Parses `--filter` expressions, all of which must match (AND):
 * `body~TEXT` (body contains), `body=TEXT` (body equals), `NAME=VALUE` (header equals),
 * `NAME~TEXT` (header contains), `NAME` (header present).
 */
export function parseFilters(expressions: string[]): (message: Filterable) => boolean {
  const tests = expressions.map(parseFilter)
  return (message) => tests.every((test) => test(message))
}

function parseFilter(expression: string): (message: Filterable) => boolean {
  const match = /^([A-Za-z0-9_.-]+)(?:([=~])([\s\S]*))?$/.exec(expression)
  if (!match) {
    throw new InvalidInputError(`invalid filter "${printable(expression, 60)}"`, {
      code: 'bad_filter',
      hint: 'use body~TEXT, body=TEXT, HEADER=VALUE, HEADER~TEXT or HEADER',
    })
  }
  const [, field, operator, operand = ''] = match
  const value = (message: Filterable): string | undefined => (field === 'body' ? message.body : message.headers[field])
  if (operator === undefined) return (message) => value(message) !== undefined
  if (operator === '=') return (message) => value(message) === operand
  return (message) => value(message)?.includes(operand) ?? false
}
