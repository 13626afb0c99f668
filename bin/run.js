#!/usr/bin/env node
// Hot commands (publish, consume, ack…) start without loading oclif, from one bundled module
// graph (dist/fast, built by `npm run bundle`); everything else, and any unusual command line,
// goes through oclif (help, completion, usage errors).
import {runFast} from '../dist/fast/launcher.js'

const code = await runFast(process.argv.slice(2))
if (code === undefined) {
  const {execute} = await import('@oclif/core')
  await execute({dir: import.meta.url})
} else {
  process.exitCode = code
}
