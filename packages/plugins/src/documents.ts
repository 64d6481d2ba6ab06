/**
 * The document, diagnostic and code-action shapes exchanged with plugins.
 * They follow LSP conventions (zero-based lines, UTF-16 characters) so a
 * language server can pass them through unchanged.
 */
import { AideError, assertNumber, assertObject, assertString } from '@aide/core'

/** A text document handed to plugins. */
export interface TextDocument {
  /** Document URI, e.g. `file:///work/src/db.ts`. */
  uri: string
  /** LSP language id, e.g. `typescript`. */
  languageId: string
  /** Document version, if the caller tracks one. */
  version?: number
  /** Full text. */
  text: string
}

/** A position: zero-based line and UTF-16 character offset. */
export interface Position {
  /** Zero-based line. */
  line: number
  /** Zero-based UTF-16 code unit offset within the line. */
  character: number
}

/** A half-open range between two positions. */
export interface Range {
  /** Inclusive start. */
  start: Position
  /** Exclusive end. */
  end: Position
}

/** A replacement of `range` by `newText`. */
export interface TextEdit {
  /** What to replace. */
  range: Range
  /** Replacement text. */
  newText: string
}

/** Diagnostic severities, as in LSP. */
export type Severity = 'error' | 'warning' | 'information' | 'hint'

/** A mechanical fix a plugin offers for a finding. */
export interface QuickFix {
  /** Title shown to the user, e.g. `Read API_KEY from the environment`. */
  title: string
  /** Edits to apply to the document. */
  edits: TextEdit[]
}

/** One finding reported by a plugin. */
export interface PluginDiagnostic {
  /** Stable rule id, e.g. `hardcoded-secret`. */
  ruleId: string
  /** Severity. */
  severity: Severity
  /** What is wrong. */
  message: string
  /** What to do about it. */
  remediation: string
  /** Where. */
  range: Range
  /** Quick fixes, when the fix is mechanical. */
  fixes: QuickFix[]
  /** Id of the plugin that reported it (set by the host). */
  source: string
}

/** A code action returned by a plugin's `code-action` entry point. */
export interface PluginCodeAction {
  /** Title shown to the user. */
  title: string
  /** LSP code action kind, e.g. `quickfix`. */
  kind: string
  /** The rule the action addresses, if any. */
  ruleId?: string
  /** The range the action applies to (used to match the requested range). */
  range: Range
  /** Edits to apply. */
  edits: TextEdit[]
  /** Id of the plugin that offered it (set by the host). */
  source: string
}

const SEVERITIES: readonly Severity[] = ['error', 'warning', 'information', 'hint']

/** Validates a caller-supplied document. */
export function assertDocument(value: unknown, field: string): asserts value is TextDocument {
  assertObject(value, field)
  assertString(value.uri, `${field}.uri`)
  assertString(value.languageId, `${field}.languageId`)
  assertString(value.text, `${field}.text`, { allowEmpty: true })
  if (value.version !== undefined)
    assertNumber(value.version, `${field}.version`, { integer: true })
}

function position(value: unknown, field: string): Position {
  assertObject(value, field)
  assertNumber(value.line, `${field}.line`, { integer: true, min: 0 })
  assertNumber(value.character, `${field}.character`, { integer: true, min: 0 })
  return { line: value.line, character: value.character }
}

/** Validates a range. */
export function parseRange(value: unknown, field: string): Range {
  assertObject(value, field)
  return {
    start: position(value.start, `${field}.start`),
    end: position(value.end, `${field}.end`),
  }
}

function edits(value: unknown, field: string): TextEdit[] {
  if (!Array.isArray(value))
    throw new AideError('E_INVALID_INPUT', `${field} must be an array`, { details: { field } })
  return value.map((edit, i) => {
    assertObject(edit, `${field}[${i}]`)
    assertString(edit.newText, `${field}[${i}].newText`, { allowEmpty: true })
    return { range: parseRange(edit.range, `${field}[${i}].range`), newText: edit.newText }
  })
}

function fixes(value: unknown, field: string): QuickFix[] {
  if (value === undefined) return []
  if (!Array.isArray(value))
    throw new AideError('E_INVALID_INPUT', `${field} must be an array`, { details: { field } })
  return value.map((fix, i) => {
    assertObject(fix, `${field}[${i}]`)
    assertString(fix.title, `${field}[${i}].title`)
    return { title: fix.title, edits: edits(fix.edits, `${field}[${i}].edits`) }
  })
}

/** Validates the output of a `diagnostics` entry point (an array, or `{ diagnostics: [...] }`). */
export function parseDiagnostics(value: unknown, source: string): PluginDiagnostic[] {
  const list = Array.isArray(value)
    ? value
    : (value as { diagnostics?: unknown } | null)?.diagnostics
  if (!Array.isArray(list)) {
    throw new AideError('E_INVALID_INPUT', 'output must be an array of diagnostics', {
      details: { field: 'output' },
    })
  }
  return list.map((item, i) => {
    const field = `output[${i}]`
    assertObject(item, field)
    assertString(item.ruleId, `${field}.ruleId`, { maxLength: 200 })
    const severity = item.severity ?? 'warning'
    if (!SEVERITIES.includes(severity)) {
      throw new AideError(
        'E_INVALID_INPUT',
        `${field}.severity must be one of ${SEVERITIES.join(', ')}`,
        {
          details: { field: `${field}.severity` },
        },
      )
    }
    assertString(item.message, `${field}.message`)
    const remediation = item.remediation ?? ''
    assertString(remediation, `${field}.remediation`, { allowEmpty: true })
    return {
      ruleId: item.ruleId,
      severity,
      message: item.message,
      remediation,
      range: parseRange(item.range, `${field}.range`),
      fixes: fixes(item.fixes, `${field}.fixes`),
      source,
    }
  })
}

/** Validates the output of a `code-action` entry point (an array, or `{ actions: [...] }`). */
export function parseCodeActions(value: unknown, source: string): PluginCodeAction[] {
  const list = Array.isArray(value) ? value : (value as { actions?: unknown } | null)?.actions
  if (!Array.isArray(list)) {
    throw new AideError('E_INVALID_INPUT', 'output must be an array of code actions', {
      details: { field: 'output' },
    })
  }
  return list.map((item, i) => {
    const field = `output[${i}]`
    assertObject(item, field)
    assertString(item.title, `${field}.title`)
    const kind = item.kind ?? 'quickfix'
    assertString(kind, `${field}.kind`)
    const action: PluginCodeAction = {
      title: item.title,
      kind,
      range: parseRange(item.range, `${field}.range`),
      edits: edits(item.edits, `${field}.edits`),
      source,
    }
    if (item.ruleId !== undefined) {
      assertString(item.ruleId, `${field}.ruleId`)
      action.ruleId = item.ruleId
    }
    return action
  })
}

function before(a: Position, b: Position): boolean {
  return a.line < b.line || (a.line === b.line && a.character < b.character)
}

/** Whether two ranges touch or overlap (an empty range at a boundary counts). */
export function rangesIntersect(a: Range, b: Range): boolean {
  return !before(a.end, b.start) && !before(b.end, a.start)
}
