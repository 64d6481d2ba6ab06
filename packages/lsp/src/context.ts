/**
 * Context gathering: the text around the cursor under a budget, plus
 * snippets from other open documents ranked by similarity to the text near
 * the cursor.
 */
import { assertNumber, assertObject, invalidInput } from '@aide/core'
import type { Position } from 'vscode-languageserver-protocol'
import type { DocumentSnapshot } from './document-store.js'
import { jaccard, safeOffsetAt, tokenize } from './text.js'

/** Budgets for {@link gatherContext}. Every field is optional. */
export interface ContextOptions {
  /** Characters of text before the cursor to keep. Default 4000. */
  maxPrefixChars?: number
  /** Characters of text after the cursor to keep. Default 1000. */
  maxSuffixChars?: number
  /** Snippets from other documents to include. Default 3 (0 turns them off). */
  maxSnippets?: number
  /** Lines per snippet window. Default 20. */
  snippetLines?: number
  /** Lines before the cursor compared with candidate snippets. Default 10. */
  queryLines?: number
  /** Other documents scanned at most (most recent first). Default 50. */
  maxDocuments?: number
  /** Characters of each other document scanned at most. Default 200000. */
  maxScanChars?: number
}

/** A window of another document that looks like the code at the cursor. */
export interface ContextSnippet {
  /** Where it comes from. */
  uri: string
  /** First line of the window (0-based). */
  startLine: number
  /** The window's text. */
  text: string
  /** Jaccard similarity of its tokens with the text near the cursor, in (0, 1]. */
  score: number
}

/** Everything a completion model sees. */
export interface CompletionContextData {
  /** Text before the cursor (at most `maxPrefixChars`, cut at a line start when possible). */
  prefix: string
  /** Text after the cursor (at most `maxSuffixChars`). */
  suffix: string
  /** Whether the prefix was cut to fit the budget. */
  prefixTruncated: boolean
  /** Whether the suffix was cut to fit the budget. */
  suffixTruncated: boolean
  /** The cursor as a UTF-16 offset into the document (after clamping). */
  offset: number
  /** The text of the cursor's line before the cursor. */
  linePrefix: string
  /** The text of the cursor's line after the cursor. */
  lineSuffix: string
  /** Similar snippets from other documents, best first. */
  snippets: ContextSnippet[]
}

const DEFAULTS: Required<ContextOptions> = {
  maxPrefixChars: 4000,
  maxSuffixChars: 1000,
  maxSnippets: 3,
  snippetLines: 20,
  queryLines: 10,
  maxDocuments: 50,
  maxScanChars: 200_000,
}

/** Validates {@link ContextOptions} and fills in defaults. */
export function resolveContextOptions(
  options: ContextOptions = {},
  field = 'options',
): Required<ContextOptions> {
  assertObject(options, field)
  const resolved = { ...DEFAULTS }
  for (const key of Object.keys(DEFAULTS) as Array<keyof ContextOptions>) {
    const value = options[key]
    if (value === undefined) continue
    assertNumber(value, `${field}.${key}`, {
      min: key === 'snippetLines' || key === 'queryLines' ? 1 : 0,
      integer: true,
    })
    resolved[key] = value
  }
  return resolved
}

/**
 * Gathers the context for a completion at `position` in `document`.
 * `others` are the other open documents (the current one is skipped if present).
 * The cursor is clamped to the document, and never splits a surrogate pair.
 */
export function gatherContext(
  document: DocumentSnapshot,
  position: Position,
  others: readonly DocumentSnapshot[] = [],
  options: ContextOptions = {},
): CompletionContextData {
  assertObject(document, 'document')
  assertObject(position, 'position')
  if (!Array.isArray(others)) throw invalidInput('others', 'must be an array of document snapshots')
  const budget = resolveContextOptions(options)
  const text = document.text
  const offset = safeOffsetAt(document.document, position)

  let prefixStart = Math.max(0, offset - budget.maxPrefixChars)
  if (prefixStart > 0) {
    // Start at a line boundary when one is inside the budget, so the model sees whole lines.
    const nextLine = text.indexOf('\n', prefixStart)
    if (nextLine !== -1 && nextLine < offset) prefixStart = nextLine + 1
    if (isLowSurrogate(text.charCodeAt(prefixStart))) prefixStart++
  }
  let suffixEnd = Math.min(text.length, offset + budget.maxSuffixChars)
  if (suffixEnd < text.length && isLowSurrogate(text.charCodeAt(suffixEnd))) suffixEnd--

  const lineStart = text.lastIndexOf('\n', offset - 1) + 1
  let lineEnd = text.indexOf('\n', offset)
  if (lineEnd === -1) lineEnd = text.length
  const lineSuffix = text.slice(offset, lineEnd).replace(/\r$/, '')

  const snippets =
    budget.maxSnippets > 0 ? rankSnippets(document, text, offset, others, budget) : []
  return {
    prefix: text.slice(prefixStart, offset),
    suffix: text.slice(offset, suffixEnd),
    prefixTruncated: prefixStart > 0,
    suffixTruncated: suffixEnd < text.length,
    offset,
    linePrefix: text.slice(lineStart, offset),
    lineSuffix,
    snippets,
  }
}

function rankSnippets(
  current: DocumentSnapshot,
  text: string,
  offset: number,
  others: readonly DocumentSnapshot[],
  budget: Required<ContextOptions>,
): ContextSnippet[] {
  let queryStart = offset
  for (let i = 0; i < budget.queryLines && queryStart > 0; i++) {
    queryStart = text.lastIndexOf('\n', queryStart - 2) + 1
  }
  const query = new Set(tokenize(text.slice(queryStart, offset)))
  if (query.size === 0) return []
  const best: ContextSnippet[] = []
  let scanned = 0
  for (const other of others) {
    if (other.uri === current.uri) continue
    if (scanned++ >= budget.maxDocuments) break
    const lines = other.text.slice(0, budget.maxScanChars).split(/\r?\n/)
    const step = Math.max(1, Math.floor(budget.snippetLines / 2))
    let top: ContextSnippet | undefined
    for (let start = 0; start < lines.length; start += step) {
      const window = lines.slice(start, start + budget.snippetLines)
      const windowText = window.join('\n')
      const score = jaccard(query, new Set(tokenize(windowText)))
      if (score > 0 && (!top || score > top.score))
        top = { uri: other.uri, startLine: start, text: windowText, score }
      if (start + budget.snippetLines >= lines.length) break
    }
    if (top) best.push(top)
  }
  best.sort((a, b) => b.score - a.score)
  return best.slice(0, budget.maxSnippets)
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff
}
