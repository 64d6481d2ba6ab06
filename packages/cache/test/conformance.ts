/** The one conformance suite every cache tier passes. */
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { StoredEntry } from '../src/entry.ts'
import type { CacheTier } from '../src/tier.ts'

const forever = Number.POSITIVE_INFINITY

function entry(value: unknown, extra: Partial<StoredEntry> = {}): StoredEntry {
  return {
    value,
    createdAt: Date.now(),
    expiresAt: forever,
    staleUntil: forever,
    tags: [],
    ...extra,
  }
}

/** A value with every type that must survive L2/L3 unchanged. */
export function richValue() {
  return {
    date: new Date(1_700_000_000_000),
    map: new Map<unknown, unknown>([
      ['a', 1],
      [2, { nested: true }],
    ]),
    set: new Set(['x', 'y']),
    big: 12345678901234567890n,
    floats: new Float64Array([1.5, -2.25]),
    bytes: new Uint8Array([1, 2, 3]),
    buffer: Buffer.from('hello'),
    nested: { list: [1, 'two', null, { three: 3 }], undef: undefined },
    text: 'ünïcødé ✓',
  }
}

/**
 * Registers the conformance tests for a tier. `open` returns a fresh tier
 * (with its own key space); `close` releases what `open` made.
 */
export function testTier(open: () => Promise<CacheTier>, options: { serializes: boolean }): void {
  let tier: CacheTier
  beforeAll(async () => {
    tier = await open()
  })
  afterAll(async () => {
    await tier.dispose()
    await tier.dispose()
  })

  it('conformance: returns undefined for a missing key', async () => {
    expect(await tier.get('conf:missing')).toBeUndefined()
  })

  it('conformance: stores, returns and overwrites an entry', async () => {
    await tier.set('conf:a', entry(1, { tags: ['t'] }))
    expect((await tier.get('conf:a'))?.value).toBe(1)
    await tier.set('conf:a', entry(2))
    const found = await tier.get('conf:a')
    expect(found?.value).toBe(2)
    expect(found?.tags).toEqual([])
  })

  it('conformance: round-trips every supported value type', async () => {
    const value = richValue()
    await tier.set('conf:rich', entry(value))
    const found = (await tier.get('conf:rich'))?.value as ReturnType<typeof richValue>
    expect(found).toEqual(value)
    expect(found.date).toBeInstanceOf(Date)
    expect(found.map).toBeInstanceOf(Map)
    expect(found.set).toBeInstanceOf(Set)
    expect(typeof found.big).toBe('bigint')
    expect(found.floats).toBeInstanceOf(Float64Array)
    expect(Buffer.isBuffer(found.buffer)).toBe(true)
    if (!options.serializes) expect(found).toBe(value)
  })

  it('conformance: keeps timing fields and serves entries within grace', async () => {
    const now = Date.now()
    await tier.set('conf:stale', entry('s', { expiresAt: now - 10, staleUntil: now + 60_000 }))
    const found = await tier.get('conf:stale')
    expect(found?.value).toBe('s')
    expect(found?.expiresAt).toBe(now - 10)
    expect(found?.staleUntil).toBe(now + 60_000)
  })

  it('conformance: never returns an entry past its grace period', async () => {
    const now = Date.now()
    await tier.set('conf:dead', entry('d', { expiresAt: now - 20, staleUntil: now - 10 }))
    expect(await tier.get('conf:dead')).toBeUndefined()
  })

  it('conformance: deletes a key and says whether it was there', async () => {
    await tier.set('conf:del', entry(1))
    expect(await tier.delete('conf:del')).toBe(true)
    expect(await tier.delete('conf:del')).toBe(false)
    expect(await tier.get('conf:del')).toBeUndefined()
  })

  it('conformance: deletes by tag', async () => {
    await tier.set('conf:t1', entry(1, { tags: ['red'] }))
    await tier.set('conf:t2', entry(2, { tags: ['red', 'blue'] }))
    await tier.set('conf:t3', entry(3, { tags: ['blue'] }))
    expect(await tier.deleteByTag('red')).toBe(2)
    expect(await tier.get('conf:t1')).toBeUndefined()
    expect(await tier.get('conf:t2')).toBeUndefined()
    expect((await tier.get('conf:t3'))?.value).toBe(3)
  })

  it('conformance: clears everything', async () => {
    await tier.set('conf:c1', entry(1))
    await tier.set('conf:c2', entry(2))
    await tier.clear()
    expect(await tier.get('conf:c1')).toBeUndefined()
    expect(await tier.get('conf:c2')).toBeUndefined()
  })

  it('conformance: stats are plain data', () => {
    const stats = tier.stats()
    expect(JSON.parse(JSON.stringify(stats))).toEqual(JSON.parse(JSON.stringify(stats)))
    expect(typeof stats.evictions).toBe('number')
  })
}
