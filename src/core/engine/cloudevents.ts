import {randomUUID} from 'node:crypto'
import {hostname, userInfo} from 'node:os'

import {InvalidInputError} from '../errors.js'
import {checkJsonDepth, tooShortToNestTooDeep} from '../json-depth.js'
import {printable} from '../names.js'

/** A CloudEvents 1.0 event in structured (JSON) mode: context attributes and data in one object. */
export interface CloudEvent {
  specversion: '1.0'
  id: string
  source: string
  type: string
  time?: string
  subject?: string
  datacontenttype?: string
  dataschema?: string
  data?: unknown
  data_base64?: string
  [extension: string]: unknown
}

/** What {@link buildEvent} needs; everything but `type` has a default. */
export interface BuildEventInput {
  type: string
  /** A JSON value, or bytes (sent as `data_base64`). */
  data?: unknown
  source?: string
  subject?: string
  id?: string
  time?: Date
  extensions?: Record<string, string>
}

/** Names the spec defines; an extension may not reuse them (`data` is reserved by the spec too). */
const CORE_ATTRIBUTES = new Set([
  'specversion',
  'id',
  'source',
  'type',
  'time',
  'subject',
  'datacontenttype',
  'dataschema',
])

/** The spec's naming rule: lower-case ASCII letters and digits only. */
const ATTRIBUTE_NAME = /^[a-z0-9]+$/

/** The spec asks (SHOULD) for names of at most this many characters. */
export const RECOMMENDED_NAME_LENGTH = 20

const INT32_MIN = -2_147_483_648
const INT32_MAX = 2_147_483_647

const SPEC_HINT = 'see https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md'

/**
 * The default `source`: `mqctl://<user>@<hostname>`, so events say which account on which machine sent them.
 * Both parts are percent-encoded, since user names may hold characters a URI cannot.
 */
export function defaultEventSource(): string {
  return `mqctl://${encodeURIComponent(currentUser())}@${encodeURIComponent(hostname())}`
}

function currentUser(): string {
  try {
    return userInfo().username
  } catch {
    // userInfo() throws when the uid has no passwd entry, which is common in containers.
    return process.env.USER || process.env.USERNAME || `uid${process.getuid?.() ?? ''}`
  }
}

/**
 * Builds a valid CloudEvent. Fills `specversion` "1.0", a random UUID `id`, the current `time` (UTC, RFC 3339),
 * {@link defaultEventSource} as `source`, and `datacontenttype` "application/json" when there is data.
 * Bytes (`Uint8Array`, including `Buffer`) go into `data_base64` as "application/octet-stream", as the JSON format requires.
 * @throws InvalidInputError when the result is not a valid CloudEvent (empty type, bad extension name, …)
 */
export function buildEvent(input: BuildEventInput): CloudEvent {
  const time = input.time ?? new Date()
  if (Number.isNaN(time.getTime())) {
    throw new InvalidInputError('invalid CloudEvent: attribute "time" is not a valid date', {
      code: 'bad_event',
      hint: 'pass a valid date',
    })
  }
  const event: CloudEvent = {
    specversion: '1.0',
    id: input.id ?? randomUUID(),
    source: input.source ?? defaultEventSource(),
    type: input.type,
    time: time.toISOString(),
  }
  if (input.subject !== undefined) event.subject = input.subject
  for (const [name, value] of Object.entries(input.extensions ?? {})) {
    if (CORE_ATTRIBUTES.has(name) || name === 'data') {
      fail(`extension attribute "${name}" clashes with the core attribute of that name`, 'pick another extension name')
    }
    event[name] = value
  }
  if (input.data instanceof Uint8Array) {
    event.datacontenttype = 'application/octet-stream'
    event.data_base64 = Buffer.from(input.data.buffer, input.data.byteOffset, input.data.byteLength).toString('base64')
  } else if (input.data !== undefined) {
    event.datacontenttype = 'application/json'
    event.data = input.data
  }
  return validateEvent(event)
}

/**
 * Checks a structured-mode CloudEvent against the CloudEvents 1.0 spec and its JSON format:
 * required `id`, `source`, `specversion` ("1.0") and `type`; the types of the optional attributes;
 * extension names (lower-case letters and digits) and values (string, integer or boolean);
 * and that `data` and `data_base64` are not both present.
 * As the JSON format says, an optional or extension attribute set to `null` counts as absent; it is left out of the result.
 * @param textLength the length of the JSON text `value` was parsed from, when at hand: a short
 *   one cannot hold data nested too deep, and the data is not walked to see
 * @returns a copy of the event without `null` attributes
 * @throws InvalidInputError naming the attribute and the rule it breaks
 */
export function validateEvent(value: unknown, textLength?: number): CloudEvent {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(`expected a JSON object, got ${kindOf(value)}`, 'a structured-mode event is one JSON object')
  }
  const input = value as Record<string, unknown>
  const id = requiredString('id', input.id)
  const source = requiredString('source', input.source)
  const specversion = requiredString('specversion', input.specversion)
  const type = requiredString('type', input.type)
  if (specversion !== '1.0') {
    fail(`attribute "specversion" must be "1.0", got "${printable(specversion)}"`, 'mqctl reads CloudEvents 1.0 only')
  }
  checkUriReference('source', source)
  const event: Record<string, unknown> = {id, source, specversion, type}

  for (const name in input) {
    if (!Object.prototype.hasOwnProperty.call(input, name)) continue // optimised in for-in, unlike Object.hasOwn
    const attribute = input[name]
    if (attribute === null || attribute === undefined) continue
    switch (name) {
      case 'id':
      case 'source':
      case 'specversion':
      case 'type':
        break
      case 'time':
        // A valid time is printable ASCII: checking its characters first only matters to name what is wrong.
        event.time =
          typeof attribute === 'string' && isTimestamp(attribute)
            ? attribute
            : checkTimestamp(checkString(name, attribute))
        break
      case 'subject':
        event.subject = checkString(name, attribute)
        break
      case 'datacontenttype':
        event.datacontenttype = checkMediaType(checkString(name, attribute))
        break
      case 'dataschema':
        event.dataschema = checkAbsoluteUri(name, checkString(name, attribute))
        break
      case 'data':
        // The payload, not an attribute: any JSON value is allowed, up to the depth limit.
        if (textLength === undefined || !tooShortToNestTooDeep(textLength))
          checkJsonDepth(attribute, 'invalid CloudEvent: "data"', '$.data')
        event.data = attribute
        break
      case 'data_base64':
        event.data_base64 = checkBase64(attribute)
        break
      default:
        // Names Object.prototype has (`constructor`, `__proto__`…) are no attributes: left out.
        if (!(name in Object.prototype)) event[name] = checkExtension(name, attribute)
    }
  }
  // Unlike a null attribute, `data: null` is an explicit null payload (JSON format §3.1.1), so keep it.
  if (input.data === null) event.data = null
  if ('data' in event && 'data_base64' in event) {
    fail(
      '"data" and "data_base64" cannot both be present',
      'send JSON or text in "data", or bytes base64-encoded in "data_base64"',
    )
  }
  return event as CloudEvent
}

function requiredString(name: string, attribute: unknown): string {
  if (attribute === undefined || attribute === null) fail(`required attribute "${name}" is missing`, `add "${name}"`)
  return checkString(name, attribute)
}

/**
 * Advice that does not make an event invalid, one line each: extension names longer than the
 * recommended {@link RECOMMENDED_NAME_LENGTH} characters.
 */
export function eventWarnings(event: CloudEvent): string[] {
  return Object.keys(event)
    .filter((name) => !CORE_ATTRIBUTES.has(name) && name !== 'data' && name !== 'data_base64')
    .filter((name) => name.length > RECOMMENDED_NAME_LENGTH)
    .map(
      (name) =>
        `extension attribute "${name}" is ${name.length} characters long; CloudEvents recommends at most ${RECOMMENDED_NAME_LENGTH}`,
    )
}

function fail(message: string, hint: string = SPEC_HINT): never {
  throw new InvalidInputError(`invalid CloudEvent: ${message}`, {code: 'bad_event', hint})
}

function kindOf(value: unknown): string {
  if (value === null || value === undefined) return String(value)
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

/** The spec's String type: non-empty here (every string attribute it defines must be), and no control characters. */
function checkString(name: string, value: unknown): string {
  if (typeof value !== 'string')
    fail(`attribute "${name}" must be a string, got ${kindOf(value)}`, `give "${name}" as a JSON string`)
  if (value === '')
    fail(`attribute "${name}" must not be empty`, `give "${name}" a value, or leave it out if it is optional`)
  checkStringCharacters('attribute', name, value)
  return value
}

/**
 * The spec's String type forbids control characters (they break HTTP headers), Unicode noncharacters
 * and unpaired surrogates.
 */
function checkStringCharacters(kind: 'attribute' | 'extension attribute', name: string, value: string): void {
  const what = () => `${kind} "${name}"` // only when failing: no string built per attribute of every event
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i)
    if (code >= 0x20 && code < 0x7f) continue // printable ASCII, the common case
    if (code <= 0x1f || (code >= 0x7f && code <= 0x9f)) {
      fail(`${what()} contains control character U+${hex(code)}`, 'remove newlines, tabs and other control characters')
    }
    if (code >= 0xd800 && code <= 0xdbff) {
      const low = value.charCodeAt(i + 1)
      if (!(low >= 0xdc00 && low <= 0xdfff))
        fail(`${what()} contains an unpaired surrogate`, 'use well-formed Unicode text')
      const point = value.codePointAt(i) ?? 0
      if ((point & 0xfffe) === 0xfffe) fail(`${what()} contains noncharacter U+${hex(point)}`, 'remove it')
      i++
      continue
    }
    if (code >= 0xdc00 && code <= 0xdfff)
      fail(`${what()} contains an unpaired surrogate`, 'use well-formed Unicode text')
    if ((code >= 0xfdd0 && code <= 0xfdef) || code === 0xfffe || code === 0xffff) {
      fail(`${what()} contains noncharacter U+${hex(code)}`, 'remove it')
    }
  }
}

function hex(code: number): string {
  return code.toString(16).toUpperCase().padStart(4, '0')
}

/** RFC 3986 characters: unreserved, reserved, and `%` (checked for two hex digits separately). */
const URI_CHARACTERS = /^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]*$/
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/

/** A URI-reference (RFC 3986 §4.1): `https://…`, `urn:…`, or a relative one such as `/sensors/1` or `my-service`. */
function checkUriReference(name: string, value: string): void {
  checkUriCharacters(name, value, 'a URI-reference')
  // In a relative reference a colon before the first slash would read as a scheme, so RFC 3986 forbids it.
  if (value.includes(':') && !SCHEME.test(value)) {
    const firstSegment = value.split(/[/?#]/, 1)[0]
    if (firstSegment.includes(':')) {
      fail(
        `attribute "${name}" "${printable(value)}" is not a URI-reference: its scheme is malformed`,
        'a scheme starts with a letter, e.g. urn:… or https://…',
      )
    }
  }
}

/** An absolute URI: a scheme then the rest. Fragments are tolerated, as most SDKs and the spec's JSON schema do. */
function checkAbsoluteUri(name: string, value: string): string {
  checkUriCharacters(name, value, 'an absolute URI')
  if (!SCHEME.test(value)) {
    fail(
      `attribute "${name}" "${printable(value)}" must be an absolute URI with a scheme`,
      'e.g. https://example.com/schemas/order.json',
    )
  }
  return value
}

/** Characters of {@link URI_CHARACTERS} that need no further look: all but `%` and `#`. */
const PLAIN_URI_CHARACTERS = new Uint8Array(128)
for (let code = 0; code < 128; code++) {
  const c = String.fromCharCode(code)
  if (c !== '%' && c !== '#' && URI_CHARACTERS.test(c)) PLAIN_URI_CHARACTERS[code] = 1
}

function checkUriCharacters(name: string, value: string, kind: string): void {
  let plain = true
  for (let i = 0; i < value.length && plain; i++) {
    const code = value.charCodeAt(i)
    plain = code < 128 && PLAIN_URI_CHARACTERS[code] === 1
  }
  if (plain) return
  if (!URI_CHARACTERS.test(value) || (value.includes('%') && /%(?![0-9A-Fa-f]{2})/.test(value))) {
    fail(
      `attribute "${name}" "${printable(value)}" is not ${kind}`,
      'percent-encode spaces and other characters URIs cannot hold (%20)',
    )
  }
  const hash = value.indexOf('#')
  if (hash !== -1 && value.indexOf('#', hash + 1) !== -1) {
    fail(
      `attribute "${name}" "${printable(value)}" is not ${kind}: it has two "#"`,
      'percent-encode the second one as %23',
    )
  }
}

/** An RFC 2045 token: what type, subtype and parameter names and values are made of. */
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+"
/** `type/subtype` with optional `; name=value` parameters, values being tokens or quoted strings. */
const MEDIA_TYPE = new RegExp(`^${TOKEN}/${TOKEN}(\\s*;\\s*${TOKEN}=(${TOKEN}|"([^"\\\\]|\\\\.)*"))*\\s*$`)

function checkMediaType(value: string): string {
  if (!MEDIA_TYPE.test(value)) {
    fail(
      `attribute "datacontenttype" "${printable(value)}" is not a media type`,
      'e.g. application/json or text/plain; charset=utf-8',
    )
  }
  return value
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

/**
 * RFC 3339 date-time: `YYYY-MM-DD`, `T` (or `t`), `hh:mm:ss`, an optional fraction of one or more
 * digits, then `Z` (or `z`) or a numeric offset `+hh:mm` / `-hh:mm`; no other shapes. Read by hand
 * rather than with a regular expression: every event with a time goes through it.
 */
function checkTimestamp(value: string): string {
  if (!isTimestamp(value))
    fail(`attribute "time" "${printable(value)}" is not an RFC 3339 timestamp`, 'e.g. 2026-01-31T12:00:00Z')
  return value
}

function isTimestamp(value: string): boolean {
  if (value.length < 20 || value.charCodeAt(4) !== DASH || value.charCodeAt(7) !== DASH) return false
  if ((value.charCodeAt(10) | 0x20) !== LOWER_T || value.charCodeAt(13) !== COLON || value.charCodeAt(16) !== COLON)
    return false
  const year = digits(value, 0, 4)
  const month = digits(value, 5, 2)
  const day = digits(value, 8, 2)
  const hour = digits(value, 11, 2)
  const minute = digits(value, 14, 2)
  const second = digits(value, 17, 2)
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return false
  let i = 19
  if (value.charCodeAt(i) === DOT) {
    const start = ++i
    while (i < value.length && isDigit(value.charCodeAt(i))) i++
    if (i === start) return false
  }
  const zone = value.charCodeAt(i)
  if ((zone | 0x20) === LOWER_Z) {
    if (i + 1 !== value.length) return false
  } else if (zone === PLUS || zone === DASH) {
    if (i + 6 !== value.length || value.charCodeAt(i + 3) !== COLON) return false
    const hours = digits(value, i + 1, 2)
    const minutes = digits(value, i + 4, 2)
    if (hours < 0 || minutes < 0 || hours > 23 || minutes > 59) return false
  } else {
    return false
  }
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  const days = month === 2 ? (leap ? 29 : 28) : DAYS_IN_MONTH[month - 1]
  // Second 60 is a leap second, which RFC 3339 allows.
  return month >= 1 && month <= 12 && day >= 1 && day <= days && hour <= 23 && minute <= 59 && second <= 60
}

const DASH = 0x2d
const COLON = 0x3a
const DOT = 0x2e
const PLUS = 0x2b
const ZERO = 0x30
const NINE = 0x39
const LOWER_T = 0x74
const LOWER_Z = 0x7a

/** The number written by `count` ASCII digits from `start`, or -1 if any is not a digit. */
function digits(text: string, start: number, count: number): number {
  let value = 0
  for (let i = start; i < start + count; i++) {
    const code = text.charCodeAt(i)
    if (!isDigit(code)) return -1
    value = value * 10 + code - ZERO
  }
  return value
}

/** False for NaN (past the end) too. */
function isDigit(code: number): boolean {
  return code >= ZERO && code <= NINE
}

function checkBase64(value: unknown): string {
  if (typeof value !== 'string') {
    fail(`"data_base64" must be a base64 string, got ${kindOf(value)}`, 'encode the bytes as base64 (RFC 4648)')
  }
  if (value.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
    fail(
      '"data_base64" is not valid base64',
      'encode the bytes as base64 (RFC 4648), padded with = to a multiple of 4 characters',
    )
  }
  return value
}

function checkExtension(name: string, value: unknown): string | number | boolean {
  if (name === '')
    fail('an extension attribute has an empty name', 'name extensions with lower-case letters and digits')
  if (!ATTRIBUTE_NAME.test(name)) {
    fail(
      `extension attribute "${printable(name)}" must use only lower-case letters and digits`,
      `e.g. "${suggestName(name)}"`,
    )
  }
  if (typeof value === 'string') {
    checkStringCharacters('extension attribute', name, value)
    return value
  }
  if (typeof value === 'boolean') return value
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < INT32_MIN || value > INT32_MAX) {
      fail(`extension attribute "${name}" must be a 32-bit integer, got ${value}`, 'send other numbers as strings')
    }
    return value
  }
  return fail(
    `extension attribute "${name}" must be a string, integer or boolean, got ${kindOf(value)}`,
    'send structured values as a JSON string, or put them in "data"',
  )
}

function suggestName(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '') || 'myextension'
}
