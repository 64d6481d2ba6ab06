/**
 * @aide/cache benchmarks. Compares, in one process and run:
 * - L1 hit `get`: `getIfPresent` (sync) vs lru-cache `get`; `get` (async) vs bentocache `get`.
 * - `getOrSet` hit vs bentocache `getOrSet`.
 * - L2 hit (`get` with L1 off) vs a raw ioredis GET (needs redis-server on PATH).
 * - Hit ratio per access trace and cache size vs lru-cache: generated workloads always,
 *   real traces with `--traces DIR` (lirs/*.trace.gz; cache2k/*.trace.xz through the `xz` tool);
 *   each row's note also gives the offline optimum (OPT, `optimal.ts`).
 * - Stampede: 10,000 concurrent cold getOrSet -> loader calls, vs bentocache.
 * - Reads with Redis killed: failed reads, vs raw ioredis GETs.
 *
 * `--json FILE` appends one JSON line per comparison; `--quick` for a short run.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { Redis } from 'ioredis'
import { LRUCache } from 'lru-cache'
import { BenchReport, parseBenchArgs } from '../../../bench/harness.ts'
import { findRedisServer, startRedis } from '../../../scripts/redis.mjs'
import { createCache } from '../src/cache.ts'
import { MemoryTier } from '../src/memory-tier.ts'
import { redisTier } from '../src/redis.ts'
import { loop, recency, scanHeavy, zipf } from '../test/workloads.ts'
import { optimalHitRatio } from './optimal.ts'

const options = parseBenchArgs()
const report = new BenchReport('cache', options)
const quick = options.quick
const KEYS = 1_000
const keys = Array.from({ length: KEYS }, (_, i) => `key:${i}`)

/**
 * L1 hit: a fresh cache and a fresh lru-cache, both of capacity 10,000 holding the
 * same 1,000 keys, both warmed with the same 500,000 hits, each timed through its own
 * closure (one call site per subject, so each stays monomorphic).
 */
async function compareL1Hit(caseName: string, policy: 'tinylfu' | 'lru'): Promise<void> {
  if (!report.wants(caseName)) return
  const cache = createCache<number>({ l1: { maxEntries: 10_000, policy } })
  const lru = new LRUCache<string, number>({ max: 10_000 })
  for (let i = 0; i < KEYS; i++) {
    await cache.set(keys[i]!, i)
    lru.set(keys[i]!, i)
  }
  let a = 0
  let b = 0
  const ours = () => cache.getIfPresent(keys[a++ % KEYS]!)
  const theirs = () => lru.get(keys[b++ % KEYS]!)
  for (let i = 0; i < 500_000; i++) {
    ours()
    theirs()
  }
  await report.compareOps(
    caseName,
    { name: '@aide/cache getIfPresent', fn: ours },
    { name: 'lru-cache get', fn: theirs },
    `policy ${policy}; same 1,000 hot keys, capacity 10,000 each, both warmed`,
  )
  await cache.dispose()
}

/**
 * Mixed get/set throughput: a read of each key of a Zipf trace, and a set when
 * it misses (the read-through loop of a real L1), against lru-cache doing the
 * same. The misses run the admission policy; the hits are those of each policy.
 */
async function compareMixed(caseName: string, maxEntries: number): Promise<void> {
  if (!report.wants(caseName)) return
  const trace = zipf(quick ? 100_000 : 400_000, 100_000, 0.8, 3)
  const stored = {
    value: 1,
    createdAt: 0,
    expiresAt: Number.POSITIVE_INFINITY,
    staleUntil: Number.POSITIVE_INFINITY,
    tags: [],
  }
  const tier = new MemoryTier({ maxEntries })
  const lru = new LRUCache<string, number>({ max: maxEntries })
  let a = 0
  let b = 0
  const ours = () => {
    const key = trace[a++ % trace.length]!
    if (tier.getFreshValue(key) === undefined) tier.setEntry(key, stored)
  }
  const theirs = () => {
    const key = trace[b++ % trace.length]!
    if (lru.get(key) === undefined) lru.set(key, 1)
  }
  for (let i = 0; i < trace.length; i++) {
    ours()
    theirs()
  }
  await report.compareOps(
    caseName,
    { name: '@aide/cache L1 (W-TinyLFU)', fn: ours },
    { name: 'lru-cache', fn: theirs },
    `Zipf 0.8 over 100,000 keys, capacity ${maxEntries}; get, then set on a miss`,
  )
}

async function latencyCases(): Promise<void> {
  await compareL1Hit('l1-hit-get-sync', 'tinylfu')
  await compareL1Hit('l1-hit-get-sync (policy lru)', 'lru')
  const cache = createCache<number>({ l1: { maxEntries: 10_000 } })
  const bento = new BentoCache({
    default: 'memory',
    stores: {
      memory: bentostore().useL1Layer(memoryDriver({ maxItems: 10_000, serialize: false })),
    },
  })
  for (let i = 0; i < KEYS; i++) {
    await cache.set(keys[i]!, i)
    await bento.set({ key: keys[i]!, value: i })
  }
  let a = 0
  let b = 0
  await report.compareOps(
    'l1-hit-get',
    { name: '@aide/cache get', fn: () => cache.get(keys[a++ % KEYS]!) },
    { name: 'bentocache get', fn: () => bento.get({ key: keys[b++ % KEYS]! }) },
    'async get, memory tier only',
  )
  const loader = async () => 1
  await report.compareOps(
    'getOrSet-hit',
    { name: '@aide/cache getOrSet', fn: () => cache.getOrSet(keys[a++ % KEYS]!, loader) },
    {
      name: 'bentocache getOrSet',
      fn: () => bento.getOrSet({ key: keys[b++ % KEYS]!, factory: loader }),
    },
  )
  await cache.dispose()
  await bento.disconnect()
}

async function stampede(): Promise<void> {
  if (!report.wants('stampede')) return
  const cache = createCache<number>()
  const bento = new BentoCache({
    default: 'memory',
    stores: {
      memory: bentostore().useL1Layer(memoryDriver({ maxItems: 20_000, serialize: false })),
    },
  })
  let ours = 0
  let theirs = 0
  const slow = () => new Promise<number>((resolve) => setTimeout(() => resolve(1), 20))
  await Promise.all(
    Array.from({ length: 10_000 }, () =>
      cache.getOrSet('cold', () => {
        ours++
        return slow()
      }),
    ),
  )
  await Promise.all(
    Array.from({ length: 10_000 }, () =>
      bento.getOrSet({
        key: 'cold',
        factory: () => {
          theirs++
          return slow()
        },
      }),
    ),
  )
  report.add({
    case: 'stampede-10k-cold-getOrSet',
    subject: '@aide/cache',
    peer: 'bentocache',
    metric: 'loader calls',
    subjectValue: ours,
    peerValue: theirs,
    higherIsBetter: false,
  })
  await cache.dispose()
  await bento.disconnect()
}

async function redisCases(): Promise<void> {
  if (!report.wants('l2') && !report.wants('redis')) return
  if (!findRedisServer()) {
    console.log('cache: redis-server not found: skipping the L2 and Redis-killed cases')
    return
  }
  const redis = await startRedis()
  try {
    const tier = await redisTier({ url: redis.url, prefix: 'bench:' })
    const cache = createCache<number>({ l1: false, l2: tier })
    const raw = new Redis(redis.url)
    for (let i = 0; i < 100; i++) {
      await cache.set(keys[i]!, i)
      await raw.set(`raw:${keys[i]}`, String(i))
    }
    let a = 0
    let b = 0
    await report.compareOps(
      'l2-hit-get',
      { name: '@aide/cache get (L2 only)', fn: () => cache.get(keys[a++ % 100]!) },
      { name: 'ioredis GET', fn: () => raw.get(`raw:${keys[b++ % 100]}`) },
      'loopback redis-server; ours decodes a V8-serialised entry',
    )
    // Reads with Redis killed.
    const degraded = createCache<number>({
      l2: await redisTier({ url: redis.url, prefix: 'bench2:' }),
      tierTimeoutMs: 200,
    })
    const rawKilled = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
    rawKilled.on('error', () => undefined)
    await redis.kill()
    const reads = quick ? 2_000 : 10_000
    let ourFailures = 0
    let rawFailures = 0
    for (let i = 0; i < reads; i++) {
      try {
        await degraded.getOrSet(keys[i % KEYS]!, async () => i)
      } catch {
        ourFailures++
      }
      try {
        await rawKilled.get(keys[i % KEYS]!)
      } catch {
        rawFailures++
      }
    }
    console.log(
      `cache        redis-killed: @aide/cache getOrSet failed ${ourFailures} of ${reads} reads; raw ioredis GET failed ${rawFailures} of ${reads} (L2 errors counted: ${degraded.stats().tiers[1]!.errors}, skipped by breaker: ${degraded.stats().tiers[1]!.skipped})`,
    )
    await cache.dispose()
    await degraded.dispose()
    raw.disconnect()
    rawKilled.disconnect()
  } finally {
    await redis.stop()
  }
}

function ratio(trace: readonly string[] | Int32Array, size: number): { tiny: number; lru: number } {
  const tier = new MemoryTier({ maxEntries: size })
  const lru = new LRUCache<string, number>({ max: size })
  const entry = { value: 1, createdAt: 0, expiresAt: Infinity, staleUntil: Infinity, tags: [] }
  let tinyHits = 0
  let lruHits = 0
  for (let i = 0; i < trace.length; i++) {
    const key = String(trace[i])
    if (tier.getEntry(key)) tinyHits++
    else tier.setEntry(key, entry)
    if (lru.get(key) !== undefined) lruHits++
    else lru.set(key, 1)
  }
  return { tiny: (100 * tinyHits) / trace.length, lru: (100 * lruHits) / trace.length }
}

function addRatio(name: string, size: number, trace: readonly string[] | Int32Array): void {
  const { tiny, lru } = ratio(trace, size)
  const optimal = optimalHitRatio(trace, size)
  report.add({
    case: `hit-ratio ${name} @${size}`,
    subject: '@aide/cache W-TinyLFU',
    peer: 'lru-cache',
    metric: 'hit %',
    subjectValue: tiny,
    peerValue: lru,
    higherIsBetter: true,
    note: `${(tiny - lru).toFixed(2)} points, ${trace.length} accesses; OPT ${optimal.toFixed(2)} (${(optimal - lru).toFixed(2)} points)`,
  })
}

/**
 * Cache sizes per trace: the trace README's size first (where it gives one), then
 * half and double. Every size measured is reported.
 */
const LIRS_SIZES: Record<string, number[]> = {
  gli: [1000, 500, 2000],
  loop: [500, 250, 1000],
  cs: [800, 400, 1600],
  ps: [800, 400, 1600],
  multi3: [2000, 1000, 4000],
  sprite: [1000, 500, 2000],
  multi1: [1000],
  multi2: [1000, 500, 2000],
  '2_pools': [1000, 500, 2000],
  zigzag: [500, 250, 1000],
  scan: [500],
  cpp: [300, 150, 600],
  backf: [1000],
}
const CACHE2K_SIZES: Record<string, number[]> = {
  web07: [2000, 1000, 4000],
  web12: [2000, 1000, 4000],
  'orm-busy': [2000],
  'orm-night': [2000],
}

function hitRatios(): void {
  if (!report.wants('hit-ratio')) return
  const n = quick ? 50_000 : 200_000
  addRatio('generated zipf-0.9', 500, zipf(n, 20_000, 0.9))
  addRatio('generated scan-heavy', 1000, scanHeavy(n / 2))
  addRatio('generated loop', 500, loop(600, quick ? 50 : 200))
  const drifting = recency(n)
  for (const size of [500, 250, 1000]) addRatio('generated recency', size, drifting)
  const dir = options.extra.traces
  if (typeof dir !== 'string') {
    console.log('cache: pass --traces DIR (e.g. ../shared/traces) for hit ratios on real traces')
    return
  }
  const lirs = join(dir, 'lirs')
  if (existsSync(lirs)) {
    for (const file of readdirSync(lirs)
      .filter((f) => f.endsWith('.trace.gz'))
      .sort()) {
      const name = file.replace('.trace.gz', '')
      const trace = gunzipSync(readFileSync(join(lirs, file)))
        .toString()
        .split('\n')
        .filter((line) => line.length > 0)
      for (const size of LIRS_SIZES[name] ?? [1000]) addRatio(`lirs/${name}`, size, trace)
    }
  }
  const cache2k = join(dir, 'cache2k')
  if (existsSync(cache2k)) {
    const files = readdirSync(cache2k)
      .filter((f) => f.endsWith('.trace.xz'))
      .sort()
    let xz = true
    try {
      execFileSync('xz', ['--version'], { stdio: 'ignore' })
    } catch {
      xz = false
    }
    if (!xz) console.log('cache: no `xz` decoder available: skipping cache2k traces')
    else {
      for (const file of quick ? files.slice(0, 1) : files) {
        const name = file.replace('.trace.xz', '')
        const raw = execFileSync('xz', ['-dc', join(cache2k, file)], { maxBuffer: 1 << 30 })
        const count = Math.floor(raw.length / 4)
        const trace = new Int32Array(count)
        for (let i = 0; i < count; i++) trace[i] = raw.readInt32BE(i * 4)
        for (const size of CACHE2K_SIZES[name] ?? [2000]) addRatio(`cache2k/${name}`, size, trace)
      }
    }
  }
}

await latencyCases()
// After the hit cases, so that their call sites have not yet seen the miss path.
await compareMixed('l1-mixed-get-set-2000', 2_000)
await compareMixed('l1-mixed-get-set-20000', 20_000)
await stampede()
await redisCases()
hitRatios()
report.summary()
