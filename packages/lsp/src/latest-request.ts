/**
 * "Latest wins" scheduling: each key (a document, a request kind) has at most
 * one live request. A newer request cancels the older one, waits out a
 * debounce, then runs with a signal that aborts on supersession, on the
 * caller's signal and on its deadline.
 */
import {
  AideError,
  assertFunction,
  assertNumber,
  assertString,
  type Clock,
  type DeadlineOptions,
  type Disposable,
  sleep,
  systemClock,
  validateDeadlineOptions,
  withDeadline,
} from '@aide/core'

/** Options of one {@link LatestRequestScheduler.run} call. */
export interface ScheduleOptions extends DeadlineOptions {
  /** Wait this long first; a newer request for the same key during the wait cancels this one. Default 0. */
  debounceMs?: number
}

/** Plain figures from {@link LatestRequestScheduler.stats}. */
export interface LatestRequestStats {
  /** Requests accepted. */
  scheduled: number
  /** Requests cancelled because a newer one for the same key arrived. */
  superseded: number
  /** Requests cancelled by their caller or by dispose. */
  cancelled: number
  /** Requests that passed their deadline. */
  timedOut: number
  /** Requests whose task resolved. */
  completed: number
  /** Requests whose task threw. */
  failed: number
  /** Requests live now. */
  active: number
}

/** Reason attached to a request cancelled by a newer one. */
export function supersededError(key: string): AideError {
  return new AideError('E_CANCELLED', `lsp: request for ${key} was superseded by a newer one`, {
    details: { key, reason: 'superseded' },
  })
}

/** True when `error` is the cancellation of a superseded request. */
export function isSuperseded(error: unknown): boolean {
  return (
    AideError.isInstance(error) &&
    error.code === 'E_CANCELLED' &&
    error.details.reason === 'superseded'
  )
}

/** See the module comment. */
export class LatestRequestScheduler implements Disposable {
  readonly #live = new Map<string, AbortController>()
  readonly #clock: Clock
  readonly #all = new Set<AbortController>()
  #disposed = false
  #stats = { scheduled: 0, superseded: 0, cancelled: 0, timedOut: 0, completed: 0, failed: 0 }

  constructor(options: { clock?: Clock } = {}) {
    this.#clock = options.clock ?? systemClock
  }

  /**
   * Runs `task` for `key` after the debounce, unless a newer request for the
   * same key arrives first. Rejects with `E_CANCELLED` (superseded — see
   * {@link isSuperseded} — or cancelled by `signal`) or `E_TIMEOUT`.
   */
  async run<T>(
    key: string,
    task: (signal: AbortSignal) => Promise<T>,
    options: ScheduleOptions = {},
  ): Promise<T> {
    assertString(key, 'key')
    assertFunction(task, 'task')
    validateDeadlineOptions(options)
    const debounceMs = options.debounceMs ?? 0
    assertNumber(debounceMs, 'options.debounceMs', { min: 0 })
    if (this.#disposed) throw new AideError('E_DISPOSED', 'lsp: the request scheduler is disposed')
    this.#live.get(key)?.abort(supersededError(key))
    const controller = new AbortController()
    this.#live.set(key, controller)
    this.#all.add(controller)
    this.#stats.scheduled++
    const signals = [controller.signal, ...(options.signal ? [options.signal] : [])]
    const signal = signals.length === 1 ? controller.signal : AbortSignal.any(signals)
    try {
      const result = await withDeadline(
        async (inner) => {
          if (debounceMs > 0) await sleep(debounceMs, { signal: inner, clock: this.#clock })
          return task(inner)
        },
        {
          signal,
          ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
          clock: this.#clock,
          label: `lsp: ${key}`,
        },
      )
      this.#stats.completed++
      return result
    } catch (error) {
      if (isSuperseded(error)) this.#stats.superseded++
      else if (AideError.isInstance(error) && error.code === 'E_CANCELLED') this.#stats.cancelled++
      else if (AideError.isInstance(error) && error.code === 'E_TIMEOUT') this.#stats.timedOut++
      else this.#stats.failed++
      throw error
    } finally {
      if (this.#live.get(key) === controller) this.#live.delete(key)
      this.#all.delete(controller)
    }
  }

  /** Cancels the live request for `key`, if any. */
  cancel(key: string): void {
    this.#live
      .get(key)
      ?.abort(
        new AideError('E_CANCELLED', `lsp: request for ${key} was cancelled`, { details: { key } }),
      )
  }

  /** Plain figures. */
  stats(): LatestRequestStats {
    return { ...this.#stats, active: this.#all.size }
  }

  /** Cancels every live request. Idempotent. */
  dispose(): void {
    if (this.#disposed) return
    this.#disposed = true
    for (const controller of this.#all)
      controller.abort(new AideError('E_CANCELLED', 'lsp: server is shutting down'))
    this.#all.clear()
    this.#live.clear()
  }
}
