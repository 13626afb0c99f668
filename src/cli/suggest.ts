/** Edit distance between two strings (insertions, deletions and substitutions cost 1 each). */
export function levenshtein(a: string, b: string): number {
  const row = Array.from({length: b.length + 1}, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1))
      previous = current
    }
  }
  return row[b.length]
}

/** Whether `candidate` is close enough to `typed` to be worth suggesting (a typo, not another word). */
export function isClose(typed: string, candidate: string): boolean {
  return levenshtein(typed, candidate) <= Math.max(2, Math.floor(typed.length / 3))
}

/**
 * The candidates close to what was typed, nearest first (at most `max`): for "did you mean …?"
 * hints on unknown commands, flags and names.
 */
export function closest(typed: string, candidates: Iterable<string>, max = 3): string[] {
  return [...new Set(candidates)]
    .map((candidate) => ({candidate, distance: levenshtein(typed, candidate)}))
    .filter(({candidate}) => isClose(typed, candidate))
    .sort((a, b) => a.distance - b.distance || a.candidate.localeCompare(b.candidate))
    .slice(0, max)
    .map(({candidate}) => candidate)
}
