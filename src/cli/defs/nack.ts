import {defineCommand} from '../definition.js'
import {renderSettled, settleReceipts} from './settle.js'

export default defineCommand({
  id: 'nack',
  summary: 'Give deliveries back: redeliver them (after --delay) or dead-letter them.',
  description:
    'Receipts come from the arguments, or one per line on stdin. A message out of deliveries goes to its dead-letter queue. Exit 5 if a receipt is stale.',
  examples: [
    '<%= config.bin %> nack 12.Xk3pQ9aB --delay 30s',
    '<%= config.bin %> nack 12.Xk3pQ9aB --dead-letter --reason "bad input"',
  ],
  args: [{name: 'receipts', summary: 'Receipts to give back (default: stdin, one per line).', variadic: true}],
  flags: {
    delay: {kind: 'duration', summary: 'Redeliver after DUR (default: at once).', helpValue: 'DUR'},
    'dead-letter': {kind: 'boolean', summary: 'Send to the dead-letter queue now instead of redelivering.'},
    reason: {kind: 'string', summary: 'Recorded as the last error (x-last-error on a dead letter).', helpValue: 'TEXT'},
  },
  fast: true,
  run: ({argv, flags}, ctx) =>
    settleReceipts(
      ctx,
      argv,
      (broker, receipts) =>
        broker.nack(receipts, {delayMs: flags.delay, deadLetter: flags['dead-letter'], error: flags.reason}),
      {wantedDeadLetter: flags['dead-letter']},
    ),
  render: renderSettled('released'),
})
