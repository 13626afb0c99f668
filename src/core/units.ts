import {InvalidInputError} from './errors.js'

const UNIT_MS: Record<string, number> = {ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000}

/** One part of a duration: a number and its unit. */
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y

/**
 * A duration as text: a bare number of seconds, or parts with units from largest to smallest,
 * written together (`250ms`, `5s`, `1h30m`, `2d12h`, `1m30.5s`), as Go's time.ParseDuration reads them.
 */
export function isDuration(text: string): boolean {
  return durationMs(text) !== undefined
}

function durationMs(text: string): number | undefined {
  const trimmed = text.trim()
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) return Number(trimmed) * UNIT_MS.s
  let total = 0
  let index = 0
  let lastUnit = Infinity
  DURATION_PART.lastIndex = 0
  while (index < trimmed.length) {
    DURATION_PART.lastIndex = index
    const match = DURATION_PART.exec(trimmed)
    if (!match) return undefined
    const unit = UNIT_MS[match[2]]
    // each unit once, largest first: `30m1h` and `1h1h` are typos, not durations
    if (unit >= lastUnit) return undefined
    lastUnit = unit
    total += Number(match[1]) * unit
    index = DURATION_PART.lastIndex
  }
  return index === 0 ? undefined : total
}

/**
 * Parses `250ms`, `5s`, `2m`, `1h`, `1d`, `1.5s`, compound `1h30m` / `2d12h`, or a bare number of
 * seconds into milliseconds.
 * @param flag named in the error message, e.g. `--wait`
 */
export function parseDuration(text: string, flag = 'duration'): number {
  const parsed = durationMs(text)
  if (parsed === undefined) {
    throw new InvalidInputError(`invalid ${flag} "${text}"`, {
      hint: 'use a number with a unit: 250ms, 5s, 2m, 1h30m, 2d12h',
    })
  }
  const ms = parsed
  if (!Number.isFinite(ms) || ms > 10 * 365 * UNIT_MS.d) {
    throw new InvalidInputError(`${flag} "${text}" is too long`, {hint: 'use at most 3650d'})
  }
  return Math.round(ms)
}

/** Parses a duration ago (`5m`) or an absolute ISO-8601 time into epoch milliseconds. */
export function parseTimeOrAgo(text: string, flag: string, now = Date.now()): number {
  if (isDuration(text)) return now - parseDuration(text, flag)
  return parseTime(text, flag)
}

/**
 * Parses a message priority given as text (a query parameter, a header): one digit 0–9, nothing
 * else — not an empty string, which `Number` would read as 0.
 */
export function parsePriority(text: string, what = 'priority'): number {
  if (!/^[0-9]$/.test(text))
    throw new InvalidInputError(`${what} must be a whole number from 0 to 9, got "${text}"`, {
      hint: 'e.g. 0 (the default) or 9 (first)',
    })
  return Number(text)
}

/** Parses an absolute ISO-8601 time (or a duration from now) into epoch milliseconds. */
export function parseTimeOrDelay(text: string, flag: string, now = Date.now()): number {
  if (isDuration(text)) return now + parseDuration(text, flag)
  return parseTime(text, flag)
}

function parseTime(text: string, flag: string): number {
  const ms = Date.parse(text)
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(ms)) {
    throw new InvalidInputError(`invalid ${flag} "${text}"`, {
      hint: 'use a duration (5m) or an ISO-8601 time (2026-01-31T12:00:00Z)',
    })
  }
  return ms
}

/** Formats milliseconds for people: `850ms`, `12s`, `3m20s`, `2h5m`, `3d4h`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return s % 60 ? `${m}m${s % 60}s` : `${m}m`
  const h = Math.floor(m / 60)
  if (h < 24) return m % 60 ? `${h}h${m % 60}m` : `${h}h`
  const d = Math.floor(h / 24)
  return h % 24 ? `${d}d${h % 24}h` : `${d}d`
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
}

/** Parses `512`, `64KiB`, `1MiB`, `10MB`, `1g` into bytes (k/m/g alone are binary). */
export function parseSize(text: string, flag = 'size'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text)
  const unit = match?.[2].toLowerCase() ?? ''
  if (!match || !(unit in SIZE_UNITS)) {
    throw new InvalidInputError(`invalid ${flag} "${text}"`, {hint: 'use bytes or a unit: 64KiB, 1MiB, 10MB'})
  }
  return Math.round(Number(match[1]) * SIZE_UNITS[unit])
}

/** Formats bytes for people: `512 B`, `1.5 KiB`, `3.2 MiB`. */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`
}
