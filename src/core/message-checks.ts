import type {OutgoingMessage} from './broker.js'
import {InvalidInputError} from './errors.js'
import {printable} from './names.js'

/** Checks shared by every broker driver, so a batch is refused the same way on each. */

export function checkBodySizes(name: string, limit: number, messages: OutgoingMessage[]): void {
  messages.forEach((message, index) => {
    const size = Buffer.byteLength(message.body)
    if (size > limit) {
      throw atMessage(
        new InvalidInputError(`body is ${size} bytes, over the ${limit}-byte limit of ${name}`, {
          code: 'too_large',
          hint: `raise the limit with --max-body-size on \`mq queue update\` or \`mq topic create\`, or send a smaller body`,
        }),
        index,
        messages.length,
      )
    }
  })
}

/** Checks what does not depend on the destination: priorities and header names. */
export function validateMessages(messages: OutgoingMessage[]): void {
  messages.forEach((message, index) => {
    if (message.dedupId !== undefined && !(message.dedupId.length >= 1 && message.dedupId.length <= 256)) {
      throw atMessage(new InvalidInputError('a dedup id must be 1 to 256 characters'), index, messages.length)
    }
    if (message.ttlMs !== undefined && !(message.ttlMs >= 1)) {
      throw atMessage(new InvalidInputError('a TTL must be positive', {hint: 'e.g. --ttl 10m'}), index, messages.length)
    }
    if (message.priority !== undefined && !(Number.isInteger(message.priority) && message.priority >= 0 && message.priority <= 9)) {
      throw atMessage(new InvalidInputError(`priority ${message.priority} is out of range`, {hint: 'use 0 to 9'}), index, messages.length)
    }
    for (const [key, value] of Object.entries(message.headers ?? {})) {
      if (typeof value !== 'string' || value.includes('\0')) {
        throw atMessage(new InvalidInputError(`header "${printable(key, 40)}" must be a string without NUL characters`), index, messages.length)
      }
      if (!/^[A-Za-z0-9_.-]{1,128}$/.test(key)) {
        throw atMessage(
          new InvalidInputError(`header name "${printable(key, 40)}" is invalid`, {hint: 'use letters, digits, _, . and -, up to 128 characters'}),
          index,
          messages.length,
        )
      }
    }
  })
}

export function atMessage<E extends InvalidInputError>(error: E, index: number, count: number): E {
  error.index = index
  if (count > 1) error.where = `message ${index + 1}`
  return error
}

/** The settings a re-declaration gives that differ from the existing ones (declare is idempotent only when none do). */
export function differingSettings<S extends object>(given: Partial<S>, wanted: S, existing: S): string[] {
  return (Object.keys(given) as (keyof S)[]).filter((key) => given[key] !== undefined && wanted[key] !== existing[key]).map(String)
}
