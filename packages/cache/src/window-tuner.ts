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
 * window sizes on the same accesses does not have that confusion. The cost
 * falls on sampled accesses only: a table lookup and a stamp, then per
 * simulated cache nothing more for a hit in its window or protected list, or
 * a few typed-array list updates for a miss or promotion. Those two lists are
 * ordered lazily, as the memory tier's are: a hit key goes on a log, and
 * before a simulation next appends to or reads the oldest end of its lists it
 * moves the keys logged since its last turn to their lists' newest ends in the
 * order of their last accesses (`#place`). That is the exact LRU order, at a
 * cost linear in the keys moved.
 */
import type { FrequencySketch } from './frequency-sketch.js'
import { StampSorter } from './stamp-sort.js'

/** Window shares simulated, smallest first (ties go to the smaller window). */
export const FRACTIONS = [0.01, 0.05, 0.2, 0.4, 0.6, 0.8, 0.99] as const
/** Target capacity of each simulated cache: enough for stable estimates. */
const TARGET_CAPACITY = 512
/** Weight of the past in the decayed hit counts (per period). */
const DECAY = 0.95
/**
 * Per simulated key (slot), in one record so that a sampled access reads one
 * cache line after the table probe: its hash, the access count of its last
 * access (the same in every simulation), a bit per simulation where it is in
 * the window or protected list, in how many simulations it is held, and
 * where it was last put on the hit log (-1: not since the log was emptied).
 */
const SLOT_STRIDE = 5
const KEY_HASH = 0
const TOUCHED = 1
const LISTED = 2
const REFERENCES = 3
const LOGGED_AT = 4
/**
 * An access count is brought back to 0 past this (see `#rebase` here and in
 * the memory tier), so counts and stamps stay small integers V8 keeps unboxed.
 */
export const REBASE_AT = 2 ** 29
/** Stamps older than this many accesses are all alike after a rebase. */
const OLDEST = -(2 ** 29)
/**
 * Entries of the hit log; when it is full every simulation places the keys
 * logged and the log starts again.
 */
const LOG_CAPACITY = 4096

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
  /** When the access count goes back to 0 (`REBASE_AT`; smaller in tests). */
  readonly #rebaseAt: number
  readonly #capacity: number
  readonly #sketch: Pick<FrequencySketch, 'frequency'>
  readonly #count = FRACTIONS.length
  /**
   * Slots (one per simulated key, shared by the seven caches) by key hash:
   * an open-addressing table (linear probing) of `slot + 1`, 0 when empty.
   */
  readonly #table: Int32Array
  readonly #tableShift: number
  readonly #tableMask: number
  /** Per slot, `SLOT_STRIDE` int32s: `KEY_HASH`, `TOUCHED`, `LISTED`, `REFERENCES`. */
  readonly #slotState: Int32Array
  readonly #free: Int32Array
  #freeTop: number
  /** Per cache `c`, slot `i` lives at `c * stride + i`; its 3 list sentinels at `c * stride + slots + 0..2`. */
  readonly #stride: number
  readonly #slotCount: number
  readonly #previous: Int32Array
  readonly #next: Int32Array
  readonly #region: Int8Array
  /**
   * Per cache and slot: the access count the key's place in the window or
   * protected list stands for. Those lists are kept in `#order`, and
   * `#order <= TOUCHED`; a key whose `#order` is behind is on the hit log.
   */
  readonly #order: Int32Array
  /**
   * Slots of the keys accessed while in some simulation's window or protected
   * list (a slot may appear more than once, also after being freed and reused).
   */
  readonly #log = new Int32Array(LOG_CAPACITY)
  #logLength = 0
  /** Per cache: how much of the log it has placed. */
  readonly #placed: Int32Array
  /**
   * The largest of `#placed`. A key logged at or after it is still ahead of
   * every cache, so a new access of it need not be logged again: a cache
   * places a key by its latest access. On a run of hits no cache places, and
   * each key is logged once.
   */
  #placedMost = 0
  /** The entries one `#place` moves, then sorts. */
  readonly #moving = new Int32Array(LOG_CAPACITY)
  readonly #sorter = new StampSorter()
  /** `LISTED` of a key in every cache's window or protected list. */
  readonly #everywhere: number
  /** Hits of accesses that hit in every cache this period (not in `#hits`). */
  #sharedHits = 0
  /** Sampled accesses so far. */
  #accesses = 0
  readonly #size: Int32Array
  readonly #windowSize: Int32Array
  readonly #protectedSize: Int32Array
  readonly #windowMax: Int32Array
  readonly #protectedMax: Int32Array
  readonly #hits: Float64Array
  readonly #scores: Float64Array

  /**
   * @param maxEntries the real cache's capacity.
   * @param sketch the real cache's frequency estimates (admission in the
   *   simulations): its sketch, with any hits it holds back added first.
   * @param rebaseAt the access count at which stamps move back to 0 (tests set it low).
   */
  constructor(
    maxEntries: number,
    sketch: Pick<FrequencySketch, 'frequency'>,
    rebaseAt = REBASE_AT,
  ) {
    this.#rebaseAt = rebaseAt
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
    this.#slotState = new Int32Array(slots * SLOT_STRIDE)
    let bits = 1
    while (1 << bits < 2 * slots) bits++
    this.#table = new Int32Array(1 << bits)
    this.#tableShift = 32 - bits
    this.#tableMask = (1 << bits) - 1
    this.#free = new Int32Array(slots)
    for (let i = 0; i < slots; i++) this.#free[i] = slots - 1 - i
    this.#freeTop = slots
    this.#previous = new Int32Array(count * this.#stride)
    this.#next = new Int32Array(count * this.#stride)
    this.#region = new Int8Array(count * this.#stride).fill(ABSENT)
    this.#order = new Int32Array(count * this.#stride)
    this.#placed = new Int32Array(count)
    for (let at = LOGGED_AT; at < this.#slotState.length; at += SLOT_STRIDE)
      this.#slotState[at] = -1
    this.#everywhere = (1 << count) - 1
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
    const table = this.#table
    const mask = this.#tableMask
    let at = this.#home(hash)
    let slot = -1
    for (let entry = table[at]!; entry !== 0; entry = table[at]!) {
      if (this.#slotState[(entry - 1) * SLOT_STRIDE + KEY_HASH] === hash) {
        slot = entry - 1
        break
      }
      at = (at + 1) & mask
    }
    if (slot < 0) {
      slot = this.#free[--this.#freeTop]!
      table[at] = slot + 1
      this.#slotState[slot * SLOT_STRIDE + KEY_HASH] = hash
      this.#slotState[slot * SLOT_STRIDE + REFERENCES] = 0
    }
    const stamp = ++this.#accesses
    this.#slotState[slot * SLOT_STRIDE + TOUCHED] = stamp
    const listed = this.#slotState[slot * SLOT_STRIDE + LISTED]!
    if (listed !== 0 && this.#slotState[slot * SLOT_STRIDE + LOGGED_AT]! < this.#placedMost) {
      if (this.#logLength === LOG_CAPACITY) {
        for (let c = 0; c < this.#count; c++) this.#place(c)
        this.#emptyLog()
      }
      this.#slotState[slot * SLOT_STRIDE + LOGGED_AT] = this.#logLength
      this.#log[this.#logLength++] = slot
    }
    // A hit in every cache's window or protected list (the common case for a
    // popular key) changes nothing else but the hit counts.
    if (listed === this.#everywhere) this.#sharedHits++
    else for (let c = 0; c < this.#count; c++) this.#accessIn(c, slot, stamp)
    if (stamp >= this.#rebaseAt) this.#rebase()
  }

  /** Moves the access count and every stamp back by the count; keeps every list in order. */
  #rebase(): void {
    const shift = this.#accesses
    this.#accesses = 0
    const state = this.#slotState
    for (let at = TOUCHED; at < state.length; at += SLOT_STRIDE) {
      state[at] = Math.max(state[at]! - shift, OLDEST)
    }
    for (let i = 0; i < this.#order.length; i++) {
      this.#order[i] = Math.max(this.#order[i]! - shift, OLDEST)
    }
  }

  /** Hits of each simulation (smallest window first) since the last `choose`. */
  periodHits(): number[] {
    return Array.from(this.#hits, (hits) => hits + this.#sharedHits)
  }

  /** Capacity of each simulated cache, in keys. */
  get capacity(): number {
    return this.#capacity
  }

  /**
   * Ends a period: decays the hit counts, adds this period's, and returns the
   * window size (in entries of a cache of `maxEntries`) of the best simulation.
   */
  choose(maxEntries: number): number {
    let best = 0
    for (let c = 0; c < this.#count; c++) {
      this.#scores[c] = this.#scores[c]! * DECAY + this.#hits[c]! + this.#sharedHits
      this.#hits[c] = 0
      if (this.#scores[c]! > this.#scores[best]!) best = c
    }
    this.#sharedHits = 0
    return Math.round(FRACTIONS[best]! * maxEntries)
  }

  /** Empties the hit log (every cache has placed it, or holds nothing). */
  #emptyLog(): void {
    for (let i = 0; i < this.#logLength; i++) {
      this.#slotState[this.#log[i]! * SLOT_STRIDE + LOGGED_AT] = -1
    }
    this.#logLength = 0
    this.#placed.fill(0)
    this.#placedMost = 0
  }

  /** Forgets every simulated key (after the real cache was cleared). */
  reset(): void {
    this.#table.fill(0)
    for (let i = 0; i < this.#slotCount; i++) this.#free[i] = this.#slotCount - 1 - i
    this.#freeTop = this.#slotCount
    this.#region.fill(ABSENT)
    this.#emptyLog()
    for (let at = LISTED; at < this.#slotState.length; at += SLOT_STRIDE) this.#slotState[at] = 0
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

  #accessIn(c: number, slot: number, stamp: number): void {
    const base = c * this.#stride
    const sentinels = base + this.#slotCount
    const at = base + slot
    const region = this.#region[at]!
    if (region === WINDOW || region === PROTECTED) {
      // The key is on the log: `#place` moves it before this cache next
      // appends to or trims its lists.
      this.#hits[c]!++
      return
    }
    this.#place(c)
    if (region === PROBATION) {
      this.#hits[c]!++
      this.#unlink(at)
      this.#setRegion(c, at, slot, PROTECTED)
      this.#append(at, sentinels + PROTECTED, stamp)
      if (++this.#protectedSize[c]! > this.#protectedMax[c]!) {
        const demoted = this.#next[sentinels + PROTECTED]!
        this.#unlink(demoted)
        this.#setRegion(c, demoted, demoted - base, PROBATION)
        this.#append(demoted, sentinels + PROBATION, stamp)
        this.#protectedSize[c]!--
      }
      return
    }
    // A miss: the key enters the window.
    this.#setRegion(c, at, slot, WINDOW)
    this.#append(at, sentinels + WINDOW, stamp)
    this.#slotState[slot * SLOT_STRIDE + REFERENCES]!++
    this.#size[c]!++
    if (++this.#windowSize[c]! > this.#windowMax[c]!) {
      const candidate = this.#next[sentinels + WINDOW]!
      this.#unlink(candidate)
      this.#windowSize[c]!--
      this.#setRegion(c, candidate, candidate - base, PROBATION)
      this.#append(candidate, sentinels + PROBATION, stamp)
      if (this.#size[c]! > this.#capacity) {
        let victim = this.#next[sentinels + PROBATION]!
        if (victim === candidate) {
          // Probation held only the candidate: the victim comes from protected.
          victim = this.#next[sentinels + PROTECTED]!
          if (victim === sentinels + PROTECTED) victim = candidate
        }
        if (
          victim !== candidate &&
          this.#sketch.frequency(this.#slotState[(candidate - base) * SLOT_STRIDE + KEY_HASH]!) >
            this.#sketch.frequency(this.#slotState[(victim - base) * SLOT_STRIDE + KEY_HASH]!)
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
    const slot = at - base
    this.#unlink(at)
    this.#setRegion(c, at, slot, ABSENT)
    this.#size[c]!--
    if (region === WINDOW) this.#windowSize[c]!--
    else if (region === PROTECTED) this.#protectedSize[c]!--
    if (--this.#slotState[slot * SLOT_STRIDE + REFERENCES]! === 0) {
      this.#forget(slot)
      this.#free[this.#freeTop++] = slot
    }
  }

  /** Where the table probe for `hash` starts (bits independent of `sampleHash`'s). */
  #home(hash: number): number {
    return Math.imul(hash ^ (hash >>> 16), 0x7feb352d) >>> this.#tableShift
  }

  /** Removes `slot` from the table (backward-shift deletion keeps every probe chain whole). */
  #forget(slot: number): void {
    const table = this.#table
    const mask = this.#tableMask
    let hole = this.#home(this.#slotState[slot * SLOT_STRIDE + KEY_HASH]!)
    while (table[hole] !== slot + 1) hole = (hole + 1) & mask
    for (let at = (hole + 1) & mask; table[at] !== 0; at = (at + 1) & mask) {
      const home = this.#home(this.#slotState[(table[at]! - 1) * SLOT_STRIDE + KEY_HASH]!)
      // The entry at `at` may move to the hole unless its home lies cyclically in (hole, at].
      if (((at - home) & mask) >= ((at - hole) & mask)) {
        table[hole] = table[at]!
        hole = at
      }
    }
    table[hole] = 0
  }

  #unlink(at: number): void {
    const previous = this.#previous[at]!
    const next = this.#next[at]!
    this.#next[previous] = next
    this.#previous[next] = previous
  }

  #setRegion(c: number, at: number, slot: number, region: number): void {
    this.#region[at] = region
    if (region === WINDOW || region === PROTECTED)
      this.#slotState[slot * SLOT_STRIDE + LISTED]! |= 1 << c
    else this.#slotState[slot * SLOT_STRIDE + LISTED]! &= ~(1 << c)
  }

  /** Adds `at` at the newest end of the list of `sentinel`, placed as of `stamp`. */
  #append(at: number, sentinel: number, stamp: number): void {
    const last = this.#previous[sentinel]!
    this.#previous[at] = last
    this.#next[at] = sentinel
    this.#next[last] = at
    this.#previous[sentinel] = at
    this.#order[at] = stamp
  }

  /**
   * Brings cache `c`'s window and protected lists into exact LRU order: the
   * keys logged since its last turn that it holds there and that were
   * accessed since they were placed move to their lists' newest ends, in
   * the order of their last accesses. Entries already placed keep their
   * order, so a key logged twice moves once.
   */
  #place(c: number): void {
    const from = this.#placed[c]!
    const to = this.#logLength
    if (from === to) return
    this.#placed[c] = to
    this.#placedMost = to
    const base = c * this.#stride
    const state = this.#slotState
    const region = this.#region
    const order = this.#order
    const moving = this.#moving
    let count = 0
    let oldest = 0
    let newest = 0
    for (let i = from; i < to; i++) {
      const slot = this.#log[i]!
      const at = base + slot
      const list = region[at]!
      if (list !== WINDOW && list !== PROTECTED) continue
      const touched = state[slot * SLOT_STRIDE + TOUCHED]!
      if (order[at] === touched) continue
      order[at] = touched
      this.#unlink(at)
      if (count === 0 || touched < oldest) oldest = touched
      if (count === 0 || touched > newest) newest = touched
      moving[count++] = at
    }
    this.#sorter.sort(moving, count, order, 1, 0, oldest, newest - oldest)
    const sentinels = base + this.#slotCount
    for (let i = 0; i < count; i++) {
      const at = moving[i]!
      this.#append(at, sentinels + region[at]!, order[at]!)
    }
  }
}
