/** Deterministic synthetic access traces for hit-ratio tests. */
import { seededRandom } from '@aide/core'

/** A seeded PRNG (mulberry32). */
export const random: (seed: number) => () => number = seededRandom

/** Zipf-distributed keys over `n` items with exponent `s`. */
export function zipf(length: number, n: number, s: number, seed = 1): string[] {
  const next = random(seed)
  const cumulative = new Float64Array(n)
  let sum = 0
  for (let i = 0; i < n; i++) {
    sum += 1 / (i + 1) ** s
    cumulative[i] = sum
  }
  const out: string[] = []
  for (let i = 0; i < length; i++) {
    const target = next() * sum
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (cumulative[mid]! < target) lo = mid + 1
      else hi = mid
    }
    out.push(`z${lo}`)
  }
  return out
}

/** A Zipf hot set interrupted by long one-off sequential scans. */
export function scanHeavy(length: number, seed = 2): string[] {
  const hot = zipf(length, 900, 0.6, seed)
  const out: string[] = []
  let scanKey = 0
  for (let i = 0; i < hot.length; i++) {
    out.push(hot[i]!)
    if (i % 2_000 === 1_999) for (let j = 0; j < 1_200; j++) out.push(`scan${scanKey++}`)
  }
  return out
}

/** A loop over `n` keys repeated `times` times. */
export function loop(n: number, times: number): string[] {
  const out: string[] = []
  for (let t = 0; t < times; t++) for (let i = 0; i < n; i++) out.push(`l${i}`)
  return out
}

/**
 * Recency-heavy: a working set that drifts forward, each access near the front
 * (within `width` keys of it, most within the first few).
 */
export function recency(length: number, seed = 3, width = 400): string[] {
  const next = random(seed)
  const out: string[] = []
  for (let i = 0; i < length; i++) {
    const front = Math.floor(i / 4)
    out.push(`r${front - Math.floor(next() ** 3 * width)}`)
  }
  return out
}
