#!/usr/bin/env node
// Hot commands (publish, consume, ack…) start without loading oclif, from one bundled module
// graph (dist/fast, built by `npm run bundle`); everything else, and any unusual command line,
// goes through oclif (help, completion, usage errors).
import {globalFlagsLast, runFast} from '../dist/fast/launcher.js'

const args = globalFlagsLast(process.argv.slice(2))
const code = await runFast(args)
if (code === undefined) {
  const {execute} = await import('@oclif/core')
  await execute({args, dir: import.meta.url})
} else {
  // Exit now, leaving the broker connection open: closing it would checkpoint the WAL (fsyncs) for
  // nothing (src/core/store/database.ts, leaveOpenAtExit). Output is already flushed.
  process.exit(code)
}
