import {InvalidInputError} from './errors.js'

/** Longest queue, topic or subscription name, in characters (DESIGN §2). */
export const MAX_NAME_LENGTH = 200

const SEGMENT = /^[A-Za-z0-9_-]+$/

/**
 * Checks a queue, topic or subscription name: `[A-Za-z0-9_-]` segments joined by `.`, 1–200 characters.
 * @returns the name, unchanged
 */
export function validateName(name: string, what = 'name'): string {
  if (name.length === 0) throw new InvalidInputError(`${what} is empty`, {hint: 'give a name such as orders or jobs.email'})
  if (name.length > MAX_NAME_LENGTH) {
    throw new InvalidInputError(`${what} is ${name.length} characters long`, {hint: `use at most ${MAX_NAME_LENGTH}`})
  }
  const segments = name.split('.')
  for (const [index, segment] of segments.entries()) {
    if (segment === '') {
      throw new InvalidInputError(`${what} "${printable(name)}" has an empty segment`, {
        hint: 'segments are joined by single dots and cannot start or end with one',
      })
    }
    if (!SEGMENT.test(segment)) {
      const bad = [...segment].find((c) => !/[A-Za-z0-9_-]/.test(c)) ?? '?'
      throw new InvalidInputError(
        `${what} "${printable(name)}" has an invalid character ${JSON.stringify(bad)} in segment ${index + 1}`,
        {hint: 'use letters, digits, _ and -, with . between segments'},
      )
    }
  }
  return name
}

/** Makes a user-supplied string safe to echo in a one-line error. */
export function printable(text: string, max = 80): string {
  const shown = JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text)
  return shown.slice(1, -1)
}
