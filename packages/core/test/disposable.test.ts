import { describe, expect, it, vi } from 'vitest'
import {
  DisposableStore,
  disposeAll,
  isAideError,
  isDisposable,
  toDisposable,
} from '../src/index.js'

describe('toDisposable', () => {
  it('runs the teardown exactly once however often it is disposed', async () => {
    const teardown = vi.fn()
    const handle = toDisposable(teardown)
    expect(handle.disposed).toBe(false)
    handle.dispose()
    handle.dispose()
    handle[Symbol.dispose]()
    await handle[Symbol.asyncDispose]()
    expect(teardown).toHaveBeenCalledTimes(1)
    expect(handle.disposed).toBe(true)
  })

  it('works with `using`', () => {
    const teardown = vi.fn()
    {
      using _handle = toDisposable(teardown)
    }
    expect(teardown).toHaveBeenCalledTimes(1)
  })

  it('returns the same promise to every async caller', async () => {
    let resolve!: () => void
    const handle = toDisposable(() => new Promise<void>((r) => (resolve = r)))
    const first = handle.dispose()
    const second = handle.dispose()
    expect(second).toBe(first)
    resolve()
    await first
  })
})

describe('DisposableStore', () => {
  it('disposes in reverse order of addition and awaits async disposers', async () => {
    const order: string[] = []
    const store = new DisposableStore()
    store.add(() => void order.push('a'))
    store.add(async () => {
      await new Promise((r) => setTimeout(r, 5))
      order.push('b')
    })
    store.add(toDisposable(() => void order.push('c')))
    expect(store.size).toBe(3)
    await store.dispose()
    expect(order).toEqual(['c', 'b', 'a'])
    expect(store.isDisposed).toBe(true)
    await store.dispose()
    expect(order).toEqual(['c', 'b', 'a'])
  })

  it('continues past failing disposers and reports every failure', async () => {
    const store = new DisposableStore()
    const last = vi.fn()
    store.add(last)
    store.add(() => {
      throw new Error('first failure')
    })
    store.add(async () => {
      throw new Error('second failure')
    })
    const error = await store.dispose().catch((e: unknown) => e)
    expect(isAideError(error, 'E_DISPOSE')).toBe(true)
    expect((error as { details: { errors: string[] } }).details.errors).toEqual([
      'second failure',
      'first failure',
    ])
    expect(last).toHaveBeenCalledTimes(1)
  })

  it('disposes items added after disposal at once', async () => {
    const store = new DisposableStore()
    await store.dispose()
    const late = vi.fn()
    store.add(late)
    await new Promise((r) => setTimeout(r, 0))
    expect(late).toHaveBeenCalledTimes(1)
  })

  it('delete removes without disposing', async () => {
    const store = new DisposableStore()
    const teardown = vi.fn()
    const item = store.add(teardown)
    expect(store.delete(item)).toBe(true)
    expect(store.delete(item)).toBe(false)
    await store.dispose()
    expect(teardown).not.toHaveBeenCalled()
  })

  it('isDisposable recognises the shape', async () => {
    expect(isDisposable({ dispose() {} })).toBe(true)
    expect(isDisposable({})).toBe(false)
    expect(isDisposable(null)).toBe(false)
    await expect(disposeAll([])).resolves.toBeUndefined()
  })
})
