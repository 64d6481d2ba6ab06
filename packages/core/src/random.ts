/**
 * Seeded randomness. Like the injectable `Clock`, a seeded source makes
 * anything that draws random numbers (jitter, sampling, training, generated
 * test workloads) reproducible.
 */
import { assertNumber } from './validate.js'

/**
 * A deterministic pseudo-random source (mulberry32) returning numbers in
 * [0, 1). The same seed always yields the same sequence. Not for cryptography.
 */
export function seededRandom(seed: number): () => number {
  assertNumber(seed, 'seed', { integer: true })
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
