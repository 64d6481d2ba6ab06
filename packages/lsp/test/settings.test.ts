import { describe, expect, it } from 'vitest'
import { defaultSettings, parseSettings } from '../src/index.ts'

describe('settings', () => {
  it('starts from useful defaults and merges partial input without touching the base', () => {
    const base = defaultSettings()
    const next = parseSettings(
      { completion: { debounceMs: 10 }, context: { maxSnippets: 1 } },
      base,
    )
    expect(next.completion).toMatchObject({ debounceMs: 10, enabled: true })
    expect(next.context.maxSnippets).toBe(1)
    expect(base.completion.debounceMs).toBe(0)
    expect(parseSettings(null, base)).toEqual(base)
  })

  it('names the offending key in clear messages', () => {
    expect(() => parseSettings({ completon: {} })).toThrow(
      /settings.completon is not a known setting; known sections: completion/,
    )
    expect(() => parseSettings({ completion: { debounce: 1 } })).toThrow(
      /settings.completion.debounce is not a known setting; known: enabled/,
    )
    expect(() => parseSettings({ completion: { debounceMs: -5 } })).toThrow(
      /settings.completion.debounceMs must be >= 0/,
    )
    expect(() => parseSettings({ diagnostics: { enabled: 'yes' } })).toThrow(
      /settings.diagnostics.enabled must be true or false/,
    )
    expect(() => parseSettings({ context: { maxPrefixChars: 'lots' } })).toThrow(
      /settings.context.maxPrefixChars must be a number/,
    )
    expect(() => parseSettings({ context: { nope: 1 } })).toThrow(
      /settings.context.nope is not a known setting/,
    )
    expect(() => parseSettings([1], undefined, 'initializationOptions')).toThrow(
      /initializationOptions must be an object/,
    )
    expect(() => parseSettings({ cache: 3 })).toThrow(/settings.cache must be an object/)
  })
})
