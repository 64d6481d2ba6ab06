import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startRedis } from '../../../scripts/redis.mjs'
import { type CacheEvents, createCache, type MultiLevelCache } from '../src/cache.ts'
import { redisTier } from '../src/redis.ts'
import { until } from './redis-helpers.ts'

let redis: Awaited<ReturnType<typeof startRedis>>
beforeAll(async () => {
  redis = await startRedis()
}, 60_000)
afterAll(async () => {
  await redis?.stop()
})

describe('degradation with a real redis-server killed, paused and restarted during load', () => {
  it('reads never fail, errors are counted, L2 is circuit-broken, and the cache reconnects', async () => {
    const events: string[] = []
    const l2 = await redisTier({ url: redis.url, prefix: 'degrade:', commandTimeoutMs: 1000 })
    const cache: MultiLevelCache<string> = createCache<string>({
      l1: { maxEntries: 50 },
      l2,
      tierTimeoutMs: 1500,
      breaker: { failureThreshold: 2, cooldownMs: 200 },
      events: { emit: (type: keyof CacheEvents) => events.push(type) },
    })
    let reads = 0
    let failures = 0
    let running = true
    const worker = async (offset: number) => {
      let i = offset
      while (running) {
        const key = `k${i++ % 300}`
        try {
          const value =
            i % 3 === 0 ? await cache.get(key) : await cache.getOrSet(key, async () => `v:${key}`)
          if (value !== undefined && value !== `v:${key}`) failures++
          reads++
        } catch {
          failures++
        }
        if (i % 20 === 0) await new Promise((resolve) => setImmediate(resolve))
      }
    }
    const workers = [worker(0), worker(150)]
    const l2Stats = () => cache.stats().tiers[1]!
    try {
      await until(() => reads >= 500 && l2Stats().hits > 0, 30_000, 'healthy load')
      expect(l2Stats().errors).toBe(0)

      // Killed.
      await redis.kill()
      let mark = reads
      await until(
        () => reads >= mark + 500 && l2Stats().errors > 0,
        30_000,
        'reads with Redis killed',
      )
      expect(events).toContain('breaker-open')
      expect(l2Stats().skipped).toBeGreaterThan(0)

      // Restarted: the client reconnects and L2 serves again.
      await redis.restart()
      await until(() => l2.stats().status === 'ready', 30_000, 'reconnect')
      const hitsBefore = l2Stats().hits
      await until(
        () => l2Stats().breaker === 'closed' && l2Stats().hits > hitsBefore,
        30_000,
        'L2 hits after restart',
      )
      expect(events).toContain('breaker-close')
      expect(l2.stats().reconnects).toBeGreaterThan(0)
      // Invalidations sent during the outage were missed: L1 was cleared on resubscribe.
      await until(
        () => cache.stats().invalidationsReceived > 0,
        30_000,
        'L1 clear after resubscribe',
      )

      // Paused (SIGSTOP): commands hang, bounded by the timeouts.
      const errorsBefore = l2Stats().errors
      redis.pause()
      mark = reads
      await until(
        () => reads >= mark + 300 && l2Stats().errors > errorsBefore,
        30_000,
        'reads with Redis paused',
      )
      redis.resume()
      const hitsAfterPause = l2Stats().hits
      await until(
        () => l2Stats().breaker === 'closed' && l2Stats().hits > hitsAfterPause,
        30_000,
        'recovery after pause',
      )
    } finally {
      running = false
      await Promise.all(workers)
      await cache.dispose()
    }
    expect(failures).toBe(0)
    expect(events).toContain('cache-error')
  }, 120_000)

  it('a cache created while Redis is down works from L1 and the loader', async () => {
    const down = await startRedis()
    await down.kill()
    const l2 = await redisTier({
      url: down.url,
      prefix: 'down:',
      connectTimeoutMs: 200,
      commandTimeoutMs: 200,
    })
    const cache = createCache<number>({ l2, tierTimeoutMs: 300 })
    expect(await cache.getOrSet('a', async () => 1)).toBe(1)
    expect(await cache.get('a')).toBe(1)
    expect(await cache.get('b')).toBeUndefined()
    expect(cache.stats().tiers[1]!.errors).toBeGreaterThan(0)
    await cache.dispose()
    await down.stop()
  }, 60_000)
})

describe('dispose with Redis unreachable', () => {
  it('settles while commands wait in the offline queue of a reconnecting client', async () => {
    // Nothing listens on this port: both connections wait 2 s between
    // attempts, and a SUBSCRIBE waits in the subscriber's offline queue. A QUIT
    // would be queued behind it and never answered, and ioredis's disconnect()
    // while waiting to reconnect neither ends the client nor settles what it
    // queued.
    const port = await freePort()
    for (let i = 0; i < 3; i++) {
      const tier = await redisTier({
        url: `redis://127.0.0.1:${port}`,
        prefix: 'gone:',
        connectTimeoutMs: 100,
        redis: { retryStrategy: () => 2_000 },
      })
      tier.subscribe(() => {})
      const waiting = tier.subscribed()
      const settled = await Promise.race([
        tier.dispose().then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5_000)),
      ])
      expect(settled).toBe(true)
      expect(tier.stats().status).toBe('end')
      await expect(waiting).rejects.toMatchObject({ code: 'E_DISPOSED' })
      await expect(tier.subscribed()).rejects.toMatchObject({ code: 'E_DISPOSED' })
    }
  }, 60_000)

  it('settles when the server is paused (SIGSTOP) and never answers QUIT', async () => {
    const paused = await startRedis()
    try {
      const tier = await redisTier({ url: paused.url, prefix: 'paused:' })
      tier.subscribe(() => {})
      await tier.subscribed()
      expect(tier.stats().status).toBe('ready')
      paused.pause()
      const settled = await Promise.race([
        tier.dispose().then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5_000)),
      ])
      expect(settled).toBe(true)
      expect(tier.stats().status).toBe('end')
    } finally {
      paused.resume()
      await paused.stop()
    }
  }, 60_000)
})

describe('resubscribing after an outage', () => {
  it('clears L1, whose copies may have missed invalidations meanwhile', async () => {
    const own = await startRedis()
    const l2 = await redisTier({ url: own.url, prefix: 'resub:', connectTimeoutMs: 200 })
    const cache = createCache<string>({ l2, tierTimeoutMs: 300 })
    try {
      await l2.subscribed()
      await cache.set('kept', 'v')
      expect(cache.getIfPresent('kept')).toBe('v')
      await own.kill()
      await own.restart()
      await until(() => cache.stats().invalidationsReceived > 0, 30_000, 'resubscribe')
      expect(cache.getIfPresent('kept')).toBeUndefined()
    } finally {
      await cache.dispose()
      await own.stop()
    }
  }, 60_000)
})
