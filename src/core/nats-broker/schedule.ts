import type {MsgHdrs} from '@nats-io/transport-node'

import type {OutgoingMessage} from '../broker.js'

/**
 * Delayed delivery and per-message TTL on servers without them (nats-server < 2.12 / < 2.11; README
 * "Running on a NATS cluster"). A message carries its times in headers the driver hides from users:
 * a receive that meets a message before its not-before time gives it back with a delayed NAK for
 * the time left (that delivery is not an attempt), and one that meets it after its expiry drops it
 * or dead-letters it, as the queue says.
 */
export const NOT_BEFORE_HEADER = 'Mq-Internal-Not-Before'
export const EXPIRES_AT_HEADER = 'Mq-Internal-Expires-At'

export interface Schedule {
  /** Not deliverable before this epoch-ms time. */
  notBefore?: number
  /** Dropped (or dead-lettered) when met at or after this epoch-ms time. */
  expiresAt?: number
}

/** The times a publish gives a message (wall clock: they are read by other processes). */
export function scheduleOf(message: OutgoingMessage, defaultTtlMs: number | null, now: number): Schedule {
  const schedule: Schedule = {}
  if (message.deliverAt !== undefined && message.deliverAt > now) schedule.notBefore = Math.round(message.deliverAt)
  const ttl = message.ttlMs ?? defaultTtlMs
  if (ttl !== null && ttl !== undefined) schedule.expiresAt = now + ttl
  return schedule
}

export function hasSchedule(schedule: Schedule): boolean {
  return schedule.notBefore !== undefined || schedule.expiresAt !== undefined
}

export function writeSchedule(headers: MsgHdrs, schedule: Schedule): void {
  if (schedule.notBefore !== undefined) headers.set(NOT_BEFORE_HEADER, String(schedule.notBefore))
  if (schedule.expiresAt !== undefined) headers.set(EXPIRES_AT_HEADER, String(schedule.expiresAt))
}

export function readSchedule(headers: MsgHdrs | undefined): Schedule {
  const schedule: Schedule = {}
  if (!headers) return schedule
  const notBefore = Number(headers.get(NOT_BEFORE_HEADER))
  const expiresAt = Number(headers.get(EXPIRES_AT_HEADER))
  if (notBefore > 0) schedule.notBefore = notBefore
  if (expiresAt > 0) schedule.expiresAt = expiresAt
  return schedule
}

/** What a receive does with a message it pulled, by its schedule. */
export function verdict(schedule: Schedule, now: number): 'deliver' | 'early' | 'expired' {
  if (schedule.expiresAt !== undefined && schedule.expiresAt <= now) return 'expired'
  if (schedule.notBefore !== undefined && schedule.notBefore > now) return 'early'
  return 'deliver'
}
