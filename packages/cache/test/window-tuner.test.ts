import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { FRACTIONS, WindowTuner } from '../src/window-tuner.ts'

/**
 * One simulated W-TinyLFU cache as the tuner defines it, with every list an
 * array in LRU order, moved eagerly on every hit.
 */
class EagerSimulation {
  readonly window: number[] = []
  readonly probation: number[] = []
  readonly protected: number[] = []
  readonly #windowMax: number
  readonly #protectedMax: number
  hits = 0

  constructor(
    readonly capacity: number,
    fraction: number,
    readonly frequency: (hash: number) => number,
  ) {
    this.#windowMax = Math.min(capacity - 1, Math.max(1, Math.round(fraction * capacity)))
    this.#protectedMax = Math.floor(0.8 * (capacity - this.#windowMax))
  }

  get size(): number {
    return this.window.length + this.probation.length + this.protected.length
  }

  access(hash: number): void {
    for (const list of [this.window, this.protected]) {
      const at = list.indexOf(hash)
      if (at >= 0) {
        this.hits++
        list.splice(at, 1)
        list.push(hash)
        return
      }
    }
    const inProbation = this.probation.indexOf(hash)
    if (inProbation >= 0) {
      this.hits++
      this.probation.splice(inProbation, 1)
      this.protected.push(hash)
      if (this.protected.length > this.#protectedMax) this.probation.push(this.protected.shift()!)
      return
    }
    this.window.push(hash)
    if (this.window.length > this.#windowMax) {
      const candidate = this.window.shift()!
      this.probation.push(candidate)
      if (this.size > this.capacity) {
        let victim: number | undefined = this.probation[0]
        let from = this.probation
        if (victim === candidate) {
          victim = this.protected[0]
          from = this.protected
        }
        if (victim !== undefined && this.frequency(candidate) > this.frequency(victim)) {
          from.splice(from.indexOf(victim), 1)
        } else {
          this.probation.splice(this.probation.indexOf(candidate), 1)
        }
      }
    } else if (this.size > this.capacity) {
      if (this.probation.length > 0) this.probation.shift()
      else if (this.protected.length > 0) this.protected.shift()
      else this.window.shift()
    }
  }
}

/**
 * Feeds the same accesses to the tuner and to seven eager simulations; the
 * frequency estimate is an exact count of the accesses so far, shared by both.
 */
function runBoth(maxEntries: number, hashes: readonly number[]): void {
  const counts = new Map<number, number>()
  const frequency = (hash: number) => counts.get(hash) ?? 0
  const tuner = new WindowTuner(maxEntries, { frequency })
  const models = FRACTIONS.map((f) => new EagerSimulation(tuner.capacity, f, frequency))
  for (const [i, hash] of hashes.entries()) {
    counts.set(hash, frequency(hash) + 1)
    if (!tuner.samples(hash)) continue
    tuner.access(hash)
    for (const model of models) model.access(hash)
    if (i % 500 === 499) {
      expect(tuner.periodHits()).toEqual(models.map((m) => m.hits))
      tuner.choose(maxEntries)
      for (const model of models) model.hits = 0
    }
  }
  expect(tuner.periodHits()).toEqual(models.map((m) => m.hits))
}

describe('WindowTuner', () => {
  it('each simulation hits exactly like an eagerly ordered W-TinyLFU of its window (property)', () => {
    // The tuner orders its window and protected lists lazily (a hit goes on a
    // log; a simulation places the logged keys by their last accesses before it
    // next appends to or trims its lists); the model moves every hit at once.
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 60 }),
        fc.array(fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 150 })), {
          maxLength: 3_000,
          size: 'max',
        }),
        (maxEntries, hashes) => runBoth(maxEntries, hashes),
      ),
      { numRuns: 150, endOnFailure: process.env.FC_END_ON_FAILURE === '1' },
    )
  })

  it('places keys right when many are hit between two turns of a simulation (property)', () => {
    // Long runs of hits over keys that fit (more than 32 logged keys per
    // placement: the radix sort; and past the log's 4,096 entries, which
    // places every simulation at once), each followed by a mix of those keys
    // and others, where which key is least recently used decides what stays.
    fc.assert(
      fc.property(
        fc.integer({ min: 100, max: 300 }),
        fc.array(
          fc.tuple(
            fc.array(fc.integer({ min: 0, max: 60 }), {
              minLength: 200,
              maxLength: 5_000,
              size: 'max',
            }),
            fc.array(fc.integer({ min: 0, max: 700 }), {
              minLength: 1,
              maxLength: 600,
              size: 'max',
            }),
          ),
          { minLength: 1, maxLength: 6, size: 'max' },
        ),
        (maxEntries, phases) => runBoth(maxEntries, phases.flat(2)),
      ),
      { numRuns: 60, endOnFailure: process.env.FC_END_ON_FAILURE === '1' },
    )
  })
})
