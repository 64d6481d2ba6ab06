import { ManualClock } from '@aide/core'
import { describe, expect, it } from 'vitest'
import { CompletionCache } from '../src/index.ts'

const base = { uri: 'file:///a.ts', suffix: '\n}' }

describe('CompletionCache', () => {
  it('answers the same spot exactly and reuses a suggestion while the user types along it', () => {
    const cache = new CompletionCache()
    cache.set({ ...base, offset: 10, prefix: 'return ite' }, ['ms.length', 'rator.next()'])
    expect(cache.lookup({ ...base, offset: 10, prefix: 'return ite' })).toEqual({
      suggestions: ['ms.length', 'rator.next()'],
      reused: false,
    })
    expect(cache.lookup({ ...base, offset: 12, prefix: 'return items' })).toEqual({
      suggestions: ['.length'],
      reused: true,
    })
    expect(cache.lookup({ ...base, offset: 13, prefix: 'return items.' })).toEqual({
      suggestions: ['length'],
      reused: true,
    })
    // Typed the whole suggestion: nothing left to offer.
    expect(cache.lookup({ ...base, offset: 19, prefix: 'return items.length' })).toBeUndefined()
    // Diverged from every suggestion.
    expect(cache.lookup({ ...base, offset: 12, prefix: 'return itex' })).toBeUndefined()
    expect(cache.stats()).toMatchObject({ hits: 3, reuses: 2, misses: 2 })
  })

  it('does not reuse across documents, different suffixes or earlier offsets', () => {
    const cache = new CompletionCache()
    cache.set({ ...base, offset: 4, prefix: 'abc.' }, ['def'])
    expect(
      cache.lookup({ ...base, uri: 'file:///b.ts', offset: 4, prefix: 'abc.' }),
    ).toBeUndefined()
    expect(cache.lookup({ ...base, suffix: 'other', offset: 4, prefix: 'abc.' })).toBeUndefined()
    expect(cache.lookup({ ...base, offset: 3, prefix: 'abc' })).toBeUndefined()
  })

  it('expires entries by its clock and evicts the least recently used', () => {
    const clock = new ManualClock()
    const cache = new CompletionCache({ ttlMs: 1000, maxEntries: 2, clock })
    cache.set({ ...base, offset: 1, prefix: 'a' }, ['1'])
    cache.set({ ...base, offset: 2, prefix: 'ab' }, ['2'])
    expect(cache.lookup({ ...base, offset: 1, prefix: 'a' })?.suggestions).toEqual(['1'])
    cache.set({ ...base, offset: 3, prefix: 'abc' }, ['3'])
    expect(cache.stats()).toMatchObject({ entries: 2, evictions: 1 })
    expect(cache.lookup({ ...base, offset: 2, prefix: 'ab' })).toBeUndefined()
    clock.advance(1000)
    expect(cache.lookup({ ...base, offset: 3, prefix: 'abc' })).toBeUndefined()
    expect(cache.stats().expirations).toBe(2)
  })

  it('invalidates a document and rejects malformed keys', () => {
    const cache = new CompletionCache()
    cache.set({ ...base, offset: 1, prefix: 'a' }, ['b'])
    cache.invalidate(base.uri)
    expect(cache.stats().entries).toBe(0)
    expect(() => cache.lookup({ ...base, offset: -1, prefix: '' })).toThrow(/key.offset/)
    expect(() => cache.set({ ...base, offset: 1, prefix: 'a' }, 'x' as never)).toThrow(
      /suggestions/,
    )
    expect(() => new CompletionCache({ maxEntries: 0 })).toThrow(/options.maxEntries/)
  })
})
