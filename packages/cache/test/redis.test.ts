import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedis } from '../../../scripts/redis.mjs'
import { createCache } from '../src/cache.ts'
import { type RedisTier, redisTier } from '../src/redis.ts'
import { richValue, testTier } from './conformance.ts'
import { type Child, startChild, until } from './redis-helpers.ts'

let redis: Awaited<ReturnType<typeof startRedis>>
beforeAll(async () => {
  redis = await startRedis()
}, 60_000)
afterAll(async () => {
  await redis?.stop()
})

let prefixCounter = 0
const freshPrefix = () => `test${process.pid}-${prefixCounter++}:`

describe('cache tier: redis', () => {
  testTier(async () => redisTier({ url: redis.url, prefix: freshPrefix() }), { serializes: true })
})

describe('redis tier', () => {
  it('rejects bad options naming the field', async () => {
    await expect(redisTier({ url: 42 as never })).rejects.toMatchObject({
      details: { field: 'options.url' },
    })
    await expect(redisTier({ commandTimeoutMs: 0 })).rejects.toMatchObject({
      details: { field: 'options.commandTimeoutMs' },
    })
    await expect(redisTier({ client: {} as never })).rejects.toMatchObject({
      details: { field: 'options.client' },
    })
  })

  it('passes ACL credentials through the URL', async () => {
    // The shared server gets an extra ACL user; the default user stays open for the other tests.
    const admin = await redisTier({ url: redis.url, prefix: 'acl-admin:' })
    await admin.client.call('ACL', 'SETUSER', 'app', 'on', '>s3cret', '~*', '&*', '+@all')
    await admin.dispose()
    const good = await redisTier({
      url: `redis://app:s3cret@127.0.0.1:${redis.port}`,
      prefix: 'acl:',
    })
    const entry = { value: 'ok', createdAt: 0, expiresAt: Infinity, staleUntil: Infinity, tags: [] }
    await good.set('k', entry)
    expect((await good.get('k'))?.value).toBe('ok')
    expect(await good.client.call('ACL', 'WHOAMI')).toBe('app')
    await good.dispose()
    const bad = await redisTier({
      url: `redis://app:wrong@127.0.0.1:${redis.port}`,
      prefix: 'acl:',
      connectTimeoutMs: 500,
    })
    const cache = createCache({ l2: bad, tierTimeoutMs: 500 })
    expect(await cache.get('k')).toBeUndefined()
    expect(cache.stats().tiers[1]!.errors).toBeGreaterThan(0)
    await cache.dispose()
  }, 60_000)

  it('treats foreign or damaged data under its key as a miss and removes it', async () => {
    const prefix = freshPrefix()
    const tier = await redisTier({ url: redis.url, prefix })
    await tier.client.set(`${prefix}e:bad`, 'not a v8 payload')
    expect(await tier.get('bad')).toBeUndefined()
    expect(tier.stats().corrupt).toBe(1)
    expect(await tier.client.exists(`${prefix}e:bad`)).toBe(0)
    await tier.dispose()
  })

  it('gives tag sets an expiry no shorter than their entries and no longer than needed', async () => {
    const prefix = freshPrefix()
    const tier = await redisTier({ url: redis.url, prefix })
    const now = Date.now()
    const entry = (ttlMs: number) => ({
      value: 1,
      createdAt: now,
      expiresAt: now + ttlMs,
      staleUntil: now + ttlMs,
      tags: ['t'],
    })
    const tagTtl = () => tier.client.pttl(`${prefix}t:t`)
    // A new tag set expires with its first entry (it used to live for ever).
    await tier.set('a', entry(60_000))
    expect(await tagTtl()).toBeGreaterThan(50_000)
    expect(await tagTtl()).toBeLessThanOrEqual(60_000)
    // A longer-lived entry extends it; a shorter one does not shorten it.
    await tier.set('b', entry(600_000))
    expect(await tagTtl()).toBeGreaterThan(500_000)
    await tier.set('c', entry(1_000))
    expect(await tagTtl()).toBeGreaterThan(500_000)
    // An entry that never expires makes the set persistent, and a finite one after it does not undo that.
    await tier.set('d', { ...entry(0), expiresAt: Infinity, staleUntil: Infinity })
    expect(await tagTtl()).toBe(-1)
    await tier.set('e', entry(1_000))
    expect(await tagTtl()).toBe(-1)
    expect(await tier.deleteByTag('t')).toBe(5)
    await tier.dispose()
  })

  it('keeps prefixes apart and clear() only removes its own keys', async () => {
    const a = await redisTier({ url: redis.url, prefix: freshPrefix() })
    const b = await redisTier({ url: redis.url, prefix: freshPrefix() })
    const entry = { value: 1, createdAt: 0, expiresAt: Infinity, staleUntil: Infinity, tags: [] }
    await a.set('k', entry)
    await b.set('k', { ...entry, value: 2 })
    await a.clear()
    expect(await a.get('k')).toBeUndefined()
    expect((await b.get('k'))?.value).toBe(2)
    await a.dispose()
    await b.dispose()
  })

  it('type-faithful values through a cache with L2 only (no L1)', async () => {
    const cache = createCache({
      l1: false,
      l2: await redisTier({ url: redis.url, prefix: freshPrefix() }),
    })
    await cache.set('rich', richValue(), { ttl: 60_000 })
    expect(await cache.get('rich')).toEqual(richValue())
    await cache.dispose()
  })
})

describe('two processes on one Redis', () => {
  let child: Child
  let tier: RedisTier
  let prefix: string
  beforeAll(async () => {
    prefix = freshPrefix()
    child = startChild(redis.url, prefix, 10_000)
    tier = await redisTier({ url: redis.url, prefix })
    await tier.subscribed()
    expect(await child.send({ op: 'stats' })).toMatchObject({ loads: 0 })
  }, 60_000)
  afterAll(async () => {
    await child?.kill()
    await tier?.client.quit()
  })

  it('a set or delete in one process drops the stale L1 copy in the other', async () => {
    const cache = createCache({ l2: await redisTier({ url: redis.url, prefix }) })
    await cache.set('shared', 'v1')
    expect(await child.send({ op: 'get', key: 'shared' })).toBe('v1')
    expect(await child.send({ op: 'peek', key: 'shared' })).toBe('v1')
    await cache.set('shared', 'v2')
    await until(
      async () => (await child.send({ op: 'peek', key: 'shared' })) === null,
      20_000,
      'invalidation',
    )
    expect(await child.send({ op: 'get', key: 'shared' })).toBe('v2')
    await cache.delete('shared')
    await until(
      async () => (await child.send({ op: 'peek', key: 'shared' })) === null,
      20_000,
      'delete invalidation',
    )
    expect(await child.send({ op: 'get', key: 'shared' })).toBeNull()
    // And the other direction.
    expect(await cache.get('from-child')).toBeUndefined()
    await child.send({ op: 'set', key: 'from-child', value: { n: 1 } })
    expect(await cache.get('from-child')).toEqual({ n: 1 })
    await cache.dispose()
  }, 60_000)

  it('cross-process single-flight: concurrent cold loads in two processes call the loader once', async () => {
    const cache = createCache({
      l2: await redisTier({ url: redis.url, prefix }),
      lock: { pollMs: 20 },
    })
    const counter = `${prefix}counter:sf`
    const gate = `${prefix}gate:sf`
    const inChild = child.send({ op: 'load', key: 'sf', value: 'from-child', counter, gate })
    await until(
      async () => (await tier.client.get(`${counter}:started`)) === '1',
      20_000,
      'child loader start',
    )
    const inParent = cache.getOrSet('sf', async () => {
      await tier.client.incr(counter)
      return 'from-parent'
    })
    await until(() => cache.stats().lockWaits === 1, 20_000, 'parent to wait on the lock')
    await tier.client.set(gate, '1')
    expect(await inChild).toBe('from-child')
    expect(await inParent).toBe('from-child')
    expect(await tier.client.get(counter)).toBe('1')
    await cache.dispose()
  }, 60_000)

  it('falls back safely when the lock holder dies: another process loads after the lock TTL', async () => {
    const victim = startChild(redis.url, prefix, 1_500)
    const cache = createCache({
      l2: await redisTier({ url: redis.url, prefix }),
      lock: { ttlMs: 1_500, pollMs: 20 },
    })
    const counter = `${prefix}counter:dead`
    void victim.send({
      op: 'load',
      key: 'dead',
      value: 'never',
      counter,
      gate: `${prefix}gate:never`,
    })
    await until(
      async () => (await tier.client.get(`${counter}:started`)) === '1',
      30_000,
      'victim loader start',
    )
    const pending = cache.getOrSet('dead', async () => 'recovered')
    await until(() => cache.stats().lockWaits === 1, 20_000, 'waiting on the dead lock')
    await victim.kill()
    expect(await pending).toBe('recovered')
    await cache.dispose()
  }, 60_000)
})
