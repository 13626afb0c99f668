import {InvalidInputError} from './errors.js'

/** Longest queue, topic or subscription name, in characters (README.md, "Concepts"). */
export const MAX_NAME_LENGTH = 200

const SEGMENT = /^[A-Za-z0-9_-]+$/
/** A whole valid name at once (most are): SEGMENTs joined by single dots. */
const NAME = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/

/**
 * Checks a queue, topic or subscription name: `[A-Za-z0-9_-]` segments joined by `.`, 1–200 characters.
 * @returns the name, unchanged
 */
export function validateName(name: string, what = 'name'): string {
  if (name.length === 0)
    throw new InvalidInputError(`${what} is empty`, {hint: 'give a name such as orders or jobs.email'})
  if (name.length > MAX_NAME_LENGTH) {
    throw new InvalidInputError(`${what} is ${name.length} characters long`, {hint: `use at most ${MAX_NAME_LENGTH}`})
  }
  if (NAME.test(name)) return name
  // Not a valid name: find the segment to blame.
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

/** A compiled subscription pattern: `*` is exactly one segment, `#` zero or more (AMQP topic rules). */
export interface TopicPattern {
  readonly source: string
  /** True when the pattern has no wildcard: it names one topic. */
  readonly literal: boolean
  matches(topic: string): boolean
}

/**
 * Compiles a subscription pattern such as `orders.*`, `logs.#` or `#.error`. Errors name the
 * 1-based character position of the problem.
 */
export function compileTopicPattern(pattern: string): TopicPattern {
  const fail = (position: number, why: string): never => {
    throw new InvalidInputError(`invalid pattern "${printable(pattern)}" at position ${position}: ${why}`, {
      code: 'bad_pattern',
      hint: 'use name segments joined by dots, with * for one segment and # for any number, e.g. orders.* or logs.#',
    })
  }
  if (pattern.length === 0) fail(1, 'the pattern is empty')
  if (pattern.length > MAX_NAME_LENGTH) fail(MAX_NAME_LENGTH + 1, `longer than ${MAX_NAME_LENGTH} characters`)
  const segments = pattern.split('.')
  let position = 1
  for (const segment of segments) {
    if (segment === '') fail(position, 'empty segment (two dots in a row, or a dot at an end)')
    if (segment !== '*' && segment !== '#') {
      for (let i = 0; i < segment.length; i++) {
        const c = segment[i]
        if (c === '*' || c === '#') fail(position + i, `"${c}" must be a whole segment on its own`)
        if (!/[A-Za-z0-9_-]/.test(c)) fail(position + i, `invalid character ${JSON.stringify(c)}`)
      }
    }
    position += segment.length + 1
  }
  const literal = !segments.some((s) => s === '*' || s === '#')
  // Consecutive #s mean the same as one; collapsing them keeps the matcher linear in practice.
  const compact = segments.filter((segment, index) => !(segment === '#' && segments[index - 1] === '#'))
  return {
    source: pattern,
    literal,
    matches: literal ? (topic) => topic === pattern : (topic) => matchSegments(compact, topic.split('.')),
  }
}

/**
 * Segment matching by dynamic programming over (pattern position, topic position): O(p × t),
 * never exponential, whatever the mix of `#` and `*` (a durable pattern is matched inside the
 * publish transaction, so its cost must stay bounded).
 */
function matchSegments(pattern: string[], topic: string[]): boolean {
  // reachable[t] = the pattern prefix seen so far can consume exactly topic[0..t)
  let reachable = new Array<boolean>(topic.length + 1).fill(false)
  reachable[0] = true
  for (const segment of pattern) {
    const next = new Array<boolean>(topic.length + 1).fill(false)
    if (segment === '#') {
      let any = false
      for (let t = 0; t <= topic.length; t++) {
        any ||= reachable[t]
        next[t] = any
      }
    } else {
      for (let t = 0; t < topic.length; t++)
        if (reachable[t] && (segment === '*' || segment === topic[t])) next[t + 1] = true
    }
    reachable = next
  }
  return reachable[topic.length]
}
