import { ManualClock } from '@aide/core'
import fc from 'fast-check'
import { LRUCache } from 'lru-cache'
import { describe, expect, it } from 'vitest'
import type { StoredEntry } from '../src/entry.ts'
import { FrequencySketch, hashKey } from '../src/frequency-sketch.ts'
import { MemoryTier } from '../src/memory-tier.ts'
import { ReferenceTinyLfu } from './reference-tinylfu.ts'
import { loop, recency, scanHeavy, zipf } from './workloads.ts'

const entry = (value: unknown = 1, extra: Partial<StoredEntry> = {}): StoredEntry => ({
  value,
  createdAt: 0,
  expiresAt: Number.POSITIVE_INFINITY,
  staleUntil: Number.POSITIVE_INFINITY,
  tags: [],
  ...extra,
})

function hitRatio(tier: MemoryTier, trace: readonly string[]): number {
  let hits = 0
  for (const key of trace) {
    if (tier.getEntry(key)) hits++
    else tier.setEntry(key, entry())
  }
  return (100 * hits) / trace.length
}

function lruRatio(size: number, trace: readonly string[]): number {
  const lru = new LRUCache<string, number>({ max: size })
  let hits = 0
  for (const key of trace) {
    if (lru.get(key) !== undefined) hits++
    else lru.set(key, 1)
  }
  return (100 * hits) / trace.length
}

describe('FrequencySketch', () => {
  it('counts repeated keys higher than one-offs and ages counts down', () => {
    const sketch = new FrequencySketch(64)
    const hot = hashKey('hot')
    for (let i = 0; i < 10; i++) sketch.increment(hot)
    sketch.increment(hashKey('cold'))
    expect(sketch.frequency(hot)).toBeGreaterThan(5)
    expect(sketch.frequency(hashKey('cold'))).toBeLessThanOrEqual(1)
    const before = sketch.frequency(hot)
    for (let i = 0; i < 700; i++) sketch.increment(hashKey(`filler${i}`))
    expect(sketch.resets).toBeGreaterThan(0)
    expect(sketch.frequency(hot)).toBeLessThan(before)
  })

  it('countSaturated has the effect of incrementSeen on keys it reported saturated (property)', () => {
    fc.assert(
      fc.property(
        // Few keys and a small sketch: keys saturate, and agings happen in between.
        fc.array(fc.integer({ min: 0, max: 30 }), { minLength: 1, maxLength: 2_000 }),
        (accesses) => {
          const plain = new FrequencySketch(16)
          const shortcut = new FrequencySketch(16)
          const saturatedIn = new Map<number, number>()
          for (const key of accesses) {
            const hash = hashKey(`k${key}`)
            plain.incrementSeen(hash)
            if (saturatedIn.get(hash) === shortcut.epoch) shortcut.countSaturated()
            else if (shortcut.incrementSeen(hash)) saturatedIn.set(hash, shortcut.epoch)
          }
          expect(shortcut.epoch).toBe(plain.epoch)
          for (let key = 0; key <= 30; key++) {
            const hash = hashKey(`k${key}`)
            expect(shortcut.frequency(hash)).toBe(plain.frequency(hash))
          }
        },
      ),
    )
    const sketch = new FrequencySketch(1_000)
    const hash = hashKey('hot')
    let saturated = false
    for (let i = 0; i < 15 && !saturated; i++) saturated = sketch.incrementSeen(hash)
    expect(saturated).toBe(true)
    expect(sketch.frequency(hash)).toBe(15)
  })
})

describe('FrequencySketch batched counts', () => {
  it('recordSeen(hash, n) leaves every estimate as n single calls would, whatever the interleaving (property)', () => {
    fc.assert(
      fc.property(
        // Steps: a key and a count (0 ages both sketches), on a small sketch
        // so keys share counters and saturate.
        fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 20 })), {
          minLength: 1,
          maxLength: 400,
        }),
        (steps) => {
          const single = new FrequencySketch(16)
          const batched = new FrequencySketch(16)
          for (const [key, count] of steps) {
            if (count === 0) {
              single.age()
              batched.age()
              continue
            }
            const hash = hashKey(`k${key}`)
            let saturated = false
            for (let n = 0; n < count; n++) saturated = single.recordSeen(hash)
            expect(batched.recordSeen(hash, count)).toBe(saturated)
          }
          for (let key = 0; key <= 40; key++) {
            const hash = hashKey(`k${key}`)
            expect(batched.frequency(hash)).toBe(single.frequency(hash))
          }
        },
      ),
    )
  })

  it('rejects a count that is not a whole number of accesses, leaving the counters as they were', () => {
    const sketch = new FrequencySketch(64)
    const hash = hashKey('hot')
    sketch.recordSeen(hash, 3)
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => sketch.recordSeen(hash, bad)).toThrow(
        expect.objectContaining({ code: 'E_INVALID_INPUT' }),
      )
    }
    expect(() => sketch.recordSeen(hash, '2' as unknown as number)).toThrow(/count/)
    expect(sketch.frequency(hash)).toBe(3)
    expect(sketch.recordSeen(hash, 0)).toBe(false)
    expect(sketch.frequency(hash)).toBe(3)
  })
})

describe('FrequencySketch lazy aging', () => {
  it('estimates after any agings, read at any time, are the eager halvings of the counts (property)', () => {
    fc.assert(
      fc.property(
        // Per key: how many accesses (up to and past saturation at 15).
        fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 1, maxLength: 60 }),
        // Agings, each followed by reads of some keys (which bring their blocks up to date).
        fc.array(fc.array(fc.integer({ min: 0, max: 59 }), { maxLength: 10 }), { maxLength: 7 }),
        (counts, agings) => {
          const sketch = new FrequencySketch(64)
          const hashes = counts.map((_, i) => hashKey(`k${i}`))
          // recordSeen skips the doorkeeper, so an estimate is the key's smallest counter.
          for (const [i, count] of counts.entries())
            for (let n = 0; n < count; n++) sketch.recordSeen(hashes[i]!)
          const before = hashes.map((hash) => sketch.frequency(hash))
          for (const [i, count] of counts.entries())
            expect(before[i]).toBeGreaterThanOrEqual(Math.min(count, 15))
          for (const [k, reads] of agings.entries()) {
            sketch.age()
            for (const i of reads) {
              if (i >= hashes.length) continue
              expect(sketch.frequency(hashes[i]!)).toBe(before[i]! >> (k + 1))
            }
          }
          for (const [i, hash] of hashes.entries())
            expect(sketch.frequency(hash)).toBe(before[i]! >> agings.length)
        },
      ),
    )
  })

  it('counts an access made after agings on top of the halved count', () => {
    const sketch = new FrequencySketch(64)
    const hash = hashKey('hot')
    for (let n = 0; n < 15; n++) sketch.recordSeen(hash)
    expect(sketch.frequency(hash)).toBe(15)
    sketch.age()
    sketch.age()
    // 15 >> 2 = 3, then one more access.
    expect(sketch.recordSeen(hash)).toBe(false)
    expect(sketch.frequency(hash)).toBe(4)
    for (let n = 0; n < 5; n++) sketch.age()
    expect(sketch.frequency(hash)).toBe(0)
  })
})

describe('FrequencySketch driven by its owner', () => {
  it('record/recordSeen count like increment/incrementSeen, and age() halves like automatic aging', () => {
    const owned = new FrequencySketch(64)
    const automatic = new FrequencySketch(64)
    const keys = Array.from({ length: 40 }, (_, i) => hashKey(`k${i}`))
    let accesses = 0
    let nextAging = owned.sampleSize
    for (let round = 0; round < 60; round++) {
      for (const [i, hash] of keys.entries()) {
        if (i % 3 === 0) {
          owned.record(hash)
          automatic.increment(hash)
        } else {
          owned.recordSeen(hash)
          automatic.incrementSeen(hash)
        }
        if (++accesses >= nextAging) {
          owned.age()
          nextAging = accesses + owned.sampleSize - Math.floor(owned.sampleSize / 2)
        }
      }
    }
    expect(automatic.resets).toBeGreaterThan(2)
    expect(owned.resets).toBe(automatic.resets)
    for (const hash of keys) expect(owned.frequency(hash)).toBe(automatic.frequency(hash))
  })
})

describe('MemoryTier', () => {
  it('never holds more than maxEntries, whatever the access sequence (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 80 }), fc.boolean()), { maxLength: 400 }),
        (max, ops) => {
          const tier = new MemoryTier({ maxEntries: max })
          const present = new Set<string>()
          for (const [key, write] of ops) {
            const k = `k${key}`
            if (write) tier.setEntry(k, entry(key))
            else {
              const found = tier.getEntry(k)
              if (found) expect(found.value).toBe(key)
            }
            present.add(k)
            expect(tier.size).toBeLessThanOrEqual(max)
          }
          expect([...tier.keys()].every((k) => present.has(k))).toBe(true)
        },
      ),
      { numRuns: 150 },
    )
  })

  it('bounds total weight by maxBytes and refuses entries heavier than the bound', () => {
    const tier = new MemoryTier({
      maxEntries: 1000,
      maxBytes: 1000,
      weigher: (_k, v) => (v as string).length,
    })
    for (let i = 0; i < 50; i++) tier.setEntry(`k${i}`, entry('x'.repeat(100)))
    expect(tier.stats().bytes).toBeLessThanOrEqual(1000)
    expect(tier.size).toBeLessThanOrEqual(10)
    tier.setEntry('huge', entry('x'.repeat(2000)))
    expect(tier.getEntry('huge')).toBeUndefined()
    expect(tier.stats().evictions).toBeGreaterThan(0)
  })

  it('drops entries past their grace period and reports them as expired', () => {
    const clock = new ManualClock(0)
    const evicted: string[] = []
    const tier = new MemoryTier({
      clock,
      onEvict: (key, reason) => evicted.push(`${key}:${reason}`),
    })
    tier.setEntry('a', entry(1, { expiresAt: 100, staleUntil: 200 }))
    clock.set(150)
    expect(tier.getEntry('a')?.value).toBe(1)
    clock.set(200)
    expect(tier.getEntry('a')).toBeUndefined()
    expect(evicted).toEqual(['a:expired'])
  })

  it('getFreshValue serves fresh values only, keeps stale ones for grace, drops expired ones', () => {
    const clock = new ManualClock(0)
    const evicted: string[] = []
    const tier = new MemoryTier({
      clock,
      onEvict: (key, reason) => evicted.push(`${key}:${reason}`),
    })
    tier.setEntry('ttl', entry('t', { expiresAt: 100, staleUntil: 200 }))
    tier.setEntry('forever', entry('f'))
    tier.setEntry('endless-grace', entry('g', { expiresAt: 100 }))
    expect(tier.getFreshValue('ttl')).toBe('t')
    expect(tier.getFreshValue('forever')).toBe('f')
    expect(tier.getFreshValue('endless-grace')).toBe('g')
    expect(tier.getFreshValue('missing')).toBeUndefined()
    clock.set(150)
    expect(tier.getFreshValue('ttl')).toBeUndefined()
    expect(tier.getEntry('ttl')?.value).toBe('t')
    expect(tier.getFreshValue('endless-grace')).toBeUndefined()
    expect(tier.getEntry('endless-grace')?.value).toBe('g')
    clock.set(200)
    expect(tier.getFreshValue('ttl')).toBeUndefined()
    expect(tier.hasEntry('ttl')).toBe(false)
    expect(evicted).toEqual(['ttl:expired'])
    // Rewriting an entry without a TTL clears its expiry.
    tier.setEntry('ttl', entry('again'))
    clock.set(10_000)
    expect(tier.getFreshValue('ttl')).toBe('again')
  })

  it('grows its arrays past the first block and reuses freed slots (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.constantFrom('set', 'get', 'delete'), fc.integer({ min: 0, max: 3_000 })),
          {
            maxLength: 3_000,
          },
        ),
        fc.constantFrom<'tinylfu' | 'lru'>('tinylfu', 'lru'),
        (ops, policy) => {
          const tier = new MemoryTier({ maxEntries: 2_500, policy })
          const model = new Map<string, number>()
          for (const [op, key] of ops) {
            const k = `k${key}`
            if (op === 'set') {
              tier.setEntry(k, entry(key))
              model.set(k, key)
            } else if (op === 'delete') {
              const held = tier.hasEntry(k)
              expect(held && !model.has(k)).toBe(false)
              expect(tier.deleteEntry(k)).toBe(held)
              expect(tier.hasEntry(k)).toBe(false)
              model.delete(k)
            } else {
              const found = tier.getEntry(k)
              // Evictions may drop a key; a found value is always the latest one written.
              if (found) expect(found.value).toBe(model.get(k))
            }
          }
          expect(tier.size).toBeLessThanOrEqual(2_500)
          for (const k of tier.keys()) expect(tier.getEntry(k)?.value).toBe(model.get(k))
        },
      ),
      { numRuns: 40 },
    )
    const tier = new MemoryTier({ maxEntries: 5_000 })
    for (let i = 0; i < 5_000; i++) tier.setEntry(`k${i}`, entry(i))
    expect(tier.size).toBe(5_000)
    expect(tier.getEntry('k4999')?.value).toBe(4999)
    tier.clearAll()
    expect(tier.size).toBe(0)
    for (let i = 0; i < 5_000; i++) tier.setEntry(`n${i}`, entry(i))
    expect(tier.size).toBe(5_000)
    expect(tier.getEntry('k1')).toBeUndefined()
    expect(tier.getEntry('n1')?.value).toBe(1)
  })

  it('indexes tags and removes by tag', () => {
    const tier = new MemoryTier()
    tier.setEntry('a', entry(1, { tags: ['t1'] }))
    tier.setEntry('b', entry(2, { tags: ['t1', 't2'] }))
    tier.setEntry('c', entry(3, { tags: ['t2'] }))
    tier.setEntry('a', entry(4, { tags: ['t3'] }))
    expect(tier.deleteTag('t1')).toBe(1)
    expect(tier.getEntry('a')?.value).toBe(4)
    expect(tier.getEntry('b')).toBeUndefined()
    expect(tier.deleteTag('missing')).toBe(0)
  })

  it('rejects bad options naming the field', () => {
    expect(() => new MemoryTier({ maxEntries: 0 })).toThrow(/options.maxEntries/)
    expect(() => new MemoryTier({ policy: 'fifo' as 'lru' })).toThrow(/options.policy/)
    expect(() => new MemoryTier({ maxBytes: -1 })).toThrow(/options.maxBytes/)
    expect(() => new MemoryTier({ weigher: 3 as never })).toThrow(/options.weigher/)
  })

  it('W-TinyLFU with a fixed window hits, misses and rejects exactly like an eagerly ordered model (property)', () => {
    // The tier orders its window and protected region lazily (a hit stamps;
    // a flush sorts the stamped entries into place before a list's old end
    // is read) and holds a hit's sketch update back until the counters are
    // read, halved or the entry goes; the model moves every hit and counts
    // every access at once.
    fc.assert(
      fc.property(
        fc.integer({ min: 3, max: 40 }),
        fc.constantFrom(0.01, 0.2, 0.5),
        fc.array(
          fc.tuple(
            fc.oneof(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 80 })),
            fc.integer({ min: 0, max: 19 }),
          ),
          { maxLength: 3_000, size: 'max' },
        ),
        (max, initialWindow, ops) => matchesModel(max, initialWindow, ops),
      ),
      { numRuns: 200 },
    )
  })

  it('matches the eagerly ordered model when many entries are hit between flushes (property)', () => {
    // Runs of hits over 51 hot keys (which fit), then bursts of new keys: a
    // flush then often places more than 32 stamped entries (the radix sort).
    fc.assert(
      fc.property(
        fc.integer({ min: 60, max: 200 }),
        fc.constantFrom(0.01, 0.2, 0.5),
        fc.array(
          fc.oneof(
            fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 1, max: 19 })), {
              minLength: 100,
              maxLength: 800,
            }),
            fc.array(
              fc.tuple(fc.integer({ min: 150, max: 600 }), fc.integer({ min: 1, max: 19 })),
              { minLength: 1, maxLength: 30 },
            ),
          ),
          { minLength: 2, maxLength: 12 },
        ),
        (max, initialWindow, phases) => matchesModel(max, initialWindow, phases.flat()),
      ),
      { numRuns: 200 },
    )
  })

  it('places entries hit across a long span in the order of their last hits (property)', () => {
    // 1,000 entries, then up to 60 of them hit in a random order with 140
    // hits of one key between each: a stamp span in the thousands (two radix
    // passes) before the first aging. New keys then evict by that order, and
    // the probes after compare every survivor with the model's.
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 999 }), { minLength: 40, maxLength: 60 }),
        fc.constantFrom(0.01, 0.5, 0.9),
        (hot, initialWindow) => {
          const ops: [number, number][] = []
          for (let key = 0; key < 1_000; key++) ops.push([key, 3])
          for (const key of hot) {
            ops.push([key, 3])
            for (let i = 0; i < 140; i++) ops.push([0, 3])
          }
          for (let key = 1_000; key < 1_500; key++) ops.push([key, 3])
          for (let key = 1; key < 1_000; key++) ops.push([key, 3])
          matchesModel(1_000, initialWindow, ops)
        },
      ),
      { numRuns: 20 },
    )
  })

  it('matches the model across rebases of the access count (property)', () => {
    // A rebase (every 2^29 accesses in production) moves every count, mark
    // and stamp back; pending entries are placed first. Rebasing every 64 to
    // 300 accesses must change nothing.
    fc.assert(
      fc.property(
        fc.integer({ min: 3, max: 40 }),
        fc.integer({ min: 64, max: 300 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 1, max: 19 })), {
          minLength: 500,
          maxLength: 3_000,
        }),
        (max, rebaseAt, ops) => matchesModel(max, 0.2, ops, rebaseAt),
      ),
      { numRuns: 100 },
    )
  })

  it('hits and misses the same with an adaptive window whether or not it rebases (property)', () => {
    // The window tuner has no model; the same tier without rebases is the
    // reference. Runs of hits leave many entries pending across a rebase.
    const outcomes = (max: number, keys: number[], rebaseAt?: number) => {
      const tier = new MemoryTier({ maxEntries: max, rebaseAt })
      let outcome = ''
      for (const key of keys) {
        const hit = tier.getFreshValue(`k${key}`) !== undefined
        if (!hit) tier.setEntry(`k${key}`, entry())
        outcome += hit ? 'h' : 'm'
      }
      return `${outcome} ${tier.stats().windowCapacity}`
    }
    fc.assert(
      fc.property(
        fc.integer({ min: 20, max: 120 }),
        fc.integer({ min: 64, max: 200 }),
        fc.array(
          fc.oneof(
            fc.array(fc.integer({ min: 0, max: 30 }), { minLength: 50, maxLength: 400 }),
            fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 60 }),
          ),
          { minLength: 2, maxLength: 20 },
        ),
        (max, rebaseAt, phases) => {
          const keys = phases.flat()
          expect(outcomes(max, keys, rebaseAt)).toBe(outcomes(max, keys))
        },
      ),
      { numRuns: 150 },
    )
    expect(() => new MemoryTier({ rebaseAt: 10 })).toThrow(/options.rebaseAt/)
  })

  it('policy lru behaves exactly like lru-cache', () => {
    const trace = zipf(20_000, 5_000, 0.8, 7)
    expect(hitRatio(new MemoryTier({ maxEntries: 300, policy: 'lru' }), trace)).toBeCloseTo(
      lruRatio(300, trace),
      6,
    )
  })
})

describe('W-TinyLFU against LRU on generated workloads', () => {
  it('beats LRU on a Zipf (frequency-heavy) workload', () => {
    const trace = zipf(200_000, 20_000, 0.9)
    const tiny = hitRatio(new MemoryTier({ maxEntries: 500 }), trace)
    const lru = lruRatio(500, trace)
    expect(tiny).toBeGreaterThan(lru + 5)
  })

  it('beats LRU by far on a scan-heavy workload', () => {
    const trace = scanHeavy(100_000)
    const tiny = hitRatio(new MemoryTier({ maxEntries: 1000 }), trace)
    const lru = lruRatio(1000, trace)
    expect(tiny).toBeGreaterThan(lru + 15)
  })

  it('beats LRU by far on a loop larger than the cache', () => {
    const trace = loop(600, 100)
    const tiny = hitRatio(new MemoryTier({ maxEntries: 500 }), trace)
    const lru = lruRatio(500, trace)
    expect(lru).toBe(0)
    expect(tiny).toBeGreaterThan(lru + 15)
  })

  it('stays within 1 point of LRU on a recency-heavy workload, the window grown to nearly all of the cache', () => {
    const trace = recency(200_000)
    const tier = new MemoryTier({ maxEntries: 500 })
    const tiny = hitRatio(tier, trace)
    const lru = lruRatio(500, trace)
    expect(tiny).toBeGreaterThan(lru - 1)
    expect(tier.stats().windowCapacity).toBeGreaterThanOrEqual(400)
    // The same tier with a fixed 1% window falls far behind: the adaptation is what closes the gap.
    const fixed = hitRatio(new MemoryTier({ maxEntries: 500, adaptive: false }), trace)
    expect(fixed).toBeLessThan(lru - 10)
  })

  it('keeps the window small on frequency and loop workloads', () => {
    const zipfTier = new MemoryTier({ maxEntries: 500 })
    hitRatio(zipfTier, zipf(100_000, 20_000, 0.9))
    expect(zipfTier.stats().windowCapacity).toBeLessThanOrEqual(25)
    const loopTier = new MemoryTier({ maxEntries: 500 })
    hitRatio(loopTier, loop(600, 100))
    expect(loopTier.stats().windowCapacity).toBeLessThanOrEqual(25)
  })

  it('shrinks a grown window when the workload turns from recency to a loop', () => {
    const tier = new MemoryTier({ maxEntries: 500 })
    hitRatio(tier, recency(100_000))
    expect(tier.stats().windowCapacity).toBeGreaterThanOrEqual(400)
    const trace = loop(600, 150)
    const tiny = hitRatio(tier, trace)
    expect(tier.stats().windowCapacity).toBeLessThanOrEqual(25)
    expect(tiny).toBeGreaterThan(50)
  })

  it('adapts with maxEntries above the simulation size (sampled keys) as well', () => {
    // 4,000 entries: the tuner simulates about one key in eight.
    const trace = recency(400_000, 5, 3_200)
    const tier = new MemoryTier({ maxEntries: 4_000 })
    const tiny = hitRatio(tier, trace)
    const lru = lruRatio(4_000, trace)
    expect(tiny).toBeGreaterThan(lru - 1)
    expect(tier.stats().windowCapacity).toBeGreaterThanOrEqual(3_200)
  })
})

/**
 * Runs `ops` (key, roll) on a tier with a fixed window and on the eagerly
 * ordered reference model, and expects the same hits, sizes and rejections.
 * Roll 0 deletes (key 0: clears), 2 overwrites a held key, 1 reads with
 * `getEntry`, anything else with `getFreshValue`; a miss sets the key.
 */
function matchesModel(
  max: number,
  initialWindow: number,
  ops: [number, number][],
  rebaseAt?: number,
): void {
  const tier = new MemoryTier({ maxEntries: max, initialWindow, adaptive: false, rebaseAt })
  const model = new ReferenceTinyLfu(max, initialWindow)
  // One outcome string per side, compared once (an expect per step is slow).
  let ours = ''
  let theirs = ''
  for (const [key, roll] of ops) {
    const name = `k${key}`
    if (roll === 0) {
      if (key === 0) {
        tier.clearAll()
        model.clear()
        ours += 'c'
        theirs += 'c'
        continue
      }
      ours += tier.deleteEntry(name) ? 'd' : '-'
      theirs += model.delete(name) ? 'd' : '-'
      continue
    }
    if (roll === 2 && tier.hasEntry(name)) {
      // Overwriting a held key is a hit of it.
      tier.setEntry(name, entry(2))
      ours += 'u'
      theirs += model.get(name) ? 'u' : '!'
      continue
    }
    const hit =
      roll === 1 ? tier.getEntry(name) !== undefined : tier.getFreshValue(name) !== undefined
    ours += hit ? 'h' : 'm'
    theirs += model.get(name) ? 'h' : 'm'
    if (!hit) tier.setEntry(name, entry())
    if (theirs.endsWith('m')) model.set(name)
    ours += tier.size
    theirs += model.size
  }
  expect(ours).toBe(theirs)
  expect(tier.stats().rejections).toBe(model.rejections)
}
