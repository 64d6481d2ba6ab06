/**
 * TinyLFU's popularity estimate: a count-min sketch of saturating counters
 * (capped at 15, four per key in one 16-byte block so an update touches one
 * cache line) with periodic aging, behind a doorkeeper Bloom
 * filter that absorbs one-hit wonders so they never touch the counters.
 *
 * Aging is lazy: halving every counter would walk the whole table at once
 * (tens of microseconds of a rarely run, so rarely optimised, loop: about a
 * tenth of the time of a hit-heavy workload). Instead each block records the
 * aging generation it was last brought up to date in, and a block is halved
 * as many times as it missed (`c >> k`, the same as `k` halvings) when it is
 * next read or updated. Every estimate is exactly what eager halving gives.
 */
import { assertNumber } from '@aide/core'

/** 32-bit hash of a string (FNV-1a with a murmur3 finaliser for spread). */
export function hashKey(key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

function nextPowerOfTwo(value: number): number {
  let p = 1
  while (p < value) p *= 2
  return p
}

const MAX_COUNT = 15

/** Frequency sketch with aging and a doorkeeper. All operations are O(1). */
export class FrequencySketch {
  readonly #table: Uint8Array
  /** The same memory as `#table`, four counters a word, for aging. */
  readonly #words: Int32Array
  /** Per 16-byte block: the aging generation (`#resets`) its counters are up to date with. */
  readonly #blockEpochs: Int32Array
  readonly #blockMask: number
  readonly #doorkeeper: Uint32Array
  readonly #doorkeeperMask: number
  readonly #sampleSize: number
  #additions = 0
  #resets = 0

  /** @param capacity the cache size in entries the sketch serves. */
  constructor(capacity: number) {
    const size = Math.max(16, Math.min(capacity, 1 << 24))
    const width = nextPowerOfTwo(size)
    this.#table = new Uint8Array(width * 4)
    this.#words = new Int32Array(this.#table.buffer)
    this.#blockEpochs = new Int32Array(width / 4)
    // Block start offsets: multiples of 16 within the table.
    this.#blockMask = (width * 4 - 1) & ~15
    const bits = nextPowerOfTwo(size * 4)
    this.#doorkeeper = new Uint32Array(bits / 32)
    this.#doorkeeperMask = bits - 1
    this.#sampleSize = 10 * size
  }

  /** How many times the counters were halved (aging). */
  get resets(): number {
    return this.#resets
  }

  /** Records one access of the key with this hash (counting towards aging). */
  increment(hash: number): void {
    this.record(hash)
    if (++this.#additions >= this.#sampleSize) this.#age()
  }

  /**
   * Records one access of the key with this hash without counting it towards
   * aging: for an owner that counts accesses itself and calls {@link age}
   * every {@link sampleSize} accesses (as the memory tier does).
   */
  record(hash: number): void {
    const d1 = hash & this.#doorkeeperMask
    const d2 = (Math.imul(hash, 0x9e3779b1) >>> 7) & this.#doorkeeperMask
    const b1 = this.#doorkeeper[d1 >>> 5]! & (1 << (d1 & 31))
    const b2 = this.#doorkeeper[d2 >>> 5]! & (1 << (d2 & 31))
    if (b1 === 0 || b2 === 0) {
      this.#doorkeeper[d1 >>> 5]! |= 1 << (d1 & 31)
      this.#doorkeeper[d2 >>> 5]! |= 1 << (d2 & 31)
    } else {
      this.#bump(hash)
    }
  }

  /**
   * Records `count` accesses (default 1) of a key known to have been seen (a
   * cache hit) straight into the counters, skipping the doorkeeper and not
   * counting towards aging. One call with `count` n leaves the counters
   * exactly as n calls would: the adds saturate at 15, and saturating adds
   * commute. Returns true when the key's four counters are all saturated
   * afterwards: until the next {@link age}, further calls would change nothing.
   */
  recordSeen(hash: number, count = 1): boolean {
    if (count !== 1 && !(Number.isInteger(count) && count >= 0)) {
      assertNumber(count, 'count', { integer: true, min: 0 })
    }
    return this.#bump(hash, count)
  }

  /** Accesses between two agings (10x the capacity). */
  get sampleSize(): number {
    return this.#sampleSize
  }

  /** Halves every counter and clears the doorkeeper now (see {@link record}). */
  age(): void {
    this.#age()
  }

  /**
   * Adds `count` to the key's four counters (saturating at 15) and returns
   * whether all four are now full. The counters share one 16-byte block (one
   * cache line).
   */
  #bump(hash: number, count = 1): boolean {
    const table = this.#table
    const base = (Math.imul(hash, 0x2c1b3c6d) >>> 0) & this.#blockMask
    if (this.#blockEpochs[base >>> 4] !== this.#resets) this.#catchUp(base)
    const spread = Math.imul(hash ^ (hash >>> 16), 0x297a2d39)
    const i0 = base + (spread & 3)
    const i1 = base + 4 + ((spread >>> 8) & 3)
    const i2 = base + 8 + ((spread >>> 16) & 3)
    const i3 = base + 12 + ((spread >>> 24) & 3)
    table[i0] = Math.min(MAX_COUNT, table[i0]! + count)
    table[i1] = Math.min(MAX_COUNT, table[i1]! + count)
    table[i2] = Math.min(MAX_COUNT, table[i2]! + count)
    table[i3] = Math.min(MAX_COUNT, table[i3]! + count)
    return (table[i0]! & table[i1]! & table[i2]! & table[i3]!) === MAX_COUNT
  }

  /**
   * Aging generation: bumped each time the counters are halved. Between two
   * agings a counter never decreases.
   */
  get epoch(): number {
    return this.#resets
  }

  /**
   * Records an access of a key known to have been seen (a cache hit): goes
   * straight to the counters, skipping the doorkeeper. Returns true when the
   * key's four counters are all saturated afterwards (and no aging happened):
   * until the epoch changes, its further accesses may use
   * {@link countSaturated} instead, with the same effect.
   */
  incrementSeen(hash: number): boolean {
    this.#additions++
    const saturated = this.#bump(hash)
    if (this.#additions >= this.#sampleSize) {
      this.#age()
      return false
    }
    return saturated
  }

  /**
   * Records an access of a key whose counters are all saturated in the current
   * epoch: incrementing them would change nothing, so only the aging count moves.
   */
  countSaturated(): void {
    if (++this.#additions >= this.#sampleSize) this.#age()
  }

  /** Estimated recent frequency of the key with this hash (0..16). */
  frequency(hash: number): number {
    const d1 = hash & this.#doorkeeperMask
    const d2 = (Math.imul(hash, 0x9e3779b1) >>> 7) & this.#doorkeeperMask
    const seen =
      (this.#doorkeeper[d1 >>> 5]! & (1 << (d1 & 31))) !== 0 &&
      (this.#doorkeeper[d2 >>> 5]! & (1 << (d2 & 31))) !== 0
    const table = this.#table
    const base = (Math.imul(hash, 0x2c1b3c6d) >>> 0) & this.#blockMask
    if (this.#blockEpochs[base >>> 4] !== this.#resets) this.#catchUp(base)
    const spread = Math.imul(hash ^ (hash >>> 16), 0x297a2d39)
    const min = Math.min(
      table[base + (spread & 3)]!,
      table[base + 4 + ((spread >>> 8) & 3)]!,
      table[base + 8 + ((spread >>> 16) & 3)]!,
      table[base + 12 + ((spread >>> 24) & 3)]!,
    )
    return min + (seen ? 1 : 0)
  }

  /**
   * Halves every counter (lazily, see the class comment) and clears the
   * doorkeeper, so old popularity fades.
   */
  #age(): void {
    this.#doorkeeper.fill(0)
    this.#additions = Math.floor(this.#additions / 2)
    this.#resets++
  }

  /**
   * Brings the block at byte offset `base` up to the current generation:
   * halves its counters once per aging it missed. Four byte counters are
   * halved at once by shifting the word and clearing the top bit each byte
   * received from its neighbour; four or more halvings leave 0 (counters are
   * at most 15).
   */
  #catchUp(base: number): void {
    const block = base >>> 4
    const missed = this.#resets - this.#blockEpochs[block]!
    this.#blockEpochs[block] = this.#resets
    const words = this.#words
    const at = base >>> 2
    if (missed >= 4) {
      words[at] = 0
      words[at + 1] = 0
      words[at + 2] = 0
      words[at + 3] = 0
      return
    }
    // 0x7f7f7f7f, 0x3f3f3f3f or 0x1f1f1f1f: each byte's low 8 - missed bits.
    const keep = (0xff >>> missed) * 0x01010101
    words[at] = (words[at]! >>> missed) & keep
    words[at + 1] = (words[at + 1]! >>> missed) & keep
    words[at + 2] = (words[at + 2]! >>> missed) & keep
    words[at + 3] = (words[at + 3]! >>> missed) & keep
  }
}
