import type {OutgoingMessage} from '../broker.js'
import {InvalidInputError} from '../errors.js'
import {messageSize, validateHeaders} from '../headers.js'

// Message validation for publishes, kept apart from the broker's front door: what does not
// depend on the destination is checked before any transaction, the size limit inside it.

/**
 * The per-message limit counts what is stored: the body and the headers (README: Limits).
 * Returns each message's size, for the queue's limits and the rows.
 */
export function checkBodySizes(name: string, limit: number, messages: OutgoingMessage[]): number[] {
  const sizes = new Array<number>(messages.length)
  for (let index = 0; index < messages.length; index++) {
    const message = messages[index]
    const size = messageSize(message)
    sizes[index] = size
    if (size > limit) {
      const body = Buffer.byteLength(message.body)
      const what =
        size === body ? `body is ${size} bytes` : `message is ${size} bytes (body ${body}, headers ${size - body})`
      throw atMessage(
        new InvalidInputError(`${what}, over the ${limit}-byte limit of ${name}`, {
          code: 'too_large',
          hint: `raise the limit with --max-body-size on \`mq queue update\` or \`mq topic create\`, or send a smaller body`,
        }),
        index,
        messages.length,
      )
    }
  }
  return sizes
}

/** Checks what does not depend on the destination: dedup ids, TTLs, priorities and headers. */
export function validateMessages(messages: OutgoingMessage[]): void {
  for (let index = 0; index < messages.length; index++) {
    const message = messages[index]
    if (message.dedupId !== undefined && !(message.dedupId.length >= 1 && message.dedupId.length <= 256)) {
      throw atMessage(new InvalidInputError('a dedup id must be 1 to 256 characters'), index, messages.length)
    }
    if (message.ttlMs !== undefined && !(message.ttlMs >= 1)) {
      throw atMessage(new InvalidInputError('a TTL must be positive', {hint: 'e.g. --ttl 10m'}), index, messages.length)
    }
    if (
      message.priority !== undefined &&
      !(Number.isInteger(message.priority) && message.priority >= 0 && message.priority <= 9)
    ) {
      throw atMessage(
        new InvalidInputError(`priority ${message.priority} is out of range`, {hint: 'use 0 to 9'}),
        index,
        messages.length,
      )
    }
    try {
      validateHeaders(message.headers)
    } catch (error) {
      throw error instanceof InvalidInputError ? atMessage(error, index, messages.length) : error
    }
  }
}

export function atMessage<E extends InvalidInputError>(error: E, index: number, count: number): E {
  error.index = index
  if (count > 1) error.where = `message ${index + 1}`
  return error
}

/** The settings a re-declaration gives that differ from the existing ones (declare is idempotent only when none do). */
export function differingSettings<S extends object>(given: Partial<S>, wanted: S, existing: S): string[] {
  return (Object.keys(given) as (keyof S)[])
    .filter((key) => given[key] !== undefined && wanted[key] !== existing[key])
    .map(String)
}
