import {assertNoLeakedProcesses, removeTempHomes} from './helpers.js'

/** Root hooks: every test must end with no mq process it started still running. */
export const mochaHooks = {
  async afterEach(this: Mocha.Context) {
    await assertNoLeakedProcesses()
  },
  afterAll() {
    removeTempHomes()
  },
}
