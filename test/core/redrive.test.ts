import {expect} from 'chai'

import {DeletedMeanwhileError} from '../../src/core/errors.js'
import {FileBroker} from '../../src/core/file-broker/index.js'
import {tempHome} from '../helpers.js'

describe('dlq redrive while its queue is deleted', () => {
  let broker: FileBroker
  beforeEach(() => {
    broker = new FileBroker(tempHome())
  })
  afterEach(() => broker.close())

  async function deadLetter(queue: string, bodies: string[]): Promise<void> {
    await broker.publish(
      queue,
      bodies.map((body) => ({body})),
    )
    const deliveries = await broker.receive(queue, {max: bodies.length, autoAck: false})
    await broker.nack(
      deliveries.map((d) => d.receipt!),
      {deadLetter: true, error: 'test'},
    )
  }

  it('fails with a typed error (exit 1) and a sentence, not a TypeError; the dead letters stay', async () => {
    await deadLetter('jobs', ['a', 'b', 'c'])
    let deleted = false
    // The filter runs inside redrive's batch: deleting the queue there makes the redrive meet a
    // queue that is gone, as it does when `mq queue delete` commits between two batches.
    const redrive = broker.redrive('jobs', {
      filter: () => {
        if (!deleted) {
          deleted = true
          void broker.deleteQueue('jobs')
        }
        return true
      },
    })
    const error = await redrive.then(
      () => undefined,
      (error_: unknown) => error_,
    )
    expect(error).to.be.instanceOf(DeletedMeanwhileError)
    expect((error as DeletedMeanwhileError).exitCode).to.equal(1)
    expect((error as DeletedMeanwhileError).line).to.match(
      /^queue jobs was deleted while its dead letters were being redriven \(nothing had been moved\); the other dead letters stay in jobs\.dlq/,
    )
    // the batch that met the deleted queue changed nothing
    expect((await broker.queueStats('jobs.dlq')).depth).to.equal(3)
  })
})
