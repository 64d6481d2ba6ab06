import { isAideError, ManualClock } from '@aide/core'
import { describe, expect, it } from 'vitest'
import { isSuperseded, LatestRequestScheduler } from '../src/index.ts'

describe('LatestRequestScheduler', () => {
  it('debounces by its clock and lets a newer request supersede the older', async () => {
    const clock = new ManualClock()
    const scheduler = new LatestRequestScheduler({ clock })
    const started: string[] = []
    const first = scheduler.run('inline:a', async () => started.push('first'), { debounceMs: 50 })
    await clock.advanceAsync(20)
    const second = scheduler.run('inline:a', async () => started.push('second'), { debounceMs: 50 })
    const firstError = await first.catch((error: unknown) => error)
    expect(isSuperseded(firstError)).toBe(true)
    await clock.advanceAsync(49)
    expect(started).toEqual([])
    await clock.advanceAsync(1)
    await second
    expect(started).toEqual(['second'])
    expect(scheduler.stats()).toMatchObject({
      scheduled: 2,
      superseded: 1,
      completed: 1,
      active: 0,
    })
  })

  it('aborts the running task signal when superseded, and keeps other keys independent', async () => {
    const scheduler = new LatestRequestScheduler()
    let seen: AbortSignal | undefined
    const first = scheduler.run('completion:a', (signal) => {
      seen = signal
      return new Promise<never>(() => undefined)
    })
    const other = scheduler.run('completion:b', async () => 'b')
    const second = scheduler.run('completion:a', async () => 'a2')
    await expect(first).rejects.toMatchObject({ code: 'E_CANCELLED' })
    expect(seen?.aborted).toBe(true)
    await expect(second).resolves.toBe('a2')
    await expect(other).resolves.toBe('b')
  })

  it('rejects with E_CANCELLED on the caller signal and E_TIMEOUT on the deadline', async () => {
    const clock = new ManualClock()
    const scheduler = new LatestRequestScheduler({ clock })
    const controller = new AbortController()
    const cancelled = scheduler.run('x', () => new Promise<never>(() => undefined), {
      signal: controller.signal,
    })
    controller.abort()
    const cancelError = await cancelled.catch((error: unknown) => error)
    expect(isAideError(cancelError, 'E_CANCELLED')).toBe(true)
    expect(isSuperseded(cancelError)).toBe(false)
    const timed = scheduler
      .run('y', () => new Promise<never>(() => undefined), { timeoutMs: 100 })
      .catch((error: unknown) => error)
    await clock.advanceAsync(100)
    expect(isAideError(await timed, 'E_TIMEOUT')).toBe(true)
    expect(scheduler.stats()).toMatchObject({ cancelled: 1, timedOut: 1 })
  })

  it('cancels everything on dispose, idempotently, and validates input', async () => {
    const scheduler = new LatestRequestScheduler()
    const pending = scheduler.run('x', () => new Promise<never>(() => undefined))
    scheduler.dispose()
    scheduler.dispose()
    await expect(pending).rejects.toMatchObject({ code: 'E_CANCELLED' })
    await expect(scheduler.run('x', async () => 1)).rejects.toMatchObject({ code: 'E_DISPOSED' })
    const fresh = new LatestRequestScheduler()
    await expect(fresh.run('', async () => 1)).rejects.toMatchObject({ code: 'E_INVALID_INPUT' })
    await expect(fresh.run('x', async () => 1, { debounceMs: -1 })).rejects.toThrow(
      /options.debounceMs/,
    )
  })
})
