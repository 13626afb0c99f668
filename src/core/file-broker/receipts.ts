import {lazyCrypto} from '../lazy-require.js'
import {InvalidInputError} from '../errors.js'
import {printable} from '../names.js'
import {idText} from './message-ids.js'

/**
 * A receipt names one delivery: the row id (a queue message, or a subscription's pointer row) and
 * the lease token of that delivery. It is opaque to users; only this module reads it.
 */
export interface Receipt {
  messageId: number
  token: string
}

const RECEIPT = /^(\d{1,16})\.([A-Za-z0-9_-]{8})$/

export function newLeaseToken(): string {
  return lazyCrypto().randomBytes(6).toString('base64url')
}

export function formatReceipt(messageId: number, token: string): string {
  return `${idText(messageId)}.${token}`
}

/** Parses every receipt first, so a garbled one fails the whole call before anything changes. */
export function parseReceipts(receipts: string[]): Receipt[] {
  return receipts.map((text) => {
    const match = RECEIPT.exec(text.trim())
    if (!match) {
      throw new InvalidInputError(`"${printable(text, 40)}" is not a receipt`, {
        code: 'bad_receipt',
        hint: 'pass the receipt printed by `mq consume --ack manual` (the "receipt" field of --json output)',
      })
    }
    return {messageId: Number(match[1]), token: match[2]}
  })
}
