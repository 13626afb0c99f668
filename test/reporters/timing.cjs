// The spec reporter, plus how long each test file took (slowest first) and a closing line that
// counts every test by how it ended, including tests a failed hook kept from running and tests
// failed after they passed (a leaked process). Serial runs time each file with its hooks and count
// from the tree of tests; a parallel run (`--parallel`, see package.json) only sees each file's
// events after the file ended, so it sums the tests' own durations and counts the events — with
// `fail-hook-affected-tests` (.mocharc.json) a test a hook kept from running arrives as a failure.
// Mocha require()s reporters, hence CommonJS.
'use strict'
const Spec = require('mocha/lib/reporters/spec.js')
const path = require('node:path')

class Timing extends Spec {
  constructor(runner, options) {
    super(runner, options)
    this.parallel = typeof runner.isParallelMode === 'function' && runner.isParallelMode()
    this.started = new Map()
    this.seconds = new Map()
    this.ended = {passed: 0, failed: 0, pending: 0}
    // A test failed after it passed (its afterEach found a leak) counts as failed only.
    const passed = new Set()
    // In parallel mode each event carries a copy of the test (mocha's serializer turns `$$fullTitle`
    // into a `fullTitle()` function), so a test is known by its title and file.
    const key = (test) => (this.parallel ? `${test.fullTitle()}\0${test.file}` : test)
    runner.on('pass', (test) => {
      passed.add(key(test))
      this.ended.passed++
    })
    runner.on('fail', (test) => {
      if (test.type === 'hook' && !this.parallel) return // counted from the tree below
      if (passed.delete(key(test))) {
        this.stats.passes--
        this.ended.passed--
      }
      if (test.type !== 'hook') this.ended.failed++
    })
    runner.on('pending', () => this.ended.pending++)
    if (this.parallel) {
      runner.on('test end', (test) => this.add(test.file, (test.duration ?? 0) / 1000))
      return
    }
    runner.on('suite', (suite) => {
      if (suite.file && suite.parent && suite.parent.root) this.started.set(suite, process.hrtime.bigint())
    })
    runner.on('suite end', (suite) => {
      const at = this.started.get(suite)
      if (at !== undefined) this.add(suite.file, Number(process.hrtime.bigint() - at) / 1e9)
    })
  }

  add(file, seconds) {
    if (!file) return
    const name = path.relative(process.cwd(), file)
    this.seconds.set(name, (this.seconds.get(name) ?? 0) + seconds)
  }

  epilogue() {
    const rows = [...this.seconds].sort((a, b) => b[1] - a[1])
    console.log(`\n  ${this.parallel ? "tests' own time per file, run in parallel" : 'time per file'} (s):`)
    for (const [file, seconds] of rows) console.log(`  ${seconds.toFixed(1).padStart(7)}  ${file}`)
    super.epilogue()
    const counts = this.parallel ? {...this.ended, 'not run': 0} : this.countTree()
    const total = Object.values(counts).reduce((a, b) => a + b, 0)
    const parts = Object.entries(counts)
      .filter(([state, n]) => n > 0 || state === 'failed')
      .map(([state, n]) => `${n} ${state}`)
    console.log(`  ${total} tests: ${parts.join(', ')}\n`)
  }

  countTree() {
    const counts = {passed: 0, failed: 0, pending: 0, 'not run': 0}
    const visit = (suite) => {
      for (const test of suite.tests) {
        if (this.runner._grep.test(test.fullTitle()) === Boolean(this.runner._invert)) continue // left out by --grep
        counts[test.state ?? (test.isPending() ? 'pending' : 'not run')]++
      }
      suite.suites.forEach(visit)
    }
    visit(this.runner.suite)
    return counts
  }
}
Timing.description = 'spec, time per file, and every test counted by how it ended'
module.exports = Timing
