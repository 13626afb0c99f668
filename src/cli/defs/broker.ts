import {type BrokerDescription, type Feature, FEATURES} from '../../core/capabilities.js'
import {defineCommand} from '../definition.js'
import {keyValues, table} from '../output.js'

export const brokerInfo = defineCommand({
  id: 'broker:info',
  summary: 'Show the broker in use and which features are native, emulated or refused.',
  description: `The broker is chosen by --broker URL, else MQ_URL, else --home / MQ_HOME, else the per-user folder.
On a nats:// or amqp:// broker this connects and reads the server version (and NATS cluster); refused features fail
with exit 2 and the reason shown here.`,
  examples: [
    '<%= config.bin %> broker info',
    '<%= config.bin %> broker info --broker nats://127.0.0.1:4222',
    '<%= config.bin %> broker info --json',
  ],
  flags: {},
  run: (_input, ctx): Promise<BrokerDescription> => ctx.broker().describe(),
  render(info) {
    const server = info.server
    const head = keyValues('broker', [
      ['url', info.url],
      ['driver', info.driver],
      ...(server
        ? ([
            ['server', `${server.name ?? ''} ${info.driver === 'nats' ? 'nats-server ' : ''}${server.version}`.trim()],
            [
              'cluster',
              server.cluster
                ? `${server.cluster} (${server.servers ?? 1} servers)`
                : info.driver === 'nats'
                  ? 'none (a single server)'
                  : '-',
            ],
          ] as [string, string][])
        : []),
    ])
    const rows = (Object.keys(FEATURES) as Feature[]).map((feature) => {
      const entry = info.capabilities.features[feature]
      return [FEATURES[feature], entry.support, entry.note ?? '']
    })
    return `${head}\n\n${table(['FEATURE', 'SUPPORT', 'HOW / WHY'], rows)}`
  },
})
