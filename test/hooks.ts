import {killLeakedProcesses, ownTest, removeTempHomes, stopTestDaemons} from './helpers.js'
import {stopRabbitMq} from './rabbitmq-server.js'

let endTest: (() => void) | undefined

/**
 * Root hooks. The daemons a test started are stopped when it ends. Every test must end with no
 * mq process it started still running. A leak fails the
 * test that leaked (after the processes are killed) and the run goes on: a hook that throws would
 * make mocha skip every remaining test, so the failure is handed to mocha through the hook's
 * error slot (`hook.error(err)`), which mocha reports as a failure of the current test.
 */
export const mochaHooks = {
  beforeEach(this: Mocha.Context) {
    // The helpers learn which test calls them, so a test's body that outlives it (it timed out
    // while waiting) cannot start processes in the next test and fail that one for its leak.
    endTest = this.currentTest && ownTest(this.currentTest)
  },
  async afterEach(this: Mocha.Context) {
    endTest?.()
    endTest = undefined
    let problem: string | undefined
    try {
      await stopTestDaemons()
      problem = await killLeakedProcesses()
    } catch (error) {
      problem = `could not check for leaked processes: ${(error as Error).message}`
    }
    if (!problem) return
    // A test that already failed (e.g. timed out while its processes ran) keeps its own error.
    if (this.currentTest?.state === 'failed') console.error(`  (${this.currentTest.fullTitle()}: ${problem})`)
    else (this.test as Mocha.Hook).error(new Error(problem))
  },
  async afterAll() {
    // The shared RabbitMQ node (test/rabbitmq-server.ts), if a suite started one.
    await stopRabbitMq()
    removeTempHomes()
  },
}
