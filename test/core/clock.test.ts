import {expect} from 'chai'

import type {Delivery, ReceiveOptions} from '../../src/core/broker.js'
import {deliveryBatches} from '../../src/core/consumer.js'
import {RateLimiter} from '../../src/core/rate-limiter.js'

/**
 * In-process waits (rate limits, --wait deadlines) measure elapsed time on an injectable monotonic
 * clock, never on the system clock, which can step (README: Clocks). A fake clock shows which
 * clock they read, without timing anything.
 */
describe('in-process waits use the monotonic clock', () => {
  it('the rate limiter refills from its clock', async () => {
    let now = 1_000_000
    const limiter = new RateLimiter(50, () => now) // 50/s, holding at most 5
    expect(await limiter.take(10)).to.equal(1) // the token it starts with
    now += 100 // 100ms later on its clock: 5 tokens
    expect(await limiter.take(10)).to.equal(5)
    now += 40
    expect(await limiter.take(10)).to.equal(2)
  })

  it('the --wait deadline of a consume loop runs on its clock', async () => {
    let now = 5_000
    const waits: number[] = []
    const receive = async (options: ReceiveOptions): Promise<Delivery[]> => {
      waits.push(options.waitMs ?? 0)
      now += 600 // each receive takes 600ms on the loop's clock
      return [{id: String(waits.length), body: 'x', headers: {}, attempt: 1, publishedAt: 0} as Delivery]
    }
    const batches: Delivery[][] = []
    for await (const batch of deliveryBatches(receive, {
      count: 10,
      follow: false,
      waitMs: 1000,
      autoAck: true,
      clock: () => now,
    }))
      batches.push(batch)
    // 1000ms budget: the second receive may wait what is left (400ms); then the deadline has passed
    expect(waits).to.deep.equal([1000, 400])
    expect(batches).to.have.length(2)
  })
})
