/**
 * Sizes the W-TinyLFU window by simulation ("mini-sim", Einziger et al.,
 * Adaptive Software Cache Management, Middleware 2018): a spatial sample of
 * the keys (about 512 entries' worth) runs through seven key-only W-TinyLFU
 * caches of the scaled-down capacity whose windows are 1%, 5%, 20%, 40%, 60%,
 * 80% and 99% of it, sharing the real cache's frequency sketch. At the end of each
 * period the real window takes the share of the simulation with the best
 * (exponentially decayed) hit count.
 *
 * Why not hill climbing: a climber compares the hit rates of consecutive
 * periods, so a change of workload between two periods reads as the effect of
 * its own step. On recency-heavy and phase-changing traces (lirs sprite and
 * zigzag, cache2k web07) that kept it 1.2 to 5 points below LRU; comparing
 * window sizes on the same accesses does not have that confusion. The cost is
 * one typed-array list update per simulated cache for sampled accesses only.
 */
import type { FrequencySketch } from './frequency-sketch.js'

/** Window shares simulated, smallest first (ties go to the smaller window). */
const FRACTIONS = [0.01, 0.05, 0.2, 0.4, 0.6, 0.8, 0.99] as const
/** Target capacity of each simulated cache: enough for stable estimates. */
const TARGET_CAPACITY = 512
/** Weight of the past in the decayed hit counts (per period). */
const DECAY = 0.95

const ABSENT = -1
const WINDOW = 0
const PROBATION = 1
const PROTECTED = 2

/** Scrambles a key hash for the sampling decision (independent of the sketch's use of it). */
function sampleHash(hash: number): number {
  return Math.imul(hash, 0x9e3779b1) >>> 0
}

/** Seven key-only W-TinyLFU simulations over a sample of the keys. */
export class WindowTuner {
  /** A key is simulated when `sampleHash(hash) < limit`. */
  readonly #limit: number
  readonly #capacity: number
  readonly #sketch: FrequencySketch
  readonly #count = FRACTIONS.length
  /** Slots (one per simulated key, shared by the seven caches) by key hash. */
  readonly #slots = new Map<number, number>()
  readonly #slotHash: Int32Array
  readonly #references: Uint8Array
  readonly #free: Int32Array
  #freeTop: number
  /** Per cache `c`, slot `i` lives at `c * stride + i`; its 3 list sentinels at `c * stride + slots + 0..2`. */
  readonly #stride: number
  readonly #slotCount: number
  readonly #previous: Int32Array
  readonly #next: Int32Array
  readonly #region: Int8Array
  readonly #size: Int32Array
  readonly #windowSize: Int32Array
  readonly #protectedSize: Int32Array
  readonly #windowMax: Int32Array
  readonly #protectedMax: Int32Array
  readonly #hits: Float64Array
  readonly #scores: Float64Array

  /**
   * @param maxEntries the real cache's capacity.
   * @param sketch the real cache's frequency sketch (admission in the simulations).
   */
  constructor(maxEntries: number, sketch: FrequencySketch) {
    let shift = 0
    while (shift < 24 && maxEntries / 2 ** (shift + 1) >= TARGET_CAPACITY) shift++
    this.#limit = 2 ** (32 - shift)
    const capacity = Math.max(2, Math.round(maxEntries / 2 ** shift))
    this.#capacity = capacity
    this.#sketch = sketch
    const count = this.#count
    const slots = count * capacity + 1
    this.#slotCount = slots
    this.#stride = slots + 3
    this.#slotHash = new Int32Array(slots)
    this.#references = new Uint8Array(slots)
    this.#free = new Int32Array(slots)
    for (let i = 0; i < slots; i++) this.#free[i] = slots - 1 - i
    this.#freeTop = slots
    this.#previous = new Int32Array(count * this.#stride)
    this.#next = new Int32Array(count * this.#stride)
    this.#region = new Int8Array(count * this.#stride).fill(ABSENT)
    this.#size = new Int32Array(count)
    this.#windowSize = new Int32Array(count)
    this.#protectedSize = new Int32Array(count)
    this.#windowMax = new Int32Array(count)
    this.#protectedMax = new Int32Array(count)
    this.#hits = new Float64Array(count)
    this.#scores = new Float64Array(count)
    for (let c = 0; c < count; c++) {
      const windowMax = Math.min(capacity - 1, Math.max(1, Math.round(FRACTIONS[c]! * capacity)))
      this.#windowMax[c] = windowMax
      this.#protectedMax[c] = Math.floor(0.8 * (capacity - windowMax))
      for (let list = 0; list < 3; list++) {
        const sentinel = c * this.#stride + slots + list
        this.#previous[sentinel] = sentinel
        this.#next[sentinel] = sentinel
      }
    }
  }

  /** Whether accesses of the key with this hash are simulated. */
  samples(hash: number): boolean {
    return sampleHash(hash) < this.#limit
  }

  /** Runs one access of a sampled key through the seven simulations. */
  access(hash: number): void {
    let slot = this.#slots.get(hash)
    if (slot === undefined) {
      slot = this.#free[--this.#freeTop]!
      this.#slots.set(hash, slot)
      this.#slotHash[slot] = hash
      this.#references[slot] = 0
    }
    for (let c = 0; c < this.#count; c++) this.#accessIn(c, slot)
  }

  /**
   * Ends a period: decays the hit counts, adds this period's, and returns the
   * window size (in entries of a cache of `maxEntries`) of the best simulation.
   */
  choose(maxEntries: number): number {
    let best = 0
    for (let c = 0; c < this.#count; c++) {
      this.#scores[c] = this.#scores[c]! * DECAY + this.#hits[c]!
      this.#hits[c] = 0
      if (this.#scores[c]! > this.#scores[best]!) best = c
    }
    return Math.round(FRACTIONS[best]! * maxEntries)
  }

  /** Forgets every simulated key (after the real cache was cleared). */
  reset(): void {
    this.#slots.clear()
    for (let i = 0; i < this.#slotCount; i++) this.#free[i] = this.#slotCount - 1 - i
    this.#freeTop = this.#slotCount
    this.#region.fill(ABSENT)
    this.#size.fill(0)
    this.#windowSize.fill(0)
    this.#protectedSize.fill(0)
    for (let c = 0; c < this.#count; c++) {
      for (let list = 0; list < 3; list++) {
        const sentinel = c * this.#stride + this.#slotCount + list
        this.#previous[sentinel] = sentinel
        this.#next[sentinel] = sentinel
      }
    }
  }

  #accessIn(c: number, slot: number): void {
    const base = c * this.#stride
    const sentinels = base + this.#slotCount
    const at = base + slot
    const region = this.#region[at]!
    if (region === WINDOW) {
      this.#hits[c]!++
      this.#moveToTail(at, sentinels + WINDOW)
      return
    }
    if (region === PROTECTED) {
      this.#hits[c]!++
      this.#moveToTail(at, sentinels + PROTECTED)
      return
    }
    if (region === PROBATION) {
      this.#hits[c]!++
      this.#unlink(at)
      this.#region[at] = PROTECTED
      this.#append(at, sentinels + PROTECTED)
      if (++this.#protectedSize[c]! > this.#protectedMax[c]!) {
        const demoted = this.#next[sentinels + PROTECTED]!
        this.#unlink(demoted)
        this.#region[demoted] = PROBATION
        this.#append(demoted, sentinels + PROBATION)
        this.#protectedSize[c]!--
      }
      return
    }
    // A miss: the key enters the window.
    this.#region[at] = WINDOW
    this.#append(at, sentinels + WINDOW)
    this.#references[slot]!++
    this.#size[c]!++
    if (++this.#windowSize[c]! > this.#windowMax[c]!) {
      const candidate = this.#next[sentinels + WINDOW]!
      this.#unlink(candidate)
      this.#windowSize[c]!--
      this.#region[candidate] = PROBATION
      this.#append(candidate, sentinels + PROBATION)
      if (this.#size[c]! > this.#capacity) {
        let victim = this.#next[sentinels + PROBATION]!
        if (victim === candidate) {
          // Probation held only the candidate: the victim comes from protected.
          victim = this.#next[sentinels + PROTECTED]!
          if (victim === sentinels + PROTECTED) victim = candidate
        }
        if (
          victim !== candidate &&
          this.#sketch.frequency(this.#slotHash[candidate - base]!) >
            this.#sketch.frequency(this.#slotHash[victim - base]!)
        ) {
          this.#evict(c, base, victim)
        } else {
          this.#evict(c, base, candidate)
        }
      }
    } else if (this.#size[c]! > this.#capacity) {
      let victim = this.#next[sentinels + PROBATION]!
      if (victim === sentinels + PROBATION) victim = this.#next[sentinels + PROTECTED]!
      if (victim === sentinels + PROTECTED) victim = this.#next[sentinels + WINDOW]!
      this.#evict(c, base, victim)
    }
  }

  #evict(c: number, base: number, at: number): void {
    const region = this.#region[at]!
    this.#unlink(at)
    this.#region[at] = ABSENT
    this.#size[c]!--
    if (region === WINDOW) this.#windowSize[c]!--
    else if (region === PROTECTED) this.#protectedSize[c]!--
    const slot = at - base
    if (--this.#references[slot]! === 0) {
      this.#slots.delete(this.#slotHash[slot]!)
      this.#free[this.#freeTop++] = slot
    }
  }

  #unlink(at: number): void {
    const previous = this.#previous[at]!
    const next = this.#next[at]!
    this.#next[previous] = next
    this.#previous[next] = previous
  }

  #append(at: number, sentinel: number): void {
    const last = this.#previous[sentinel]!
    this.#previous[at] = last
    this.#next[at] = sentinel
    this.#next[last] = at
    this.#previous[sentinel] = at
  }

  #moveToTail(at: number, sentinel: number): void {
    if (this.#previous[sentinel] === at) return
    this.#unlink(at)
    this.#append(at, sentinel)
  }
}
