import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createCache } from '../src/cache.ts'
import { diskTier } from '../src/disk.ts'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'aide-cache-input-'))
  dirs.push(dir)
  return dir
}

describe('bad input leaves what is stored intact', () => {
  it('a value the lower tiers cannot serialise is refused with E_SERIALIZE; the old value stays everywhere', async () => {
    const dir = tempDir()
    const cache = createCache<unknown>({ l3: diskTier({ dir }) })
    await cache.set('k', 'old')
    // This set used to resolve: L1 held the function while L3 kept 'old'.
    await expect(cache.set('k', () => 1)).rejects.toMatchObject({ code: 'E_SERIALIZE' })
    expect(cache.getIfPresent('k')).toBeUndefined()
    expect(await cache.get('k')).toBe('old')
    // A caller's error is not a tier fault.
    expect(cache.stats().tiers[1]).toMatchObject({ errors: 0, breaker: 'closed' })
    await expect(cache.getOrSet('fresh', async () => Symbol('x'))).rejects.toMatchObject({
      code: 'E_SERIALIZE',
    })
    expect(cache.getIfPresent('fresh')).toBeUndefined()
    await cache.dispose()
    const reopened = createCache<unknown>({ l3: diskTier({ dir }) })
    expect(await reopened.get('k')).toBe('old')
    await reopened.dispose()
  })

  it('keys and tags with a lone surrogate are refused (as UTF-8 they would share storage)', async () => {
    const dir = tempDir()
    const cache = createCache<string>({ l3: diskTier({ dir }) })
    await cache.set('user\uD83D\uDE00', 'well-formed pair')
    await expect(cache.set('user\uD800', 'A')).rejects.toMatchObject({
      code: 'E_INVALID_INPUT',
      details: { field: 'key' },
    })
    await expect(cache.set('k', 'v', { tags: ['ok', 't\uDC00'] })).rejects.toMatchObject({
      details: { field: 'options.tags[1]' },
    })
    expect(() => cache.namespace('n\uD801')).toThrow(
      expect.objectContaining({ code: 'E_INVALID_INPUT' }),
    )
    await expect(diskTier({ dir }).get('user\uD801')).rejects.toMatchObject({
      code: 'E_INVALID_INPUT',
    })
    expect(await cache.get('user\uD83D\uDE00')).toBe('well-formed pair')
    await cache.dispose()
  })

  it('a tag may not impersonate a namespace', async () => {
    const cache = createCache<number>()
    const ns = cache.namespace('foo')
    await ns.set('a', 1)
    await expect(cache.set('x', 2, { tags: ['@ns:foo:'] })).rejects.toMatchObject({
      details: { field: 'options.tags[0]' },
    })
    await expect(cache.deleteByTag('@ns:foo:')).rejects.toMatchObject({
      details: { field: 'tag' },
    })
    expect(await ns.get('a')).toBe(1)
    await cache.dispose()
  })

  it('a weigher returning NaN, a negative number or a string is refused before anything changes', async () => {
    let weight: unknown = 10
    const cache = createCache<string>({
      l1: { maxBytes: 100, weigher: () => weight as number },
    })
    await cache.set('a', 'kept')
    for (const bad of [Number.NaN, -1000, '10', Number.POSITIVE_INFINITY]) {
      weight = bad
      await expect(cache.set('b', 'x')).rejects.toMatchObject({
        code: 'E_INVALID_INPUT',
        details: { field: 'options.weigher' },
      })
    }
    weight = 10
    expect(cache.getIfPresent('a')).toBe('kept')
    expect(cache.getIfPresent('b')).toBeUndefined()
    expect(cache.stats().l1).toMatchObject({ bytes: 10, size: 1 })
    await cache.dispose()
  })

  it('namespace() after dispose is E_DISPOSED; getIfPresent finds nothing', async () => {
    const cache = createCache<number>()
    await cache.set('a', 1)
    await cache.dispose()
    expect(() => cache.namespace('x')).toThrow(expect.objectContaining({ code: 'E_DISPOSED' }))
    expect(cache.getIfPresent('a')).toBeUndefined()
  })
})
