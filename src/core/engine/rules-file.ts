import {chmod} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'

import {JSONFile} from 'lowdb/node'
import {Low} from 'lowdb'

import {InvalidInputError, StoreError} from '../errors.js'
import {withFileLock} from '../file-lock.js'
import {refuseLinks} from '../no-follow.js'
import {findTooDeep, MAX_JSON_DEPTH} from '../json-depth.js'
import {type RulesDocument, type ValidatedDocument, validateDocument} from './rules.js'

export interface LoadedRules {
  path: string
  /** The folder relative paths in the document resolve against. */
  dir: string
  validated: ValidatedDocument
}

/**
 * The rules document is small, human-edited JSON, so it lives in lowdb (atomic rewrites), never
 * in SQLite with the messages. A missing file means no rules yet.
 */
export async function readRules(path: string): Promise<LoadedRules> {
  const db = await open(path)
  return {path, dir: dirname(path), validated: validateDocument(db.data, path)}
}

/**
 * Applies `edit` to the document and writes it back only if the result validates, so the file on
 * disk is never left invalid by mqctl.
 */
export async function editRules(
  path: string,
  edit: (document: RulesDocument) => void,
  privateFile: boolean,
): Promise<LoadedRules> {
  return withFileLock(path, () => editLocked(path, edit, privateFile))
}

async function editLocked(
  path: string,
  edit: (document: RulesDocument) => void,
  privateFile: boolean,
): Promise<LoadedRules> {
  const db = await open(path)
  validateDocument(db.data, path) // refuse to edit a document that is already broken
  edit(db.data)
  const validated = validateDocument(db.data, path)
  // lowdb writes `.rules.json.tmp` next to the file, then renames it: a link planted there would
  // be written through (README: Security).
  refuseLinks(join(dirname(path), `.${basename(path)}.tmp`))
  try {
    await db.write()
    if (privateFile) await chmod(path, 0o600)
  } catch (error) {
    throw new StoreError(`cannot write ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`, {
      cause: error,
      hint: 'check the folder permissions',
    })
  }
  return {path, dir: dirname(path), validated}
}

/** The rules document read from `text` (the contents of `path`), validated as {@link readRules} does. */
export function rulesFromText(text: string, path: string): LoadedRules {
  let data: RulesDocument | null
  try {
    data = JSON.parse(text) as RulesDocument | null
  } catch (error) {
    throw notJson(path, error as SyntaxError)
  }
  // As lowdb reads it: a document that is null (or otherwise falsy) is no rules yet.
  const document = data || {rules: []}
  return {path, dir: dirname(path), validated: validateDocument(checkDepth(document, path), path)}
}

function notJson(path: string, error: SyntaxError): InvalidInputError {
  return new InvalidInputError(`${path} is not valid JSON (${error.message})`, {
    code: 'bad_rules',
    hint: 'fix the file, or move it away to start afresh',
  })
}

async function open(path: string): Promise<Low<RulesDocument>> {
  const db = new Low<RulesDocument>(new JSONFile<RulesDocument>(path), {rules: []})
  try {
    await db.read()
  } catch (error) {
    if (error instanceof SyntaxError) throw notJson(path, error)
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EISDIR')
      throw new InvalidInputError(`${path} is a folder, not a rules file`, {
        code: 'bad_rules',
        hint: 'point --rules or MQ_RULES at a JSON file',
      })
    throw new StoreError(`cannot read ${path}: ${code ?? error}`, {
      cause: error,
      hint: 'check the path and its permissions',
    })
  }
  db.data = checkDepth(db.data ?? {rules: []}, path)
  return db
}

function checkDepth(data: RulesDocument, path: string): RulesDocument {
  // A few levels above the pattern limit, so a too-deep pattern is reported by its rule; this
  // guards everything else in the document (validation and rewriting recurse per level).
  const tooDeep = findTooDeep(data, MAX_JSON_DEPTH + 8)
  if (tooDeep !== undefined) {
    throw new InvalidInputError(`${path}: nested deeper than ${MAX_JSON_DEPTH} levels at ${tooDeep}`, {
      code: 'bad_rules',
      hint: 'fix the rules document (see README: Rules)',
    })
  }
  return data
}
