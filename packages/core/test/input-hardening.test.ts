import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  type AideError,
  InMemoryMeter,
  isAideError,
  ManualClock,
  renderPrometheus,
  sleep,
  systemClock,
  withDeadline,
} from '../src/index.js'

/** Longest delay a platform timer honours; Node turns anything longer into 1 ms. */
const MAX = 2_147_483_647
const LONG = 3e9

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

async function expectRejectsInvalid(promise: Promise<unknown>, field: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(isAideError(error, 'E_INVALID_INPUT'), String(error)).toBe(true)
  expect((error as AideError).details.field).toBe(field)
}

const noop = () => undefined

describe('systemClock: delays above 2^31-1 ms (fake timers)', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('setTimeout(cb, 3e9) fires once, after the whole delay', () => {
    vi.useFakeTimers()
    let fired = 0
    systemClock.setTimeout(() => fired++, LONG)
    vi.advanceTimersByTime(10)
    expect(fired).toBe(0)
    vi.advanceTimersByTime(MAX)
    expect(fired).toBe(0)
    vi.advanceTimersByTime(LONG - MAX - 10 - 1)
    expect(fired).toBe(0)
    vi.advanceTimersByTime(1)
    expect(fired).toBe(1)
    vi.advanceTimersByTime(10 * LONG)
    expect(fired).toBe(1)
    expect(vi.getTimerCount()).toBe(0)
  })

  it('setInterval(cb, 3e9) fires every 3e9 ms, not every 1 ms, and can be cleared from its callback', () => {
    vi.useFakeTimers()
    let ticks = 0
    const handle = systemClock.setInterval(() => {
      ticks++
      if (ticks === 2) systemClock.clearTimer(handle)
    }, LONG)
    vi.advanceTimersByTime(1_000)
    expect(ticks).toBe(0)
    vi.advanceTimersByTime(LONG - 1_000)
    expect(ticks).toBe(1)
    vi.advanceTimersByTime(LONG - 1)
    expect(ticks).toBe(1)
    vi.advanceTimersByTime(1)
    expect(ticks).toBe(2)
    vi.advanceTimersByTime(10 * LONG)
    expect(ticks).toBe(2)
    expect(vi.getTimerCount()).toBe(0)
  })

  it('clearTimer cancels a long timer at any point of its chain', () => {
    vi.useFakeTimers()
    let fired = 0
    const early = systemClock.setTimeout(() => fired++, LONG)
    const late = systemClock.setTimeout(() => fired++, LONG)
    systemClock.clearTimer(early)
    vi.advanceTimersByTime(MAX + 5) // `late` is now on its second link
    systemClock.clearTimer(late)
    vi.advanceTimersByTime(10 * LONG)
    expect(fired).toBe(0)
    expect(vi.getTimerCount()).toBe(0)
  })

  it('Infinity means never, and the timer can still be cleared', () => {
    vi.useFakeTimers()
    let fired = 0
    const timeout = systemClock.setTimeout(() => fired++, Number.POSITIVE_INFINITY)
    const interval = systemClock.setInterval(() => fired++, Number.POSITIVE_INFINITY)
    vi.advanceTimersByTime(100 * LONG)
    expect(fired).toBe(0)
    systemClock.clearTimer(timeout)
    systemClock.clearTimer(interval)
    expect(vi.getTimerCount()).toBe(0)
  })

  it('sleep(3e9) resolves after 3e9 ms, not 1 ms', async () => {
    vi.useFakeTimers()
    let done = false
    const slept = sleep(LONG).then(() => {
      done = true
    })
    await vi.advanceTimersByTimeAsync(1_000)
    expect(done).toBe(false)
    await vi.advanceTimersByTimeAsync(LONG - 1_001)
    expect(done).toBe(false)
    await vi.advanceTimersByTimeAsync(1)
    await slept
    expect(done).toBe(true)
  })

  it('withDeadline({ timeoutMs: 3e9 }) times out after 3e9 ms, not after ~1 ms', async () => {
    vi.useFakeTimers()
    let outcome: unknown
    const run = withDeadline(() => new Promise<never>(noop), { timeoutMs: LONG }).catch(
      (error: unknown) => {
        outcome = error
      },
    )
    await vi.advanceTimersByTimeAsync(1_000)
    expect(outcome).toBeUndefined()
    await vi.advanceTimersByTimeAsync(LONG - 1_001)
    expect(outcome).toBeUndefined()
    await vi.advanceTimersByTimeAsync(1)
    await run
    expect(isAideError(outcome, 'E_TIMEOUT')).toBe(true)
  })

  it('still fires short and maximal delays as before', () => {
    vi.useFakeTimers()
    const seen: string[] = []
    systemClock.setTimeout(() => seen.push('short'), 5)
    systemClock.setTimeout(() => seen.push('max'), MAX)
    vi.advanceTimersByTime(5)
    expect(seen).toEqual(['short'])
    vi.advanceTimersByTime(MAX - 5)
    expect(seen).toEqual(['short', 'max'])
  })
})

describe('systemClock: delays above 2^31-1 ms (real timers)', () => {
  it('a 3e9 ms timeout and interval have not fired after 50 ms and can be cleared', async () => {
    let fired = 0
    const timeout = systemClock.setTimeout(() => fired++, LONG)
    const interval = systemClock.setInterval(() => fired++, LONG)
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(fired).toBe(0)
    systemClock.clearTimer(timeout)
    systemClock.clearTimer(interval)
  })

  it('sleep(3e9) is still pending after 50 ms and is cancelled by its signal', async () => {
    const controller = new AbortController()
    let settled = false
    const slept = sleep(LONG, { signal: controller.signal }).finally(() => {
      settled = true
    })
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(settled).toBe(false)
    controller.abort()
    await expect(slept).rejects.toMatchObject({ code: 'E_CANCELLED' })
  })

  it('withDeadline({ timeoutMs: 3e9 }) has not timed out after 50 ms', async () => {
    let release: (value: string) => void = noop
    const run = withDeadline(
      () =>
        new Promise<string>((resolve) => {
          release = resolve
        }),
      { timeoutMs: LONG },
    )
    await new Promise((resolve) => setTimeout(resolve, 50))
    release('ok')
    await expect(run).resolves.toBe('ok')
  })

  it('a long timer keeps the process alive only with keepAlive; otherwise the process exits', () => {
    const index = fileURLToPath(new URL('../src/index.ts', import.meta.url))
    const run = (script: string) =>
      execFileSync(
        process.execPath,
        [
          '--import',
          'tsx',
          '--input-type=module',
          '-e',
          `import { systemClock } from ${JSON.stringify(index)}; ${script}`,
        ],
        {
          encoding: 'utf8',
          timeout: 20_000,
          cwd: fileURLToPath(new URL('..', import.meta.url)),
        },
      ).trim()
    // keepAlive: the process is still there when an unref'd 200 ms timer fires; the long
    // timer itself never fires (the old code fired it after 1 ms, then exited).
    expect(
      run(
        `systemClock.setTimeout(() => console.log('fired'), ${LONG}, { keepAlive: true });` +
          ` setTimeout(() => { console.log('alive'); process.exit(0) }, 200).unref()`,
      ),
    ).toBe('alive')
    // Default: unref'd, so the process exits on its own with both pending.
    expect(
      run(
        `systemClock.setTimeout(() => console.log('fired'), ${LONG});` +
          ` systemClock.setInterval(() => console.log('tick'), ${LONG}); console.log('done')`,
      ),
    ).toBe('done')
  })
})

describe('systemClock: timer arguments', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('rejects NaN, negative, non-number delays and a zero interval, creating no timer', () => {
    vi.useFakeTimers()
    expectInvalid(() => systemClock.setTimeout(noop, Number.NaN), 'ms')
    expectInvalid(() => systemClock.setTimeout(noop, -1), 'ms')
    expectInvalid(() => systemClock.setTimeout(noop, '10' as unknown as number), 'ms')
    expectInvalid(() => systemClock.setInterval(noop, Number.NaN), 'ms')
    expectInvalid(() => systemClock.setInterval(noop, 0), 'ms')
    expectInvalid(() => systemClock.setTimeout('x' as unknown as () => void, 10), 'callback')
    expect(vi.getTimerCount()).toBe(0)
  })
})

describe('ManualClock: argument validation', () => {
  /** An interval callback that throws instead of spinning forever on the old code. */
  function guardedInterval(clock: ManualClock, ms: number) {
    const state = { ticks: 0 }
    clock.setInterval(() => {
      if (++state.ticks > 1_000) throw new Error('runaway interval')
    }, ms)
    return state
  }

  it('advance(Infinity) / advance(NaN) with an interval throw instead of looping forever', () => {
    const clock = new ManualClock(100)
    const state = guardedInterval(clock, 10)
    expectInvalid(() => clock.advance(Number.POSITIVE_INFINITY), 'ms')
    expectInvalid(() => clock.advance(Number.NaN), 'ms')
    expect(state.ticks).toBe(0)
    expect(clock.now()).toBe(100)
    expect(clock.pendingTimers).toBe(1)
    clock.advance(25)
    expect(state.ticks).toBe(2)
  })

  it('advance with a string or a negative number throws and leaves the time as it was', async () => {
    const clock = new ManualClock(100)
    let fired = 0
    clock.setTimeout(() => fired++, 10)
    expectInvalid(() => clock.advance('10' as unknown as number), 'ms')
    expectInvalid(() => clock.advance(-5), 'ms')
    await expectRejectsInvalid(clock.advanceAsync(-5), 'ms')
    await expectRejectsInvalid(clock.advanceAsync(Number.NaN), 'ms')
    expect(clock.now()).toBe(100)
    expect(typeof clock.now()).toBe('number')
    expect(fired).toBe(0)
    clock.advance(10)
    expect(clock.now()).toBe(110)
    expect(fired).toBe(1)
  })

  it('setInterval(cb, NaN) throws and adds no timer (advance(1) then returns)', () => {
    const clock = new ManualClock()
    expectInvalid(() => guardedInterval(clock, Number.NaN), 'ms')
    expectInvalid(() => clock.setInterval(noop, 0), 'ms')
    expectInvalid(() => clock.setInterval(noop, -1), 'ms')
    expect(clock.pendingTimers).toBe(0)
    clock.advance(1)
    expect(clock.now()).toBe(1)
  })

  it('setTimeout rejects NaN, negative and non-number delays and non-function callbacks', () => {
    const clock = new ManualClock()
    expectInvalid(() => clock.setTimeout(noop, Number.NaN), 'ms')
    expectInvalid(() => clock.setTimeout(noop, -1), 'ms')
    expectInvalid(() => clock.setTimeout(noop, '5' as unknown as number), 'ms')
    expectInvalid(() => clock.setTimeout(undefined as unknown as () => void, 5), 'callback')
    expect(clock.pendingTimers).toBe(0)
  })

  it('set and the constructor take finite numbers', () => {
    expectInvalid(() => new ManualClock('5' as unknown as number), 'start')
    expectInvalid(() => new ManualClock(Number.NaN), 'start')
    const clock = new ManualClock(50)
    expectInvalid(() => clock.set('10' as unknown as number), 'now')
    expectInvalid(() => clock.set(Number.NaN), 'now')
    expect(clock.now()).toBe(50)
    clock.set(20) // backwards is allowed for set
    expect(clock.now()).toBe(20)
  })

  it('a timer set for Infinity never fires, not even from runAll, and time stays finite', () => {
    const clock = new ManualClock(0)
    let fired = 0
    clock.setTimeout(() => fired++, Number.POSITIVE_INFINITY)
    clock.setInterval(() => fired++, Number.POSITIVE_INFINITY)
    clock.advance(1e12)
    expect(clock.runAll()).toBe(0)
    expect(fired).toBe(0)
    expect(clock.now()).toBe(1e12)
    expect(clock.pendingTimers).toBe(2)
  })

  it('clearTimer ignores handles that are not objects', () => {
    const clock = new ManualClock()
    clock.setTimeout(noop, 1)
    clock.clearTimer(null as unknown as object)
    clock.clearTimer(undefined as unknown as object)
    expect(clock.pendingTimers).toBe(1)
  })

  it('keeps valid behaviour: zero delays fire on advance(0), sub-millisecond intervals repeat every 1 ms', () => {
    const clock = new ManualClock()
    let timeouts = 0
    let ticks = 0
    clock.setTimeout(() => timeouts++, 0)
    clock.setInterval(() => ticks++, 0.5)
    clock.advance(0)
    expect(timeouts).toBe(1)
    clock.advance(3)
    expect(ticks).toBe(3)
  })
})

describe('InMemoryMeter: value and label validation', () => {
  it('counter.inc rejects strings, NaN, Infinity and negatives, keeping the value', () => {
    const meter = new InMemoryMeter()
    const counter = meter.counter('c_total', { help: 'c' })
    counter.inc(2)
    for (const bad of ['5', Number.NaN, Number.POSITIVE_INFINITY, -1, null]) {
      expectInvalid(() => counter.inc(bad as number), 'value')
    }
    expect(meter.value('c_total')).toBe(2)
    expect(renderPrometheus(meter)).toContain('\nc_total 2\n')
  })

  it('gauge.set / inc / dec reject non-numbers and non-finite numbers, keeping the value', () => {
    const meter = new InMemoryMeter()
    const gauge = meter.gauge('g', { help: 'g' })
    gauge.set(-3, { pool: 'a' })
    expectInvalid(() => gauge.set('abc' as unknown as number, { pool: 'a' }), 'value')
    expectInvalid(() => gauge.set(Number.NaN, { pool: 'a' }), 'value')
    expectInvalid(() => gauge.set(Number.NEGATIVE_INFINITY, { pool: 'a' }), 'value')
    expectInvalid(() => gauge.inc('1' as unknown as number, { pool: 'a' }), 'value')
    expectInvalid(() => gauge.dec(Number.NaN, { pool: 'a' }), 'value')
    expect(meter.value('g', { pool: 'a' })).toBe(-3)
    gauge.dec(2, { pool: 'a' })
    expect(meter.value('g', { pool: 'a' })).toBe(-5)
  })

  it('histogram.observe rejects strings, NaN and Infinity, keeping sum, count and buckets', () => {
    const meter = new InMemoryMeter()
    const histogram = meter.histogram('h_seconds', { help: 'h', buckets: [1, 5] })
    histogram.observe(2)
    const before = meter.snapshot()
    for (const bad of ['2', Number.NaN, Number.POSITIVE_INFINITY, undefined]) {
      expectInvalid(() => histogram.observe(bad as number), 'value')
    }
    expect(meter.snapshot()).toEqual(before)
    expect(before[0]!.series[0]).toMatchObject({ sum: 2, count: 1 })
  })

  it('a histogram label named le is rejected before any series is created', () => {
    const meter = new InMemoryMeter()
    const histogram = meter.histogram('h_seconds', { help: 'h', buckets: [1] })
    expectInvalid(() => histogram.observe(0.5, { le: '1' }), 'labels.le')
    expect(meter.snapshot()[0]!.series).toEqual([])
    expect(renderPrometheus(meter)).not.toContain('_bucket')
    // On counters and gauges `le` is an ordinary label.
    meter.counter('c_total', { help: 'c' }).inc(1, { le: 'x' })
    expect(meter.value('c_total', { le: 'x' })).toBe(1)
  })

  it('labels that are not an object are rejected', () => {
    const meter = new InMemoryMeter()
    const counter = meter.counter('c_total', { help: 'c' })
    expectInvalid(() => counter.inc(1, 'x' as unknown as Record<string, string>), 'labels')
    expect(meter.snapshot()[0]!.series).toEqual([])
  })
})
