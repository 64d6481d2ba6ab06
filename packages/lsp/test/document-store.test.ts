import { isAideError } from '@aide/core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { DocumentStore } from '../src/index.ts'
import { positionAtOffset } from './helpers.ts'

describe('DocumentStore', () => {
  it('applies full and incremental changes and tracks versions', () => {
    const store = new DocumentStore()
    store.open('file:///a.ts', 'typescript', 1, 'const a = 1\n')
    store.change('file:///a.ts', 2, [
      { range: { start: { line: 0, character: 10 }, end: { line: 0, character: 11 } }, text: '42' },
    ])
    expect(store.get('file:///a.ts')?.text).toBe('const a = 42\n')
    store.change('file:///a.ts', 3, [{ text: 'replaced' }])
    expect(store.get('file:///a.ts')).toMatchObject({ text: 'replaced', version: 3 })
    expect(store.stats()).toMatchObject({ open: 1, opens: 1, changes: 2 })
  })

  it('ignores a change whose version is not newer, so nothing rolls back', () => {
    const store = new DocumentStore()
    store.open('file:///a.ts', 'typescript', 5, 'v5')
    expect(store.change('file:///a.ts', 4, [{ text: 'old' }])).toBeUndefined()
    expect(store.change('file:///a.ts', 5, [{ text: 'same' }])).toBeUndefined()
    expect(store.get('file:///a.ts')?.text).toBe('v5')
    expect(store.stats().staleChanges).toBe(2)
  })

  it('handles CRLF text and UTF-16 positions after surrogate pairs', () => {
    const store = new DocumentStore()
    store.open('untitled:Untitled-1', '', 1, 'a😀b\r\nline2\r\n')
    // 😀 is two UTF-16 code units: "b" is at character 3.
    store.change('untitled:Untitled-1', 2, [
      { range: { start: { line: 0, character: 3 }, end: { line: 0, character: 4 } }, text: 'B' },
    ])
    store.change('untitled:Untitled-1', 3, [
      { range: { start: { line: 1, character: 5 }, end: { line: 1, character: 5 } }, text: '!' },
    ])
    expect(store.get('untitled:Untitled-1')?.text).toBe('a😀B\r\nline2!\r\n')
  })

  it('accepts empty documents and edits at the end of the file', () => {
    const store = new DocumentStore()
    store.open('untitled:empty', 'plaintext', 0, '')
    store.change('untitled:empty', 1, [
      { range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, text: 'x' },
    ])
    // A position past the end is clamped by the text document.
    store.change('untitled:empty', 2, [
      { range: { start: { line: 9, character: 9 }, end: { line: 9, character: 9 } }, text: 'y' },
    ])
    expect(store.get('untitled:empty')?.text).toBe('xy')
  })

  it('rejects malformed input naming the field and keeps what was stored', () => {
    const store = new DocumentStore({ maxDocumentLength: 10 })
    store.open('file:///a.ts', 'typescript', 1, 'short')
    const attempts: Array<() => unknown> = [
      () => store.change('file:///a.ts', 2, [{ text: 5 as never }]),
      () =>
        store.change('file:///a.ts', 2, [
          {
            text: 'x',
            range: { start: { line: -1, character: 0 }, end: { line: 0, character: 0 } },
          },
        ]),
      () => store.change('file:///a.ts', 2, 'nope' as never),
      () => store.open('', 'typescript', 1, ''),
      () => store.open('file:///b.ts', 'typescript', 1.5, ''),
    ]
    for (const attempt of attempts) {
      let caught: unknown
      try {
        attempt()
      } catch (error) {
        caught = error
      }
      expect(isAideError(caught, 'E_INVALID_INPUT')).toBe(true)
    }
    expect(() => store.change('file:///a.ts', 2, [{ text: 'far too long text' }])).toThrow(
      /over the limit/,
    )
    expect(() => store.change('file:///nope.ts', 2, [{ text: '' }])).toThrow(/not open/)
    expect(store.get('file:///a.ts')).toMatchObject({ text: 'short', version: 1 })
  })

  it('notifies listeners, isolating one that throws', () => {
    const store = new DocumentStore()
    const seen: string[] = []
    store.onDidChange(() => {
      throw new Error('listener bug')
    })
    const handle = store.onDidChange((event) =>
      seen.push(`${event.kind}:${event.snapshot.version}`),
    )
    store.open('file:///a.ts', 'ts', 1, '')
    store.change('file:///a.ts', 2, [{ text: 'x' }])
    store.close('file:///a.ts')
    handle.dispose()
    store.open('file:///a.ts', 'ts', 1, '')
    expect(seen).toEqual(['open:1', 'change:2', 'close:2'])
  })

  it('incremental edits agree with plain string splicing (property)', () => {
    const alphabet = fc.constantFrom('a', 'b', '\n', '\r\n', '😀', ' ')
    const text = fc.array(alphabet, { maxLength: 30 }).map((parts) => parts.join(''))
    fc.assert(
      fc.property(
        text,
        fc.array(fc.tuple(fc.nat(), fc.nat(), text), { maxLength: 8 }),
        (initial, edits) => {
          const store = new DocumentStore()
          store.open('file:///p.ts', 'ts', 0, initial)
          let expected = initial
          edits.forEach(([a, b, insert], index) => {
            // Offsets at code-point boundaries that do not split a CRLF, as real editors send.
            const boundaries = [0]
            for (let i = 0; i < expected.length; ) {
              const step =
                expected.codePointAt(i)! > 0xffff ? 2 : expected.startsWith('\r\n', i) ? 2 : 1
              i += step
              boundaries.push(i)
            }
            const start = boundaries[a % boundaries.length]!
            const end = Math.max(start, boundaries[b % boundaries.length]!)
            store.change('file:///p.ts', index + 1, [
              {
                range: {
                  start: positionAtOffset(expected, start),
                  end: positionAtOffset(expected, end),
                },
                text: insert,
              },
            ])
            expected = expected.slice(0, start) + insert + expected.slice(end)
          })
          expect(store.get('file:///p.ts')?.text).toBe(expected)
        },
      ),
      { numRuns: 200 },
    )
  })
})
