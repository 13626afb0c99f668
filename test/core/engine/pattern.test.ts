import {expect} from 'chai'

import {InvalidInputError} from '../../../src/core/errors.js'
import {compilePattern, PatternError} from '../../../src/core/engine/pattern.js'

/** Parses JSON text, so number spellings like 35.0 and 3.5e1 reach the matcher exactly as a broker would see them. */
const json = (text: string): unknown => JSON.parse(text)

interface Case {
  name: string
  pattern: unknown
  event: unknown
  match: boolean
}

/** The sample event from the event-ruler README ("Ruler by Example"). */
const ec2 = {
  version: '0',
  id: 'ddddd4-aaaa-7777-4444-345dd43cc333',
  'detail-type': 'EC2 Instance State-change Notification',
  source: 'aws.ec2',
  account: '012345679012',
  time: '2017-10-02T16:24:49Z',
  region: 'us-east-1',
  resources: ['arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000'],
  detail: {
    'c-count': 5,
    'd-count': 3,
    'x-limit': 301.8,
    'source-ip': '10.0.0.33',
    'instance-id': 'i-000000aaaaaa00000',
    state: 'running',
  },
}

const withDetail = (detail: Record<string, unknown>) => ({...ec2, detail: {...ec2.detail, ...detail}})

/** A CloudEvents 1.0 event, as mqctl routes them. */
const order = {
  specversion: '1.0',
  id: '1',
  source: 'ci',
  type: 'order.created',
  time: '2026-01-31T12:00:00Z',
  subject: 'x',
  data: {order: {id: 42, total: 35.5}, ip: '10.0.0.7'},
}

const documentation: Case[] = [
  {
    name: 'simple matching: exact values, array intersection, OR within a field',
    pattern: {
      'detail-type': ['EC2 Instance State-change Notification'],
      resources: ['arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000'],
      detail: {state: ['initializing', 'running']},
    },
    event: ec2,
    match: true,
  },
  {
    name: 'simple matching: another state',
    pattern: {detail: {state: ['initializing', 'running']}},
    event: withDetail({state: 'initializing'}),
    match: true,
  },
  {
    name: 'simple matching: state not listed',
    pattern: {detail: {state: ['initializing', 'running']}},
    event: withDetail({state: 'stopped'}),
    match: false,
  },
  {name: 'prefix', pattern: {time: [{prefix: '2017-10-02'}]}, event: ec2, match: true},
  {name: 'prefix, other day', pattern: {time: [{prefix: '2017-10-03'}]}, event: ec2, match: false},
  {name: 'prefix is case-sensitive', pattern: {source: [{prefix: 'AWS.'}]}, event: ec2, match: false},
  {
    name: 'prefix equals-ignore-case (README pattern, no match)',
    pattern: {source: [{prefix: {'equals-ignore-case': 'EC2'}}]},
    event: ec2,
    match: false,
  },
  {
    name: 'prefix equals-ignore-case',
    pattern: {source: [{prefix: {'equals-ignore-case': 'AWS.'}}]},
    event: ec2,
    match: true,
  },
  {
    name: 'prefix equals-ignore-case, EventBridge example',
    pattern: {service: [{prefix: {'equals-ignore-case': 'eventb'}}]},
    event: {service: 'EventBridge'},
    match: true,
  },
  {name: 'suffix', pattern: {source: [{suffix: 'ec2'}]}, event: ec2, match: true},
  {name: 'suffix is case-sensitive', pattern: {source: [{suffix: 'EC2'}]}, event: ec2, match: false},
  {
    name: 'suffix equals-ignore-case',
    pattern: {source: [{suffix: {'equals-ignore-case': 'EC2'}}]},
    event: ec2,
    match: true,
  },
  {name: 'suffix .png', pattern: {FileName: [{suffix: '.png'}]}, event: {FileName: 'cat.png'}, match: true},
  {name: 'suffix .png vs .jpg', pattern: {FileName: [{suffix: '.png'}]}, event: {FileName: 'cat.jpg'}, match: false},
  {
    name: 'equals-ignore-case (README pattern, no match)',
    pattern: {source: [{'equals-ignore-case': 'EC2'}]},
    event: ec2,
    match: false,
  },
  {name: 'equals-ignore-case', pattern: {source: [{'equals-ignore-case': 'AWS.EC2'}]}, event: ec2, match: true},
  {
    name: 'equals-ignore-case, non-ASCII',
    pattern: {name: [{'equals-ignore-case': 'ÉTÉ'}]},
    event: {name: 'été'},
    match: true,
  },
  {
    name: 'wildcard',
    pattern: {source: [{wildcard: 'Simple*Service'}]},
    event: {source: 'SimpleQueueService'},
    match: true,
  },
  {
    name: 'wildcard, star matches nothing',
    pattern: {source: [{wildcard: 'Simple*Service'}]},
    event: {source: 'SimpleService'},
    match: true,
  },
  {
    name: 'wildcard is anchored',
    pattern: {source: [{wildcard: 'Simple*Service'}]},
    event: {source: 'ASimpleQueueService'},
    match: false,
  },
  {
    name: 'wildcard, EventBridge folder example',
    pattern: {EventBusArn: [{wildcard: 'arn:aws:events:us-east-1:*:event-bus/*'}]},
    event: {EventBusArn: 'arn:aws:events:us-east-1:123:event-bus/default'},
    match: true,
  },
  {
    name: 'anything-but string',
    pattern: {detail: {state: [{'anything-but': 'initializing'}]}},
    event: ec2,
    match: true,
  },
  {
    name: 'anything-but string, excluded',
    pattern: {detail: {state: [{'anything-but': 'initializing'}]}},
    event: withDetail({state: 'initializing'}),
    match: false,
  },
  {name: 'anything-but number', pattern: {detail: {'x-limit': [{'anything-but': 123}]}}, event: ec2, match: true},
  {
    name: 'anything-but number, excluded by value',
    pattern: {detail: {'x-limit': [{'anything-but': 123}]}},
    event: json('{"detail":{"x-limit":1.23e2}}'),
    match: false,
  },
  {
    name: 'anything-but number does not exclude the string',
    pattern: {detail: {'x-limit': [{'anything-but': 123}]}},
    event: withDetail({'x-limit': '123'}),
    match: true,
  },
  {
    name: 'anything-but string list',
    pattern: {detail: {state: [{'anything-but': ['stopped', 'overloaded']}]}},
    event: ec2,
    match: true,
  },
  {
    name: 'anything-but string list, excluded',
    pattern: {detail: {state: [{'anything-but': ['stopped', 'overloaded']}]}},
    event: withDetail({state: 'overloaded'}),
    match: false,
  },
  {
    name: 'anything-but number list',
    pattern: {detail: {'x-limit': [{'anything-but': [100, 200, 300]}]}},
    event: ec2,
    match: true,
  },
  {
    name: 'anything-but number list, excluded',
    pattern: {detail: {'x-limit': [{'anything-but': [100, 200, 300]}]}},
    event: json('{"detail":{"x-limit":200.0}}'),
    match: false,
  },
  {
    name: 'anything-but prefix',
    pattern: {detail: {state: [{'anything-but': {prefix: 'init'}}]}},
    event: ec2,
    match: true,
  },
  {
    name: 'anything-but prefix, excluded',
    pattern: {detail: {state: [{'anything-but': {prefix: 'init'}}]}},
    event: withDetail({state: 'initializing'}),
    match: false,
  },
  {
    name: 'anything-but prefix list, excluded',
    pattern: {detail: {state: [{'anything-but': {prefix: ['init', 'error']}}]}},
    event: withDetail({state: 'error-3'}),
    match: false,
  },
  {
    name: 'anything-but prefix list',
    pattern: {detail: {state: [{'anything-but': {prefix: ['init', 'error']}}]}},
    event: ec2,
    match: true,
  },
  {
    name: 'anything-but prefix does not exclude numbers',
    pattern: {detail: {state: [{'anything-but': {prefix: '1'}}]}},
    event: withDetail({state: 12}),
    match: true,
  },
  {
    name: 'anything-but suffix',
    pattern: {detail: {'instance-id': [{'anything-but': {suffix: '1234'}}]}},
    event: ec2,
    match: true,
  },
  {
    name: 'anything-but suffix, excluded',
    pattern: {detail: {'instance-id': [{'anything-but': {suffix: '1234'}}]}},
    event: withDetail({'instance-id': 'i-1234'}),
    match: false,
  },
  {
    name: 'anything-but suffix list, excluded',
    pattern: {detail: {'instance-id': [{'anything-but': {suffix: ['1234', '6789']}}]}},
    event: withDetail({'instance-id': 'i-6789'}),
    match: false,
  },
  {
    name: 'anything-but equals-ignore-case',
    pattern: {detail: {state: [{'anything-but': {'equals-ignore-case': 'Stopped'}}]}},
    event: ec2,
    match: true,
  },
  {
    name: 'anything-but equals-ignore-case, excluded',
    pattern: {detail: {state: [{'anything-but': {'equals-ignore-case': 'Stopped'}}]}},
    event: withDetail({state: 'STOPPED'}),
    match: false,
  },
  {
    name: 'anything-but equals-ignore-case list, excluded',
    pattern: {detail: {state: [{'anything-but': {'equals-ignore-case': ['Stopped', 'OverLoaded']}}]}},
    event: withDetail({state: 'overloaded'}),
    match: false,
  },
  {
    name: 'anything-but wildcard',
    pattern: {detail: {state: [{'anything-but': {wildcard: '*/bin/*.jar'}}]}},
    event: ec2,
    match: true,
  },
  {
    name: 'anything-but wildcard, excluded',
    pattern: {detail: {state: [{'anything-but': {wildcard: '*/bin/*.jar'}}]}},
    event: withDetail({state: '/usr/bin/app.jar'}),
    match: false,
  },
  {
    name: 'anything-but wildcard list, excluded',
    pattern: {detail: {state: [{'anything-but': {wildcard: ['*/bin/*.jar', '*/bin/*.class']}}]}},
    event: withDetail({state: '/opt/bin/A.class'}),
    match: false,
  },
  {
    name: 'numeric: range, upper bound, and equality with exponent',
    pattern: {
      detail: {
        'c-count': [{numeric: ['>', 0, '<=', 5]}],
        'd-count': [{numeric: ['<', 10]}],
        'x-limit': [{numeric: ['=', 3.018e2]}],
      },
    },
    event: ec2,
    match: true,
  },
  {
    name: 'numeric: outside the range',
    pattern: {detail: {'c-count': [{numeric: ['>', 0, '<=', 5]}]}},
    event: withDetail({'c-count': 6}),
    match: false,
  },
  {name: 'cidr', pattern: {detail: {'source-ip': [{cidr: '10.0.0.0/24'}]}}, event: ec2, match: true},
  {
    name: 'cidr, outside the block',
    pattern: {detail: {'source-ip': [{cidr: '10.0.0.0/24'}]}},
    event: withDetail({'source-ip': '10.0.1.33'}),
    match: false,
  },
  {name: 'exists true', pattern: {detail: {'c-count': [{exists: true}]}}, event: ec2, match: true},
  {
    name: 'exists false on a present field',
    pattern: {detail: {'c-count': [{exists: false}]}},
    event: ec2,
    match: false,
  },
  {
    name: 'exists false on a missing field',
    pattern: {detail: {'c-count': [{exists: false}]}},
    event: {detail: {state: 'running'}},
    match: true,
  },
  {
    name: 'exists false: an object is not a leaf (README)',
    pattern: {detail: {'c-count': [{exists: false}]}},
    event: {detail: {state: 'running', 'c-count': {c1: 100}}},
    match: true,
  },
  {
    name: 'exists true: an object is not a leaf',
    pattern: {detail: {'c-count': [{exists: true}]}},
    event: {detail: {'c-count': {c1: 100}}},
    match: false,
  },
  {
    name: 'complex example',
    pattern: {
      time: [{prefix: '2017-10-02'}],
      detail: {
        state: [{'anything-but': 'initializing'}],
        'c-count': [{numeric: ['>', 0, '<=', 5]}],
        'd-count': [{numeric: ['<', 10]}],
        'x-limit': [{'anything-but': [100, 200, 300]}],
        'source-ip': [{cidr: '10.0.0.0/8'}],
      },
    },
    event: ec2,
    match: true,
  },
  {
    name: 'empty string matches only ""',
    pattern: {detail: {eventVersion: ['']}},
    event: {detail: {eventVersion: ''}},
    match: true,
  },
  {
    name: 'empty string does not match null',
    pattern: {detail: {eventVersion: ['']}},
    event: {detail: {eventVersion: null}},
    match: false,
  },
  {
    name: 'null matches null',
    pattern: {detail: {responseElements: [null]}},
    event: {detail: {responseElements: null}},
    match: true,
  },
  {
    name: 'null does not match ""',
    pattern: {detail: {responseElements: [null]}},
    event: {detail: {responseElements: ''}},
    match: false,
  },
  {
    name: 'null does not match a missing field',
    pattern: {detail: {responseElements: [null]}},
    event: {detail: {}},
    match: false,
  },
  {name: 'booleans match exactly', pattern: {ok: [true]}, event: {ok: true}, match: true},
  {name: 'true is not "true"', pattern: {ok: [true]}, event: {ok: 'true'}, match: false},
]

const metricOr = {
  source: ['aws.cloudwatch'],
  $or: [{metricName: ['CPUUtilization', 'ReadLatency']}, {namespace: ['AWS/EC2', 'AWS/ES']}],
}
const parallelOr = {
  $or: [{metricName: ['CPUUtilization', 'ReadLatency']}, {namespace: ['AWS/EC2', 'AWS/ES']}],
  detail: {$or: [{source: ['aws.cloudwatch']}, {'detail-type': ['CloudWatch Alarm State Change']}]},
}
const andInsideOr = {
  source: ['aws.cloudwatch'],
  $or: [
    {metricName: ['CPUUtilization', 'ReadLatency']},
    {metricType: ['MetricType'], namespace: ['AWS/EC2', 'AWS/ES']},
    {scope: ['Service']},
  ],
}
const nestedOr = {
  source: ['aws.cloudwatch'],
  $or: [
    {metricName: ['CPUUtilization', 'ReadLatency']},
    {metricType: ['MetricType'], namespace: ['AWS/EC2', 'AWS/ES'], $or: [{metricId: [1234]}, {spaceId: [1000]}]},
    {scope: ['Service']},
  ],
}
const cw = {source: 'aws.cloudwatch'}

const orCases: Case[] = [
  {name: 'normal or: first alternative', pattern: metricOr, event: {...cw, metricName: 'CPUUtilization'}, match: true},
  {name: 'normal or: second alternative', pattern: metricOr, event: {...cw, namespace: 'AWS/ES'}, match: true},
  {
    name: 'normal or: neither',
    pattern: metricOr,
    event: {...cw, metricName: 'Disk', namespace: 'AWS/S3'},
    match: false,
  },
  {
    name: 'normal or: sibling field fails',
    pattern: metricOr,
    event: {source: 'aws.ec2', metricName: 'CPUUtilization'},
    match: false,
  },
  {
    name: 'parallel or: both groups satisfied',
    pattern: parallelOr,
    event: {namespace: 'AWS/EC2', detail: {'detail-type': 'CloudWatch Alarm State Change'}},
    match: true,
  },
  {
    name: 'parallel or: nested group fails',
    pattern: parallelOr,
    event: {namespace: 'AWS/EC2', detail: {source: 'other'}},
    match: false,
  },
  {
    name: 'and inside or: all of the AND branch',
    pattern: andInsideOr,
    event: {...cw, metricType: 'MetricType', namespace: 'AWS/EC2'},
    match: true,
  },
  {
    name: 'and inside or: half of the AND branch',
    pattern: andInsideOr,
    event: {...cw, metricType: 'MetricType'},
    match: false,
  },
  {name: 'and inside or: third branch', pattern: andInsideOr, event: {...cw, scope: 'Service'}, match: true},
  {
    name: 'nested or: inner alternative',
    pattern: nestedOr,
    event: {...cw, metricType: 'MetricType', namespace: 'AWS/ES', spaceId: 1000},
    match: true,
  },
  {
    name: 'nested or: inner or unmet',
    pattern: nestedOr,
    event: {...cw, metricType: 'MetricType', namespace: 'AWS/ES', spaceId: 1},
    match: false,
  },
  {name: 'or with exists false', pattern: {$or: [{a: [{exists: false}]}, {a: ['x']}]}, event: {}, match: true},
]

const numbers: Case[] = [
  {name: '35 matches 35', pattern: {n: [35]}, event: json('{"n":35}'), match: true},
  {name: '35 matches 35.0', pattern: {n: [35]}, event: json('{"n":35.0}'), match: true},
  {name: '35 matches 3.5e1', pattern: {n: [35]}, event: json('{"n":3.5e1}'), match: true},
  {name: '35.0 in the pattern matches 35', pattern: json('{"n":[35.0]}'), event: {n: 35}, match: true},
  {name: '3.5e1 in the pattern matches 35', pattern: json('{"n":[3.5e1]}'), event: {n: 35}, match: true},
  {name: '35 does not match 35.5', pattern: {n: [35]}, event: {n: 35.5}, match: false},
  {name: '35 does not match the string "35"', pattern: {n: [35]}, event: {n: '35'}, match: false},
  {name: '"35" does not match the number 35', pattern: {n: ['35']}, event: {n: 35}, match: false},
  {name: '0 matches -0', pattern: {n: [0]}, event: json('{"n":-0}'), match: true},
  {name: 'numeric = matches 3.5e1', pattern: {n: [{numeric: ['=', 35]}]}, event: json('{"n":3.5e1}'), match: true},
  {name: 'numeric never matches a string', pattern: {n: [{numeric: ['=', 35]}]}, event: {n: '35'}, match: false},
  {
    name: 'numeric never matches a numeric-looking string in a range',
    pattern: {n: [{numeric: ['>', 0]}]},
    event: {n: '5'},
    match: false,
  },
  {name: 'numeric never matches true', pattern: {n: [{numeric: ['>', 0]}]}, event: {n: true}, match: false},
  {name: 'numeric never matches null', pattern: {n: [{numeric: ['<', 1]}]}, event: {n: null}, match: false},
  {name: '> excludes the bound', pattern: {n: [{numeric: ['>', 0]}]}, event: {n: 0}, match: false},
  {name: '>= includes the bound', pattern: {n: [{numeric: ['>=', 0]}]}, event: {n: 0}, match: true},
  {name: '< excludes the bound', pattern: {n: [{numeric: ['<', 10]}]}, event: {n: 10}, match: false},
  {name: '<= includes the bound', pattern: {n: [{numeric: ['<=', 10]}]}, event: json('{"n":1e1}'), match: true},
  {
    name: 'range is the AND of both bounds (inside)',
    pattern: {n: [{numeric: ['>', 0, '<', 1]}]},
    event: {n: 0.5},
    match: true,
  },
  {
    name: 'range is the AND of both bounds (above)',
    pattern: {n: [{numeric: ['>', 0, '<', 1]}]},
    event: {n: 1},
    match: false,
  },
  {
    name: 'range is the AND of both bounds (below)',
    pattern: {n: [{numeric: ['>', 0, '<', 1]}]},
    event: {n: -1},
    match: false,
  },
  {name: 'bounds may come upper first', pattern: {n: [{numeric: ['<=', 5, '>', 0]}]}, event: {n: 5}, match: true},
  {
    name: 'negative and fractional values',
    pattern: {n: [{numeric: ['>=', -4e-6, '<', 0]}]},
    event: {n: -0.000001},
    match: true,
  },
  {name: 'large values beyond 5e9', pattern: {n: [{numeric: ['>', 5e9]}]}, event: {n: 6e12}, match: true},
  {
    name: 'the CloudEvent total',
    pattern: {data: {order: {total: [{numeric: ['>', 30, '<=', 35.5]}]}}},
    event: order,
    match: true,
  },
  {
    name: 'two numeric conditions are ORed',
    pattern: {n: [{numeric: ['<', 0]}, {numeric: ['>', 10]}]},
    event: {n: 11},
    match: true,
  },
  {
    name: 'two numeric conditions are ORed (gap)',
    pattern: {n: [{numeric: ['<', 0]}, {numeric: ['>', 10]}]},
    event: {n: 5},
    match: false,
  },
]

const severalConditions: Case[] = [
  {
    name: 'exact or prefix: exact',
    pattern: {type: ['order.paid', {prefix: 'order.'}]},
    event: {type: 'order.paid'},
    match: true,
  },
  {name: 'exact or prefix: prefix', pattern: {type: ['order.paid', {prefix: 'order.'}]}, event: order, match: true},
  {name: 'exact or prefix: neither', pattern: {type: ['order.paid', {prefix: 'invoice.'}]}, event: order, match: false},
  {name: 'numeric or exact string', pattern: {n: [{numeric: ['>', 100]}, 'none']}, event: {n: 'none'}, match: true},
  {
    name: 'anything-but or missing: missing',
    pattern: {env: [{'anything-but': 'prod'}, {exists: false}]},
    event: {},
    match: true,
  },
  {
    name: 'anything-but or missing: other value',
    pattern: {env: [{'anything-but': 'prod'}, {exists: false}]},
    event: {env: 'dev'},
    match: true,
  },
  {
    name: 'anything-but or missing: excluded',
    pattern: {env: [{'anything-but': 'prod'}, {exists: false}]},
    event: {env: 'prod'},
    match: false,
  },
  {
    name: 'two anything-but are ORed, so any value passes one',
    pattern: {s: [{'anything-but': 'a'}, {'anything-but': 'b'}]},
    event: {s: 'a'},
    match: true,
  },
  {
    name: 'cidr or suffix',
    pattern: {data: {ip: [{cidr: '192.168.0.0/16'}, {suffix: '.7'}]}},
    event: order,
    match: true,
  },
  {
    name: 'wildcard or equals-ignore-case',
    pattern: {subject: [{wildcard: 'y*'}, {'equals-ignore-case': 'X'}]},
    event: order,
    match: true,
  },
  {name: 'sibling fields are ANDed', pattern: {type: ['order.created'], source: ['other']}, event: order, match: false},
]

const arrays: Case[] = [
  {
    name: 'any element matches an exact value',
    pattern: {tags: ['admin']},
    event: {tags: ['user', 'admin']},
    match: true,
  },
  {name: 'no element matches', pattern: {tags: ['superadmin']}, event: {tags: ['user', 'admin']}, match: false},
  {name: 'nested arrays are flattened', pattern: {tags: ['b']}, event: {tags: [['a'], ['b']]}, match: true},
  {name: 'prefix on any element', pattern: {tags: [{prefix: 'ad'}]}, event: {tags: ['user', 'admin']}, match: true},
  {name: 'numeric on any element', pattern: {n: [{numeric: ['>', 10]}]}, event: {n: [1, 20]}, match: true},
  {
    name: 'anything-but passes when another element differs',
    pattern: {tags: [{'anything-but': 'a'}]},
    event: {tags: ['a', 'b']},
    match: true,
  },
  {
    name: 'anything-but fails when every element is excluded',
    pattern: {tags: [{'anything-but': ['a', 'b']}]},
    event: {tags: ['a', 'b']},
    match: false,
  },
  {
    name: 'anything-but fails on an empty array',
    pattern: {tags: [{'anything-but': 'a'}]},
    event: {tags: []},
    match: false,
  },
  {name: 'exists true fails on an empty array', pattern: {tags: [{exists: true}]}, event: {tags: []}, match: false},
  {name: 'exists false matches an empty array', pattern: {tags: [{exists: false}]}, event: {tags: []}, match: true},
  {name: 'exists true on an array of values', pattern: {tags: [{exists: true}]}, event: {tags: ['a']}, match: true},
  {name: 'exists true on an array holding null', pattern: {tags: [{exists: true}]}, event: {tags: [null]}, match: true},
  {name: 'an array of objects holds no leaf values', pattern: {d: ['x']}, event: {d: [{x: 1}]}, match: false},
  {name: 'exists false on an array of objects', pattern: {d: [{exists: false}]}, event: {d: [{x: 1}]}, match: true},
  {
    name: 'README employees: field inside array elements',
    pattern: {employees: {firstName: ['Anna']}},
    event: {
      employees: [
        {firstName: 'John', lastName: 'Doe'},
        {firstName: 'Anna', lastName: 'Smith'},
        {firstName: 'Peter', lastName: 'Jones'},
      ],
    },
    match: true,
  },
  {
    name: 'README employees: multi-level arrays',
    pattern: {employees: {firstName: ['Peter']}},
    event: {employees: [[{firstName: 'John'}, {firstName: 'Anna'}], [{firstName: 'Peter', lastName: 'Jones'}]]},
    match: true,
  },
  {
    name: 'README employees: fields from different elements do not combine',
    pattern: {employees: {firstName: ['Anna'], lastName: ['Jones']}},
    event: {
      employees: [
        {firstName: 'Anna', lastName: 'Smith'},
        {firstName: 'Peter', lastName: 'Jones'},
      ],
    },
    match: false,
  },
  {
    name: 'fields from the same element combine',
    pattern: {employees: {firstName: ['Peter'], lastName: ['Jones']}},
    event: {
      employees: [
        {firstName: 'Anna', lastName: 'Smith'},
        {firstName: 'Peter', lastName: 'Jones'},
      ],
    },
    match: true,
  },
  {
    name: 'exists in one element',
    pattern: {d: {a: [{exists: true}], b: [{exists: true}]}},
    event: {d: [{a: 1, b: 2}]},
    match: true,
  },
  {
    name: 'exists split across elements',
    pattern: {d: {a: [{exists: true}], b: [{exists: true}]}},
    event: {d: [{a: 1}, {b: 2}]},
    match: false,
  },
  {
    name: 'nested object pattern over an empty array sees missing fields',
    pattern: {d: {a: [{exists: false}]}},
    event: {d: []},
    match: true,
  },
  {
    name: 'nested object pattern over a scalar sees missing fields',
    pattern: {d: {a: [{exists: false}]}},
    event: {d: 'text'},
    match: true,
  },
  {name: 'resources ARN in an array', pattern: {resources: [{prefix: 'arn:aws:ec2:'}]}, event: ec2, match: true},
]

/** Every operator against a field that is not there; only exists:false matches. */
const missing: Case[] = [
  ['exact string', ['x']],
  ['exact number', [35]],
  ['exact null', [null]],
  ['exact empty string', ['']],
  ['prefix', [{prefix: 'x'}]],
  ['empty prefix', [{prefix: ''}]],
  ['prefix equals-ignore-case', [{prefix: {'equals-ignore-case': 'x'}}]],
  ['suffix', [{suffix: 'x'}]],
  ['suffix equals-ignore-case', [{suffix: {'equals-ignore-case': 'x'}}]],
  ['equals-ignore-case', [{'equals-ignore-case': 'x'}]],
  ['wildcard', [{wildcard: '*'}]],
  ['numeric', [{numeric: ['>', 0]}]],
  ['cidr', [{cidr: '0.0.0.0/0'}]],
  ['anything-but string', [{'anything-but': 'x'}]],
  ['anything-but number list', [{'anything-but': [1, 2]}]],
  ['anything-but prefix', [{'anything-but': {prefix: 'x'}}]],
  ['anything-but suffix', [{'anything-but': {suffix: 'x'}}]],
  ['anything-but equals-ignore-case', [{'anything-but': {'equals-ignore-case': 'x'}}]],
  ['anything-but wildcard', [{'anything-but': {wildcard: 'x*'}}]],
  ['exists true', [{exists: true}]],
].flatMap(([name, leaf]) => [
  {name: `${name}: missing key`, pattern: {data: {gone: leaf}}, event: order, match: false},
  {name: `${name}: missing parent`, pattern: {nothing: {gone: leaf}}, event: order, match: false},
  {name: `${name}: object instead of a leaf`, pattern: {data: leaf}, event: order, match: false},
])
missing.push(
  {name: 'exists false: missing key', pattern: {data: {gone: [{exists: false}]}}, event: order, match: true},
  {name: 'exists false: missing parent', pattern: {nothing: {gone: [{exists: false}]}}, event: order, match: true},
  {name: 'exists false: present', pattern: {data: {ip: [{exists: false}]}}, event: order, match: false},
  {
    name: 'exists false: present but null',
    pattern: {data: {ip: [{exists: false}]}},
    event: {data: {ip: null}},
    match: false,
  },
  {
    name: 'exists true: present but null',
    pattern: {data: {ip: [{exists: true}]}},
    event: {data: {ip: null}},
    match: true,
  },
  {name: 'exists false: non-object event', pattern: {a: [{exists: false}]}, event: null, match: true},
  {name: 'exact: non-object event', pattern: {a: ['x']}, event: 'a', match: false},
  {
    name: 'prototype keys are not fields: constructor',
    pattern: {constructor: [{exists: false}]},
    event: {},
    match: true,
  },
  {name: 'prototype keys are not fields: toString', pattern: {toString: [{exists: true}]}, event: {}, match: false},
  {
    name: 'prototype keys are not fields: __proto__',
    pattern: json('{"__proto__": [{"exists": true}]}'),
    event: {},
    match: false,
  },
  {
    name: 'own prototype-named key is a field',
    pattern: {constructor: ['x']},
    event: json('{"constructor":"x"}'),
    match: true,
  },
)

const operators: Case[] = [
  {name: 'empty prefix matches any string', pattern: {s: [{prefix: ''}]}, event: {s: 'abc'}, match: true},
  {name: 'prefix never matches a number', pattern: {s: [{prefix: '1'}]}, event: {s: 12}, match: false},
  {name: 'suffix never matches a number', pattern: {s: [{suffix: '2'}]}, event: {s: 12}, match: false},
  {
    name: 'equals-ignore-case never matches a boolean',
    pattern: {s: [{'equals-ignore-case': 'true'}]},
    event: {s: true},
    match: false,
  },
  {name: 'wildcard * matches the empty string', pattern: {s: [{wildcard: '*'}]}, event: {s: ''}, match: true},
  {name: 'wildcard * never matches a number', pattern: {s: [{wildcard: '*'}]}, event: {s: 5}, match: false},
  {name: 'wildcard several stars', pattern: {s: [{wildcard: 'a*b*c'}]}, event: {s: 'aXXbYYc'}, match: true},
  {name: 'wildcard several stars, order matters', pattern: {s: [{wildcard: 'a*b*c'}]}, event: {s: 'acb'}, match: false},
  {
    name: 'wildcard prefix and suffix may not overlap',
    pattern: {s: [{wildcard: 'ab*b'}]},
    event: {s: 'ab'},
    match: false,
  },
  {name: 'wildcard prefix and suffix adjoining', pattern: {s: [{wildcard: 'ab*b'}]}, event: {s: 'abb'}, match: true},
  {name: 'wildcard leading star', pattern: {s: [{wildcard: '*.png'}]}, event: {s: 'dir/a.png'}, match: true},
  {name: 'wildcard without stars is exact', pattern: {s: [{wildcard: 'abc'}]}, event: {s: 'abcd'}, match: false},
  {name: 'wildcard escaped star is literal', pattern: {s: [{wildcard: 'a\\*b'}]}, event: {s: 'a*b'}, match: true},
  {
    name: 'wildcard escaped star is not a wildcard',
    pattern: {s: [{wildcard: 'a\\*b'}]},
    event: {s: 'axb'},
    match: false,
  },
  {name: 'wildcard escaped backslash', pattern: {s: [{wildcard: 'a\\\\*'}]}, event: {s: 'a\\zzz'}, match: true},
  {name: 'wildcard escaped star then a wildcard', pattern: {s: [{wildcard: '\\**'}]}, event: {s: '*rest'}, match: true},
  {
    name: 'wildcard regex characters are literal',
    pattern: {s: [{wildcard: 'a.b*(c)'}]},
    event: {s: 'a.b-(c)'},
    match: true,
  },
  {
    name: 'wildcard regex characters are literal (no match)',
    pattern: {s: [{wildcard: 'a.b*'}]},
    event: {s: 'axb'},
    match: false,
  },
  {name: 'cidr /24 last address', pattern: {ip: [{cidr: '10.0.0.0/24'}]}, event: {ip: '10.0.0.255'}, match: true},
  {name: 'cidr /24 next block', pattern: {ip: [{cidr: '10.0.0.0/24'}]}, event: {ip: '10.0.1.0'}, match: false},
  {
    name: 'cidr host bits in the block are ignored',
    pattern: {ip: [{cidr: '10.0.0.77/24'}]},
    event: {ip: '10.0.0.1'},
    match: true,
  },
  {name: 'cidr /32 is one address', pattern: {ip: [{cidr: '10.0.0.7/32'}]}, event: order.data, match: true},
  {
    name: 'cidr /0 is every IPv4 address',
    pattern: {ip: [{cidr: '0.0.0.0/0'}]},
    event: {ip: '255.255.255.255'},
    match: true,
  },
  {name: 'cidr on the CloudEvent', pattern: {data: {ip: [{cidr: '10.0.0.0/24'}]}}, event: order, match: true},
  {name: 'cidr ignores non-addresses', pattern: {ip: [{cidr: '0.0.0.0/0'}]}, event: {ip: 'localhost'}, match: false},
  {name: 'cidr ignores numbers', pattern: {ip: [{cidr: '0.0.0.0/0'}]}, event: {ip: 167772167}, match: false},
  {name: 'cidr ignores leading zeros', pattern: {ip: [{cidr: '10.0.0.0/24'}]}, event: {ip: '10.0.0.07'}, match: false},
  {
    name: 'cidr ignores out-of-range octets',
    pattern: {ip: [{cidr: '10.0.0.0/8'}]},
    event: {ip: '10.0.0.256'},
    match: false,
  },
  {
    name: 'cidr IPv6',
    pattern: {ip: [{cidr: '2001:db8::/32'}]},
    event: {ip: '2001:db8:85a3::8a2e:370:7334'},
    match: true,
  },
  {
    name: 'cidr IPv6 any case',
    pattern: {ip: [{cidr: '2001:DB8::/32'}]},
    event: {ip: '2001:0db8:0:0:0:0:0:1'},
    match: true,
  },
  {name: 'cidr IPv6 outside', pattern: {ip: [{cidr: '2001:db8::/32'}]}, event: {ip: '2001:db9::1'}, match: false},
  {name: 'cidr IPv6 partial group', pattern: {ip: [{cidr: 'fe80::/10'}]}, event: {ip: 'febf::1'}, match: true},
  {name: 'cidr IPv6 partial group outside', pattern: {ip: [{cidr: 'fe80::/10'}]}, event: {ip: 'fec0::1'}, match: false},
  {name: 'cidr IPv6 /128', pattern: {ip: [{cidr: '::1/128'}]}, event: {ip: '::1'}, match: true},
  {name: 'cidr IPv6 rejects IPv4 events', pattern: {ip: [{cidr: '::/0'}]}, event: {ip: '10.0.0.1'}, match: false},
  {
    name: 'cidr IPv4 accepts IPv4-mapped IPv6',
    pattern: {ip: [{cidr: '10.0.0.0/24'}]},
    event: {ip: '::ffff:10.0.0.9'},
    match: true,
  },
  {name: 'cidr IPv4 rejects IPv6', pattern: {ip: [{cidr: '0.0.0.0/0'}]}, event: {ip: '2001:db8::1'}, match: false},
  {name: 'cidr ignores malformed IPv6', pattern: {ip: [{cidr: '::/0'}]}, event: {ip: '1::2::3'}, match: false},
  {
    name: 'anything-but matches null (a present value)',
    pattern: {s: [{'anything-but': 'x'}]},
    event: {s: null},
    match: true,
  },
  {
    name: 'anything-but on an object (no leaf) does not match',
    pattern: {s: [{'anything-but': 'x'}]},
    event: {s: {a: 1}},
    match: false,
  },
]

const tables: Array<[string, Case[]]> = [
  ['event-ruler and EventBridge documentation examples', documentation],
  ['$or', orCases],
  ['numbers', numbers],
  ['several conditions on one field', severalConditions],
  ['arrays in events', arrays],
  ['missing fields', missing],
  ['operator details', operators],
]

describe('pattern', () => {
  for (const [title, cases] of tables) {
    describe(title, () => {
      for (const c of cases) {
        it(`${c.match ? 'matches' : 'rejects'}: ${c.name}`, () => {
          const compiled = compilePattern(c.pattern)
          expect(compiled.matches(c.event), JSON.stringify(c.pattern)).to.equal(c.match)
          // explain must agree with matches on every case
          const why = compiled.explain(c.event)
          if (c.match) expect(why).to.equal(undefined)
          else expect(why?.reason, 'explain gives a reason').to.be.a('string').and.not.equal('')
        })
      }
    })
  }

  describe('malformed patterns', () => {
    const numeric = (args: unknown) => ({data: {order: {total: [{numeric: args}]}}})
    const n = '$.data.order.total[0].numeric'
    const x = (leaf: unknown) => ({x: leaf})
    const bad: Array<[string, unknown, string, RegExp]> = [
      ['top level array', [], '$', /must be a JSON object/],
      ['top level null', null, '$', /must be a JSON object/],
      ['top level string', '{"a":["b"]}', '$', /must be a JSON object/],
      ['empty pattern', {}, '$', /empty object/],
      [
        'leaf not an array',
        {source: 'ci'},
        '$.source',
        /expected an array of values such as \["abc"\] or a nested object, got "ci"/,
      ],
      ['leaf is a number', {source: 5}, '$.source', /expected an array/],
      ['leaf is null', {source: null}, '$.source', /expected an array/],
      ['empty leaf array', {source: []}, '$.source', /empty array/],
      ['empty nested object', {data: {}}, '$.data', /empty object/],
      ['nested array in leaf', {source: [['a']]}, '$.source[0]', /nested arrays are not allowed/],
      ['empty operator object', {source: [{}]}, '$.source[0]', /exactly one key/],
      ['two operators in one object', {source: [{prefix: 'a', suffix: 'b'}]}, '$.source[0]', /exactly one key.*got 2/],
      ['unknown operator', {source: [{regex: 'a.*'}]}, '$.source[0].regex', /unknown operator "regex"/],
      [
        'operator outside the array',
        {source: {prefix: 'a'}},
        '$.source.prefix',
        /"prefix" is an operator and must sit inside the field's array/,
      ],
      ['operator as a field', {prefix: 'abc'}, '$.prefix', /operator/],
      ['non-finite number', {x: [Infinity]}, '$.x[0]', /finite/],
      ['prefix number', x([{prefix: 3}]), '$.x[0].prefix', /prefix expects a string or \{"equals-ignore-case"/],
      ['prefix list', x([{prefix: ['a']}]), '$.x[0].prefix', /prefix expects a string/],
      ['prefix unknown option', x([{prefix: {foo: 'a'}}]), '$.x[0].prefix', /prefix expects/],
      [
        'prefix ignore-case number',
        x([{prefix: {'equals-ignore-case': 5}}]),
        '$.x[0].prefix.equals-ignore-case',
        /equals-ignore-case expects a string, got 5/,
      ],
      [
        'suffix ignore-case extra key',
        x([{suffix: {'equals-ignore-case': 'a', test: 'b'}}]),
        '$.x[0].suffix',
        /suffix expects/,
      ],
      [
        'equals-ignore-case list',
        x([{'equals-ignore-case': ['abc']}]),
        '$.x[0].equals-ignore-case',
        /expects a string/,
      ],
      ['wildcard number', x([{wildcard: 5}]), '$.x[0].wildcard', /wildcard expects a string/],
      ['wildcard consecutive stars', x([{wildcard: 'a**b'}]), '$.x[0].wildcard', /consecutive \* are not allowed/],
      ['wildcard bad escape', x([{wildcard: 'a\\b'}]), '$.x[0].wildcard', /backslash may only escape/],
      ['wildcard trailing backslash', x([{wildcard: 'a*\\'}]), '$.x[0].wildcard', /backslash may only escape/],
      ['numeric brief example', numeric(['>']), n, /numeric expects operator\/value pairs such as \[">", 0\]/],
      ['numeric not an array', numeric(5), n, /operator\/value pairs/],
      ['numeric empty', numeric([]), n, /operator\/value pairs/],
      ['numeric unknown operator', numeric(['=>', 1]), `${n}[0]`, /unknown numeric operator "=>"/],
      ['numeric string bound', numeric(['>', '5']), `${n}[1]`, /must be a number, got "5"/],
      ['numeric boolean bound', numeric(['<', true]), `${n}[1]`, /must be a number/],
      ['numeric empty range', numeric(['>', 30, '<', 1]), n, /range is empty/],
      ['numeric empty range at a point', numeric(['>', 1, '<', 1]), n, /range is empty/],
      ['numeric two lower bounds', numeric(['>', 0, '>=', 1]), n, /two lower bounds/],
      ['numeric two upper bounds', numeric(['<', 0, '<=', 1]), n, /two upper bounds/],
      ['numeric = with a range', numeric(['=', 1, '<', 5]), n, /cannot be combined/],
      ['numeric too many pairs', numeric(['>', 0, '<', 5, '<', 6]), n, /at most one lower and one upper/],
      ['numeric trailing operator', numeric(['>', 1, '<', 30, false]), n, /operator\/value pairs/],
      ['exists string', x([{exists: 'true'}]), '$.x[0].exists', /exists expects true or false, got "true"/],
      ['exists number', x([{exists: 1}]), '$.x[0].exists', /exists expects true or false/],
      ['cidr without prefix length', x([{cidr: '10.0.0.0'}]), '$.x[0].cidr', /prefix length/],
      ['cidr not an address', x([{cidr: 'foo'}]), '$.x[0].cidr', /cidr expects/],
      ['cidr number', x([{cidr: 10}]), '$.x[0].cidr', /cidr expects/],
      ['cidr bad octet', x([{cidr: '300.0.0.0/8'}]), '$.x[0].cidr', /"300.0.0.0" is not an IPv4 or IPv6 address/],
      ['cidr IPv4 mask too long', x([{cidr: '10.0.0.0/33'}]), '$.x[0].cidr', /IPv4 prefix length must be 0 to 32/],
      ['cidr IPv6 mask too long', x([{cidr: '2001:db8::/129'}]), '$.x[0].cidr', /IPv6 prefix length must be 0 to 128/],
      ['cidr two slashes', x([{cidr: '10.0.0.0/8/8'}]), '$.x[0].cidr', /cidr expects/],
      [
        'anything-but empty list',
        x([{'anything-but': []}]),
        '$.x[0].anything-but',
        /non-empty list of only strings or only numbers/,
      ],
      [
        'anything-but mixed list',
        x([{'anything-but': ['a', 1]}]),
        '$.x[0].anything-but',
        /only strings or only numbers/,
      ],
      ['anything-but boolean', x([{'anything-but': true}]), '$.x[0].anything-but', /anything-but expects/],
      ['anything-but null', x([{'anything-but': null}]), '$.x[0].anything-but', /anything-but expects/],
      [
        'anything-but unknown option',
        x([{'anything-but': {numeric: ['>', 1]}}]),
        '$.x[0].anything-but',
        /exactly one of prefix, suffix, equals-ignore-case or wildcard/,
      ],
      [
        'anything-but two options',
        x([{'anything-but': {prefix: 'a', suffix: 'b'}}]),
        '$.x[0].anything-but',
        /exactly one of/,
      ],
      [
        'anything-but empty prefix',
        x([{'anything-but': {prefix: ''}}]),
        '$.x[0].anything-but.prefix',
        /must not be empty/,
      ],
      [
        'anything-but empty prefix in a list',
        x([{'anything-but': {prefix: ['a', '']}}]),
        '$.x[0].anything-but.prefix[1]',
        /must not be empty/,
      ],
      [
        'anything-but prefix number',
        x([{'anything-but': {prefix: 27}}]),
        '$.x[0].anything-but.prefix',
        /expects a string/,
      ],
      [
        'anything-but suffix empty list',
        x([{'anything-but': {suffix: []}}]),
        '$.x[0].anything-but.suffix',
        /non-empty list of strings/,
      ],
      [
        'anything-but ignore-case numbers',
        x([{'anything-but': {'equals-ignore-case': [1, 2]}}]),
        '$.x[0].anything-but.equals-ignore-case[0]',
        /expects a string/,
      ],
      [
        'anything-but bad wildcard',
        x([{'anything-but': {wildcard: 'a**'}}]),
        '$.x[0].anything-but.wildcard',
        /consecutive/,
      ],
      [
        'anything-but bad wildcard in a list',
        x([{'anything-but': {wildcard: ['a*', 'b**']}}]),
        '$.x[0].anything-but.wildcard[1]',
        /consecutive/,
      ],
      ['$or not an array', {$or: {a: [1]}}, '$.$or', /"\$or" expects an array of at least 2 pattern objects/],
      ['$or with one alternative', {$or: [{a: [1]}]}, '$.$or', /at least 2/],
      ['$or alternative not an object', {$or: [{a: [1]}, 'b']}, '$.$or[1]', /must be a JSON object/],
      ['$or alternative empty', {$or: [{}, {a: [1]}]}, '$.$or[0]', /empty object/],
      ['error inside a $or alternative', {$or: [{a: [1]}, {b: 2}]}, '$.$or[1].b', /expected an array/],
      [
        'nested $or error',
        {detail: {$or: [{a: [1]}, {b: [{numeric: ['>']}]}]}},
        '$.detail.$or[1].b[0].numeric',
        /operator\/value pairs/,
      ],
      ['key needing quotes', {'a b': 'x'}, '$["a b"]', /expected an array/],
      ['dashed key stays readable', {'detail-type': []}, '$.detail-type', /empty array/],
    ]
    for (const [name, pattern, path, message] of bad) {
      it(`rejects ${name} at ${path}`, () => {
        let caught: unknown
        try {
          compilePattern(pattern)
        } catch (error) {
          caught = error
        }
        expect(caught).to.be.instanceOf(PatternError)
        const error = caught as PatternError
        expect(error.path).to.equal(path)
        expect(error.message).to.match(message)
        expect(error.message).to.include(path)
        expect(error.message).to.include(error.reason)
      })
    }

    it('is an InvalidInputError (exit code 2) with a stable code', () => {
      expect(() => compilePattern({a: 'b'}))
        .to.throw(PatternError)
        .that.satisfies(
          (error: PatternError) =>
            error instanceof InvalidInputError &&
            error.exitCode === 2 &&
            error.code === 'bad_pattern' &&
            error.name === 'PatternError',
        )
    })
  })

  describe('explain', () => {
    const pattern = compilePattern({
      type: ['order.created'],
      source: ['other'],
      data: {order: {total: [{numeric: ['>', 100]}]}},
    })

    it('is undefined when the event matches', () => {
      expect(compilePattern({type: ['order.created'], data: {ip: [{cidr: '10.0.0.0/8'}]}}).explain(order)).to.equal(
        undefined,
      )
    })

    it('names the first failing condition in pattern order', () => {
      expect(pattern.explain(order)).to.deep.equal({
        path: '$.source',
        expected: '["other"]',
        actual: '"ci"',
        reason: '"ci" does not match ["other"]',
      })
    })

    it('gives the nested path and the actual value', () => {
      const why = pattern.explain({...order, source: 'other'})
      expect(why).to.deep.include({path: '$.data.order.total', actual: '35.5', expected: '[{"numeric":[">",100]}]'})
      expect(why?.reason).to.equal('35.5 does not match [{"numeric":[">",100]}]')
    })

    it('says when a field is missing', () => {
      const why = compilePattern({data: {order: {currency: ['EUR']}}}).explain(order)
      expect(why).to.deep.include({path: '$.data.order.currency', actual: 'missing'})
      expect(why?.reason).to.equal('field is missing; expected ["EUR"]')
    })

    it('says when a field is present but should be absent', () => {
      const why = compilePattern({subject: [{exists: false}]}).explain(order)
      expect(why).to.deep.include({path: '$.subject', actual: '"x"'})
      expect(why?.reason).to.equal('"x" does not match [{"exists":false}]')
    })

    it('says when the value is an object rather than a leaf', () => {
      const why = compilePattern({data: [{exists: true}]}).explain(order)
      expect(why?.path).to.equal('$.data')
      expect(why?.reason).to.match(/^an object is not a leaf value/)
    })

    it('quotes keys that need it', () => {
      expect(compilePattern({'a.b': ['x']}).explain({})?.path).to.equal('$["a.b"]')
    })

    it('explains a $or by its alternatives', () => {
      const why = compilePattern({data: {$or: [{ip: ['1.2.3.4']}, {order: {id: [7]}}]}}).explain(order)
      expect(why?.path).to.equal('$.data')
      expect(why?.reason).to.include('none of the 2 "$or" alternatives matched')
      expect(why?.reason).to.include('$.data.ip: "10.0.0.7" does not match ["1.2.3.4"]')
      expect(why?.reason).to.include('$.data.order.id: 42 does not match [7]')
    })

    it('points into the first array element when none matches', () => {
      const why = compilePattern({items: {sku: ['b']}}).explain({items: [{sku: 'a'}, {sku: 'c'}]})
      expect(why?.path).to.equal('$.items[0].sku')
    })

    it('shortens long values to keep the reason on one line', () => {
      const why = compilePattern({s: ['x']}).explain({s: 'y'.repeat(500)})
      expect(why?.actual.length).to.be.at.most(60)
      expect(why?.reason).to.not.include('\n')
    })
  })
})
