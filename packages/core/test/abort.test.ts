import { describe, expect, it, vi } from 'vitest'
import {
  AideError,
  abortable,
  anySignal,
  isAideError,
  ManualClock,
  sleep,
  throwIfAborted,
  validateDeadlineOptions,
  withDeadline,
} from '../src/index.js'

describe('withDeadline', () => {
  it('resolves with the task result and hands the task a live signal', async () => {
    let seen: AbortSignal | undefined
    const value = await withDeadline(
      async (signal) => {
        seen = signal
        return 42
      },
      { timeoutMs: 1000 },
    )
    expect(value).toBe(42)
    expect(seen?.aborted).toBe(false)
  })

  it('rejects with E_TIMEOUT and aborts the task when the deadline passes', async () => {
    const clock = new ManualClock()
    let taskSignal: AbortSignal | undefined
    const pending = withDeadline(
      (signal) => {
        taskSignal = signal
        return new Promise<never>(() => undefined)
      },
      { timeoutMs: 50, clock, label: 'cache: loader' },
    )
    clock.advance(49)
    expect(taskSignal?.aborted).toBe(false)
    clock.advance(1)
    const error = await pending.catch((e: unknown) => e)
    expect(isAideError(error, 'E_TIMEOUT')).toBe(true)
    expect((error as AideError).message).toBe('cache: loader timed out after 50 ms')
    expect(taskSignal?.aborted).toBe(true)
    expect(isAideError(taskSignal?.reason, 'E_TIMEOUT')).toBe(true)
    expect(clock.pendingTimers).toBe(0)
  })

  it('rejects with E_CANCELLED when the caller aborts, and aborts the task', async () => {
    const controller = new AbortController()
    let taskSignal: AbortSignal | undefined
    const pending = withDeadline(
      (signal) => {
        taskSignal = signal
        return new Promise<never>(() => undefined)
      },
      { signal: controller.signal },
    )
    controller.abort(new Error('user left'))
    const error = await pending.catch((e: unknown) => e)
    expect(isAideError(error, 'E_CANCELLED')).toBe(true)
    expect((error as AideError).cause).toBeInstanceOf(Error)
    expect(taskSignal?.aborted).toBe(true)
  })

  it('rejects at once for an already aborted signal without running the task', async () => {
    const task = vi.fn()
    await expect(withDeadline(task, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'E_CANCELLED',
    })
    expect(task).not.toHaveBeenCalled()
  })

  it('keeps an AideError abort reason (a parent deadline stays a timeout)', async () => {
    const controller = new AbortController()
    const pending = withDeadline(() => new Promise<never>(() => undefined), {
      signal: controller.signal,
    })
    controller.abort(new AideError('E_TIMEOUT', 'parent deadline'))
    await expect(pending).rejects.toMatchObject({ code: 'E_TIMEOUT', message: 'parent deadline' })
  })

  it('passes task errors through unchanged and removes its abort listener', async () => {
    const controller = new AbortController()
    const add = vi.spyOn(controller.signal, 'addEventListener')
    const remove = vi.spyOn(controller.signal, 'removeEventListener')
    const boom = new Error('boom')
    await expect(
      withDeadline(
        async () => {
          throw boom
        },
        { signal: controller.signal, timeoutMs: 1000 },
      ),
    ).rejects.toBe(boom)
    expect(add).toHaveBeenCalledTimes(1)
    expect(remove).toHaveBeenCalledTimes(1)
  })

  it('rejects synchronous throws from the task', async () => {
    await expect(
      withDeadline(() => {
        throw new RangeError('sync')
      }),
    ).rejects.toBeInstanceOf(RangeError)
  })

  it('validates its options with E_INVALID_INPUT naming the field', () => {
    expect(() => validateDeadlineOptions({ timeoutMs: -1 })).toThrow(
      /options.timeoutMs must be >= 0/,
    )
    expect(() => validateDeadlineOptions({ signal: {} as AbortSignal })).toThrow(
      /options.signal must be an AbortSignal/,
    )
    expect(() => withDeadline(async () => 1, { timeoutMs: Number.NaN })).toThrow(
      expect.objectContaining({ code: 'E_INVALID_INPUT' }),
    )
  })
})

describe('abortable, sleep, throwIfAborted, anySignal', () => {
  it('abortable races a promise against a deadline', async () => {
    const clock = new ManualClock()
    const pending = abortable(new Promise<never>(() => undefined), { timeoutMs: 10, clock })
    clock.advance(10)
    await expect(pending).rejects.toMatchObject({ code: 'E_TIMEOUT' })
  })

  it('sleep resolves on the clock and rejects on abort', async () => {
    const clock = new ManualClock()
    const done = vi.fn()
    const pending = sleep(100, { clock }).then(done)
    clock.advance(99)
    await Promise.resolve()
    expect(done).not.toHaveBeenCalled()
    clock.advance(1)
    await pending
    expect(done).toHaveBeenCalled()

    const controller = new AbortController()
    const cancelled = sleep(100, { clock, signal: controller.signal })
    controller.abort()
    await expect(cancelled).rejects.toMatchObject({ code: 'E_CANCELLED' })
    expect(clock.pendingTimers).toBe(0)
    expect(() => sleep(-5)).toThrow(/ms must be >= 0/)
  })

  it('throwIfAborted and anySignal', () => {
    expect(() => throwIfAborted(undefined)).not.toThrow()
    expect(() => throwIfAborted(AbortSignal.abort(), 'plugins: call')).toThrow(
      'plugins: call was cancelled',
    )
    const a = new AbortController()
    const b = new AbortController()
    const both = anySignal(a.signal, undefined, b.signal)
    expect(both.aborted).toBe(false)
    b.abort('why')
    expect(both.aborted).toBe(true)
    expect(both.reason).toBe('why')
    expect(anySignal(a.signal)).toBe(a.signal)
  })
})
