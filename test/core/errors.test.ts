import {expect} from 'chai'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import {ERROR_CODES, InvalidInputError, NotFoundError, StoreError, UnexpectedError} from '../../src/core/errors.js'
import {ROOT} from '../helpers.js'

describe('error codes', () => {
  it('README.md lists exactly the typed error codes, each with its exit code and meaning', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    const section = readme.slice(
      readme.indexOf('## Exit codes'),
      readme.indexOf('\n## ', readme.indexOf('## Exit codes') + 1),
    )
    const rows = [...section.matchAll(/^\|\s*`([a-z0-9_]+)`\s*\|\s*(\d+)\s*\|\s*(.*?)\s*\|$/gm)].map(
      ([, code, exitCode, meaning]) => ({code, exitCode: Number(exitCode), meaning: meaning.replaceAll('\\|', '|')}),
    )
    const typed = Object.entries(ERROR_CODES).map(([code, {exitCode, meaning}]) => ({
      code,
      exitCode: Number(exitCode),
      meaning,
    }))
    expect(rows).to.deep.equal(typed)
  })

  it('the error classes carry the exit code their code is listed with', () => {
    const errors = [
      new InvalidInputError('x'),
      new InvalidInputError('x', {code: 'bad_json'}),
      new NotFoundError('queue', 'q'),
      new StoreError('x'),
      new StoreError('x', {code: 'disk_full'}),
      new UnexpectedError('x'),
    ]
    for (const error of errors) expect(error.exitCode, error.code).to.equal(ERROR_CODES[error.code].exitCode)
  })
})
