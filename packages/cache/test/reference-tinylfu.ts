/**
 * A plain, slow model of the memory tier's W-TinyLFU policy with a fixed
 * window (`adaptive: false`), for equivalence tests: every list is an array
 * in LRU order, moved eagerly on every hit, and every access goes through the
 * sketch at once. The tier's fast paths (lazily ordered lists, hits held back
 * from the sketch until it is read, per-entry due marks) must give exactly its
 * hits, misses and rejections.
 */
import { FrequencySketch, hashKey } from '../src/frequency-sketch.ts'

export class ReferenceTinyLfu {
  readonly window: string[] = []
  readonly probation: string[] = []
  readonly protected: string[] = []
  readonly #sketch: FrequencySketch
  readonly #windowMax: number
  readonly #protectedMax: number
  readonly #maxEntries: number
  #accesses = 0
  #nextAging: number
  #random = 0x9e3779b9
  #lastMiss: string | undefined
  rejections = 0

  constructor(maxEntries: number, initialWindow = 0.01) {
    this.#maxEntries = maxEntries
    this.#windowMax = Math.min(maxEntries - 1, Math.max(1, Math.round(maxEntries * initialWindow)))
    this.#protectedMax = Math.floor(0.8 * (maxEntries - this.#windowMax))
    this.#sketch = new FrequencySketch(maxEntries)
    this.#nextAging = this.#sketch.sampleSize
  }

  get size(): number {
    return this.window.length + this.probation.length + this.protected.length
  }

  /** Whether `key` is held; records the access (hit or miss). */
  get(key: string): boolean {
    this.#tick()
    const hash = hashKey(key) | 0
    for (const list of [this.window, this.protected]) {
      const at = list.indexOf(key)
      if (at >= 0) {
        this.#sketch.recordSeen(hash)
        list.splice(at, 1)
        list.push(key)
        return true
      }
    }
    const at = this.probation.indexOf(key)
    if (at >= 0) {
      this.#sketch.recordSeen(hash)
      this.probation.splice(at, 1)
      this.protected.push(key)
      while (this.protected.length > this.#protectedMax) {
        this.probation.push(this.protected.shift()!)
      }
      return true
    }
    this.#lastMiss = key
    this.#sketch.record(hash)
    return false
  }

  /** Adds a key not held. */
  set(key: string): void {
    if (key === this.#lastMiss) {
      this.#lastMiss = undefined
    } else {
      this.#tick()
      this.#sketch.record(hashKey(key) | 0)
    }
    this.window.push(key)
    const candidates: string[] = []
    while (this.window.length > this.#windowMax) {
      const moved = this.window.shift()!
      this.probation.push(moved)
      candidates.push(moved)
    }
    while (this.size > this.#maxEntries) {
      const victim = this.probation[0] ?? this.protected[0]
      if (victim === undefined) {
        this.window.shift()
        continue
      }
      let candidate = candidates[candidates.length - 1]
      while (candidate !== undefined && !this.#holds(candidate)) {
        candidates.pop()
        candidate = candidates[candidates.length - 1]
      }
      if (candidate === undefined || candidate === victim) {
        this.delete(victim)
        if (candidate === victim) candidates.pop()
        continue
      }
      if (this.#admit(hashKey(candidate) | 0, hashKey(victim) | 0)) {
        this.delete(victim)
      } else {
        candidates.pop()
        this.rejections++
        this.delete(candidate)
      }
    }
  }

  /** Drops every key; the sketch (and its history) stays, as in the tier. */
  clear(): void {
    this.window.length = 0
    this.probation.length = 0
    this.protected.length = 0
  }

  delete(key: string): boolean {
    for (const list of [this.window, this.probation, this.protected]) {
      const at = list.indexOf(key)
      if (at >= 0) {
        list.splice(at, 1)
        return true
      }
    }
    return false
  }

  #holds(key: string): boolean {
    return this.window.includes(key) || this.probation.includes(key) || this.protected.includes(key)
  }

  #tick(): void {
    if (++this.#accesses >= this.#nextAging) {
      this.#sketch.age()
      this.#nextAging =
        this.#accesses + this.#sketch.sampleSize - Math.floor(this.#sketch.sampleSize / 2)
    }
  }

  #admit(candidateHash: number, victimHash: number): boolean {
    const candidateFrequency = this.#sketch.frequency(candidateHash)
    const victimFrequency = this.#sketch.frequency(victimHash)
    if (candidateFrequency > victimFrequency) return true
    if (candidateFrequency >= 6) {
      let x = this.#random
      x ^= x << 13
      x ^= x >>> 17
      x ^= x << 5
      this.#random = x
      return ((x >>> 0) & 127) === 0
    }
    return false
  }
}
