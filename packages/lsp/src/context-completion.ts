/**
 * A completion provider that needs no model: it continues the current line
 * with what followed the same text elsewhere in the document and in similar
 * open documents, and completes a partly typed identifier from the words
 * around. Useful on its own (offline, zero configuration) and as the fallback
 * behind a model.
 */
import { assertNumber, assertObject, throwIfAborted } from '@aide/core'
import type { CompletionProvider, CompletionRequest, CompletionSuggestion } from './providers.js'
import { tokenize } from './text.js'

/** Options of {@link createContextCompletionProvider}. */
export interface ContextCompletionOptions {
  /** Longest piece of the current line matched against earlier text. Default 48. */
  maxAnchorChars?: number
  /** Shortest piece matched (shorter matches are noise). Default 3. */
  minAnchorChars?: number
}

/** Creates the model-free completion provider described in the module comment. */
export function createContextCompletionProvider(
  options: ContextCompletionOptions = {},
): CompletionProvider {
  assertObject(options, 'options')
  if (options.maxAnchorChars !== undefined)
    assertNumber(options.maxAnchorChars, 'options.maxAnchorChars', { min: 1, integer: true })
  if (options.minAnchorChars !== undefined)
    assertNumber(options.minAnchorChars, 'options.minAnchorChars', { min: 1, integer: true })
  const maxAnchor = options.maxAnchorChars ?? 48
  const minAnchor = Math.min(options.minAnchorChars ?? 3, maxAnchor)
  return {
    name: 'context',
    async provideCompletions(request: CompletionRequest): Promise<CompletionSuggestion[]> {
      throwIfAborted(request.signal, 'context completion')
      const { context, maxItems } = request
      const sources = [context.prefix, context.suffix, ...context.snippets.map((s) => s.text)]
      const found = new Map<string, number>()
      const add = (text: string, score: number) => {
        if (text.trim().length === 0) return
        found.set(text, Math.max(found.get(text) ?? 0, score))
      }

      // Line continuation: the longest tail of the current line seen before, and what followed it.
      const line = context.linePrefix.trimStart()
      for (let length = Math.min(maxAnchor, line.length); length >= minAnchor; length--) {
        const anchor = line.slice(line.length - length)
        let hits = 0
        for (const [index, source] of sources.entries()) {
          // In the prefix, skip the occurrence that is the cursor itself.
          const limit = index === 0 ? source.length - anchor.length - 1 : source.length
          let at = source.indexOf(anchor)
          while (at !== -1 && at <= limit) {
            const start = at + anchor.length
            let end = source.indexOf('\n', start)
            if (end === -1) end = source.length
            const rest = source.slice(start, end).replace(/\r$/, '')
            if (rest.length > 0 && !context.lineSuffix.startsWith(rest)) {
              add(rest, length * 10 + (index === 0 ? 1 : 0))
              hits++
            }
            at = source.indexOf(anchor, at + 1)
          }
        }
        if (hits > 0 && found.size >= maxItems) break
      }

      // Identifier completion: the word being typed, completed from known words.
      const partial = /[A-Za-z_$][A-Za-z0-9_$]*$/.exec(context.linePrefix)?.[0]
      if (partial && partial.length >= 1) {
        const counts = new Map<string, number>()
        for (const source of sources) {
          for (const word of tokenize(source)) {
            if (word.length > partial.length && word.startsWith(partial))
              counts.set(word, (counts.get(word) ?? 0) + 1)
          }
        }
        for (const [word, count] of counts) add(word.slice(partial.length), Math.min(9, count))
      }
      throwIfAborted(request.signal, 'context completion')
      return [...found.entries()]
        .sort((a, b) => b[1] - a[1] || a[0].length - b[0].length)
        .slice(0, maxItems)
        .map(([text, score]) => ({ text, detail: 'aide: from context', score: confidence(score) }))
    },
  }
}

/**
 * Confidence of a context suggestion from its ranking score: a continuation of
 * 20 or more matched characters is as sure as this provider gets; identifier
 * completions (scores below 10) stay low.
 */
function confidence(score: number): number {
  return score < 10 ? 0.2 + score / 50 : Math.min(1, Math.floor(score / 10) / 20)
}
