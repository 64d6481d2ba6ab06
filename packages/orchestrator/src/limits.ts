/**
 * Token buckets and tenant budgets: the limits cockatiel does not provide.
 * Both read time from an injected `Clock` (the system clock by default), so tests drive them exactly.
 */
import { assertFunction, assertNumber, assertObject, type Clock, systemClock } from '@aide/core'
import type { RateLimit } from './types.js'

function checkClock(clock: Clock): void {
  assertObject(clock, 'clock')
  assertFunction(clock.now, 'clock.now')
}

/**
 * A token bucket refilled continuously at `requestsPerSecond`, holding at most `burst` tokens.
 * `requestsPerSecond` is a finite number >= 0 and `burst` one >= 1, else `E_INVALID_INPUT`.
 */
export class TokenBucket {
  readonly capacity: number
  readonly #perMs: number
  readonly #clock: Clock
  #tokens: number
  #last: number

  constructor(limit: RateLimit, clock: Clock = systemClock) {
    assertObject(limit, 'limit')
    assertNumber(limit.requestsPerSecond, 'limit.requestsPerSecond', { min: 0 })
    if (limit.burst !== undefined) assertNumber(limit.burst, 'limit.burst', { min: 1 })
    checkClock(clock)
    this.capacity = limit.burst ?? Math.max(1, limit.requestsPerSecond)
    this.#perMs = limit.requestsPerSecond / 1000
    this.#clock = clock
    this.#tokens = this.capacity
    this.#last = clock.now()
  }

  /** Tokens available now (fractional). */
  get available(): number {
    this.#refill()
    return this.#tokens
  }

  /** Takes one token if there is one. */
  tryTake(): boolean {
    this.#refill()
    if (this.#tokens < 1) return false
    this.#tokens -= 1
    return true
  }

  #refill(): void {
    const now = this.#clock.now()
    const elapsed = now - this.#last
    if (elapsed > 0) {
      this.#tokens = Math.min(this.capacity, this.#tokens + elapsed * this.#perMs)
      this.#last = now
    }
  }
}

/**
 * Spending in fixed periods aligned to multiples of `periodMs` on the clock.
 * `limit` is a finite number >= 0, `periodMs` one >= 1, and charges finite numbers >= 0,
 * else `E_INVALID_INPUT`.
 */
export class Budget {
  readonly limit: number
  readonly periodMs: number
  readonly #clock: Clock
  #periodStart: number
  #spent = 0

  constructor(limit: number, periodMs: number, clock: Clock = systemClock) {
    assertNumber(limit, 'limit', { min: 0 })
    assertNumber(periodMs, 'periodMs', { min: 1 })
    checkClock(clock)
    this.limit = limit
    this.periodMs = periodMs
    this.#clock = clock
    this.#periodStart = this.#currentStart()
  }

  /** Spent in the current period. */
  get spent(): number {
    this.#roll()
    return this.#spent
  }

  /** What is left in the current period. */
  get remaining(): number {
    return Math.max(0, this.limit - this.spent)
  }

  /** Records spending (a finite number >= 0). */
  charge(cost: number): void {
    assertNumber(cost, 'cost', { min: 0 })
    this.#roll()
    this.#spent += cost
  }

  #currentStart(): number {
    return Math.floor(this.#clock.now() / this.periodMs) * this.periodMs
  }

  #roll(): void {
    const start = this.#currentStart()
    if (start !== this.#periodStart) {
      this.#periodStart = start
      this.#spent = 0
    }
  }
}

/** A fixed-size ring of latency samples with percentiles computed on demand. */
export class LatencyWindow {
  readonly #samples: Float64Array
  #count = 0
  #next = 0

  constructor(size = 1024) {
    this.#samples = new Float64Array(size)
  }

  /** Number of samples held. */
  get size(): number {
    return this.#count
  }

  add(value: number): void {
    this.#samples[this.#next] = value
    this.#next = (this.#next + 1) % this.#samples.length
    if (this.#count < this.#samples.length) this.#count++
  }

  /** Percentiles (nearest rank) of the held samples; 0 when empty. */
  percentiles(...ps: number[]): number[] {
    if (this.#count === 0) return ps.map(() => 0)
    const sorted = this.#samples.slice(0, this.#count).sort()
    return ps.map(
      (p) => sorted[Math.min(this.#count - 1, Math.max(0, Math.ceil(p * this.#count) - 1))]!,
    )
  }
}

/** A fixed-size ring of outcomes (true = failure), for the recent error rate. */
export class OutcomeWindow {
  readonly #failed: Uint8Array
  #count = 0
  #next = 0
  #failures = 0

  constructor(size = 100) {
    this.#failed = new Uint8Array(size)
  }

  add(failed: boolean): void {
    if (this.#count === this.#failed.length) this.#failures -= this.#failed[this.#next]!
    else this.#count++
    this.#failed[this.#next] = failed ? 1 : 0
    this.#failures += failed ? 1 : 0
    this.#next = (this.#next + 1) % this.#failed.length
  }

  /** Failed fraction of the recent outcomes (0 when none). */
  get rate(): number {
    return this.#count === 0 ? 0 : this.#failures / this.#count
  }
}
