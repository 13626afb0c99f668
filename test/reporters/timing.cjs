// The spec reporter, plus how long each test file took (hooks included, slowest first) and a
// closing line that counts every test by how it ended, including tests a failed hook kept from
// running and tests failed after they passed (a leaked process). Mocha require()s reporters,
// hence CommonJS.
'use strict'
const Spec = require('mocha/lib/reporters/spec.js')
const path = require('node:path')

class Timing extends Spec {
  constructor(runner, options) {
    super(runner, options)
    this.started = new Map()
    this.seconds = new Map()
    // A test failed after it passed (its afterEach found a leak) counts as failed only.
    const passed = new Set()
    runner.on('pass', (test) => passed.add(test))
    runner.on('fail', (test) => {
      if (passed.delete(test)) this.stats.passes--
    })
    runner.on('suite', (suite) => {
      if (suite.file && suite.parent && suite.parent.root) this.started.set(suite, process.hrtime.bigint())
    })
    runner.on('suite end', (suite) => {
      const at = this.started.get(suite)
      if (at === undefined) return
      const file = path.relative(process.cwd(), suite.file)
      this.seconds.set(file, (this.seconds.get(file) ?? 0) + Number(process.hrtime.bigint() - at) / 1e9)
    })
  }

  epilogue() {
    const rows = [...this.seconds].sort((a, b) => b[1] - a[1])
    console.log('\n  time per file (s):')
    for (const [file, seconds] of rows) console.log(`  ${seconds.toFixed(1).padStart(7)}  ${file}`)
    super.epilogue()
    const counts = {passed: 0, failed: 0, pending: 0, 'not run': 0}
    const visit = (suite) => {
      for (const test of suite.tests) {
        if (this.runner._grep.test(test.fullTitle()) === Boolean(this.runner._invert)) continue // left out by --grep
        counts[test.state ?? (test.isPending() ? 'pending' : 'not run')]++
      }
      suite.suites.forEach(visit)
    }
    visit(this.runner.suite)
    const total = Object.values(counts).reduce((a, b) => a + b, 0)
    const parts = Object.entries(counts)
      .filter(([state, n]) => n > 0 || state === 'failed')
      .map(([state, n]) => `${n} ${state}`)
    console.log(`  ${total} tests: ${parts.join(', ')}\n`)
  }
}
Timing.description = 'spec, time per file, and every test counted by how it ended'
module.exports = Timing
