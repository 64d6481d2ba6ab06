/**
 * The in-process tier (L1): a W-TinyLFU cache (or plain LRU) bounded by entry
 * count and, with a weigher, by bytes. Values are kept live: no serialisation.
 *
 * W-TinyLFU layout: new entries enter a small LRU *window*; entries leaving the
 * window are *candidates* for the *main* region (a segmented LRU of
 * *probation* and *protected*). A candidate is admitted only if the frequency
 * sketch says it is more popular than the main region's eviction victim. The
 * window's share of the capacity follows a simulation of seven window sizes on a
 * sample of the keys (see `window-tuner.ts`), so recency-heavy workloads grow
 * the window (behaving like LRU) and frequency- or scan-heavy ones shrink it.
 */
import {
  assertFunction,
  assertNumber,
  assertObject,
  assertOneOf,
  type Clock,
  invalidInput,
  systemClock,
} from '@aide/core'
import { isUsable, type StoredEntry } from './entry.js'
import { FrequencySketch, hashKey } from './frequency-sketch.js'
import { StampSorter } from './stamp-sort.js'
import type { CacheTier, TierOwnStats } from './tier.js'
import { REBASE_AT, WindowTuner } from './window-tuner.js'

/** Why an entry left the memory tier. */
export type EvictionReason = 'size' | 'expired'

/** Options of {@link MemoryTier}. */
export interface MemoryTierOptions {
  /** Most entries held. Default 10,000. */
  maxEntries?: number
  /** Most total weight held (bytes, as measured by `weigher`). Default: unbounded. */
  maxBytes?: number
  /** Weight of one entry in bytes. Default: a rough estimate of the value's size. */
  weigher?: (key: string, value: unknown) => number
  /** Eviction policy: `tinylfu` (W-TinyLFU, default) or `lru`. */
  policy?: 'tinylfu' | 'lru'
  /** Starting share of the capacity given to the W-TinyLFU window (0..1). Default 0.01. */
  initialWindow?: number
  /** Whether the window size adapts to the workload (see the README). Default true. */
  adaptive?: boolean
  /** Clock for expiry checks. Default: the system clock. */
  clock?: Clock
  /** Called when an entry is evicted for size or found expired. */
  onEvict?: (key: string, reason: EvictionReason) => void
  /**
   * @internal For tests: the access count at which the policy's counts and
   * stamps are moved back to 0 (default 2^29, at least 64), so that a test
   * reaches it without half a billion accesses.
   */
  rebaseAt?: number
}

/** Stats of the memory tier. */
export interface MemoryTierStats extends TierOwnStats {
  size: number
  /** Total weight held (0 without `maxBytes`). */
  bytes: number
  /** Current window capacity in entries (W-TinyLFU only; equals `maxEntries` for LRU). */
  windowCapacity: number
  /** Candidates rejected by the admission filter. */
  rejections: number
}

/** List ids; each list's sentinel sits at the index of its id. */
const WINDOW = 0
const PROBATION = 1
const PROTECTED = 2
/** `region` of a free index. */
const FREE = 3
/** First index of a real entry (0..2 are the list sentinels). */
const FIRST = 3

/** `META` bits: the region (list id or `FREE`) and these flags. */
const REGION = 3
/** The entry has a finite grace end (`staleUntil`): a hit reads the clock. */
const EXPIRES = 4
/** The key is simulated by the window tuner. */
const SAMPLED = 8
/** The entry has a finite TTL (`expiresAt`). */
const FRESH_UNTIL = 16
/**
 * The entry is in the pending list (`#pendingList`): at the next flush its
 * `PENDING` hits reach the sketch and it moves to its list's newest end.
 */
const LISTED = 32
/** Either end is finite. */
const TIMED = EXPIRES | FRESH_UNTIL

/**
 * Per-entry state: `STRIDE` int32 slots per index in `#nodes`, so that a hit
 * reads one 32-byte record rather than a slot in each of several arrays.
 */
const STRIDE = 8
/** List links (indices; each list's sentinel sits at the index of its id). */
const PREVIOUS = 0
const NEXT = 1
/**
 * The access count of the entry's last hit, while it is in the pending list
 * (W-TinyLFU only). A hit of a listed entry does not move it: the flush moves
 * every listed entry to its list's newest end in the order of these stamps,
 * which is the order eager moves would have left, before any list's oldest
 * end is read (see `#flushPending`).
 */
const STAMP = 2
/** Slot 3 is unused: it pads a record to 32 bytes, so it never straddles a cache line. */
/**
 * The access count from which a hit of the entry needs `#slowHit`; 0 when
 * the next one does. Set to the maintenance point for an entry in the
 * pending list, outside probation, of a key not sampled: a hit then does
 * nothing more than stamp the entry (`STAMP`) and count the hit in `PENDING`.
 */
const DUE = 4
/** The key's hash, `| 0` (W-TinyLFU only). */
const HASH = 5
/**
 * Hits of the entry not yet added to the sketch's counters (W-TinyLFU only).
 * A hit's counter update is a saturating add, and saturating adds commute,
 * so they can be applied later in one step (`FrequencySketch.recordSeen(hash,
 * count)`) with the same result, as long as every one is applied before the
 * counters are next read (an admission decision, here or in the window
 * tuner) or halved (aging), and before the entry is removed. `#flushPending`
 * does that; entries with pending hits are in `#pendingList`.
 */
const PENDING = 6
/** Region and flag bits (`REGION`, `EXPIRES`, `FRESH_UNTIL`, `SAMPLED`, `LISTED`). */
const META = 7

/** "Not scheduled": the largest small integer, beyond any access count (see `#rebase`). */
const NEVER = 2 ** 30 - 1
/** Window tuning period, in accesses per entry of capacity. */
const TUNING_PERIOD = 3

export function estimateSize(value: unknown, depth = 0): number {
  if (value === null || value === undefined) return 8
  switch (typeof value) {
    case 'string':
      return 16 + value.length * 2
    case 'number':
    case 'boolean':
      return 8
    case 'bigint':
      return 16
    case 'object': {
      if (ArrayBuffer.isView(value)) return 64 + value.byteLength
      if (value instanceof ArrayBuffer) return 64 + value.byteLength
      if (depth > 8) return 64
      let size = 32
      if (value instanceof Map) {
        for (const [k, v] of value) size += estimateSize(k, depth + 1) + estimateSize(v, depth + 1)
      } else if (value instanceof Set || Array.isArray(value)) {
        for (const v of value) size += estimateSize(v, depth + 1)
      } else if (!(value instanceof Date)) {
        for (const k of Object.keys(value)) {
          size += 16 + k.length * 2 + estimateSize((value as Record<string, unknown>)[k], depth + 1)
        }
      }
      return size
    }
    default:
      return 32
  }
}

/**
 * The L1 tier. Besides the async {@link CacheTier} methods it has synchronous
 * ones (`getEntry`, `setEntry`, `deleteEntry`) used on the cache's hot path.
 *
 * Layout (as in lru-cache): the map gives each key a small integer index;
 * the entry, key and per-entry policy state live in arrays at that index and
 * the three LRU lists are linked through one `Int32Array` of 32-byte records.
 * A W-TinyLFU hit reads a few slots of its record and writes two (a stamp and
 * a pending count; the list move waits for the next flush, see `STAMP`), an
 * LRU hit moves its index; neither allocates nor writes an object pointer for
 * the garbage collector to track.
 */
export class MemoryTier implements CacheTier {
  readonly name = 'memory'
  readonly maxEntries: number
  readonly maxBytes: number
  readonly policy: 'tinylfu' | 'lru'
  readonly #weigher: ((key: string, value: unknown) => number) | undefined
  readonly #clock: Clock
  readonly #onEvict: ((key: string, reason: EvictionReason) => void) | undefined
  readonly #adaptive: boolean
  readonly #map = new Map<string, number>()
  readonly #tags = new Map<string, Set<string>>()
  readonly #sketch: FrequencySketch | undefined
  readonly #tuner: WindowTuner | undefined
  // Per index. The typed arrays grow (doubling) up to maxEntries + FIRST + 1.
  readonly #keys: (string | undefined)[] = []
  readonly #entries: (StoredEntry | undefined)[] = []
  /** `#entries[index].value`, read by a fresh hit without touching the entry object. */
  readonly #values: unknown[] = []
  /** `STRIDE` slots per index (`PREVIOUS`, `NEXT`, …, `META`). */
  #nodes: Int32Array
  #weights: Float64Array
  #capacity: number
  /** Indices freed for reuse, and the next never-used index. */
  readonly #free: number[] = []
  #unused = FIRST
  #windowCount = 0
  #protectedCount = 0
  #windowMax: number
  #protectedMax: number
  #bytes = 0
  #evictions = 0
  #rejections = 0
  /**
   * Accesses recorded (hits, misses, new keys set): the policy's clock. It
   * drives aging and window tuning, and stamps hits (`STAMP`).
   */
  #accesses = 0
  /** The next value of `#accesses` at which aging or tuning is due. */
  #nextMaintenance = NEVER
  #nextAging = NEVER
  #nextTuning = NEVER
  #random = 0x9e3779b9
  /** See `MemoryTierOptions.rebaseAt`. */
  readonly #rebaseAt: number
  /** The key of the last miss: a `setEntry` of it right after is the same access. */
  #lastMiss: string | undefined
  /**
   * Indices of entries marked `LISTED` since the last flush (an index may
   * appear twice if its entry was removed and the index reused).
   */
  #pendingList = new Int32Array(64)
  #pendingCount = 0
  /** Orders the pending list by stamp at a flush. */
  readonly #sorter = new StampSorter()

  constructor(options: MemoryTierOptions = {}) {
    assertObject(options, 'options')
    const maxEntries = options.maxEntries ?? 10_000
    assertNumber(maxEntries, 'options.maxEntries', { min: 1, max: 2 ** 26, integer: true })
    const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY
    assertNumber(maxBytes, 'options.maxBytes', { min: 1, allowInfinity: true })
    if (options.weigher !== undefined) assertFunction(options.weigher, 'options.weigher')
    if (options.onEvict !== undefined) assertFunction(options.onEvict, 'options.onEvict')
    const policy = options.policy ?? 'tinylfu'
    assertOneOf(policy, 'options.policy', ['tinylfu', 'lru'] as const)
    const rebaseAt = options.rebaseAt ?? REBASE_AT
    assertNumber(rebaseAt, 'options.rebaseAt', { min: 64, max: REBASE_AT, integer: true })
    this.#rebaseAt = rebaseAt
    const initialWindow = options.initialWindow ?? 0.01
    assertNumber(initialWindow, 'options.initialWindow', { min: 0, max: 1 })
    this.maxEntries = maxEntries
    this.maxBytes = maxBytes
    this.policy = policy
    this.#weigher =
      options.weigher ??
      (maxBytes === Number.POSITIVE_INFINITY ? undefined : (_key, value) => estimateSize(value))
    this.#clock = options.clock ?? systemClock
    this.#onEvict = options.onEvict
    this.#adaptive = policy === 'tinylfu' && (options.adaptive ?? true)
    if (policy === 'lru' || maxEntries < 3) {
      this.#windowMax = maxEntries
    } else {
      this.#windowMax = Math.min(
        maxEntries - 1,
        Math.max(1, Math.round(maxEntries * initialWindow)),
      )
      this.#sketch = new FrequencySketch(maxEntries)
      this.#nextAging = this.#sketch.sampleSize
      if (this.#adaptive) {
        // The simulations read the counters too: pending hits go in first.
        const sketch = this.#sketch
        this.#tuner = new WindowTuner(
          maxEntries,
          {
            frequency: (hash: number) => {
              this.#flushPending()
              return sketch.frequency(hash)
            },
          },
          rebaseAt,
        )
        this.#nextTuning = TUNING_PERIOD * maxEntries
      }
      this.#nextMaintenance = Math.min(this.#nextAging, this.#nextTuning)
    }
    this.#protectedMax = Math.floor(0.8 * (maxEntries - this.#windowMax))
    const capacity = Math.min(maxEntries + FIRST + 1, 1024)
    this.#capacity = capacity
    this.#nodes = new Int32Array(capacity * STRIDE)
    this.#weights = new Float64Array(capacity)
    for (let list = WINDOW; list <= PROTECTED; list++) {
      this.#nodes[list * STRIDE + PREVIOUS] = list
      this.#nodes[list * STRIDE + NEXT] = list
    }
  }

  /** Number of entries held. */
  get size(): number {
    return this.#map.size
  }

  /**
   * The entry under `key` (fresh or stale), recording the access for the
   * policy; drops and reports entries past their grace period.
   */
  getEntry(key: string): StoredEntry | undefined {
    const index = this.#map.get(key)
    if (index === undefined) {
      if (this.#sketch !== undefined) this.#onMiss(key)
      return undefined
    }
    const entry = this.#entries[index]!
    if (
      (this.#nodes[index * STRIDE + META]! & EXPIRES) !== 0 &&
      !(this.#clock.now() < entry.staleUntil)
    ) {
      this.#expire(index)
      return undefined
    }
    this.#onHit(index)
    return entry
  }

  /**
   * The value under `key` if its entry is fresh (within its TTL), else
   * `undefined`; records the access exactly as {@link getEntry} does. The
   * cache's `getIfPresent`. Kept small so that it inlines into its caller.
   */
  getFreshValue(key: string): unknown {
    const index = this.#map.get(key)
    if (index === undefined) {
      if (this.#sketch !== undefined) this.#onMiss(key)
      return undefined
    }
    if ((this.#nodes[index * STRIDE + META]! & TIMED) !== 0) return this.#timedFreshValue(index)
    // #onHit, written out: this is the hottest call site.
    if (this.#sketch === undefined) {
      this.#moveToTail(index, WINDOW)
    } else {
      const accesses = ++this.#accesses
      if (accesses >= this.#nodes[index * STRIDE + DUE]!) {
        this.#slowHit(index, accesses)
      } else {
        this.#nodes[index * STRIDE + PENDING]!++
        this.#nodes[index * STRIDE + STAMP] = accesses
      }
    }
    return this.#values[index]
  }

  /** {@link getFreshValue} for an entry with a finite TTL or grace end. */
  #timedFreshValue(index: number): unknown {
    const entry = this.#entries[index]!
    const now = this.#clock.now()
    if (!(now < entry.staleUntil)) {
      this.#expire(index)
      return undefined
    }
    this.#onHit(index)
    return now < entry.expiresAt ? entry.value : undefined
  }

  /**
   * A hit: counts the access, stamps the entry with it (its move to the
   * newest end of its list waits for the next flush, see `STAMP`), counts the
   * hit as pending for the sketch (see `PENDING`), and leaves the straight
   * line for {@link #slowHit} only when the entry's `DUE` mark says more is
   * due: maintenance, listing the entry as pending after a flush, the
   * promotion of a probation entry, the tuner's simulation (sampled keys).
   */
  #onHit(index: number): void {
    if (this.#sketch === undefined) {
      this.#moveToTail(index, WINDOW)
      return
    }
    const accesses = ++this.#accesses
    if (accesses >= this.#nodes[index * STRIDE + DUE]!) {
      this.#slowHit(index, accesses)
    } else {
      this.#nodes[index * STRIDE + PENDING]!++
      this.#nodes[index * STRIDE + STAMP] = accesses
    }
  }

  /** The policy work of a hit, in order (see {@link #onHit}). */
  #slowHit(index: number, accesses: number): void {
    if (accesses >= this.#nextMaintenance) this.#maintain()
    // Counted after maintenance, as the hit comes after any aging it triggers
    // (and stamped with the count after it, which a rebase may have reset).
    this.#nodes[index * STRIDE + PENDING]!++
    this.#nodes[index * STRIDE + STAMP] = this.#accesses
    if ((this.#nodes[index * STRIDE + META]! & LISTED) === 0) {
      this.#nodes[index * STRIDE + META]! |= LISTED
      if (this.#pendingCount === this.#pendingList.length) {
        const grown = new Int32Array(this.#pendingList.length * 2)
        grown.set(this.#pendingList)
        this.#pendingList = grown
      }
      this.#pendingList[this.#pendingCount++] = index
    }
    if ((this.#nodes[index * STRIDE + META]! & REGION) === PROBATION) {
      this.#unlink(index)
      this.#append(index, PROTECTED)
      this.#demoteProtected()
    }
    const meta = this.#nodes[index * STRIDE + META]!
    if ((meta & SAMPLED) !== 0) {
      this.#tuner!.access(this.#nodes[index * STRIDE + HASH]!)
    } else if ((meta & LISTED) !== 0) {
      // Until the next maintenance or flush, hits need no more than a stamp
      // and a count. (A flush during the promotion above has already placed
      // the entry and counted its hit: its next hit lists it again.)
      this.#nodes[index * STRIDE + DUE] = this.#nextMaintenance
    }
  }

  #onMiss(key: string): void {
    this.#lastMiss = key
    this.#record(hashKey(key) | 0)
  }

  /** One access of a key not held (a miss, or a new key set without a miss before it). */
  #record(hash: number): void {
    if (++this.#accesses >= this.#nextMaintenance) this.#maintain()
    this.#sketch!.record(hash)
    if (this.#tuner?.samples(hash)) this.#tuner.access(hash)
  }

  /** Aging of the sketch and window tuning, when due. */
  #maintain(): void {
    const accesses = this.#accesses
    if (accesses >= this.#nextAging) {
      const sketch = this.#sketch!
      this.#flushPending()
      sketch.age()
      // As the sketch's own count would: halved at aging, so the next comes sooner.
      this.#nextAging = accesses + sketch.sampleSize - Math.floor(sketch.sampleSize / 2)
    }
    if (accesses >= this.#nextTuning) {
      this.#nextTuning = accesses + TUNING_PERIOD * this.maxEntries
      this.#resizeWindow(this.#tuner!.choose(this.maxEntries) - this.#windowMax)
    }
    if (accesses >= this.#rebaseAt) this.#rebase()
    this.#nextMaintenance = Math.min(this.#nextAging, this.#nextTuning)
  }

  /**
   * Adds every pending hit to the sketch's counters, moves every listed entry
   * to the newest end of its list in the order of their last hits (`STAMP`),
   * and empties the pending list; its entries' next hit goes through
   * `#slowHit` to be listed again. The work is one counter update and one
   * move per listed entry, whatever its number of hits: a key hit fifty times
   * between flushes costs one of each, not fifty. Afterwards every list is in
   * exactly the order that moving each entry on its every hit gives.
   */
  #flushPending(): void {
    const count = this.#pendingCount
    if (count === 0) return
    this.#pendingCount = 0
    const sketch = this.#sketch!
    const nodes = this.#nodes
    const list = this.#pendingList
    // Keeps each listed entry once, in place: an index freed since it was
    // listed is no longer `LISTED`, and one listed again after reuse appears twice.
    let listed = 0
    let oldest = NEVER
    let newest = 0
    for (let i = 0; i < count; i++) {
      const index = list[i]!
      const base = index * STRIDE
      const meta = nodes[base + META]!
      if ((meta & LISTED) === 0) continue
      nodes[base + META] = meta & ~LISTED
      nodes[base + DUE] = 0
      const pending = nodes[base + PENDING]!
      if (pending > 0) {
        sketch.recordSeen(nodes[base + HASH]!, pending)
        nodes[base + PENDING] = 0
      }
      const stamp = nodes[base + STAMP]!
      if (stamp < oldest) oldest = stamp
      if (stamp > newest) newest = stamp
      list[listed++] = index
    }
    this.#sorter.sort(list, listed, nodes, STRIDE, STAMP, oldest, newest - oldest)
    for (let i = 0; i < listed; i++) {
      const index = list[i]!
      this.#moveToTail(index, nodes[index * STRIDE + META]! & REGION)
    }
  }

  /**
   * Keeps the access count a small integer (V8 keeps those unboxed): moves
   * the count and every mark measured in it back to zero, preserving every
   * comparison the policy makes with them.
   */
  #rebase(): void {
    // Pending entries' stamps are in the old count: they are placed first.
    this.#flushPending()
    const shift = this.#accesses
    this.#accesses = 0
    this.#nextAging -= shift
    this.#nextTuning -= shift
    for (let at = DUE; at < this.#nodes.length; at += STRIDE) this.#nodes[at] = 0
  }

  #expire(index: number): void {
    const key = this.#keys[index]!
    this.#removeIndex(index)
    this.#onEvict?.(key, 'expired')
  }

  /** Whether a usable entry is held, without recording an access. */
  hasEntry(key: string): boolean {
    const index = this.#map.get(key)
    return index !== undefined && isUsable(this.#entries[index]!, this.#clock.now())
  }

  /** Stores `entry` under `key`. An entry heavier than `maxBytes` is not stored. */
  setEntry(key: string, entry: StoredEntry): void {
    const weight = this.#weigher ? this.#weigher(key, entry.value) : 0
    // Checked before anything changes: a NaN, negative or string weight would
    // corrupt the byte count (and so the byte budget) for the tier's lifetime.
    if (typeof weight !== 'number' || !(weight >= 0) || weight === Number.POSITIVE_INFINITY) {
      throw invalidInput(
        'options.weigher',
        `returned ${typeof weight === 'number' ? weight : typeof weight} for key "${key}"; it must return a finite number >= 0`,
      )
    }
    const flags =
      (entry.staleUntil === Number.POSITIVE_INFINITY ? 0 : EXPIRES) |
      (entry.expiresAt === Number.POSITIVE_INFINITY ? 0 : FRESH_UNTIL)
    const existing = this.#map.get(key)
    if (existing !== undefined) {
      this.#untag(existing)
      this.#bytes += weight - this.#weights[existing]!
      this.#entries[existing] = entry
      this.#values[existing] = entry.value
      this.#nodes[existing * STRIDE + META] =
        (this.#nodes[existing * STRIDE + META]! & (SAMPLED | REGION | LISTED)) | flags
      this.#weights[existing] = weight
      this.#tag(existing)
      if (weight > this.maxBytes) {
        this.#removeIndex(existing)
        return
      }
      this.#onHit(existing)
      this.#evict()
      return
    }
    if (weight > this.maxBytes) return
    let hash = 0
    let sampled = 0
    if (this.#sketch !== undefined) {
      hash = hashKey(key) | 0
      // A miss followed by the set of its key is one access, recorded at the miss.
      if (key === this.#lastMiss) this.#lastMiss = undefined
      else this.#record(hash)
      if (this.#tuner?.samples(hash)) sampled = SAMPLED
    }
    const index = this.#allocate()
    this.#map.set(key, index)
    this.#keys[index] = key
    this.#entries[index] = entry
    this.#values[index] = entry.value
    this.#nodes[index * STRIDE + HASH] = hash
    this.#nodes[index * STRIDE + PENDING] = 0
    this.#nodes[index * STRIDE + DUE] = 0
    this.#nodes[index * STRIDE + META] = flags | sampled
    this.#weights[index] = weight
    this.#bytes += weight
    // Entries hit since the last flush go before the new one, as they were hit first.
    if (this.#pendingCount !== 0) this.#flushPending()
    this.#append(index, WINDOW)
    this.#tag(index)
    this.#evict()
  }

  /** Removes `key`; returns whether it was present. */
  deleteEntry(key: string): boolean {
    const index = this.#map.get(key)
    if (index === undefined) return false
    this.#removeIndex(index)
    return true
  }

  /** Removes every entry tagged `tag`; returns how many. */
  deleteTag(tag: string): number {
    const keys = this.#tags.get(tag)
    if (!keys) return 0
    let removed = 0
    for (const key of [...keys]) if (this.deleteEntry(key)) removed++
    this.#tags.delete(tag)
    return removed
  }

  /** Removes everything. */
  clearAll(): void {
    if (this.#sketch !== undefined) this.#flushPending()
    this.#tuner?.reset()
    this.#map.clear()
    this.#tags.clear()
    this.#keys.length = 0
    this.#entries.length = 0
    this.#values.length = 0
    this.#free.length = 0
    this.#unused = FIRST
    for (let list = WINDOW; list <= PROTECTED; list++) {
      this.#nodes[list * STRIDE + PREVIOUS] = list
      this.#nodes[list * STRIDE + NEXT] = list
    }
    this.#windowCount = 0
    this.#protectedCount = 0
    this.#bytes = 0
  }

  /** Keys currently held (no particular order). */
  keys(): IterableIterator<string> {
    return this.#map.keys()
  }

  get(key: string): Promise<StoredEntry | undefined> {
    return Promise.resolve(this.getEntry(key))
  }

  set(key: string, entry: StoredEntry): Promise<void> {
    this.setEntry(key, entry)
    return Promise.resolve()
  }

  delete(key: string): Promise<boolean> {
    return Promise.resolve(this.deleteEntry(key))
  }

  deleteByTag(tag: string): Promise<number> {
    return Promise.resolve(this.deleteTag(tag))
  }

  clear(): Promise<void> {
    this.clearAll()
    return Promise.resolve()
  }

  stats(): MemoryTierStats {
    return {
      size: this.#map.size,
      evictions: this.#evictions,
      bytes: this.#bytes,
      windowCapacity: this.#windowMax,
      rejections: this.#rejections,
    }
  }

  dispose(): void {
    this.clearAll()
  }

  /** A free index, growing the arrays when every one is in use. */
  #allocate(): number {
    const reused = this.#free.pop()
    if (reused !== undefined) return reused
    const index = this.#unused++
    if (index >= this.#capacity) this.#grow()
    return index
  }

  #grow(): void {
    const capacity = Math.min(this.#capacity * 2, this.maxEntries + FIRST + 1)
    const nodes = new Int32Array(capacity * STRIDE)
    nodes.set(this.#nodes)
    this.#nodes = nodes
    const weights = new Float64Array(capacity)
    weights.set(this.#weights)
    this.#weights = weights
    this.#capacity = capacity
  }

  /** Adds `index` at the newest end of `list`, as accessed now. */
  #append(index: number, list: number): void {
    const last = this.#nodes[list * STRIDE + PREVIOUS]!
    this.#nodes[index * STRIDE + PREVIOUS] = last
    this.#nodes[index * STRIDE + NEXT] = list
    this.#nodes[last * STRIDE + NEXT] = index
    this.#nodes[list * STRIDE + PREVIOUS] = index
    this.#nodes[index * STRIDE + META] = (this.#nodes[index * STRIDE + META]! & ~REGION) | list
    if (list === WINDOW) this.#windowCount++
    else if (list === PROTECTED) this.#protectedCount++
    else this.#nodes[index * STRIDE + DUE] = 0
  }

  #unlink(index: number): void {
    const previous = this.#nodes[index * STRIDE + PREVIOUS]!
    const next = this.#nodes[index * STRIDE + NEXT]!
    this.#nodes[previous * STRIDE + NEXT] = next
    this.#nodes[next * STRIDE + PREVIOUS] = previous
    const list = this.#nodes[index * STRIDE + META]! & REGION
    if (list === WINDOW) this.#windowCount--
    else if (list === PROTECTED) this.#protectedCount--
  }

  #moveToTail(index: number, list: number): void {
    const last = this.#nodes[list * STRIDE + PREVIOUS]!
    if (last === index) return
    const previous = this.#nodes[index * STRIDE + PREVIOUS]!
    const next = this.#nodes[index * STRIDE + NEXT]!
    this.#nodes[previous * STRIDE + NEXT] = next
    this.#nodes[next * STRIDE + PREVIOUS] = previous
    this.#nodes[index * STRIDE + PREVIOUS] = last
    this.#nodes[index * STRIDE + NEXT] = list
    this.#nodes[last * STRIDE + NEXT] = index
    this.#nodes[list * STRIDE + PREVIOUS] = index
  }

  /** The least recently used index of `list`, or -1 when it is empty. */
  #head(list: number): number {
    // Listed entries are out of place until a flush puts them in order.
    if (this.#pendingCount !== 0) this.#flushPending()
    const head = this.#nodes[list * STRIDE + NEXT]!
    return head === list ? -1 : head
  }

  /** Moves the protected region's oldest entries to probation while it is over its share. */
  #demoteProtected(): void {
    while (this.#protectedCount > this.#protectedMax) {
      const demoted = this.#head(PROTECTED)
      this.#unlink(demoted)
      this.#append(demoted, PROBATION)
    }
  }

  #over(): boolean {
    return this.#map.size > this.maxEntries || this.#bytes > this.maxBytes
  }

  #evict(): void {
    if (this.#sketch === undefined) {
      while (this.#over()) {
        const head = this.#head(WINDOW)
        if (head < 0) break
        this.#evictIndex(head)
      }
      return
    }
    // Entries leaving the window become candidates at probation's newest end.
    let candidates: number[] | undefined
    while (this.#windowCount > this.#windowMax) {
      const index = this.#head(WINDOW)
      this.#unlink(index)
      this.#append(index, PROBATION)
      if (candidates === undefined) candidates = []
      candidates.push(index)
    }
    while (this.#over()) {
      let victim = this.#head(PROBATION)
      if (victim < 0) victim = this.#head(PROTECTED)
      if (victim < 0) {
        const head = this.#head(WINDOW)
        if (head < 0) break
        this.#evictIndex(head)
        continue
      }
      let candidate = candidates === undefined ? -1 : (candidates[candidates.length - 1] ?? -1)
      while (candidate >= 0 && (this.#nodes[candidate * STRIDE + META]! & REGION) === FREE) {
        candidates!.pop()
        candidate = candidates![candidates!.length - 1] ?? -1
      }
      if (candidate < 0 || candidate === victim) {
        this.#evictIndex(victim)
        if (candidate === victim) candidates!.pop()
        continue
      }
      if (
        this.#admit(this.#nodes[candidate * STRIDE + HASH]!, this.#nodes[victim * STRIDE + HASH]!)
      ) {
        this.#evictIndex(victim)
      } else {
        candidates!.pop()
        this.#rejections++
        this.#evictIndex(candidate)
      }
    }
  }

  #admit(candidateHash: number, victimHash: number): boolean {
    const sketch = this.#sketch!
    this.#flushPending()
    const candidateFrequency = sketch.frequency(candidateHash)
    const victimFrequency = sketch.frequency(victimHash)
    if (candidateFrequency > victimFrequency) return true
    // A little randomness defeats attacks that keep a victim artificially warm
    // (Caffeine's hash-flooding protection for warm candidates).
    if (candidateFrequency >= 6) return (this.#nextRandom() & 127) === 0
    return false
  }

  #evictIndex(index: number): void {
    const key = this.#keys[index]!
    this.#removeIndex(index)
    this.#evictions++
    this.#onEvict?.(key, 'size')
  }

  #removeIndex(index: number): void {
    const key = this.#keys[index]!
    // Its pending hits happened: they count even though the entry goes.
    const pending = this.#nodes[index * STRIDE + PENDING]!
    if (pending > 0) {
      this.#sketch!.recordSeen(this.#nodes[index * STRIDE + HASH]!, pending)
      this.#nodes[index * STRIDE + PENDING] = 0
    }
    this.#map.delete(key)
    this.#bytes -= this.#weights[index]!
    this.#untag(index)
    this.#unlink(index)
    this.#nodes[index * STRIDE + META] = FREE
    this.#keys[index] = undefined
    this.#entries[index] = undefined
    this.#values[index] = undefined
    this.#free.push(index)
  }

  #tag(index: number): void {
    const tags = this.#entries[index]!.tags
    if (tags.length === 0) return
    const key = this.#keys[index]!
    for (let i = 0; i < tags.length; i++) {
      let set = this.#tags.get(tags[i]!)
      if (!set) {
        set = new Set()
        this.#tags.set(tags[i]!, set)
      }
      set.add(key)
    }
  }

  #untag(index: number): void {
    const tags = this.#entries[index]!.tags
    if (tags.length === 0) return
    const key = this.#keys[index]!
    for (let i = 0; i < tags.length; i++) {
      const set = this.#tags.get(tags[i]!)
      if (!set) continue
      set.delete(key)
      if (set.size === 0) this.#tags.delete(tags[i]!)
    }
  }

  /** xorshift32: deterministic, so hit ratios are reproducible run to run. */
  #nextRandom(): number {
    let x = this.#random
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.#random = x
    return x >>> 0
  }

  #resizeWindow(delta: number): void {
    if (delta === 0) return
    const next = Math.min(this.maxEntries - 1, Math.max(1, this.#windowMax + delta))
    if (next === this.#windowMax) return
    this.#windowMax = next
    this.#protectedMax = Math.floor(0.8 * (this.maxEntries - next))
    // A smaller window hands its oldest entries to the main region.
    while (this.#windowCount > this.#windowMax) {
      const index = this.#head(WINDOW)
      this.#unlink(index)
      this.#append(index, PROBATION)
    }
    this.#demoteProtected()
  }
}
