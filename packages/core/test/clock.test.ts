import { describe, expect, it } from 'vitest'
import { ManualClock, systemClock } from '../src/index.js'

describe('ManualClock', () => {
  it('fires due timers in time order with now() at each due time', () => {
    const clock = new ManualClock(1000)
    const seen: Array<[string, number]> = []
    clock.setTimeout(() => seen.push(['b', clock.now()]), 20)
    clock.setTimeout(() => seen.push(['a', clock.now()]), 10)
    clock.setTimeout(() => seen.push(['c', clock.now()]), 20)
    clock.advance(15)
    expect(seen).toEqual([['a', 1010]])
    expect(clock.now()).toBe(1015)
    clock.advance(5)
    expect(seen).toEqual([
      ['a', 1010],
      ['b', 1020],
      ['c', 1020],
    ])
  })

  it('runs intervals until cleared and fires timers scheduled by timers', () => {
    const clock = new ManualClock()
    let ticks = 0
    const interval = clock.setInterval(() => ticks++, 10)
    clock.advance(35)
    expect(ticks).toBe(3)
    clock.clearTimer(interval)
    clock.advance(100)
    expect(ticks).toBe(3)

    const order: number[] = []
    clock.setTimeout(() => {
      order.push(clock.now())
      clock.setTimeout(() => order.push(clock.now()), 5)
    }, 5)
    clock.advance(10)
    expect(order).toEqual([140, 145])
  })

  it('clearTimer cancels a pending timeout; runAll drains one-shot timers', () => {
    const clock = new ManualClock()
    let fired = 0
    const handle = clock.setTimeout(() => fired++, 10)
    clock.clearTimer(handle)
    clock.advance(20)
    expect(fired).toBe(0)
    clock.setTimeout(() => fired++, 1000)
    clock.setTimeout(() => fired++, 5)
    expect(clock.runAll()).toBe(2)
    expect(fired).toBe(2)
    expect(clock.now()).toBe(1020)
  })

  it('advanceAsync lets promise chains run between timers', async () => {
    const clock = new ManualClock()
    const log: string[] = []
    clock.setTimeout(() => {
      void Promise.resolve().then(() => {
        log.push('after first')
        clock.setTimeout(() => log.push('second'), 1)
      })
    }, 1)
    await clock.advanceAsync(5)
    expect(log).toEqual(['after first', 'second'])
  })
})

describe('systemClock', () => {
  it('schedules unref’d timers that can be cleared', async () => {
    const fired = await new Promise<boolean>((resolve) => {
      const handle = systemClock.setTimeout(() => resolve(true), 1) as { hasRef?: () => boolean }
      expect(handle.hasRef?.()).toBe(false)
    })
    expect(fired).toBe(true)
    const kept = systemClock.setTimeout(() => undefined, 1000, { keepAlive: true }) as {
      hasRef?: () => boolean
    }
    expect(kept.hasRef?.()).toBe(true)
    systemClock.clearTimer(kept)
    let count = 0
    const interval = systemClock.setInterval(() => count++, 1)
    systemClock.clearTimer(interval)
    await new Promise((r) => setTimeout(r, 10))
    expect(count).toBe(0)
    expect(Math.abs(systemClock.now() - Date.now())).toBeLessThan(1000)
  })
})

describe('seededRandom', () => {
  it('repeats the same sequence in [0, 1) for a seed and differs across seeds', async () => {
    const { seededRandom } = await import('../src/index.js')
    const a = seededRandom(42)
    const b = seededRandom(42)
    const c = seededRandom(43)
    const first = Array.from({ length: 1000 }, a)
    expect(Array.from({ length: 1000 }, b)).toEqual(first)
    expect(Array.from({ length: 1000 }, c)).not.toEqual(first)
    expect(first.every((x) => x >= 0 && x < 1)).toBe(true)
    const mean = first.reduce((s, x) => s + x, 0) / first.length
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05)
    expect(() => seededRandom(1.5)).toThrow(expect.objectContaining({ code: 'E_INVALID_INPUT' }))
  })
})
