/**
 * Cancellation and deadlines. Every operation that can wait accepts
 * `{ signal, timeoutMs }`; aborts reject with `E_CANCELLED`, deadlines with
 * `E_TIMEOUT`, and the work itself is told to stop through an AbortSignal.
 */
import { type Clock, systemClock } from './clock.js'
import { AideError } from './errors.js'
import { assertNumber, assertOptionalSignal } from './validate.js'

/** Options of every operation that can wait. */
export interface DeadlineOptions {
  /** Abort the operation when this signal aborts (rejects with `E_CANCELLED`). */
  signal?: AbortSignal
  /** Give up after this many milliseconds (rejects with `E_TIMEOUT`). */
  timeoutMs?: number
}

/** Options of {@link withDeadline}. */
export interface WithDeadlineOptions extends DeadlineOptions {
  /** Names the operation in error messages, e.g. `cache: loader for "user:1"`. */
  label?: string
  /** Clock used for the timeout (defaults to the system clock). */
  clock?: Clock
}

/** The error for an aborted operation. Keeps an `AideError` reason as it is. */
export function cancelledError(reason?: unknown, label = 'operation'): AideError {
  if (AideError.isInstance(reason)) return reason
  return new AideError('E_CANCELLED', `${label} was cancelled`, {
    cause: reason,
    details: { label },
  })
}

/** The error for an operation that passed its deadline. */
export function timeoutError(timeoutMs: number, label = 'operation'): AideError {
  return new AideError('E_TIMEOUT', `${label} timed out after ${timeoutMs} ms`, {
    details: { label, timeoutMs },
  })
}

/** Throws `E_CANCELLED` (or the signal's own `AideError` reason) if `signal` is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined, label?: string): void {
  if (signal?.aborted) throw cancelledError(signal.reason, label)
}

/** Validates `{ signal, timeoutMs }` at a public boundary. */
export function validateDeadlineOptions(
  options: DeadlineOptions | undefined,
  field = 'options',
): void {
  if (options === undefined) return
  assertOptionalSignal(options.signal, `${field}.signal`)
  if (options.timeoutMs !== undefined) {
    assertNumber(options.timeoutMs, `${field}.timeoutMs`, { min: 0, allowInfinity: true })
  }
}

/**
 * Runs `task` with a signal that aborts when the caller's signal aborts or the
 * deadline passes. Rejects with `E_CANCELLED` / `E_TIMEOUT` as soon as that
 * happens, even if the task ignores its signal; the task's own later result is
 * then discarded. Listeners and timers are always cleaned up.
 */
export function withDeadline<T>(
  task: (signal: AbortSignal) => T | PromiseLike<T>,
  options: WithDeadlineOptions = {},
): Promise<T> {
  validateDeadlineOptions(options)
  const { signal: outer, timeoutMs, label = 'operation', clock = systemClock } = options
  if (outer?.aborted) return Promise.reject(cancelledError(outer.reason, label))
  if (!outer && (timeoutMs === undefined || timeoutMs === Number.POSITIVE_INFINITY)) {
    // Nothing can cancel it: still hand the task a signal, but skip the bookkeeping.
    try {
      return Promise.resolve(task(new AbortController().signal))
    } catch (error) {
      return Promise.reject(error)
    }
  }

  const controller = new AbortController()
  return new Promise<T>((resolve, reject) => {
    let settled = false
    let timer: ReturnType<Clock['setTimeout']> | undefined
    const finish = (error: AideError | undefined, value?: T) => {
      if (settled) return
      settled = true
      if (timer !== undefined) clock.clearTimer(timer)
      outer?.removeEventListener('abort', onAbort)
      if (error) {
        controller.abort(error)
        reject(error)
      } else {
        resolve(value as T)
      }
    }
    const onAbort = () => finish(cancelledError(outer?.reason, label))
    outer?.addEventListener('abort', onAbort, { once: true })
    if (timeoutMs !== undefined && timeoutMs !== Number.POSITIVE_INFINITY) {
      timer = clock.setTimeout(() => finish(timeoutError(timeoutMs, label)), timeoutMs)
    }
    let pending: T | PromiseLike<T>
    try {
      pending = task(controller.signal)
    } catch (error) {
      settled = true
      if (timer !== undefined) clock.clearTimer(timer)
      outer?.removeEventListener('abort', onAbort)
      reject(error)
      return
    }
    Promise.resolve(pending).then(
      (value) => finish(undefined, value),
      (error: unknown) => {
        if (settled) return
        settled = true
        if (timer !== undefined) clock.clearTimer(timer)
        outer?.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}

/**
 * Races a promise that cannot itself be cancelled against a signal and a
 * deadline. The underlying work is not stopped; prefer {@link withDeadline}
 * when the work accepts a signal.
 */
export function abortable<T>(
  promise: PromiseLike<T>,
  options: WithDeadlineOptions = {},
): Promise<T> {
  return withDeadline(() => promise, options)
}

/**
 * Resolves after `ms` milliseconds; rejects with `E_CANCELLED` if `signal` aborts first.
 * Unlike background timers, it keeps the process alive while awaited.
 */
export function sleep(
  ms: number,
  options: { signal?: AbortSignal; clock?: Clock } = {},
): Promise<void> {
  assertNumber(ms, 'ms', { min: 0 })
  const { signal, clock = systemClock } = options
  if (signal?.aborted) return Promise.reject(cancelledError(signal.reason, 'sleep'))
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clock.clearTimer(timer)
      reject(cancelledError(signal?.reason, 'sleep'))
    }
    // The caller is awaiting this timer: it keeps the process alive, like timers/promises.
    const timer = clock.setTimeout(
      () => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      },
      ms,
      { keepAlive: true },
    )
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * A signal that aborts when any of `signals` aborts, with that signal's
 * reason. Undefined entries are ignored.
 */
export function anySignal(...signals: Array<AbortSignal | undefined>): AbortSignal {
  const present = signals.filter((s): s is AbortSignal => s !== undefined)
  if (present.length === 1) return present[0]!
  return AbortSignal.any(present)
}
