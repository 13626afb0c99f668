import {defineCommand} from '../definition.js'
import {renderSettled, settleReceipts} from './settle.js'

export default defineCommand({
  id: 'ack',
  summary: 'Acknowledge deliveries: the messages are done and removed.',
  description:
    'Receipts come from the arguments, or one per line on stdin. Exit 5 if a receipt is stale (its lease ran out and the message was redelivered, or it was already settled); the others are still acked.',
  examples: [
    '<%= config.bin %> ack 12.Xk3pQ9aB',
    '<%= config.bin %> consume jobs --ack manual --json -n 100 | jq -r .receipt | <%= config.bin %> ack',
  ],
  args: [{name: 'receipts', summary: 'Receipts to acknowledge (default: stdin, one per line).', variadic: true}],
  flags: {},
  fast: true,
  run: ({argv}, ctx) => settleReceipts(ctx, argv, (broker, receipts, more) => broker.ack(receipts, {more})),
  render: renderSettled('acked'),
})
