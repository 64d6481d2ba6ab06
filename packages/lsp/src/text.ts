/**
 * Position and offset helpers over UTF-16 text (the LSP default encoding).
 */
import type { Position } from 'vscode-languageserver-protocol'
import type { TextDocument } from 'vscode-languageserver-textdocument'

/**
 * The UTF-16 offset of `position` in `document`, clamped to the document
 * (a cursor past the last line or column lands at the end), and moved off the
 * middle of a surrogate pair so the text is never split inside one character.
 */
export function safeOffsetAt(document: TextDocument, position: Position): number {
  const line = Math.max(0, Math.min(position.line, document.lineCount - 1))
  const character = Math.max(0, position.character)
  let offset = document.offsetAt({ line, character })
  const text = document.getText()
  if (
    offset > 0 &&
    offset < text.length &&
    isHighSurrogate(text.charCodeAt(offset - 1)) &&
    isLowSurrogate(text.charCodeAt(offset))
  ) {
    offset -= 1
  }
  return offset
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff
}

/** Splits text into identifier-like tokens (used for similarity ranking). */
export function tokenize(text: string): string[] {
  return text.match(/[A-Za-z_$][A-Za-z0-9_$]*|\d+/g) ?? []
}

/** Jaccard similarity of two token sets, in [0, 1]. */
export function jaccard(a: ReadonlySet<string>, b: ReadonlySet<string>): number {
  if (a.size === 0 || b.size === 0) return 0
  let shared = 0
  const [small, large] = a.size <= b.size ? [a, b] : [b, a]
  for (const token of small) if (large.has(token)) shared++
  return shared / (a.size + b.size - shared)
}
