import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { StampSorter } from '../src/stamp-sort.ts'

describe('StampSorter', () => {
  it('orders indices by their stamps, read through a stride and offset, like a stable sort (property)', () => {
    const sorter = new StampSorter()
    fc.assert(
      fc.property(
        // Stamps spanning up to 2^30, so the radix sort takes one to four
        // passes; some runs draw from few values, so equal stamps are common.
        fc.oneof(
          fc.array(fc.integer({ min: 0, max: 2 ** 30 }), { maxLength: 400, size: 'max' }),
          fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 60, size: 'max' }),
        ),
        fc.integer({ min: -(2 ** 29), max: 2 ** 29 }),
        fc.integer({ min: 1, max: 4 }),
        (offsets, base, stride) => {
          const stamps = new Int32Array(offsets.length * stride)
          offsets.forEach((offset, i) => {
            stamps[i * stride + stride - 1] = base + offset
          })
          // Indices listed in a scrambled order.
          const list = new Int32Array(offsets.length)
          for (let i = 0; i < list.length; i++) list[i] = (i * 7919) % list.length
          const expected = Array.from(list).sort(
            (a, b) => stamps[a * stride + stride - 1]! - stamps[b * stride + stride - 1]!,
          )
          const oldest = offsets.length === 0 ? 0 : base + Math.min(...offsets)
          const newest = offsets.length === 0 ? 0 : base + Math.max(...offsets)
          sorter.sort(list, list.length, stamps, stride, stride - 1, oldest, newest - oldest)
          expect(Array.from(list)).toEqual(expected)
        },
      ),
      { numRuns: 300 },
    )
  })
})
