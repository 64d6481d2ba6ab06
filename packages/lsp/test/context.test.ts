import { describe, expect, it } from 'vitest'
import { DocumentStore, gatherContext } from '../src/index.ts'
import { positionAfter } from './helpers.ts'

function snapshot(uri: string, text: string) {
  const store = new DocumentStore()
  return store.open(uri, 'typescript', 1, text)
}

describe('gatherContext', () => {
  it('splits prefix and suffix at the cursor', () => {
    const text = 'function add(a, b) {\n  return a + b\n}\n'
    const document = snapshot('file:///a.ts', text)
    const context = gatherContext(document, positionAfter(text, 'return '), [], {})
    expect(context.prefix).toBe('function add(a, b) {\n  return ')
    expect(context.suffix).toBe('a + b\n}\n')
    expect(context.linePrefix).toBe('  return ')
    expect(context.lineSuffix).toBe('a + b')
  })

  it('keeps the prefix and suffix under budget, cutting the prefix at a line start', () => {
    const lines = Array.from({ length: 200 }, (_, i) => `const value${i} = ${i}`)
    const text = lines.join('\n')
    const document = snapshot('file:///big.ts', text)
    const context = gatherContext(document, positionAfter(text, 'const value150 = '), [], {
      maxPrefixChars: 100,
      maxSuffixChars: 30,
    })
    expect(context.prefix.length).toBeLessThanOrEqual(100)
    expect(context.prefixTruncated).toBe(true)
    expect(context.prefix.startsWith('const value')).toBe(true)
    expect(context.suffix.length).toBeLessThanOrEqual(30)
    expect(context.suffixTruncated).toBe(true)
  })

  it('clamps a cursor past the end of the file and handles empty documents', () => {
    const document = snapshot('file:///a.ts', 'abc\r\ndef')
    const context = gatherContext(document, { line: 99, character: 99 })
    expect(context.prefix).toBe('abc\r\ndef')
    expect(context.suffix).toBe('')
    const empty = gatherContext(snapshot('untitled:x', ''), { line: 0, character: 5 })
    expect(empty).toMatchObject({ prefix: '', suffix: '', offset: 0, snippets: [] })
  })

  it('never splits a surrogate pair, at the cursor or at the budget edge', () => {
    const text = 'x = "😀😀"'
    const document = snapshot('file:///e.ts', text)
    // Character 6 is between the two code units of the first emoji.
    const context = gatherContext(document, { line: 0, character: 6 })
    expect(context.prefix).toBe('x = "')
    const edge = gatherContext(document, { line: 0, character: 9 }, [], { maxPrefixChars: 3 })
    expect(edge.prefix).toBe('😀')
  })

  it('ranks snippets from other documents by similarity and honours the count budget', () => {
    const current = 'const total = items.reduce((sum, item) => sum + item.price, '
    const related =
      'function price(items) {\n  return items.reduce((sum, item) => sum + item.price, 0)\n}'
    const unrelated = 'export const colors = ["red", "green"]\nexport const sizes = [1, 2]'
    const somewhat = 'const items = load()\nconsole.log(items)'
    const document = snapshot('file:///current.ts', current)
    const others = [
      snapshot('file:///unrelated.ts', unrelated),
      snapshot('file:///related.ts', related),
      snapshot('file:///somewhat.ts', somewhat),
      document,
    ]
    const context = gatherContext(document, { line: 0, character: current.length }, others, {
      maxSnippets: 2,
    })
    expect(context.snippets.map((s) => s.uri)).toEqual([
      'file:///related.ts',
      'file:///somewhat.ts',
    ])
    expect(context.snippets[0]!.score).toBeGreaterThan(context.snippets[1]!.score)
    expect(
      gatherContext(document, { line: 0, character: 5 }, others, { maxSnippets: 0 }).snippets,
    ).toEqual([])
  })

  it('rejects bad budgets naming the field', () => {
    const document = snapshot('file:///a.ts', 'x')
    expect(() =>
      gatherContext(document, { line: 0, character: 0 }, [], { maxPrefixChars: -1 }),
    ).toThrow(/options.maxPrefixChars/)
    expect(() => gatherContext(document, { line: 0, character: 0 }, 'x' as never)).toThrow(/others/)
  })
})
