import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { optimalHitRatio } from '../bench/optimal.ts'

/** The most hits over every choice at every full miss (evict any key, or do not admit). */
function bruteForceHits(trace: number[], size: number): number {
  const memo = new Map<string, number>()
  const best = (i: number, held: number[]): number => {
    if (i === trace.length) return 0
    const id = `${i}:${held.join(',')}`
    const known = memo.get(id)
    if (known !== undefined) return known
    const key = trace[i]!
    let result: number
    if (held.includes(key)) result = 1 + best(i + 1, held)
    else if (held.length < size) result = best(i + 1, [...held, key].sort())
    else {
      result = best(i + 1, held)
      for (const out of held) {
        result = Math.max(result, best(i + 1, [...held.filter((k) => k !== out), key].sort()))
      }
    }
    memo.set(id, result)
    return result
  }
  return best(0, [])
}

describe('optimalHitRatio (bench)', () => {
  it('equals the best of every eviction and admission choice on small traces (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 14 }),
        fc.integer({ min: 1, max: 3 }),
        (trace, size) => {
          const expected =
            trace.length === 0 ? 0 : (100 * bruteForceHits(trace, size)) / trace.length
          expect(optimalHitRatio(trace, size)).toBeCloseTo(expected, 10)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('does not admit a key needed later than every resident', () => {
    // a b c a b c with room for 2: keeping a and b (not c) gives 2 hits.
    expect(optimalHitRatio(['a', 'b', 'c', 'a', 'b', 'c'], 2)).toBeCloseTo((100 * 2) / 6, 10)
  })
})
