/**
 * The in-process tier (L1): a W-TinyLFU cache (or plain LRU) bounded by entry
 * count and, with a weigher, by bytes. Values are kept live: no serialisation.
 *
 * W-TinyLFU layout: new entries enter a small LRU *window*; entries leaving the
 * window are *candidates* for the *main* region (a segmented LRU of
 * *probation* and *protected*). A candidate is admitted only if the frequency
 * sketch says it is more popular than the main region's eviction victim. The
 * window's share of the capacity is tuned by hill climbing on the hit rate, so
 * recency-heavy workloads grow the window (behaving like LRU) and frequency- or
 * scan-heavy ones shrink it.
 */
import {
  assertFunction,
  assertNumber,
  assertObject,
  assertOneOf,
  type Clock,
  systemClock,
} from '@aide/core'
import { isUsable, type StoredEntry } from './entry.js'
import { FrequencySketch, hashKey } from './frequency-sketch.js'
import type { CacheTier, TierOwnStats } from './tier.js'

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
  /** Whether the window size adapts by hill climbing. Default true. */
  adaptive?: boolean
  /** Clock for expiry checks. Default: the system clock. */
  clock?: Clock
  /** Called when an entry is evicted for size or found expired. */
  onEvict?: (key: string, reason: EvictionReason) => void
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

const WINDOW = 0
/**
 * `touched` of nodes outside the protected region: below any `tick - quarter`
 * (a Map holds at most 2^24 entries, so the quarter is at most 2^22).
 */
const UNPROTECTED = -(2 ** 30)
const PROBATION = 1
const PROTECTED = 2

/**
 * One entry's node. Every node is created with the same fields in the same
 * order (one hidden class), the fields a hit reads first, so they tend to
 * share a cache line.
 */
interface Node {
  entry: StoredEntry
  hash: number
  /**
   * Access tick of the last move within the protected region; `UNPROTECTED`
   * outside it, so one comparison tells a hit whether it must reorder.
   */
  touched: number
  region: number
  /**
   * The sketch epoch (`FrequencySketch.epoch`) in which this key's counters
   * were seen saturated, or -1. Counters only grow between agings, so within
   * that epoch a hit need not touch them (see `FrequencySketch.incrementSeen`).
   */
  saturatedIn: number
  key: string
  weight: number
  candidate: boolean
  prev: Node | undefined
  next: Node | undefined
}

const SENTINEL_ENTRY: StoredEntry = {
  value: undefined,
  createdAt: 0,
  expiresAt: 0,
  staleUntil: 0,
  tags: [],
}

/** A doubly linked list with a sentinel, so links need no branches. */
class List {
  readonly sentinel: Node
  count = 0

  constructor() {
    const sentinel: Node = {
      entry: SENTINEL_ENTRY,
      hash: 0,
      touched: UNPROTECTED,
      region: -1,
      saturatedIn: -1,
      key: '',
      weight: 0,
      candidate: false,
      prev: undefined,
      next: undefined,
    }
    sentinel.prev = sentinel
    sentinel.next = sentinel
    this.sentinel = sentinel
  }

  /** Least recently used node. */
  get head(): Node | undefined {
    const node = this.sentinel.next!
    return node === this.sentinel ? undefined : node
  }

  push(node: Node): void {
    const sentinel = this.sentinel
    const last = sentinel.prev!
    node.prev = last
    node.next = sentinel
    last.next = node
    sentinel.prev = node
    this.count++
  }

  remove(node: Node): void {
    node.prev!.next = node.next
    node.next!.prev = node.prev
    node.prev = undefined
    node.next = undefined
    this.count--
  }

  moveToTail(node: Node): void {
    const sentinel = this.sentinel
    const last = sentinel.prev!
    if (last === node) return
    node.prev!.next = node.next
    node.next!.prev = node.prev
    node.prev = last
    node.next = sentinel
    last.next = node
    sentinel.prev = node
  }

  clear(): void {
    this.sentinel.prev = this.sentinel
    this.sentinel.next = this.sentinel
    this.count = 0
  }
}

/** A rough size in bytes of a value, for the default weigher. */
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

const HILL_STEP = 0.25
const HILL_DECAY = 0.98
const HILL_RESTART = 0.05

/**
 * The L1 tier. Besides the async {@link CacheTier} methods it has synchronous
 * ones (`getEntry`, `setEntry`, `deleteEntry`) used on the cache's hot path.
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
  readonly #map = new Map<string, Node>()
  readonly #tags = new Map<string, Set<string>>()
  readonly #window = new List()
  readonly #probation = new List()
  readonly #protected = new List()
  readonly #sketch: FrequencySketch | undefined
  #windowMax: number
  #protectedMax: number
  #bytes = 0
  #evictions = 0
  #rejections = 0
  #tick = 0
  #random = 0x9e3779b9
  // hill climber state
  /** Accesses left in the current sample (-1, never reaching 0, when not adaptive). */
  #sampleCountdown: number
  #sampleMisses = 0
  /** `protectedMax >>> 2`: protected hits this recent skip the move (see `#reorder`). */
  #protectedQuarter: number
  #previousHitRate = 0
  #stepSize: number
  readonly #sampleSize: number

  constructor(options: MemoryTierOptions = {}) {
    assertObject(options, 'options')
    const maxEntries = options.maxEntries ?? 10_000
    assertNumber(maxEntries, 'options.maxEntries', { min: 1, integer: true })
    const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY
    assertNumber(maxBytes, 'options.maxBytes', { min: 1, allowInfinity: true })
    if (options.weigher !== undefined) assertFunction(options.weigher, 'options.weigher')
    if (options.onEvict !== undefined) assertFunction(options.onEvict, 'options.onEvict')
    const policy = options.policy ?? 'tinylfu'
    assertOneOf(policy, 'options.policy', ['tinylfu', 'lru'] as const)
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
    }
    this.#protectedMax = Math.floor(0.8 * (maxEntries - this.#windowMax))
    this.#protectedQuarter = this.#protectedMax >>> 2
    // Like Caffeine, the first move shrinks the window (favouring scan resistance).
    this.#stepSize = -HILL_STEP * maxEntries
    this.#sampleSize = 10 * maxEntries
    this.#sampleCountdown = this.#adaptive ? this.#sampleSize : -1
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
    const node = this.#map.get(key)
    if (node === undefined) {
      this.#onMiss(key)
      return undefined
    }
    const entry = node.entry
    const staleUntil = entry.staleUntil
    if (staleUntil !== Number.POSITIVE_INFINITY && !(this.#clock.now() < staleUntil)) {
      this.#expire(node)
      return undefined
    }
    // The hit path, inline and in the same order as #onHit. The common case
    // (a saturated key, protected and recently moved) touches no sketch
    // counter and no list: three counters and two comparisons.
    const sketch = this.#sketch
    if (sketch === undefined) {
      this.#window.moveToTail(node)
      return entry
    }
    if (node.saturatedIn === sketch.epoch) sketch.countSaturated()
    else if (sketch.incrementSeen(node.hash)) node.saturatedIn = sketch.epoch
    if (--this.#sampleCountdown === 0) this.#climb()
    const tick = ++this.#tick
    if (node.touched < tick - this.#protectedQuarter) this.#reorder(node, tick)
    return entry
  }

  #onMiss(key: string): void {
    if (this.#sketch === undefined) return
    this.#sketch.increment(hashKey(key))
    if (this.#adaptive) {
      this.#sampleMisses++
      if (--this.#sampleCountdown === 0) this.#climb()
    }
  }

  #expire(node: Node): void {
    this.#removeNode(node)
    this.#onEvict?.(node.key, 'expired')
  }

  /** Whether a usable entry is held, without recording an access. */
  hasEntry(key: string): boolean {
    const node = this.#map.get(key)
    return node !== undefined && isUsable(node.entry, this.#clock.now())
  }

  /** Stores `entry` under `key`. An entry heavier than `maxBytes` is not stored. */
  setEntry(key: string, entry: StoredEntry): void {
    const weight = this.#weigher ? this.#weigher(key, entry.value) : 0
    const existing = this.#map.get(key)
    if (existing !== undefined) {
      this.#untag(existing)
      this.#bytes += weight - existing.weight
      existing.entry = entry
      existing.weight = weight
      this.#tag(existing)
      if (weight > this.maxBytes) {
        this.#removeNode(existing)
        return
      }
      this.#onHit(existing)
      this.#evict()
      return
    }
    if (weight > this.maxBytes) return
    const hash = this.#sketch ? hashKey(key) : 0
    this.#sketch?.increment(hash)
    const node: Node = {
      entry,
      hash,
      touched: UNPROTECTED,
      region: WINDOW,
      saturatedIn: -1,
      key,
      weight,
      candidate: false,
      prev: undefined,
      next: undefined,
    }
    this.#map.set(key, node)
    this.#bytes += weight
    this.#window.push(node)
    this.#tag(node)
    this.#evict()
  }

  /** Removes `key`; returns whether it was present. */
  deleteEntry(key: string): boolean {
    const node = this.#map.get(key)
    if (!node) return false
    this.#removeNode(node)
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
    this.#map.clear()
    this.#tags.clear()
    this.#window.clear()
    this.#probation.clear()
    this.#protected.clear()
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

  #onHit(node: Node): void {
    if (this.#sketch === undefined) {
      this.#window.moveToTail(node)
      return
    }
    const sketch = this.#sketch
    if (node.saturatedIn === sketch.epoch) sketch.countSaturated()
    else if (sketch.incrementSeen(node.hash)) node.saturatedIn = sketch.epoch
    if (--this.#sampleCountdown === 0) this.#climb()
    const tick = ++this.#tick
    if (node.touched < tick - this.#protectedQuarter) this.#reorder(node, tick)
  }

  /**
   * The reordering due to a W-TinyLFU hit. A protected node moved within the
   * last quarter-capacity ticks is already within the newest quarter of the
   * protected region: skipping its move keeps hits cheap and cannot let it
   * reach the eviction end early (the callers skip this call for such nodes).
   */
  #reorder(node: Node, tick: number): void {
    if (node.region === PROTECTED) {
      node.touched = tick
      this.#protected.moveToTail(node)
    } else if (node.region === WINDOW) {
      this.#window.moveToTail(node)
    } else {
      this.#probation.remove(node)
      node.region = PROTECTED
      node.candidate = false
      node.touched = tick
      this.#protected.push(node)
      while (this.#protected.count > this.#protectedMax && this.#protected.head) {
        const demoted = this.#protected.head
        this.#protected.remove(demoted)
        demoted.region = PROBATION
        demoted.touched = UNPROTECTED
        this.#probation.push(demoted)
      }
    }
  }

  #over(): boolean {
    return this.#map.size > this.maxEntries || this.#bytes > this.maxBytes
  }

  #evict(): void {
    if (this.#sketch === undefined) {
      while (this.#over() && this.#window.head) this.#evictNode(this.#window.head)
      return
    }
    const candidates: Node[] = []
    while (this.#window.count > this.#windowMax && this.#window.head) {
      const node = this.#window.head
      this.#window.remove(node)
      node.region = PROBATION
      node.candidate = true
      this.#probation.push(node)
      candidates.push(node)
    }
    while (this.#over()) {
      const victim = this.#probation.head ?? this.#protected.head
      if (!victim) {
        if (!this.#window.head) break
        this.#evictNode(this.#window.head)
        continue
      }
      let candidate = candidates[candidates.length - 1]
      while (candidate && this.#map.get(candidate.key) !== candidate) {
        candidates.pop()
        candidate = candidates[candidates.length - 1]
      }
      if (!candidate || candidate === victim) {
        this.#evictNode(victim)
        if (candidate === victim) candidates.pop()
        continue
      }
      if (this.#admit(candidate.hash, victim.hash)) {
        this.#evictNode(victim)
      } else {
        candidates.pop()
        this.#rejections++
        this.#evictNode(candidate)
      }
    }
    for (const node of candidates) node.candidate = false
  }

  #admit(candidateHash: number, victimHash: number): boolean {
    const sketch = this.#sketch!
    const candidateFrequency = sketch.frequency(candidateHash)
    const victimFrequency = sketch.frequency(victimHash)
    if (candidateFrequency > victimFrequency) return true
    // A little randomness defeats attacks that keep a victim artificially warm.
    if (candidateFrequency >= 6) return (this.#nextRandom() & 127) === 0
    return false
  }

  #evictNode(node: Node): void {
    this.#removeNode(node)
    this.#evictions++
    this.#onEvict?.(node.key, 'size')
  }

  #removeNode(node: Node): void {
    this.#map.delete(node.key)
    this.#bytes -= node.weight
    this.#untag(node)
    if (node.region === WINDOW) this.#window.remove(node)
    else if (node.region === PROBATION) this.#probation.remove(node)
    else this.#protected.remove(node)
  }

  #tag(node: Node): void {
    const tags = node.entry.tags
    for (let i = 0; i < tags.length; i++) {
      let set = this.#tags.get(tags[i]!)
      if (!set) {
        set = new Set()
        this.#tags.set(tags[i]!, set)
      }
      set.add(node.key)
    }
  }

  #untag(node: Node): void {
    const tags = node.entry.tags
    for (let i = 0; i < tags.length; i++) {
      const set = this.#tags.get(tags[i]!)
      if (!set) continue
      set.delete(node.key)
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

  /**
   * End of a sample of `sampleSize` accesses: one hill-climbing step. Hits are
   * not counted one by one (the hit path only decrements the countdown): they
   * are the sample's accesses that were not misses.
   */
  #climb(): void {
    this.#sampleCountdown = this.#sampleSize
    const hitRate = (this.#sampleSize - this.#sampleMisses) / this.#sampleSize
    const change = hitRate - this.#previousHitRate
    const amount = change >= 0 ? this.#stepSize : -this.#stepSize
    this.#stepSize =
      Math.abs(change) >= HILL_RESTART
        ? HILL_STEP * this.maxEntries * (amount >= 0 ? 1 : -1)
        : HILL_DECAY * amount
    this.#previousHitRate = hitRate
    this.#sampleMisses = 0
    this.#resizeWindow(Math.round(amount))
  }

  #resizeWindow(delta: number): void {
    if (delta === 0) return
    const next = Math.min(this.maxEntries - 1, Math.max(1, this.#windowMax + delta))
    if (next === this.#windowMax) return
    this.#windowMax = next
    this.#protectedMax = Math.floor(0.8 * (this.maxEntries - next))
    this.#protectedQuarter = this.#protectedMax >>> 2
    // A smaller window hands its oldest entries to the main region.
    while (this.#window.count > this.#windowMax && this.#window.head) {
      const node = this.#window.head
      this.#window.remove(node)
      node.region = PROBATION
      this.#probation.push(node)
    }
    while (this.#protected.count > this.#protectedMax && this.#protected.head) {
      const node = this.#protected.head
      this.#protected.remove(node)
      node.region = PROBATION
      node.touched = UNPROTECTED
      this.#probation.push(node)
    }
  }
}
