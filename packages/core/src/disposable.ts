/**
 * Disposal: anything that holds a timer, socket, worker, file or subscription
 * is (or returns) a `Disposable`. Disposal is idempotent.
 */
import { AideError } from './errors.js'

/** Something that releases resources when disposed. `dispose()` may be async. */
export interface Disposable {
  /** Releases the resources. Calling it again does nothing. */
  dispose(): void | Promise<void>
}

/** A `Disposable` that also works with `using` / `await using`. */
export interface DisposableHandle extends Disposable {
  readonly disposed: boolean
  [Symbol.dispose](): void
  [Symbol.asyncDispose](): Promise<void>
}

/**
 * Wraps a teardown function as an idempotent disposable: the function runs at
 * most once, however many times `dispose` is called.
 */
export function toDisposable(teardown: () => void | Promise<void>): DisposableHandle {
  let result: void | Promise<void> | undefined
  let done = false
  const handle: DisposableHandle = {
    get disposed() {
      return done
    },
    dispose() {
      if (done) return result
      done = true
      result = teardown()
      return result
    },
    [Symbol.dispose]() {
      void handle.dispose()
    },
    async [Symbol.asyncDispose]() {
      await handle.dispose()
    },
  }
  return handle
}

/** True when `value` has a callable `dispose`. */
export function isDisposable(value: unknown): value is Disposable {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Disposable).dispose === 'function'
  )
}

/**
 * A group of disposables released together, in reverse order of addition.
 * Every disposer runs even if an earlier one throws; failures are reported
 * together as one `E_DISPOSE` error whose `details.errors` lists them.
 * Adding to a disposed store disposes the item at once.
 */
export class DisposableStore implements Disposable {
  #items: Disposable[] = []
  #disposing: Promise<void> | undefined

  /** True once `dispose` has been called. */
  get isDisposed(): boolean {
    return this.#disposing !== undefined
  }

  /** Number of items held. */
  get size(): number {
    return this.#items.length
  }

  /** Adds a disposable (or a teardown function) and returns it. */
  add<T extends Disposable>(item: T): T
  add(teardown: () => void | Promise<void>): DisposableHandle
  add(item: Disposable | (() => void | Promise<void>)): Disposable {
    const disposable = typeof item === 'function' ? toDisposable(item) : item
    if (this.#disposing) {
      void Promise.resolve()
        .then(() => disposable.dispose())
        .catch(() => undefined)
      return disposable
    }
    this.#items.push(disposable)
    return disposable
  }

  /** Removes an item without disposing it. Returns whether it was held. */
  delete(item: Disposable): boolean {
    const index = this.#items.indexOf(item)
    if (index < 0) return false
    this.#items.splice(index, 1)
    return true
  }

  /** Disposes every item in reverse order of addition, awaiting async disposers. */
  dispose(): Promise<void> {
    if (this.#disposing) return this.#disposing
    const items = this.#items.reverse()
    this.#items = []
    this.#disposing = disposeAll(items)
    return this.#disposing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose()
  }
}

/**
 * Disposes each item in order, continuing past failures; rejects with one
 * `E_DISPOSE` error listing every failure.
 */
export async function disposeAll(items: Iterable<Disposable>): Promise<void> {
  const errors: unknown[] = []
  for (const item of items) {
    try {
      await item.dispose()
    } catch (error) {
      errors.push(error)
    }
  }
  if (errors.length > 0) {
    throw new AideError('E_DISPOSE', `dispose: ${errors.length} disposer(s) failed`, {
      cause: errors.length === 1 ? errors[0] : new AggregateError(errors),
      details: { errors: errors.map((e) => (e instanceof Error ? e.message : String(e))) },
    })
  }
}
