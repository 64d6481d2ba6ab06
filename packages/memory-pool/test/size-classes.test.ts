import { isAideError } from '@aide/core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { MAX_CLASS_SIZE, sizeClassOf } from '../src/index.js'
import { CLASS_COUNT, classIndex, classSize } from '../src/size-classes.js'

describe('size classes', () => {
  it('wastes less than 12.5% of any request and never rounds down', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_CLASS_SIZE }), (size) => {
        const capacity = sizeClassOf(size)
        expect(capacity).toBeGreaterThanOrEqual(size)
        expect(capacity - size).toBeLessThan(size / 8)
        expect(capacity).toBeLessThanOrEqual(MAX_CLASS_SIZE)
      }),
      { numRuns: 5000 },
    )
  })

  it('is idempotent and monotonic', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_CLASS_SIZE - 1 }), (size) => {
        const capacity = classSize(size)
        expect(classSize(capacity)).toBe(capacity)
        expect(classSize(size + 1)).toBeGreaterThanOrEqual(capacity)
      }),
      { numRuns: 5000 },
    )
  })

  it('gives distinct classes distinct dense indices', () => {
    const seen = new Map<number, number>()
    let capacity = 1
    while (capacity <= MAX_CLASS_SIZE) {
      const index = classIndex(capacity)
      expect(index).toBeGreaterThanOrEqual(0)
      expect(index).toBeLessThan(CLASS_COUNT)
      expect(seen.get(index)).toBeUndefined()
      seen.set(index, capacity)
      capacity = classSize(capacity + 1)
    }
    expect(seen.size).toBe(CLASS_COUNT - 1)
  })

  it('rejects sizes outside the supported range naming the field', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, MAX_CLASS_SIZE + 1, '12' as unknown as number]) {
      let caught: unknown
      try {
        sizeClassOf(bad)
      } catch (error) {
        caught = error
      }
      expect(isAideError(caught, 'E_INVALID_INPUT')).toBe(true)
      expect((caught as { details: { field: string } }).details.field).toBe('size')
    }
  })
})
