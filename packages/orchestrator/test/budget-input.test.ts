import { type AideError, type Clock, isAideError, ManualClock } from '@aide/core'
import { describe, expect, it } from 'vitest'
import { Budget, TokenBucket } from '../src/index.js'

/** Asserts `fn` throws E_INVALID_INPUT naming `field`. */
function expectInvalid(fn: () => unknown, field: string): void {
  let thrown: unknown
  try {
    fn()
  } catch (error) {
    thrown = error
  }
  expect(isAideError(thrown, 'E_INVALID_INPUT'), String(thrown)).toBe(true)
  expect((thrown as AideError).details.field).toBe(field)
}

describe('Budget input', () => {
  it('charge rejects strings, NaN, Infinity and negatives, keeping what was spent', () => {
    const clock = new ManualClock(0)
    const budget = new Budget(10, 1_000, clock)
    budget.charge(3)
    for (const bad of ['5', Number.NaN, Number.POSITIVE_INFINITY, -1, undefined]) {
      expectInvalid(() => budget.charge(bad as number), 'cost')
    }
    expect(budget.spent).toBe(3)
    expect(budget.remaining).toBe(7)
    budget.charge(0)
    budget.charge(2.5)
    expect(budget.spent).toBe(5.5)
  })

  it('a period below 1 ms is rejected (a 0 ms period never counted spending)', () => {
    const clock = new ManualClock(0)
    expectInvalid(() => new Budget(10, 0, clock), 'periodMs')
    expectInvalid(() => new Budget(10, -1, clock), 'periodMs')
    expectInvalid(() => new Budget(10, Number.NaN, clock), 'periodMs')
    expectInvalid(() => new Budget(10, Number.POSITIVE_INFINITY, clock), 'periodMs')
  })

  it('the limit must be a finite number >= 0', () => {
    const clock = new ManualClock(0)
    expectInvalid(() => new Budget('10' as unknown as number, 1_000, clock), 'limit')
    expectInvalid(() => new Budget(Number.NaN, 1_000, clock), 'limit')
    expectInvalid(() => new Budget(-1, 1_000, clock), 'limit')
    const zero = new Budget(0, 1_000, clock)
    expect(zero.remaining).toBe(0)
  })

  it('uses the system clock when none is given, and rejects a clock without now()', () => {
    const budget = new Budget(10, 60_000)
    budget.charge(4)
    expect(budget.spent).toBe(4)
    expect(budget.remaining).toBe(6)
    expectInvalid(() => new Budget(10, 1_000, null as unknown as Clock), 'clock')
    expectInvalid(() => new Budget(10, 1_000, {} as Clock), 'clock.now')
  })

  it('still rolls over to a new period on the clock', () => {
    const clock = new ManualClock(0)
    const budget = new Budget(10, 1_000, clock)
    budget.charge(9)
    clock.advance(999)
    expect(budget.remaining).toBe(1)
    clock.advance(1)
    expect(budget.spent).toBe(0)
  })
})

describe('TokenBucket input', () => {
  it('requestsPerSecond must be a finite number >= 0', () => {
    const clock = new ManualClock(0)
    expectInvalid(
      () => new TokenBucket({ requestsPerSecond: Number.NaN }, clock),
      'limit.requestsPerSecond',
    )
    expectInvalid(
      () => new TokenBucket({ requestsPerSecond: '5' as unknown as number }, clock),
      'limit.requestsPerSecond',
    )
    expectInvalid(
      () => new TokenBucket({ requestsPerSecond: -1 }, clock),
      'limit.requestsPerSecond',
    )
    expectInvalid(
      () => new TokenBucket({ requestsPerSecond: Number.POSITIVE_INFINITY }, clock),
      'limit.requestsPerSecond',
    )
  })

  it('burst, when given, must be a finite number >= 1; the limit must be an object', () => {
    const clock = new ManualClock(0)
    expectInvalid(() => new TokenBucket({ requestsPerSecond: 1, burst: 0 }, clock), 'limit.burst')
    expectInvalid(
      () => new TokenBucket({ requestsPerSecond: 1, burst: Number.NaN }, clock),
      'limit.burst',
    )
    expectInvalid(
      () => new TokenBucket(undefined as unknown as { requestsPerSecond: number }, clock),
      'limit',
    )
  })

  it('uses the system clock when none is given', () => {
    const bucket = new TokenBucket({ requestsPerSecond: 1, burst: 2 })
    expect(bucket.tryTake()).toBe(true)
    expect(bucket.tryTake()).toBe(true)
    expect(bucket.capacity).toBe(2)
    expectInvalid(
      () => new TokenBucket({ requestsPerSecond: 1 }, null as unknown as Clock),
      'clock',
    )
  })

  it('keeps valid behaviour: 0 requests per second allows one request, refills on the clock', () => {
    const clock = new ManualClock(0)
    const never = new TokenBucket({ requestsPerSecond: 0 }, clock)
    expect(never.tryTake()).toBe(true)
    clock.advance(60_000)
    expect(never.tryTake()).toBe(false)
    const bucket = new TokenBucket({ requestsPerSecond: 2, burst: 1 }, clock)
    expect(bucket.tryTake()).toBe(true)
    expect(bucket.tryTake()).toBe(false)
    clock.advance(500)
    expect(bucket.tryTake()).toBe(true)
  })
})
