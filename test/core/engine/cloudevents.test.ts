import {expect} from 'chai'
import {hostname, userInfo} from 'node:os'

import {
  buildEvent,
  type CloudEvent,
  defaultEventSource,
  eventWarnings,
  validateEvent,
} from '../../../src/core/engine/cloudevents.js'
import {thrown} from '../../helpers.js'

/** Validation must fail with exactly this message (after the "invalid CloudEvent: " prefix) and a hint. */
function rejects(value: unknown, reason: string | RegExp): void {
  const error = thrown(() => validateEvent(value))
  const message = error.message.replace(/^invalid CloudEvent: /, '')
  expect(error.message).to.match(/^invalid CloudEvent: /)
  if (typeof reason === 'string') expect(message).to.equal(reason)
  else expect(message).to.match(reason)
  expect(error.exitCode).to.equal(2)
  expect(error.hint).to.be.a('string').and.not.equal('')
  expect(error.message).not.to.include('\n')
}

const minimal = {specversion: '1.0', id: 'A234-1234-1234', source: '/mycontext', type: 'com.example.someevent'}

describe('validateEvent', () => {
  describe('accepts', () => {
    const valid: Array<[string, Record<string, unknown>]> = [
      ['the required attributes alone', minimal],
      [
        'the spec example',
        {
          specversion: '1.0',
          type: 'com.github.pull_request.opened',
          source: 'https://github.com/cloudevents/spec/pull',
          subject: '123',
          id: 'A234-1234-1234',
          time: '2018-04-05T17:31:00Z',
          comexampleextension1: 'value',
          comexampleothervalue: 5,
          datacontenttype: 'text/xml',
          data: '<much wow="xml"/>',
        },
      ],
      ['binary data', {...minimal, datacontenttype: 'application/vnd.apache.thrift.binary', data_base64: 'AAECAw=='}],
      ['JSON data', {...minimal, datacontenttype: 'application/json', data: {a: 1, b: [true, null]}}],
      ['data without a content type', {...minimal, data: "I'm just a string"}],
      ['a content type with parameters', {...minimal, datacontenttype: 'text/plain; charset=utf-8'}],
      ['a dataschema URI', {...minimal, dataschema: 'https://example.com/schemas/order.json#v2'}],
      ['a URN source', {...minimal, source: 'urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66'}],
      ['a mailto source', {...minimal, source: 'mailto:cncf-wg-serverless@lists.cncf.io'}],
      ['an application-specific source', {...minimal, source: '1-555-123-4567'}],
      ['a percent-encoded source', {...minimal, source: 'mqctl://J%C3%BCrgen@host'}],
      ['a time with an offset and fraction', {...minimal, time: '2024-02-29T23:59:60.123+05:30'}],
      ['a lower-case t and z in time', {...minimal, time: '2024-01-01t00:00:00z'}],
      [
        'boolean, integer and string extensions',
        {...minimal, flag: false, count: -2147483648, max: 2147483647, name: ''},
      ],
      ['digits-only and long extension names', {...minimal, '42': 'x', averyveryverylongextensionname: 'x'}],
      ['unicode text', {...minimal, subject: 'Grüße 🎉'}],
    ]
    for (const [title, event] of valid) {
      it(title, () => {
        expect(validateEvent(event)).to.deep.equal(event)
      })
    }

    it('null optional and extension attributes as absent, and leaves them out', () => {
      const event = validateEvent({...minimal, subject: null, time: null, traceparent: null})
      expect(event).to.deep.equal(minimal)
    })

    it('an explicit null payload, and keeps it', () => {
      const event = validateEvent({...minimal, data: null})
      expect(event).to.have.property('data', null)
    })

    it('without changing its input', () => {
      const input = {...minimal, subject: null}
      validateEvent(input)
      expect(input).to.deep.equal({...minimal, subject: null})
    })
  })

  it('rejects what is not an object', () => {
    rejects(null, 'expected a JSON object, got null')
    rejects('{}', 'expected a JSON object, got a string')
    rejects([minimal], 'expected a JSON object, got an array')
    rejects(undefined, 'expected a JSON object, got undefined')
  })

  for (const name of ['id', 'source', 'specversion', 'type']) {
    describe(`required attribute ${name}`, () => {
      it('missing', () => {
        const event: Record<string, unknown> = {...minimal}
        delete event[name]
        rejects(event, `required attribute "${name}" is missing`)
      })
      it('null', () => rejects({...minimal, [name]: null}, `required attribute "${name}" is missing`))
      it('empty', () => rejects({...minimal, [name]: ''}, `attribute "${name}" must not be empty`))
      it('a number', () => rejects({...minimal, [name]: 1}, `attribute "${name}" must be a string, got a number`))
      it('an object', () => rejects({...minimal, [name]: {}}, `attribute "${name}" must be a string, got an object`))
    })
  }

  it('rejects another specversion', () => {
    rejects({...minimal, specversion: '0.3'}, 'attribute "specversion" must be "1.0", got "0.3"')
    rejects({...minimal, specversion: 1}, 'attribute "specversion" must be a string, got a number')
  })

  it('rejects a source that is not a URI-reference', () => {
    rejects({...minimal, source: 'my service'}, 'attribute "source" "my service" is not a URI-reference')
    rejects({...minimal, source: 'caf\u00e9'}, /^attribute "source" ".*" is not a URI-reference$/)
    rejects({...minimal, source: '/a%zz'}, 'attribute "source" "/a%zz" is not a URI-reference')
    rejects(
      {...minimal, source: '1abc:def'},
      /^attribute "source" "1abc:def" is not a URI-reference: its scheme is malformed$/,
    )
  })

  it('rejects control characters in strings', () => {
    rejects({...minimal, id: 'a\nb'}, 'attribute "id" contains control character U+000A')
    rejects({...minimal, type: 'a\u0085'}, 'attribute "type" contains control character U+0085')
    rejects({...minimal, subject: 'x\uD800'}, 'attribute "subject" contains an unpaired surrogate')
    rejects({...minimal, subject: 'x\uFFFE'}, 'attribute "subject" contains noncharacter U+FFFE')
    rejects({...minimal, ext: 'tab\there'}, 'extension attribute "ext" contains control character U+0009')
  })

  describe('optional attributes', () => {
    const bad: Array<[string, Record<string, unknown>, string]> = [
      ['time as a number', {time: 1_700_000_000}, 'attribute "time" must be a string, got a number'],
      [
        'time without a zone',
        {time: '2024-01-01T00:00:00'},
        'attribute "time" "2024-01-01T00:00:00" is not an RFC 3339 timestamp',
      ],
      ['time as a date only', {time: '2024-01-01'}, 'attribute "time" "2024-01-01" is not an RFC 3339 timestamp'],
      [
        'time with a space',
        {time: '2024-01-01 00:00:00Z'},
        'attribute "time" "2024-01-01 00:00:00Z" is not an RFC 3339 timestamp',
      ],
      [
        'time on February 30',
        {time: '2024-02-30T00:00:00Z'},
        'attribute "time" "2024-02-30T00:00:00Z" is not an RFC 3339 timestamp',
      ],
      [
        'time on February 29 of a common year',
        {time: '2023-02-29T00:00:00Z'},
        'attribute "time" "2023-02-29T00:00:00Z" is not an RFC 3339 timestamp',
      ],
      [
        'time in month 13',
        {time: '2024-13-01T00:00:00Z'},
        'attribute "time" "2024-13-01T00:00:00Z" is not an RFC 3339 timestamp',
      ],
      [
        'time at hour 24',
        {time: '2024-01-01T24:00:00Z'},
        'attribute "time" "2024-01-01T24:00:00Z" is not an RFC 3339 timestamp',
      ],
      [
        'time with a bad offset',
        {time: '2024-01-01T00:00:00+25:00'},
        'attribute "time" "2024-01-01T00:00:00+25:00" is not an RFC 3339 timestamp',
      ],
      ['time in words', {time: 'yesterday'}, 'attribute "time" "yesterday" is not an RFC 3339 timestamp'],
      ['an empty subject', {subject: ''}, 'attribute "subject" must not be empty'],
      ['a boolean subject', {subject: true}, 'attribute "subject" must be a string, got a boolean'],
      [
        'a numeric datacontenttype',
        {datacontenttype: 42},
        'attribute "datacontenttype" must be a string, got a number',
      ],
      [
        'a datacontenttype without a subtype',
        {datacontenttype: 'json'},
        'attribute "datacontenttype" "json" is not a media type',
      ],
      [
        'a relative dataschema',
        {dataschema: '/schemas/order.json'},
        'attribute "dataschema" "/schemas/order.json" must be an absolute URI with a scheme',
      ],
      ['an empty dataschema', {dataschema: ''}, 'attribute "dataschema" must not be empty'],
      [
        'a dataschema with spaces',
        {dataschema: 'https://x/a b'},
        'attribute "dataschema" "https://x/a b" is not an absolute URI',
      ],
    ]
    for (const [title, extra, reason] of bad) {
      it(`rejects ${title}`, () => rejects({...minimal, ...extra}, reason))
    }
  })

  describe('agrees with the definitions it implements by hand, on generated values', () => {
    /** mulberry32, seeded: a failure reproduces. */
    function random(seed: number) {
      let state = seed >>> 0
      return (n: number) => {
        state = (state + 0x6d2b79f5) >>> 0
        let t = state
        t = Math.imul(t ^ (t >>> 15), t | 1)
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
        return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n)
      }
    }
    /** Variants of `seeds`: characters replaced, removed, inserted or repeated. */
    function mutants(seeds: string[], alphabet: string, count: number): string[] {
      const int = random(7)
      const out = [...seeds]
      while (out.length < count) {
        let text = seeds[int(seeds.length)]
        for (let edits = 1 + int(3); edits > 0; edits--) {
          const at = int(text.length + 1)
          const c = alphabet[int(alphabet.length)]
          const kind = int(4)
          if (kind === 0) text = text.slice(0, at) + c + text.slice(at + 1)
          else if (kind === 1) text = text.slice(0, at) + text.slice(at + 1)
          else if (kind === 2) text = text.slice(0, at) + c + text.slice(at)
          else text = text.slice(0, at) + c.repeat(1 + int(3)) + text.slice(at)
        }
        out.push(text)
      }
      return out
    }
    const accepted = (event: Record<string, unknown>): boolean => {
      try {
        validateEvent(event)
        return true
      } catch {
        return false
      }
    }

    it('time: RFC 3339 as this regular expression, then calendar and clock ranges', () => {
      const shape = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$/
      const valid = (value: string): boolean => {
        const m = shape.exec(value)
        if (!m) return false
        const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number)
        const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
        const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        return (
          month >= 1 &&
          month <= 12 &&
          day >= 1 &&
          day <= days &&
          hour <= 23 &&
          minute <= 59 &&
          second <= 60 &&
          (m[9] === undefined || (Number(m[10]) <= 23 && Number(m[11]) <= 59))
        )
      }
      const seeds = [
        '2026-01-31T12:00:00Z',
        '2024-02-29t23:59:60.123+05:30',
        '1900-02-28T00:00:00.5-23:59',
        '2000-02-29T09:08:07z',
        '2023-12-31T23:59:59.000001+00:00',
      ]
      const times = mutants(seeds, '0123456789919TtZz+-:. x\u0660', 20_000)
      let valids = 0
      for (const time of times) {
        const expected = valid(time)
        valids += expected ? 1 : 0
        expect(accepted({...minimal, time}), JSON.stringify(time)).to.equal(expected)
        if (!expected)
          rejects(
            {...minimal, time},
            `attribute "time" "${JSON.stringify(time).slice(1, -1)}" is not an RFC 3339 timestamp`,
          )
      }
      expect(valids).to.be.within(times.length * 0.02, times.length * 0.98)
    })

    it('source and dataschema: URI characters as this regular expression, well-formed % escapes, one #', () => {
      const characters = /^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]*$/
      const uri = (value: string): boolean =>
        characters.test(value) &&
        !/%(?![0-9A-Fa-f]{2})/.test(value) &&
        value.indexOf('#') === value.lastIndexOf('#') &&
        !(value.includes(':') && !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(value) && value.split(/[/?#]/, 1)[0].includes(':'))
      const seeds = [
        '/sensors/1',
        'https://example.com/a?b=c#d',
        'urn:uuid:6e8bc430',
        'src-12',
        'mqctl://J%C3%BCrgen@host',
      ]
      let valids = 0
      for (const source of mutants(seeds, 'aZ09%#:/?[]@!$&()*+,;=~._- "<>\\^`{|}é\u0085', 20_000)) {
        const expected = source !== '' && uri(source)
        valids += expected ? 1 : 0
        expect(accepted({...minimal, source}), JSON.stringify(source)).to.equal(expected)
        // An absolute URI also needs its scheme.
        const schema = `https://x/${source}`
        expect(accepted({...minimal, dataschema: schema}), schema).to.equal(uri(schema))
      }
      expect(valids).to.be.within(2_000, 18_000)
    })
  })

  it('leaves out fields named like what every object inherits, and keeps the attribute order', () => {
    const input = JSON.parse(
      '{"type":"t","data":{"a":1},"x":"1","constructor":{"a":1},"__proto__":[1],"toString":5,"specversion":"1.0","id":"i","source":"s","time":null}',
    ) as Record<string, unknown>
    const event = validateEvent(input)
    expect(Object.keys(event)).to.deep.equal(['id', 'source', 'specversion', 'type', 'data', 'x'])
    expect(JSON.stringify(event)).to.equal(
      '{"id":"i","source":"s","specversion":"1.0","type":"t","data":{"a":1},"x":"1"}',
    )
  })

  describe('extension attributes', () => {
    const badNames: Array<[string, string]> = [
      ['traceId', 'extension attribute "traceId" must use only lower-case letters and digits'],
      ['trace_id', 'extension attribute "trace_id" must use only lower-case letters and digits'],
      ['trace-id', 'extension attribute "trace-id" must use only lower-case letters and digits'],
      ['TRACE', 'extension attribute "TRACE" must use only lower-case letters and digits'],
      ['trace id', 'extension attribute "trace id" must use only lower-case letters and digits'],
      ['ünïcode', 'extension attribute "ünïcode" must use only lower-case letters and digits'],
      ['', 'an extension attribute has an empty name'],
    ]
    for (const [name, reason] of badNames) {
      it(`rejects the name ${JSON.stringify(name)}`, () => rejects({...minimal, [name]: 'x'}, reason))
    }

    it('suggests a valid name in the hint', () => {
      expect(thrown(() => validateEvent({...minimal, traceId: 'x'})).hint).to.equal('e.g. "traceid"')
    })

    const badValues: Array<[string, unknown, string]> = [
      ['a fraction', 1.5, 'extension attribute "ext" must be a 32-bit integer, got 1.5'],
      ['beyond 32 bits', 2_147_483_648, 'extension attribute "ext" must be a 32-bit integer, got 2147483648'],
      ['NaN', Number.NaN, 'extension attribute "ext" must be a 32-bit integer, got NaN'],
      ['an object', {a: 1}, 'extension attribute "ext" must be a string, integer or boolean, got an object'],
      ['an array', ['a'], 'extension attribute "ext" must be a string, integer or boolean, got an array'],
    ]
    for (const [title, value, reason] of badValues) {
      it(`rejects a value that is ${title}`, () => rejects({...minimal, ext: value}, reason))
    }

    it('notes names longer than 20 characters without rejecting them', () => {
      const event = validateEvent({...minimal, averyveryverylongextensionname: 'x', short: 'y'})
      expect(eventWarnings(event)).to.deep.equal([
        'extension attribute "averyveryverylongextensionname" is 30 characters long; CloudEvents recommends at most 20',
      ])
      expect(eventWarnings(validateEvent(minimal))).to.deep.equal([])
    })
  })

  describe('data', () => {
    it('rejects data and data_base64 together', () => {
      rejects({...minimal, data: {a: 1}, data_base64: 'AA=='}, '"data" and "data_base64" cannot both be present')
      rejects({...minimal, data: null, data_base64: 'AA=='}, '"data" and "data_base64" cannot both be present')
    })

    it('rejects data_base64 that is not base64', () => {
      rejects({...minimal, data_base64: 'not base64!'}, '"data_base64" is not valid base64')
      rejects({...minimal, data_base64: 'AAA'}, '"data_base64" is not valid base64')
      rejects({...minimal, data_base64: [1, 2]}, '"data_base64" must be a base64 string, got an array')
    })
  })
})

describe('buildEvent', () => {
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

  it('fills the defaults', () => {
    const before = Date.now()
    const event = buildEvent({type: 'com.example.created', data: {id: 7}})
    expect(event.specversion).to.equal('1.0')
    expect(event.id).to.match(uuid)
    expect(event.type).to.equal('com.example.created')
    expect(event.datacontenttype).to.equal('application/json')
    expect(event.data).to.deep.equal({id: 7})
    expect(event.time).to.match(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
    expect(Date.parse(event.time!)).to.be.within(before, Date.now())
    expect(event).not.to.have.property('subject')
    expect(event).not.to.have.property('data_base64')
  })

  it('names this user and host in the default source', () => {
    const source = `mqctl://${encodeURIComponent(userInfo().username)}@${encodeURIComponent(hostname())}`
    expect(defaultEventSource()).to.equal(source)
    expect(buildEvent({type: 't'}).source).to.equal(source)
  })

  it('gives each event a new id', () => {
    expect(buildEvent({type: 't'}).id).not.to.equal(buildEvent({type: 't'}).id)
  })

  it('leaves out data and datacontenttype without data', () => {
    const event = buildEvent({type: 't'})
    expect(event).not.to.have.property('data')
    expect(event).not.to.have.property('datacontenttype')
  })

  it('keeps an explicit null payload', () => {
    const event = buildEvent({type: 't', data: null})
    expect(event).to.have.property('data', null)
    expect(event.datacontenttype).to.equal('application/json')
  })

  it('sends bytes as data_base64', () => {
    const event = buildEvent({type: 't', data: Buffer.from([0, 1, 2, 255])})
    expect(event.data_base64).to.equal('AAEC/w==')
    expect(event.datacontenttype).to.equal('application/octet-stream')
    expect(event).not.to.have.property('data')
    const view = new Uint8Array([9, 1, 2, 3]).subarray(1, 3)
    expect(buildEvent({type: 't', data: view}).data_base64).to.equal('AQI=')
  })

  it('uses what it is given', () => {
    const event: CloudEvent = buildEvent({
      type: 'com.example.created',
      source: '/orders',
      subject: 'order-7',
      id: 'evt-1',
      time: new Date('2024-01-31T12:00:00+01:00'),
      extensions: {traceparent: '00-abc-def-01', tenant: 'acme'},
    })
    expect(event).to.deep.equal({
      specversion: '1.0',
      id: 'evt-1',
      source: '/orders',
      type: 'com.example.created',
      time: '2024-01-31T11:00:00.000Z',
      subject: 'order-7',
      traceparent: '00-abc-def-01',
      tenant: 'acme',
    })
  })

  it('validates the result', () => {
    expect(thrown(() => buildEvent({type: ''})).message).to.equal(
      'invalid CloudEvent: attribute "type" must not be empty',
    )
    expect(thrown(() => buildEvent({type: 't', id: ''})).message).to.equal(
      'invalid CloudEvent: attribute "id" must not be empty',
    )
    expect(thrown(() => buildEvent({type: 't', source: 'not a uri'})).message).to.match(
      /attribute "source" "not a uri" is not a URI-reference/,
    )
    expect(thrown(() => buildEvent({type: 't', subject: ''})).message).to.equal(
      'invalid CloudEvent: attribute "subject" must not be empty',
    )
    expect(thrown(() => buildEvent({type: 't', extensions: {traceId: 'x'}})).message).to.equal(
      'invalid CloudEvent: extension attribute "traceId" must use only lower-case letters and digits',
    )
    expect(thrown(() => buildEvent({type: 't', time: new Date('nope')})).message).to.equal(
      'invalid CloudEvent: attribute "time" is not a valid date',
    )
  })

  it('refuses extensions that would overwrite core attributes', () => {
    for (const name of ['id', 'source', 'specversion', 'type', 'time', 'data']) {
      expect(thrown(() => buildEvent({type: 't', extensions: {[name]: 'x'}})).message).to.equal(
        `invalid CloudEvent: extension attribute "${name}" clashes with the core attribute of that name`,
      )
    }
  })
})
