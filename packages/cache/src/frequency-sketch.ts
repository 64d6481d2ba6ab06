/**
 * TinyLFU's popularity estimate: a count-min sketch of 4-bit-style saturating
 * counters (capped at 15) with periodic aging, behind a doorkeeper Bloom
 * filter that absorbs one-hit wonders so they never touch the counters.
 */

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
  readonly #width: number
  readonly #mask: number
  readonly #doorkeeper: Uint32Array
  readonly #doorkeeperMask: number
  readonly #sampleSize: number
  #additions = 0
  #resets = 0

  /** @param capacity the cache size in entries the sketch serves. */
  constructor(capacity: number) {
    const size = Math.max(16, Math.min(capacity, 1 << 24))
    this.#width = nextPowerOfTwo(size)
    this.#mask = this.#width - 1
    this.#table = new Uint8Array(this.#width * 4)
    const bits = nextPowerOfTwo(size * 4)
    this.#doorkeeper = new Uint32Array(bits / 32)
    this.#doorkeeperMask = bits - 1
    this.#sampleSize = 10 * size
  }

  /** How many times the counters were halved (aging). */
  get resets(): number {
    return this.#resets
  }

  /** Records one access of the key with this hash. */
  increment(hash: number): void {
    this.#additions++
    const d1 = hash & this.#doorkeeperMask
    const d2 = (Math.imul(hash, 0x9e3779b1) >>> 7) & this.#doorkeeperMask
    const b1 = this.#doorkeeper[d1 >>> 5]! & (1 << (d1 & 31))
    const b2 = this.#doorkeeper[d2 >>> 5]! & (1 << (d2 & 31))
    if (b1 === 0 || b2 === 0) {
      this.#doorkeeper[d1 >>> 5]! |= 1 << (d1 & 31)
      this.#doorkeeper[d2 >>> 5]! |= 1 << (d2 & 31)
    } else {
      const table = this.#table
      let h = hash
      for (let row = 0; row < 4; row++) {
        h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) ^ row
        const index = row * this.#width + ((h >>> 8) & this.#mask)
        if (table[index]! < MAX_COUNT) table[index]!++
      }
    }
    if (this.#additions >= this.#sampleSize) this.#age()
  }

  /** Estimated recent frequency of the key with this hash (0..16). */
  frequency(hash: number): number {
    const d1 = hash & this.#doorkeeperMask
    const d2 = (Math.imul(hash, 0x9e3779b1) >>> 7) & this.#doorkeeperMask
    const seen =
      (this.#doorkeeper[d1 >>> 5]! & (1 << (d1 & 31))) !== 0 &&
      (this.#doorkeeper[d2 >>> 5]! & (1 << (d2 & 31))) !== 0
    const table = this.#table
    let h = hash
    let min = MAX_COUNT
    for (let row = 0; row < 4; row++) {
      h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) ^ row
      const count = table[row * this.#width + ((h >>> 8) & this.#mask)]!
      if (count < min) min = count
    }
    return min + (seen ? 1 : 0)
  }

  /** Halves every counter and clears the doorkeeper, so old popularity fades. */
  #age(): void {
    const table = this.#table
    for (let i = 0; i < table.length; i++) table[i] = table[i]! >>> 1
    this.#doorkeeper.fill(0)
    this.#additions = Math.floor(this.#additions / 2)
    this.#resets++
  }
}
