import {InvalidInputError} from './errors.js'

/**
 * Deepest nesting of objects and arrays accepted in event patterns, event data and rules
 * documents (README: Limits). The engine compiles, matches and serialises these values
 * recursively, so an unbounded depth would overflow the stack; 256 levels is far beyond any
 * real event and well within what every step handles.
 */
export const MAX_JSON_DEPTH = 256

interface Frame {
  value: object
  depth: number
  parent?: Frame
  key?: string | number
}

/**
 * Finds the first object or array nested deeper than `maxDepth` (the top-level value is depth 1).
 * Walks iteratively, so the check itself cannot overflow the stack on hostile input.
 * @returns the JSON path of that value (shortened to stay on one line), or undefined when within the limit
 */
export function findTooDeep(value: unknown, maxDepth = MAX_JSON_DEPTH, root = '$'): string | undefined {
  if (typeof value !== 'object' || value === null || !deeperThan(value, maxDepth)) return undefined
  const stack: Frame[] = [{value, depth: 1}]
  while (stack.length > 0) {
    const frame = stack.pop()!
    if (frame.depth > maxDepth) return shorten(pathOf(frame, root))
    const entries: [string | number, unknown][] = Array.isArray(frame.value)
      ? frame.value.map((v, i) => [i, v])
      : Object.entries(frame.value)
    for (const [key, child] of entries) {
      if (typeof child === 'object' && child !== null)
        stack.push({value: child, depth: frame.depth + 1, parent: frame, key})
    }
  }
  return undefined
}

/**
 * Whether a JSON text of `length` UTF-16 code units is too short to nest anything deeper than
 * {@link MAX_JSON_DEPTH}: that takes more than that many opening brackets, each closed. A caller
 * holding the text it parsed skips the walk (an event on one line is mostly far shorter).
 */
export function tooShortToNestTooDeep(length: number): boolean {
  return length < 2 * (MAX_JSON_DEPTH + 1)
}

/**
 * Refuses a value nested deeper than {@link MAX_JSON_DEPTH}: the one depth check shared by every
 * way in (CLI flags, stdin, the daemon's HTTP and socket, the rules document).
 * @param what names the value in the error, e.g. `event data`
 * @param root the JSON path of the value itself, e.g. `$.data`
 */
export function checkJsonDepth(value: unknown, what: string, root = '$'): void {
  const path = findTooDeep(value, MAX_JSON_DEPTH, root)
  if (path !== undefined) {
    throw new InvalidInputError(`${what} is nested deeper than ${MAX_JSON_DEPTH} levels (at ${path})`, {
      code: 'too_deep',
      hint: `flatten it: at most ${MAX_JSON_DEPTH} levels of objects and arrays`,
    })
  }
}

/**
 * Whether `value` nests deeper than `levels` (the fast check of every event: no allocation). It
 * recurses at most `levels` + 1 deep, whatever the input, so it cannot overflow the stack either.
 */
function deeperThan(value: object, levels: number): boolean {
  if (levels < 1) return true
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const child: unknown = value[i]
      if (typeof child === 'object' && child !== null && deeperThan(child, levels - 1)) return true
    }
    return false
  }
  for (const key in value) {
    const child: unknown = (value as Record<string, unknown>)[key]
    // Own fields only; asked only of objects, the fields that can nest.
    if (
      typeof child === 'object' &&
      child !== null &&
      Object.prototype.hasOwnProperty.call(value, key) &&
      deeperThan(child, levels - 1)
    )
      return true
  }
  return false
}

function pathOf(frame: Frame, root: string): string {
  const parts: string[] = []
  for (let f: Frame | undefined = frame; f?.parent; f = f.parent) {
    const key = f.key!
    parts.push(
      typeof key === 'number' ? `[${key}]` : /^[A-Za-z_$][\w$-]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`,
    )
  }
  return root + parts.reverse().join('')
}

/** Keeps a path on one line: its start and its end, with the middle elided. */
function shorten(path: string, max = 120): string {
  return path.length <= max ? path : `${path.slice(0, 60)}…${path.slice(-50)}`
}
