import { type AideError, isAideError } from '@aide/core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ObjectPool, type ObjectPoolEvents } from '../src/index.js'
import { collectUntil } from './gc.js'

function caught(fn: () => unknown): AideError {
  try {
    fn()
  } catch (error) {
    if (isAideError(error)) return error
    throw error
  }
  throw new Error('expected an AideError')
}

interface Scratch {
  items: number[]
}

function scratchPool(options: Partial<ConstructorParameters<typeof ObjectPool<Scratch>>[0]> = {}) {
  let created = 0
  const pool = new ObjectPool<Scratch>({
    create: () => {
      created++
      return { items: [] }
    },
    reset: (value) => {
      value.items.length = 0
    },
    ...options,
  })
  return { pool, created: () => created }
}

describe('ObjectPool', () => {
  it('reuses reset objects and counts hits and misses', () => {
    const { pool, created } = scratchPool()
    const first = pool.acquire()
    first.items.push(1, 2, 3)
    pool.release(first)
    const second = pool.acquire()
    expect(second).toBe(first)
    expect(second.items).toEqual([])
    pool.release(second)
    expect(created()).toBe(1)
    expect(pool.stats()).toMatchObject({
      hits: 1,
      misses: 1,
      inUse: 0,
      free: 1,
      hitRate: 0.5,
      highWater: 1,
    })
  })

  it('rejects double release and foreign objects', () => {
    const { pool } = scratchPool()
    const value = pool.acquire()
    pool.release(value)
    expect(caught(() => pool.release(value)).code).toBe('E_INVALID_STATE')
    const foreign = caught(() => pool.release({ items: [] }))
    expect(foreign.code).toBe('E_INVALID_INPUT')
    expect(foreign.details.field).toBe('value')
    expect(caught(() => pool.release(null as never)).code).toBe('E_INVALID_INPUT')
    expect(pool.stats().free).toBe(1)
  })

  it('acquireHandle releases with using and refuses a second release', () => {
    const { pool } = scratchPool()
    let kept: { release(): void } | undefined
    {
      using handle = pool.acquireHandle()
      handle.value.items.push(1)
      kept = handle
      expect(pool.stats().inUse).toBe(1)
    }
    expect(pool.stats().inUse).toBe(0)
    expect(caught(() => kept?.release()).code).toBe('E_INVALID_STATE')
  })

  it('keeps at most max free objects and enforces maxInUse', () => {
    const { pool } = scratchPool({ max: 2, maxInUse: 3 })
    const values = [pool.acquire(), pool.acquire(), pool.acquire()]
    const limit = caught(() => pool.acquire())
    expect(limit.code).toBe('E_LIMIT')
    for (const value of values) pool.release(value)
    expect(pool.stats()).toMatchObject({ free: 2, dropped: 1, rejected: 1 })
    expect(pool.clear()).toBe(2)
    expect(pool.stats().free).toBe(0)
  })

  it('discards an object whose reset throws and reports the cause', () => {
    const pool = new ObjectPool<{ n: number }>({
      create: () => ({ n: 0 }),
      reset: () => {
        throw new Error('reset broke')
      },
    })
    const value = pool.acquire()
    const error = caught(() => pool.release(value))
    expect(error.code).toBe('E_INTERNAL')
    expect((error.cause as Error).message).toBe('reset broke')
    expect(pool.stats()).toMatchObject({ inUse: 0, free: 0, resetFailures: 1 })
    // The discarded object is no longer the pool's.
    expect(caught(() => pool.release(value)).code).toBe('E_INVALID_INPUT')
  })

  it('wraps create failures and bad create results', () => {
    const throwing = new ObjectPool({
      create: (): object => {
        throw new Error('no')
      },
    })
    expect(caught(() => throwing.acquire()).code).toBe('E_INTERNAL')
    const primitive = new ObjectPool({ create: () => 5 as unknown as object })
    expect(caught(() => primitive.acquire()).code).toBe('E_INTERNAL')
    expect(throwing.stats().inUse).toBe(0)
  })

  it('validates options, naming the field', () => {
    const cases: Array<[unknown, string]> = [
      [undefined, 'options'],
      [{}, 'options.create'],
      [{ create: () => ({}), reset: 3 }, 'options.reset'],
      [{ create: () => ({}), max: -1 }, 'options.max'],
      [{ create: () => ({}), maxInUse: 0 }, 'options.maxInUse'],
      [{ create: () => ({}), debug: 'on' }, 'options.debug'],
    ]
    for (const [options, field] of cases) {
      const error = caught(() => new ObjectPool(options as never))
      expect(error.code).toBe('E_INVALID_INPUT')
      expect(error.details.field).toBe(field)
    }
  })

  it('keeps inUse and free consistent under any sequence of operations', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant(-1), fc.nat({ max: 50 })), { maxLength: 100 }),
        (ops) => {
          const { pool, created } = scratchPool({ max: 4 })
          const live: Scratch[] = []
          let acquired = 0
          for (const op of ops) {
            if (op === -1) {
              live.push(pool.acquire())
              acquired++
            } else if (live.length > 0) pool.release(live.splice(op % live.length, 1)[0]!)
            const stats = pool.stats()
            expect(stats.inUse).toBe(live.length)
            expect(stats.free).toBeLessThanOrEqual(4)
            expect(stats.hits + stats.misses).toBe(acquired)
            expect(stats.misses).toBe(created())
          }
          expect(new Set(live).size).toBe(live.length)
        },
      ),
      { numRuns: 200 },
    )
  })

  it('reports an object garbage-collected while borrowed', async () => {
    const events: Array<ObjectPoolEvents['object-leak']> = []
    const pool = new ObjectPool<{ n: number }>({
      create: () => ({ n: 0 }),
      debug: true,
      events: { emit: (_type, payload) => void events.push(payload) },
    })
    ;(function leak() {
      pool.acquire()
    })()
    await collectUntil(() => pool.stats().leaked === 1)
    expect(pool.stats().inUse).toBe(0)
    expect(events[0]?.acquiredAt).toContain('object-pool.test.ts')
  })
})
