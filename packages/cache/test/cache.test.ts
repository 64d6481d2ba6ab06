import { AideError, type CacheLike, ManualClock } from '@aide/core'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { AdaptiveTtl } from '../src/adaptive-ttl.ts'
import { type CacheEvents, createCache, MultiLevelCache } from '../src/cache.ts'
import type { StoredEntry } from '../src/entry.ts'
import { MemoryTier } from '../src/memory-tier.ts'
import type { CacheTier } from '../src/tier.ts'

const caches: MultiLevelCache<unknown>[] = []
function make<V = unknown>(options: Parameters<typeof createCache>[0] = {}): MultiLevelCache<V> {
  const cache = createCache<V>(options)
  caches.push(cache as MultiLevelCache<unknown>)
  return cache
}
afterEach(async () => {
  for (const cache of caches.splice(0)) await cache.dispose()
})

/** A lower tier backed by a Map whose failures the test switches on and off (unit test of our own logic). */
function flakyTier(name = 'flaky') {
  const map = new Map<string, StoredEntry>()
  const state = { failing: false, hang: false, calls: 0 }
  const guard = async () => {
    state.calls++
    if (state.hang) await new Promise(() => undefined)
    if (state.failing) throw new Error(`${name} is down`)
  }
  const tier: CacheTier = {
    name,
    async get(key) {
      await guard()
      return map.get(key)
    },
    async set(key, entry) {
      await guard()
      map.set(key, entry)
    },
    async delete(key) {
      await guard()
      return map.delete(key)
    },
    async deleteByTag(tag) {
      await guard()
      let n = 0
      for (const [key, entry] of map) if (entry.tags.includes(tag) && map.delete(key)) n++
      return n
    },
    async clear() {
      await guard()
      map.clear()
    },
    stats: () => ({ size: map.size, evictions: 0 }),
    dispose: () => undefined,
  }
  return { tier, map, state }
}

describe('createCache basics', () => {
  it('satisfies CacheLike from @aide/core', async () => {
    const cache: CacheLike<number> = make<number>()
    await cache.set('a', 1)
    expect(await cache.get('a')).toBe(1)
    expect(await cache.getOrSet('b', async () => 2)).toBe(2)
    expect(await cache.delete('a')).toBe(true)
    expect(await cache.get('a')).toBeUndefined()
  })

  it('keeps live values in L1 (same object back, no serialisation)', async () => {
    const cache = make()
    const value = { nested: new Map([[1, new Date(0)]]) }
    await cache.set('v', value)
    expect(await cache.get('v')).toBe(value)
    expect(cache.getIfPresent('v')).toBe(value)
  })

  it('expires entries after their TTL (ManualClock)', async () => {
    const clock = new ManualClock(1_000)
    const cache = make({ clock, ttl: 100 })
    await cache.set('a', 1)
    await cache.set('b', 2, { ttl: 500 })
    clock.set(1_099)
    expect(await cache.get('a')).toBe(1)
    clock.set(1_100)
    expect(await cache.get('a')).toBeUndefined()
    expect(await cache.has('b')).toBe(true)
    clock.set(1_500)
    expect(await cache.has('b')).toBe(false)
  })

  it('rejects bad input naming the field, without losing stored data', async () => {
    const cache = make()
    await cache.set('keep', 1)
    await expect(cache.get('')).rejects.toMatchObject({
      code: 'E_INVALID_INPUT',
      details: { field: 'key' },
    })
    await expect(cache.get(42 as never)).rejects.toMatchObject({ code: 'E_INVALID_INPUT' })
    await expect(cache.set('x', 1, { ttl: -1 })).rejects.toMatchObject({
      details: { field: 'options.ttl' },
    })
    await expect(cache.set('x', 1, { tags: ['ok', 3 as never] })).rejects.toMatchObject({
      details: { field: 'options.tags[1]' },
    })
    await expect(cache.getOrSet('x', 'nope' as never)).rejects.toMatchObject({
      details: { field: 'loader' },
    })
    await expect(
      cache.getOrSet('x', async () => 1, { hardTimeout: Number.NaN }),
    ).rejects.toMatchObject({
      details: { field: 'options.hardTimeout' },
    })
    await expect(cache.get('a', { signal: 'x' as never })).rejects.toMatchObject({
      details: { field: 'options.signal' },
    })
    expect(() => createCache({ ttl: Number.NaN })).toThrow(/options.ttl/)
    expect(() => createCache({ l2: { get: 1 } as never })).toThrow(/options.l2/)
    expect(() => createCache({ breaker: { failureThreshold: 0 } })).toThrow(
      /options.breaker.failureThreshold/,
    )
    expect(() => createCache({ events: {} as never })).toThrow(/options.events.emit/)
    expect(() => cache.namespace('')).toThrow(AideError)
    expect(() => new MultiLevelCache({}, '', [])).toThrow(/createCache/)
    expect(await cache.get('keep')).toBe(1)
  })

  it('throws E_DISPOSED after dispose; dispose is idempotent', async () => {
    const cache = createCache()
    await cache.dispose()
    await cache.dispose()
    await expect(cache.set('a', 1)).rejects.toMatchObject({ code: 'E_DISPOSED' })
    await expect(cache.get('a')).rejects.toMatchObject({ code: 'E_DISPOSED' })
  })
})

describe('getOrSet', () => {
  it('calls the loader exactly once for 10,000 concurrent cold callers', async () => {
    const cache = make<number>()
    const loader = vi.fn(async () => {
      await new Promise((resolve) => setTimeout(resolve, 5))
      return 42
    })
    const results = await Promise.all(
      Array.from({ length: 10_000 }, () => cache.getOrSet('hot', loader)),
    )
    expect(loader).toHaveBeenCalledTimes(1)
    expect(results.every((value) => value === 42)).toBe(true)
    expect(cache.stats().coalesced).toBe(9_999)
  })

  it('serves stale within grace at once and refreshes in the background', async () => {
    const clock = new ManualClock(0)
    const cache = make<number>({ clock, ttl: 100, grace: 1_000 })
    await cache.getOrSet('k', async () => 1)
    clock.set(200)
    let resolveLoad!: (value: number) => void
    const slow = new Promise<number>((resolve) => {
      resolveLoad = resolve
    })
    expect(await cache.getOrSet('k', () => slow)).toBe(1)
    expect(cache.stats().staleServed).toBe(1)
    resolveLoad(2)
    await vi.waitFor(async () => expect(await cache.get('k')).toBe(2), { timeout: 10_000 })
    clock.set(2_000)
    expect(await cache.get('k')).toBeUndefined()
  })

  it('serves stale when the loader fails, and the failure is counted', async () => {
    const clock = new ManualClock(0)
    const cache = make<number>({ clock, ttl: 100, grace: 1_000 })
    await cache.set('k', 1)
    clock.set(150)
    const failing = vi.fn(async () => {
      throw new Error('backend down')
    })
    expect(await cache.getOrSet('k', failing, { softTimeout: 50 })).toBe(1)
    await vi.waitFor(() => expect(cache.stats().loadErrors).toBe(1), { timeout: 10_000 })
    expect(await cache.getOrSet('k', failing)).toBe(1)
  })

  it('soft timeout returns the stale value while a slow loader finishes later', async () => {
    const clock = new ManualClock(0)
    const cache = make<number>({ clock, ttl: 100, grace: 10_000 })
    await cache.set('k', 1)
    clock.set(150)
    let resolveLoad!: (value: number) => void
    const pending = cache.getOrSet(
      'k',
      () =>
        new Promise<number>((resolve) => {
          resolveLoad = resolve
        }),
      { softTimeout: 20 },
    )
    await clock.advanceAsync(25)
    expect(await pending).toBe(1)
    resolveLoad(7)
    await vi.waitFor(async () => expect(await cache.get('k')).toBe(7), { timeout: 10_000 })
  })

  it('callers that leave a load still in flight are not held by it', async () => {
    // A loader that never settles: callers served stale after softTimeout, or
    // timed out, must not stay attached to it (each would be kept until it settles).
    const clock = new ManualClock(0)
    const cache = make<number>({ clock, ttl: 100, grace: 10_000 })
    await cache.set('k', 1)
    clock.set(150)
    const stuck = () => new Promise<number>(() => undefined)
    const stale = Array.from({ length: 50 }, () => cache.getOrSet('k', stuck, { softTimeout: 20 }))
    const other = Array.from({ length: 19 }, () =>
      cache.getOrSet('cold', stuck, { timeoutMs: 30 }).catch((error: unknown) => error),
    )
    const patient = cache.getOrSet('cold', stuck).catch((error: unknown) => error)
    await vi.waitFor(() =>
      expect(cache.stats()).toMatchObject({ inflightLoads: 2, waitingCallers: 70, coalesced: 68 }),
    )
    await clock.advanceAsync(20)
    expect(await Promise.all(stale)).toEqual(Array(50).fill(1))
    expect(cache.stats()).toMatchObject({ inflightLoads: 2, waitingCallers: 20 })
    await clock.advanceAsync(10)
    for (const error of await Promise.all(other)) expect(error).toMatchObject({ code: 'E_TIMEOUT' })
    // One caller of "cold" still waits; the refresh of "k" goes on for nobody.
    expect(cache.stats()).toMatchObject({ inflightLoads: 2, waitingCallers: 1 })
    await cache.dispose()
    expect(await patient).toMatchObject({ code: 'E_DISPOSED' })
  })

  it('soft timeout returns the fresh value when the loader is quick', async () => {
    const clock = new ManualClock(0)
    const cache = make<number>({ clock, ttl: 100, grace: 10_000 })
    await cache.set('k', 1)
    clock.set(150)
    expect(await cache.getOrSet('k', async () => 5, { softTimeout: 1_000 })).toBe(5)
  })

  it('hard timeout aborts the loader with E_TIMEOUT when nothing stale exists', async () => {
    const clock = new ManualClock(0)
    const cache = make<number>({ clock })
    let aborted = false
    const pending = cache.getOrSet(
      'k',
      (signal) =>
        new Promise<number>((_resolve, reject) => {
          signal.addEventListener('abort', () => {
            aborted = true
            reject(signal.reason)
          })
        }),
      { hardTimeout: 100 },
    )
    const check = expect(pending).rejects.toMatchObject({ code: 'E_TIMEOUT' })
    await clock.advanceAsync(100)
    await check
    expect(aborted).toBe(true)
    expect(await cache.get('k')).toBeUndefined()
  })

  it('a caller can cancel its wait; the loader is aborted once every caller has gone', async () => {
    const cache = make<number>()
    const controller = new AbortController()
    let loaderSignal: AbortSignal | undefined
    const pending = cache.getOrSet(
      'k',
      (signal) => {
        loaderSignal = signal
        return new Promise<number>(() => undefined)
      },
      { signal: controller.signal },
    )
    controller.abort()
    await expect(pending).rejects.toMatchObject({ code: 'E_CANCELLED' })
    expect(loaderSignal?.aborted).toBe(true)
  })

  it('one caller cancelling does not abort the load others still wait for', async () => {
    const cache = make<number>()
    const controller = new AbortController()
    let release!: (value: number) => void
    let loaderSignal: AbortSignal | undefined
    const loader = (signal: AbortSignal) => {
      loaderSignal = signal
      return new Promise<number>((resolve) => {
        release = resolve
      })
    }
    const leaving = cache.getOrSet('k', loader, { signal: controller.signal })
    const staying = cache.getOrSet('k', loader)
    controller.abort()
    await expect(leaving).rejects.toMatchObject({ code: 'E_CANCELLED' })
    expect(loaderSignal?.aborted).toBe(false)
    release(8)
    expect(await staying).toBe(8)
  })

  it('timeoutMs bounds the wait of one caller (E_TIMEOUT)', async () => {
    const clock = new ManualClock(0)
    const cache = make<number>({ clock })
    const pending = cache.getOrSet('k', () => new Promise<number>(() => undefined), {
      timeoutMs: 50,
    })
    const check = expect(pending).rejects.toMatchObject({ code: 'E_TIMEOUT' })
    await clock.advanceAsync(50)
    await check
  })

  it('propagates a loader failure with no stale value, and stores nothing', async () => {
    const cache = make<number>()
    await expect(
      cache.getOrSet('k', async () => {
        throw new Error('boom')
      }),
    ).rejects.toThrow('boom')
    expect(await cache.get('k')).toBeUndefined()
    expect(await cache.getOrSet('k', async () => 3)).toBe(3)
  })
})

describe('tags, namespaces, events, stats', () => {
  it('deletes by tag across tiers', async () => {
    const lower = flakyTier('lower')
    const cache = make({ l2: lower.tier })
    await cache.set('a', 1, { tags: ['user:1'] })
    await cache.set('b', 2, { tags: ['user:1', 'x'] })
    await cache.set('c', 3, { tags: ['x'] })
    expect(await cache.deleteByTag('user:1')).toBe(2)
    expect(await cache.get('a')).toBeUndefined()
    expect(await cache.get('b')).toBeUndefined()
    expect(await cache.get('c')).toBe(3)
    expect(lower.map.has('a')).toBe(false)
  })

  it('namespaced views isolate keys, tags and clear()', async () => {
    const cache = make()
    const users = cache.namespace('users')
    const posts = cache.namespace('posts')
    await users.set('1', 'alice', { tags: ['t'] })
    await posts.set('1', 'hello', { tags: ['t'] })
    await cache.set('1', 'root')
    expect(await users.get('1')).toBe('alice')
    expect(await posts.get('1')).toBe('hello')
    expect(await users.deleteByTag('t')).toBe(1)
    expect(await posts.get('1')).toBe('hello')
    await users.set('2', 'bob')
    await posts.clear()
    expect(await posts.get('1')).toBeUndefined()
    expect(await users.get('2')).toBe('bob')
    expect(await cache.get('1')).toBe('root')
    await cache.clear()
    expect(await users.get('2')).toBeUndefined()
  })

  it('emits hit, miss, evict and error events', async () => {
    const events: Array<[string, unknown]> = []
    const lower = flakyTier()
    const cache = make({
      l1: { maxEntries: 2, policy: 'lru' },
      l2: lower.tier,
      events: { emit: (type: keyof CacheEvents, payload: unknown) => events.push([type, payload]) },
    })
    await cache.set('a', 1)
    await cache.get('a')
    await cache.get('zz')
    await cache.set('b', 2)
    await cache.set('c', 3)
    lower.state.failing = true
    await cache.get('nope')
    const types = events.map(([type]) => type)
    expect(types).toContain('cache-hit')
    expect(types).toContain('cache-miss')
    expect(types).toContain('cache-evict')
    expect(types).toContain('cache-error')
  })

  it('reports plain-data stats per tier', async () => {
    const lower = flakyTier()
    const cache = make({ l2: lower.tier })
    await cache.set('a', 1)
    await cache.get('a')
    await cache.get('missing')
    const stats = cache.stats()
    expect(JSON.parse(JSON.stringify(stats))).toEqual(stats)
    expect(stats.tiers.map((t) => t.name)).toEqual(['memory', 'flaky'])
    expect(stats.tiers[0]).toMatchObject({ hits: 1, misses: 1, ratio: 0.5 })
    expect(stats.tiers[1]).toMatchObject({ hits: 0, misses: 1 })
  })

  it('a stale L1 entry is replaced by a fresh one found in a lower tier, without loading', async () => {
    const clock = new ManualClock(0)
    const lower = flakyTier()
    const cache = make<number>({ clock, l2: lower.tier, ttl: 100, grace: 10_000 })
    await cache.set('k', 1)
    clock.set(500)
    lower.map.set('k', { value: 2, createdAt: 400, expiresAt: 1_000, staleUntil: 20_000, tags: [] })
    let loads = 0
    expect(
      await cache.getOrSet('k', async () => {
        loads++
        return 3
      }),
    ).toBe(2)
    expect(loads).toBe(0)
  })

  it('back-fills L1 from a lower-tier hit', async () => {
    const lower = flakyTier()
    const l1 = new MemoryTier()
    const cache = make({ l1, l2: lower.tier })
    lower.map.set('x', {
      value: 9,
      createdAt: 0,
      expiresAt: Number.POSITIVE_INFINITY,
      staleUntil: Number.POSITIVE_INFINITY,
      tags: [],
    })
    expect(await cache.get('x')).toBe(9)
    expect(l1.getEntry('x')?.value).toBe(9)
    expect(cache.stats().tiers[1]!.hits).toBe(1)
  })
})

describe('degradation of a lower tier (unit, with a switchable fake tier)', () => {
  it('reads never throw, errors are counted, the breaker opens, probes and closes', async () => {
    const clock = new ManualClock(0)
    const lower = flakyTier()
    const events: string[] = []
    const cache = make<number>({
      clock,
      l2: lower.tier,
      breaker: { failureThreshold: 2, cooldownMs: 1_000 },
      events: { emit: (type: string) => events.push(type) },
    })
    await cache.set('a', 1)
    lower.state.failing = true
    for (let i = 0; i < 5; i++) expect(await cache.get(`miss${i}`)).toBeUndefined()
    expect(await cache.getOrSet('loaded', async () => 5)).toBe(5)
    let stats = cache.stats().tiers[1]!
    expect(stats.errors).toBe(2)
    expect(stats.breaker).toBe('open')
    expect(stats.skipped).toBeGreaterThan(0)
    expect(events).toContain('breaker-open')
    const callsWhileOpen = lower.state.calls
    await cache.get('again')
    expect(lower.state.calls).toBe(callsWhileOpen)
    lower.state.failing = false
    clock.set(1_000)
    await cache.get('probe')
    stats = cache.stats().tiers[1]!
    expect(stats.breaker).toBe('closed')
    expect(events).toContain('breaker-close')
  })

  it('a hung tier is bounded by tierTimeoutMs', async () => {
    const clock = new ManualClock(0)
    const lower = flakyTier()
    const cache = make<number>({ clock, l2: lower.tier, tierTimeoutMs: 100 })
    lower.state.hang = true
    const pending = cache.get('x')
    await clock.advanceAsync(100)
    expect(await pending).toBeUndefined()
    expect(cache.stats().tiers[1]!.errors).toBe(1)
  })
})

describe('AdaptiveTtl', () => {
  it('follows the rule: min first, factor × mean change interval, doubling while unchanged, clamped', () => {
    const policy = new AdaptiveTtl({ minTtl: 100, maxTtl: 10_000, factor: 0.5 })
    expect(policy.ttlFor('k', 1, 0)).toBe(100)
    expect(policy.ttlFor('k', 2, 4_000)).toBe(2_000)
    expect(policy.ttlFor('k', 2, 6_000)).toBe(4_000)
    expect(policy.ttlFor('k', 2, 10_000)).toBe(8_000)
    expect(policy.ttlFor('k', 2, 18_000)).toBe(10_000)
    // mean of 4,000 and 16,000 with weight 1/2 is 10,000 -> 5,000
    expect(policy.ttlFor('k', 3, 20_000)).toBe(5_000)
    expect(policy.ttlFor('fast', { a: 1 }, 0)).toBe(100)
    expect(policy.ttlFor('fast', { a: 2 }, 10)).toBe(100)
    expect(policy.ttlFor('fast', { a: 2 }, 20)).toBe(200)
  })

  it('gives rarely read keys the minimum TTL', () => {
    const policy = new AdaptiveTtl({ minTtl: 100, maxTtl: 1_000 })
    policy.ttlFor('k', 1, 0)
    policy.recordAccess('k', 0)
    policy.recordAccess('k', 5_000)
    expect(policy.ttlFor('k', 1, 5_000)).toBe(100)
  })

  it('drives getOrSet TTLs', async () => {
    const clock = new ManualClock(0)
    const cache = make<number>({
      clock,
      adaptiveTtl: new AdaptiveTtl({ minTtl: 100, maxTtl: 1_000 }),
    })
    await cache.getOrSet('k', async () => 1)
    clock.set(99)
    expect(await cache.get('k')).toBe(1)
    clock.set(100)
    expect(await cache.get('k')).toBeUndefined()
    await cache.getOrSet('k', async () => 1)
    clock.set(299)
    expect(await cache.get('k')).toBe(1)
  })

  it('rejects bad options', () => {
    expect(() => new AdaptiveTtl({ minTtl: 10, maxTtl: 5 })).toThrow(/options.maxTtl/)
    expect(() => new AdaptiveTtl({ minTtl: 0, maxTtl: 5 })).toThrow(/options.minTtl/)
  })
})
