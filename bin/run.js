#!/usr/bin/env node
// Hot commands (publish, consume, ack…) start without loading oclif, from one bundled file
// (dist/fast/launcher.cjs, built by `npm run bundle`) whose compiled code is cached next to it;
// everything else, and any unusual command line, goes through oclif (help, completion, usage
// errors). This file is CommonJS (bin/package.json): an ES module entry would start Node's ES
// module loader, which costs a one-shot command several milliseconds (ARCHITECTURE.md, "Two ways in").
'use strict'
const {join} = require('node:path')

const {loadBundle} = require('../dist/fast/boot.cjs')

const fast = loadBundle(join(__dirname, '..', 'dist', 'fast', 'launcher.cjs'))
const {globalFlagsLast, runFast} = fast.exports
const args = globalFlagsLast(process.argv.slice(2))
void runFast(args).then((code) => {
  // oclif finds the package from the folder it is given (not bin/, which has a package.json of its own).
  if (code === undefined) return require('@oclif/core').execute({args, dir: join(__dirname, '..')})
  fast.saveCache()
  // Exit now, leaving the broker connection open: closing it would checkpoint the WAL (fsyncs) for
  // nothing (src/core/store/database.ts, leaveOpenAtExit). Output is already flushed.
  process.exit(code)
})
