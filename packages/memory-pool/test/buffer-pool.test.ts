import { type AideError, InMemoryMeter, isAideError, ManualClock } from '@aide/core'
import fc from 'fast-check'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  BufferPool,
  type BufferPoolEvents,
  type BufferPoolOptions,
  type PoolHandle,
} from '../src/index.js'
import { collectUntil } from './gc.js'

const KiB = 1024
const MiB = 1024 * KiB

const pools: BufferPool[] = []
function makePool(options: BufferPoolOptions = {}): BufferPool {
  const pool = new BufferPool({ clock: new ManualClock(), ...options })
  pools.push(pool)
  return pool
}
afterEach(() => {
  for (const pool of pools.splice(0)) pool.dispose()
})

function caught(fn: () => unknown): AideError {
  try {
    fn()
  } catch (error) {
    if (isAideError(error)) return error
    throw error
  }
  throw new Error('expected an AideError')
}

function recorder() {
  const events: Array<{ type: keyof BufferPoolEvents; payload: unknown }> = []
  return {
    events,
    sink: {
      emit: (type: keyof BufferPoolEvents, payload: unknown) => void events.push({ type, payload }),
    },
  }
}

describe('BufferPool', () => {
  it('reuses released buffers and counts hits and misses', () => {
    const pool = makePool()
    const first = pool.acquire(10_000)
    expect(first.pooled).toBe(true)
    expect(first.byteLength).toBe(first.capacity)
    expect(first.capacity).toBeGreaterThanOrEqual(10_000)
    const buffer = first.buffer
    first.release()
    const second = pool.acquire(10_000)
    expect(second.buffer).toBe(buffer)
    second.release()
    const stats = pool.stats()
    expect(stats).toMatchObject({ hits: 1, misses: 1, inUseBytes: 0, outstandingHandles: 0 })
    expect(stats.freeBytes).toBe(first.capacity)
    expect(stats.classes).toEqual([
      { capacity: first.capacity, inUse: 0, free: 1, hits: 1, misses: 1 },
    ])
    expect(stats.fragmentation).toBe(1)
    expect(stats.hitRate).toBe(0.5)
  })

  it('acquireExact exposes exactly the requested bytes through every view', () => {
    const pool = makePool()
    using handle = pool.acquireExact(10_001)
    expect(handle.byteLength).toBe(10_001)
    expect(handle.capacity).toBeGreaterThan(10_001)
    expect(handle.bytes().length).toBe(10_001)
    expect(handle.float32().length).toBe(2500)
    expect(handle.view('float64').length).toBe(1250)
    expect(handle.int32().length).toBe(2500)
    expect(handle.uint32().length).toBe(2500)
    expect(handle.bigint64().length).toBe(1250)
    expect(handle.view('biguint64').length).toBe(1250)
    expect(handle.view('int16').length).toBe(5000)
    expect(handle.dataView().byteLength).toBe(10_001)
    for (const kind of ['complex64', 'toString', undefined]) {
      expect(caught(() => handle.view(kind as never)).details.field).toBe('kind')
    }
  })

  it('acquireElements sizes tensors by element count, including bigint64', () => {
    const pool = makePool()
    const ids = pool.acquireElements('bigint64', 1024)
    const view = ids.bigint64()
    expect(view.length).toBe(1024)
    view[1023] = 42n
    expect(ids.view('bigint64')[1023]).toBe(42n)
    ids.release()
    const floats = pool.acquireElements('float32', 3 * 32 * 32)
    expect(floats.float32().length).toBe(3 * 32 * 32)
    floats.release()
    expect(caught(() => pool.acquireElements('complex64' as never, 4)).details.field).toBe('kind')
    expect(caught(() => pool.acquireElements('float32', -1)).details.field).toBe('length')
  })

  it('zeroes reused memory by default and leaves it when zeroOnReuse is false', () => {
    const zeroing = makePool()
    const a = zeroing.acquireExact(8 * KiB)
    a.bytes().fill(7)
    a.release()
    const b = zeroing.acquireExact(8 * KiB)
    expect(b.bytes().every((value) => value === 0)).toBe(true)
    b.release()

    const raw = makePool({ zeroOnReuse: false })
    const c = raw.acquireExact(8 * KiB)
    c.bytes().fill(7)
    c.release()
    const d = raw.acquireExact(8 * KiB)
    expect(d.bytes()[0]).toBe(7)
    d.release()
  })

  it('scrubs the whole buffer when it is released, so nothing stale waits in the free list', () => {
    const pool = makePool()
    // An exact request smaller than its class: the borrower also writes past its view.
    const a = pool.acquireExact(7 * KiB + 100)
    expect(a.capacity).toBeGreaterThan(7 * KiB + 100)
    const buffer = new Uint8Array(a.buffer)
    buffer.fill(9)
    a.release()
    // The memory is already zero while it sits in the free list.
    expect(buffer.every((value) => value === 0)).toBe(true)
    // The next borrower of the class sees zeros across the whole capacity.
    const b = pool.acquire(7 * KiB + 100)
    expect(b.byteLength).toBe(b.capacity)
    expect(b.bytes().every((value) => value === 0)).toBe(true)
    b.release()

    // A buffer the pool drops on release (class full) is left alone: nobody can borrow it again.
    const capped = makePool({ maxFreeBytesPerClass: 0 })
    const c = capped.acquireExact(8 * KiB)
    const kept = new Uint8Array(c.buffer)
    kept.fill(5)
    c.release()
    expect(capped.stats().dropped).toBe(1)
    expect(kept[0]).toBe(5)
  })

  it('carves small requests from a zeroed slab: aligned, disjoint, and views start at byteOffset', () => {
    const pool = makePool({ debug: true })
    const a = pool.acquireExact(100)
    const b = pool.acquireExact(13)
    expect(a.pooled).toBe(false)
    expect(b.buffer).toBe(a.buffer)
    expect(b.byteOffset % 8).toBe(0)
    expect(b.byteOffset).toBeGreaterThanOrEqual(a.byteOffset + 100)
    expect(a.bytes().every((value) => value === 0)).toBe(true)
    a.bytes().fill(0xff)
    // Writing through every kind of view of one handle leaves its neighbour alone.
    b.view('float64')[0] = 1.5
    b.dataView().setUint8(12, 7)
    expect(b.bytes()[12]).toBe(7)
    expect(b.view('float64')[0]).toBe(1.5)
    expect(a.bytes().every((value) => value === 0xff)).toBe(true)
    // A release (even in debug mode) does not detach the shared slab.
    a.release()
    expect(b.bytes()[12]).toBe(7)
    b.release()
    // A fresh slice is zero even though the slab held data before.
    const c = pool.acquireExact(100)
    expect(c.bytes().every((value) => value === 0)).toBe(true)
    c.release()
    expect(pool.stats()).toMatchObject({ bypassed: 3, inUseBytes: 0, outstandingHandles: 0 })
  })

  it('bypasses the pool for small and oversize requests', () => {
    const pool = makePool({ minPooledSize: 4 * KiB, maxPooledSize: 1 * MiB })
    const small = pool.acquire(100)
    expect(small.pooled).toBe(false)
    expect(small.byteLength).toBe(100)
    const empty = pool.acquire(0)
    expect(empty.byteLength).toBe(0)
    const big = pool.acquire(2 * MiB)
    expect(big.pooled).toBe(false)
    expect(pool.stats()).toMatchObject({ bypassed: 3, retainedBytes: 0, outstandingHandles: 3 })
    small.release()
    empty.release()
    big.release()
    expect(pool.stats()).toMatchObject({ outstandingHandles: 0, freeBytes: 0 })
  })

  it('throws E_INVALID_STATE on double release and on use after release', () => {
    const pool = makePool()
    const handle = pool.acquire(8 * KiB)
    handle.release()
    expect(handle.released).toBe(true)
    expect(caught(() => handle.release()).code).toBe('E_INVALID_STATE')
    expect(caught(() => handle.bytes()).code).toBe('E_INVALID_STATE')
    expect(caught(() => handle.float32()).code).toBe('E_INVALID_STATE')
    expect(caught(() => handle.buffer).code).toBe('E_INVALID_STATE')
    // The double release did not put the buffer on the free list twice.
    expect(pool.stats().classes[0]!.free).toBe(1)
    const unpooled = pool.acquire(10)
    unpooled.release()
    expect(caught(() => unpooled.release()).code).toBe('E_INVALID_STATE')
  })

  it('debug mode detaches views kept past release', () => {
    const pool = makePool({ debug: true })
    const handle = pool.acquire(8 * KiB)
    const stale = handle.float32()
    stale[0] = 1
    handle.release()
    expect(stale.length).toBe(0)
    const next = pool.acquire(8 * KiB)
    expect(next.float32()[0]).toBe(0)
    expect(pool.stats().hits).toBe(1)
    next.release()
  })

  it('rejects with E_LIMIT when the budget is exhausted, after trimming free memory', () => {
    const { events, sink } = recorder()
    const pool = makePool({ maxBytes: 64 * KiB, events: sink })
    const a = pool.acquire(32 * KiB)
    const b = pool.acquire(16 * KiB)
    b.release()
    // 32 KiB in use + 16 KiB free: a 32 KiB request fits only after dropping the free 16 KiB.
    const c = pool.acquire(32 * KiB)
    expect(pool.stats()).toMatchObject({ inUseBytes: 64 * KiB, freeBytes: 0 })
    expect(events.some((event) => event.type === 'pool-compact')).toBe(true)
    const error = caught(() => pool.acquire(8 * KiB))
    expect(error.code).toBe('E_LIMIT')
    expect(error.details).toMatchObject({ maxBytes: 64 * KiB })
    expect(pool.stats().rejected).toBe(1)
    expect(events.at(-1)).toMatchObject({ type: 'budget-exhaust', payload: { policy: 'reject' } })
    // Nothing already handed out was disturbed.
    a.bytes()[0] = 1
    expect(a.bytes()[0]).toBe(1)
    a.release()
    c.release()
  })

  it("allocates outside the pool when onExhausted is 'unpooled'", () => {
    const pool = makePool({ maxBytes: 16 * KiB, onExhausted: 'unpooled' })
    const a = pool.acquire(16 * KiB)
    const b = pool.acquire(16 * KiB)
    expect(b.pooled).toBe(false)
    expect(pool.stats()).toMatchObject({ unpooled: 1, retainedBytes: 16 * KiB })
    b.release()
    a.release()
    expect(pool.stats().retainedBytes).toBe(16 * KiB)
  })

  it('caps free memory per class', () => {
    const pool = makePool({ maxFreeBytesPerClass: 16 * KiB })
    const handles = [pool.acquire(8 * KiB), pool.acquire(8 * KiB), pool.acquire(8 * KiB)]
    for (const handle of handles) handle.release()
    expect(pool.stats()).toMatchObject({ freeBytes: 16 * KiB, dropped: 1 })
  })

  it('compact() drops idle free buffers on demand', () => {
    const clock = new ManualClock()
    const pool = makePool({ clock, compaction: false })
    const old = pool.acquire(8 * KiB)
    old.release()
    clock.advance(1000)
    const recent = pool.acquire(16 * KiB)
    recent.release()
    expect(pool.compact({ idleMs: 500 })).toBe(8 * KiB)
    expect(pool.stats().freeBytes).toBe(16 * KiB)
    expect(pool.compact()).toBe(16 * KiB)
    expect(pool.stats()).toMatchObject({ freeBytes: 0, compactions: 2, compactedBytes: 24 * KiB })
    expect(caught(() => pool.compact({ idleMs: -1 })).details.field).toBe('options.idleMs')
  })

  it('background compaction never trims a buffer before it has been free for idleMs', () => {
    const clock = new ManualClock()
    const pool = makePool({ clock, compaction: { intervalMs: 100, threshold: 0.1, idleMs: 1000 } })
    clock.advance(950)
    pool.acquire(8 * KiB).release()
    // Free for 950 ms at t = 1900: kept.
    clock.advance(950)
    expect(pool.stats().freeBytes).toBe(8 * KiB)
    // By the check at t = 2000 it has been free for 1050 ms.
    clock.advance(100)
    expect(pool.stats().freeBytes).toBe(0)
  })

  it('background compaction trims idle memory once fragmentation passes the threshold', () => {
    const clock = new ManualClock()
    const { events, sink } = recorder()
    const pool = makePool({
      clock,
      events: sink,
      compaction: { intervalMs: 100, threshold: 0.5, idleMs: 1000 },
    })
    const keep = pool.acquire(8 * KiB)
    const handles = Array.from({ length: 8 }, () => pool.acquire(8 * KiB))
    for (const handle of handles) handle.release()
    expect(pool.stats().fragmentation).toBeGreaterThan(0.5)
    clock.advance(500)
    // Not idle long enough yet.
    expect(pool.stats().freeBytes).toBe(64 * KiB)
    clock.advance(1000)
    const stats = pool.stats()
    expect(stats.fragmentation).toBeLessThanOrEqual(0.25)
    expect(stats.inUseBytes).toBe(8 * KiB)
    expect(events.find((event) => event.type === 'pool-compact')?.payload).toMatchObject({
      reason: 'background',
    })
    keep.release()
  })

  it('publishes metrics on its interval and on dispose, not on the acquire path', () => {
    const clock = new ManualClock()
    const meter = new InMemoryMeter()
    const pool = new BufferPool({
      name: 'tensors',
      clock,
      meter,
      metricsIntervalMs: 1000,
      compaction: false,
    })
    const labels = { pool: 'tensors' }
    pool.acquire(8 * KiB).release()
    const held = pool.acquire(8 * KiB)
    expect(meter.value('aide_buffer_pool_hits_total', labels)).toBe(0)
    clock.advance(1000)
    expect(meter.value('aide_buffer_pool_hits_total', labels)).toBe(1)
    expect(meter.value('aide_buffer_pool_misses_total', labels)).toBe(1)
    expect(meter.value('aide_buffer_pool_in_use_bytes', labels)).toBe(8 * KiB)
    held.release()
    clock.advance(1000)
    expect(meter.value('aide_buffer_pool_in_use_bytes', labels)).toBe(0)
    expect(meter.value('aide_buffer_pool_free_bytes', labels)).toBe(8 * KiB)
    expect(meter.value('aide_buffer_pool_fragmentation_ratio', labels)).toBe(1)
    expect(meter.value('aide_buffer_pool_hits_total', labels)).toBe(1)
    pool.dispose()
    expect(clock.pendingTimers).toBe(0)
    expect(meter.value('aide_buffer_pool_free_bytes', labels)).toBe(0)
  })

  it('background compaction yields to the event loop once its time slice is used up', () => {
    const clock = new ManualClock()
    const yields = vi.spyOn(clock, 'setTimeout')
    const { events, sink } = recorder()
    const pool = makePool({
      clock,
      events: sink,
      compaction: { intervalMs: 100, threshold: 0.1, idleMs: 0, sliceMs: 1 },
    })
    // Free buffers in five classes, nothing in use: fragmentation 1.
    for (const size of [8 * KiB, 16 * KiB, 32 * KiB, 64 * KiB, 128 * KiB])
      pool.acquire(size).release()
    let fakeNow = 0
    const spy = vi.spyOn(performance, 'now').mockImplementation(() => {
      fakeNow += 5
      return fakeNow
    })
    try {
      // Every budget check sees 5 ms pass, so each slice visits one class and reschedules itself.
      clock.advance(100)
    } finally {
      spy.mockRestore()
    }
    expect(yields.mock.calls.length).toBeGreaterThanOrEqual(5)
    expect(yields.mock.calls.every((call) => call[1] === 0)).toBe(true)
    expect(pool.stats()).toMatchObject({ freeBytes: 0, compactions: 1 })
    expect(events.filter((event) => event.type === 'pool-compact')).toEqual([
      {
        type: 'pool-compact',
        payload: { reason: 'background', releasedBytes: 248 * KiB, buffers: 5 },
      },
    ])
  })

  it('dispose stops the timer, drops free memory and refuses new work', () => {
    const clock = new ManualClock()
    const pool = new BufferPool({ clock, compaction: { intervalMs: 50 } })
    expect(clock.pendingTimers).toBe(1)
    const held = pool.acquire(8 * KiB)
    pool.acquire(8 * KiB).release()
    pool.dispose()
    pool.dispose()
    expect(clock.pendingTimers).toBe(0)
    expect(pool.disposed).toBe(true)
    expect(pool.stats().freeBytes).toBe(0)
    expect(caught(() => pool.acquire(8 * KiB)).code).toBe('E_DISPOSED')
    held.release()
    expect(pool.stats()).toMatchObject({ inUseBytes: 0, freeBytes: 0 })
  })

  it('validates options and sizes, naming the field', () => {
    const cases: Array<[BufferPoolOptions, string]> = [
      [{ maxBytes: -1 }, 'options.maxBytes'],
      [{ onExhausted: 'wait' as never }, 'options.onExhausted'],
      [{ zeroOnReuse: 'yes' as never }, 'options.zeroOnReuse'],
      [{ minPooledSize: 0 }, 'options.minPooledSize'],
      [{ minPooledSize: 8192, maxPooledSize: 4096 }, 'options.maxPooledSize'],
      [{ compaction: { threshold: 2 } }, 'options.compaction.threshold'],
      [{ compaction: { intervalMs: 0 } }, 'options.compaction.intervalMs'],
      [{ clock: {} as never }, 'options.clock'],
      [{ events: { emit: 1 } as never }, 'options.events.emit'],
      [{ meter: {} as never }, 'options.meter.counter'],
      [{ meter: new InMemoryMeter(), metricsIntervalMs: 0 }, 'options.metricsIntervalMs'],
    ]
    const clock = new ManualClock()
    for (const [options, field] of cases) {
      const error = caught(() => new BufferPool({ clock, ...options }))
      expect(error.code).toBe('E_INVALID_INPUT')
      expect(error.details.field).toBe(field)
    }
    // A rejected pool started no timers.
    expect(clock.pendingTimers).toBe(0)
    const pool = makePool()
    for (const size of [-1, 1.5, Number.NaN, '4096' as unknown as number]) {
      const error = caught(() => pool.acquire(size))
      expect(error.code).toBe('E_INVALID_INPUT')
      expect(error.details.field).toBe('size')
    }
  })

  it('keeps its accounting consistent under any sequence of acquires and releases', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({
              op: fc.constant('acquire' as const),
              size: fc.integer({ min: 0, max: 200_000 }),
              exact: fc.boolean(),
            }),
            fc.record({ op: fc.constant('release' as const), index: fc.nat() }),
            fc.record({ op: fc.constant('compact' as const) }),
          ),
          { maxLength: 80 },
        ),
        (ops) => {
          const pool = new BufferPool({
            clock: new ManualClock(),
            compaction: false,
            maxBytes: 1 * MiB,
            onExhausted: 'unpooled',
          })
          const live: Array<{ handle: PoolHandle; size: number }> = []
          for (const op of ops) {
            if (op.op === 'acquire') {
              const handle = op.exact ? pool.acquireExact(op.size) : pool.acquire(op.size)
              expect(handle.byteLength).toBeGreaterThanOrEqual(op.size)
              if (handle.pooled) expect(handle.capacity - op.size).toBeLessThan(op.size / 8)
              if (op.exact) expect(handle.byteLength).toBe(op.size)
              live.push({ handle, size: op.size })
            } else if (op.op === 'release' && live.length > 0) {
              live.splice(op.index % live.length, 1)[0]!.handle.release()
            } else if (op.op === 'compact') {
              pool.compact()
            }
            const stats = pool.stats()
            const pooledInUse = live
              .filter((entry) => entry.handle.pooled)
              .reduce((sum, entry) => sum + entry.handle.capacity, 0)
            expect(stats.inUseBytes).toBe(pooledInUse)
            expect(stats.retainedBytes).toBeLessThanOrEqual(1 * MiB)
            expect(stats.outstandingHandles).toBe(live.length)
            expect(stats.classes.reduce((sum, cls) => sum + cls.free * cls.capacity, 0)).toBe(
              stats.freeBytes,
            )
            expect(stats.classes.reduce((sum, cls) => sum + cls.inUse * cls.capacity, 0)).toBe(
              stats.inUseBytes,
            )
            expect(stats.highWaterBytes).toBeGreaterThanOrEqual(stats.inUseBytes)
          }
          // No two live handles share memory (small ones may share a slab, never a byte).
          const ranges = live
            .map(({ handle }) => ({
              buffer: handle.buffer,
              start: handle.byteOffset,
              end: handle.byteOffset + handle.capacity,
            }))
            .sort((a, b) => a.start - b.start)
          for (const [i, a] of ranges.entries())
            for (const b of ranges.slice(i + 1))
              if (a.buffer === b.buffer) expect(b.start).toBeGreaterThanOrEqual(a.end)
          pool.dispose()
        },
      ),
      { numRuns: 200 },
    )
  })

  it('reports a handle garbage-collected without release, with where it was acquired', async () => {
    const { events, sink } = recorder()
    const warnings: unknown[] = []
    const logger = {
      trace: () => undefined,
      debug: () => undefined,
      info: () => undefined,
      warn: (bindings: unknown) => void warnings.push(bindings),
      error: () => undefined,
      fatal: () => undefined,
      child: () => logger,
    }
    const pool = makePool({ debug: true, events: sink, logger })
    ;(function leak() {
      pool.acquire(8 * KiB)
    })()
    expect(pool.stats().outstandingHandles).toBe(1)
    await collectUntil(() => pool.stats().leaked === 1)
    const event = events.find((entry) => entry.type === 'handle-leak')
    expect(event?.payload).toMatchObject({ byteLength: 8 * KiB })
    expect((event?.payload as { acquiredAt?: string } | undefined)?.acquiredAt).toContain(
      'buffer-pool.test.ts',
    )
    expect(pool.stats()).toMatchObject({ inUseBytes: 0, outstandingHandles: 0 })
    expect(warnings).toEqual([event?.payload])
  })

  it('does not reuse the buffer of a leaked handle (views of it may live on)', async () => {
    const pool = makePool({ detectLeaks: true })
    let kept: Uint8Array | undefined
    ;(function leak() {
      const handle = pool.acquire(8 * KiB)
      // A view that outlives the handle: the leaked buffer must never be handed out again.
      kept = handle.bytes()
      kept.fill(7)
    })()
    await collectUntil(() => pool.stats().leaked === 1)
    const before = pool.stats()
    expect(before).toMatchObject({
      leaked: 1,
      freeBytes: 0,
      inUseBytes: 0,
      outstandingHandles: 0,
      hits: 0,
      misses: 1,
    })
    const next = pool.acquire(8 * KiB)
    expect(pool.stats()).toMatchObject({ hits: 0, misses: 2, freeBytes: 0 })
    expect(pool.stats().classes.find((c) => c.capacity === 8 * KiB)).toMatchObject({
      hits: 0,
      misses: 2,
      free: 0,
    })
    expect(next.buffer).not.toBe(kept!.buffer)
    next.bytes().fill(1)
    expect(kept!.every((byte) => byte === 7)).toBe(true)
    next.release()
  })

  it('does not report released handles as leaks', async () => {
    const pool = makePool({ detectLeaks: true })
    let ref: WeakRef<PoolHandle> | undefined
    ;(function tidy() {
      const handle = pool.acquire(8 * KiB)
      handle.release()
      ref = new WeakRef(handle)
    })()
    await collectUntil(() => ref?.deref() === undefined)
    // A finalizer registered after the handle is gone runs after any callback owed for the handle.
    let collected = false
    const canary = new FinalizationRegistry<string>(() => {
      collected = true
    })
    ;(function drop() {
      canary.register({}, 'canary')
    })()
    await collectUntil(() => collected)
    expect(pool.stats()).toMatchObject({ leaked: 0, outstandingHandles: 0 })
  })
})
