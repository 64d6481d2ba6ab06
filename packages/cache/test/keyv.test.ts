import { ManualClock } from '@aide/core'
import Keyv from 'keyv'
import { afterEach, describe, expect, it } from 'vitest'
import { createCache, type MultiLevelCache } from '../src/cache.ts'
import { KeyvCacheStore } from '../src/keyv.ts'

let cache: MultiLevelCache<unknown>
afterEach(async () => {
  await cache?.dispose()
})

describe('Keyv adapter (real keyv)', () => {
  it('get, set, delete, has and many-variants through Keyv', async () => {
    cache = createCache()
    const keyv = new Keyv({ store: new KeyvCacheStore(cache), namespace: 'app' })
    expect(await keyv.set('a', { nested: [1, 2] })).toBe(true)
    expect(await keyv.get('a')).toEqual({ nested: [1, 2] })
    expect(await keyv.has('a')).toBe(true)
    await keyv.setMany([
      { key: 'b', value: 2 },
      { key: 'c', value: 3 },
    ])
    expect(await keyv.getMany(['a', 'b', 'c', 'zz'])).toEqual([{ nested: [1, 2] }, 2, 3, undefined])
    expect(await keyv.delete('a')).toBe(true)
    expect(await keyv.get('a')).toBeUndefined()
    expect(await keyv.deleteMany(['b', 'c'])).toBe(true)
    expect(await keyv.get('b')).toBeUndefined()
  })

  it('honours TTLs in milliseconds', async () => {
    const clock = new ManualClock(Date.now())
    cache = createCache({ clock })
    const keyv = new Keyv({ store: new KeyvCacheStore(cache) })
    await keyv.set('short', 'x', 1_000)
    await keyv.set('forever', 'y')
    clock.set(clock.now() + 999)
    expect(await keyv.get('short')).toBe('x')
    clock.set(clock.now() + 1)
    expect(await keyv.get('short')).toBeUndefined()
    expect(await keyv.get('forever')).toBe('y')
  })

  it('clear() removes only its namespace', async () => {
    cache = createCache()
    const one = new Keyv({ store: new KeyvCacheStore(cache), namespace: 'one' })
    const two = new Keyv({ store: new KeyvCacheStore(cache), namespace: 'two' })
    await one.set('k', 1)
    await two.set('k', 2)
    await one.clear()
    expect(await one.get('k')).toBeUndefined()
    expect(await two.get('k')).toBe(2)
  })

  it('surfaces errors as Keyv error events and rejects bad construction', async () => {
    cache = createCache()
    const store = new KeyvCacheStore(cache, { disposeCacheOnDisconnect: true })
    const keyv = new Keyv({ store })
    const errors: unknown[] = []
    keyv.on('error', (error) => errors.push(error))
    await keyv.disconnect()
    await expect(store.get('x')).rejects.toMatchObject({ code: 'E_DISPOSED' })
    expect(errors.length).toBeGreaterThan(0)
    expect(() => new KeyvCacheStore({} as never)).toThrow(/cache/)
  })
})
