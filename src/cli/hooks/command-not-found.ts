import type {Hook} from '@oclif/core'

import {InvalidInputError} from '../../core/errors.js'
import {reportError} from '../errors.js'
import {isClose, levenshtein} from '../suggest.js'

/** An unknown command is a usage error (exit 2) with one line that suggests the nearest command. */
const hook: Hook<'command_not_found'> = async function (options) {
  // With space-separated topics the id also holds the arguments: compare each command with as
  // many leading words as it has.
  const words = options.id.split(':')
  const ids = options.config.commands.filter((c) => !c.hidden).map((c) => c.id)
  const nearest = ids
    .map((id) => {
      const typedPart = words.slice(0, id.split(':').length).join(':')
      return {id, typedPart, distance: levenshtein(id, typedPart)}
    })
    .sort((a, b) => a.distance - b.distance)[0]
  const close = nearest && isClose(nearest.typedPart, nearest.id)
  const typed = close ? nearest.typedPart.replaceAll(':', ' ') : words[0]
  const hint = close
    ? `did you mean \`mq ${nearest.id.replaceAll(':', ' ')}\`? See \`mq --help\``
    : 'see `mq --help` for the commands'
  process.exitCode = reportError(new InvalidInputError(`unknown command "${typed}"`, {code: 'usage', hint}), {
    json: options.argv?.includes('--json') ?? false,
  })
}

export default hook
