import {formatDuration} from '../units.js'
import type {ActionSummary, TriggerSummary} from './engine.js'

/**
 * The daemon log's lines for the event engine (`mq daemon logs`): one per action outcome as it is
 * settled, then one per event when all its rules are done.
 */
export function actionLogLine(seq: number, eventType: string, a: ActionSummary): string {
  const status =
    a.httpStatus !== undefined ? ` HTTP ${a.httpStatus}` : a.exitCode !== undefined ? ` exit ${a.exitCode}` : ''
  const tries = a.attempts === 1 ? '1 attempt' : `${a.attempts} attempts`
  const error = a.outcome !== 'ok' && a.error ? `: ${oneLine(a.error)}` : ''
  return `event #${seq} ${eventType}: rule ${a.rule} action #${a.action + 1} ${a.type} ${oneLine(a.target)} ${a.outcome}${status} after ${tries} in ${formatDuration(a.durationMs)}${error}`
}

export function eventLogLine(s: TriggerSummary): string {
  const outcome =
    s.duplicateOf !== undefined
      ? `duplicate of #${s.duplicateOf}`
      : s.matched.length === 0
        ? 'no rule matched'
        : s.ok
          ? 'done'
          : 'FAILED'
  const rules = s.matched.length > 0 ? ` (rules: ${s.matched.join(', ')})` : ''
  return `event #${s.seq} ${s.type} from ${s.source}: ${outcome}${rules} in ${formatDuration(s.durationMs)}`
}

function oneLine(text: string): string {
  return text.replaceAll(/\s*\n\s*/g, ' ').slice(0, 300)
}
