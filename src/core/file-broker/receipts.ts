import {randomBytes} from 'node:crypto'

import {InvalidInputError} from '../errors.js'
import {printable} from '../names.js'

/**
 * A receipt names one delivery: the message id, the lease token of that delivery and, for a
 * durable subscription, the subscription. It is opaque to users; only this module reads it.
 */
export interface Receipt {
  messageId: number
  token: string
  subscriptionId?: number
}

const RECEIPT = /^(\d{1,16})\.([A-Za-z0-9_-]{8})(?:\.s(\d{1,16}))?$/

export function newLeaseToken(): string {
  return randomBytes(6).toString('base64url')
}

export function formatReceipt(messageId: number, token: string, subscriptionId?: number): string {
  return subscriptionId === undefined ? `${messageId}.${token}` : `${messageId}.${token}.s${subscriptionId}`
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
    return {messageId: Number(match[1]), token: match[2], subscriptionId: match[3] === undefined ? undefined : Number(match[3])}
  })
}
