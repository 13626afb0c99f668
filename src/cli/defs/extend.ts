import {InvalidInputError} from '../../core/errors.js'
import {defineCommand} from '../definition.js'
import {renderSettled, settleReceipts} from './settle.js'

export default defineCommand({
  id: 'extend',
  summary: 'Extend the leases of deliveries still being worked on.',
  description:
    'The lease ends DUR from now. Receipts come from the arguments, or one per line on stdin. Exit 5 if a receipt is stale.',
  examples: ['<%= config.bin %> extend 12.Xk3pQ9aB --by 5m'],
  args: [
    {name: 'receipts', summary: 'Receipts whose leases to extend (default: stdin, one per line).', variadic: true},
  ],
  flags: {
    by: {kind: 'duration', summary: 'New lease length, from now.', helpValue: 'DUR'},
  },
  fast: true,
  run: ({argv, flags}, ctx) => {
    const by = flags.by
    if (by === undefined || by <= 0)
      throw new InvalidInputError('--by is required', {hint: 'e.g. mq extend RECEIPT --by 5m'})
    return settleReceipts(ctx, argv, (broker, receipts) => broker.extend(receipts, by))
  },
  render: renderSettled('extended'),
})
