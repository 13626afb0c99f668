/**
 * Deepest nesting of arrays and objects accepted in JSON values mqctl stores and walks (event
 * data, for now). Far beyond real documents, and far below where recursive code (JSON.stringify,
 * pattern matching) runs out of stack, which is some thousands of levels.
 */
export const MAX_JSON_DEPTH = 256

/** How deep `value` nests, counting without recursion and stopping once past `limit`. */
export function jsonDepth(value: unknown, limit = MAX_JSON_DEPTH): number {
  let deepest = 0
  const stack: [unknown, number][] = [[value, 0]]
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!
    if (typeof item !== 'object' || item === null) continue
    const inner = depth + 1
    if (inner > deepest) deepest = inner
    if (deepest > limit) return deepest
    for (const child of Array.isArray(item) ? item : Object.values(item)) stack.push([child, inner])
  }
  return deepest
}
