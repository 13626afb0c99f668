// Small helpers shared by the source kinds.

/** The largest length ≤ `at` that does not split a UTF-8 character of `bytes`. */
export function utf8Boundary(bytes: Buffer, at: number): number {
  if (at >= bytes.length) return bytes.length
  // Continuation bytes are 10xxxxxx; a cut must land before the lead byte of their character,
  // at most 3 bytes back (longer runs are not UTF-8 anyway).
  let index = at
  while (index > 0 && at - index < 3 && (bytes[index] & 0xc0) === 0x80) index--
  return (bytes[index] & 0xc0) === 0x80 ? at : index
}

/** `text` cut to at most `maxBytes` of UTF-8, on a character boundary. */
export function cutUtf8(text: string, maxBytes: number): string {
  if (text.length <= maxBytes / 3) return text
  const bytes = Buffer.from(text, 'utf8')
  return bytes.length <= maxBytes ? text : bytes.subarray(0, utf8Boundary(bytes, maxBytes)).toString('utf8')
}

export function oneLine(text: string): string {
  return text.trim().split(/\r?\n/).slice(-3).join(' | ')
}

export function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code
  return code === 'ENOENT' || code === 'ENOTDIR'
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
