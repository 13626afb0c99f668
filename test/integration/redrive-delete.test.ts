import {expect} from 'chai'

import {FileBroker} from '../../src/core/file-broker/index.js'
import {start, tempHome, waitFor} from '../helpers.js'

describe('dlq redrive while another process deletes the queue', function () {
  this.timeout(60_000)

  it('exits 1 with a sentence, not "unexpected failure"', async () => {
    const home = tempHome()
    const broker = new FileBroker(home)
    try {
      await broker.publish('jobs', [{body: 'a'}, {body: 'b'}, {body: 'c'}])
      const deliveries = await broker.receive('jobs', {max: 3, autoAck: false})
      await broker.nack(
        deliveries.map((d) => d.receipt!),
        {deadLetter: true, error: 'test'},
      )
      // At 12/m the redrive moves one message, then waits 5 s for its next token: the queue is
      // deleted in that gap, as soon as the first message is back (a signal, not a guessed delay).
      const redrive = start(['dlq', 'redrive', 'jobs', '--yes', '--rate', '12/m'], {home, timeoutMs: 50_000})
      await waitFor(async () => (await broker.queueStats('jobs')).depth === 1, 'the first message redriven')
      await broker.deleteQueue('jobs')
      const result = await redrive.done
      expect(result.code, result.stderr).to.equal(1)
      expect(result.stderr.trim()).to.match(
        /^error: queue jobs was deleted while its dead letters were being redriven \(the 1 message moved back before went with it\); the other dead letters stay in jobs\.dlq/,
      )
      expect(result.stderr).to.not.match(/unexpected/)
      expect((await broker.queueStats('jobs.dlq')).depth).to.equal(2)
    } finally {
      await broker.close()
    }
  })
})
