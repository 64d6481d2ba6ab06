/**
 * Time as a dependency. Components that schedule take a `Clock`, so tests can
 * drive TTLs, debounces, backoff and probes exactly with a `ManualClock`.
 */

/** An opaque timer handle returned by a `Clock`. */
export type TimerHandle = { readonly __timer: unique symbol } | object

/** Options of {@link Clock.setTimeout}. */
export interface TimerOptions {
  /**
   * Keep the process alive until the timer fires. Default false: background
   * timers (probes, compaction, deadlines) never hold a process open. Set it
   * when a caller is awaiting the timer itself, as `sleep` does.
   */
  keepAlive?: boolean
}

/** A source of time and timers. Timers do not keep the process alive unless asked to. */
export interface Clock {
  /** Milliseconds since the Unix epoch (may be fractional for a manual clock). */
  now(): number
  /** Calls `callback` once after `ms` milliseconds. */
  setTimeout(callback: () => void, ms: number, options?: TimerOptions): TimerHandle
  /** Calls `callback` every `ms` milliseconds until cleared. */
  setInterval(callback: () => void, ms: number): TimerHandle
  /** Cancels a timer from `setTimeout` or `setInterval`. Unknown handles are ignored. */
  clearTimer(handle: TimerHandle): void
}

function unref<T>(timer: T): T {
  ;(timer as { unref?: () => void }).unref?.()
  return timer
}

/** The real clock: `Date.now()` and unref'd platform timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms, options) => {
    const timer = setTimeout(callback, ms)
    return (options?.keepAlive ? timer : unref(timer)) as unknown as TimerHandle
  },
  setInterval: (callback, ms) => unref(setInterval(callback, ms)) as unknown as TimerHandle,
  clearTimer: (handle) => {
    clearTimeout(handle as Parameters<typeof clearTimeout>[0])
    clearInterval(handle as Parameters<typeof clearInterval>[0])
  },
}

interface ManualTimer {
  id: number
  at: number
  every: number | undefined
  callback: () => void
}

/**
 * A clock that only moves when told to. `advance(ms)` fires due timers in time
 * order (ties in creation order), with `now()` set to each timer's due time as
 * it fires. `advanceAsync` also lets promise callbacks run between timers.
 */
export class ManualClock implements Clock {
  #now: number
  #nextId = 1
  #timers = new Map<number, ManualTimer>()

  constructor(start = 0) {
    this.#now = start
  }

  now(): number {
    return this.#now
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    return this.#add(callback, ms, undefined)
  }

  setInterval(callback: () => void, ms: number): TimerHandle {
    return this.#add(callback, ms, Math.max(1, ms))
  }

  clearTimer(handle: TimerHandle): void {
    const id = (handle as { id?: unknown }).id
    if (typeof id === 'number') this.#timers.delete(id)
  }

  /** Number of timers waiting to fire. */
  get pendingTimers(): number {
    return this.#timers.size
  }

  /** Sets the time without firing timers (use `advance` to fire them). */
  set(now: number): void {
    this.#now = now
  }

  /** Moves time forward by `ms`, firing every timer that falls due, synchronously. */
  advance(ms: number): void {
    const target = this.#now + ms
    for (let timer = this.#nextDue(target); timer; timer = this.#nextDue(target)) {
      this.#fire(timer)
    }
    this.#now = target
  }

  /**
   * Like `advance`, but awaits pending promise callbacks before and after each
   * timer, so async code chained on timers makes progress as it would in real time.
   */
  async advanceAsync(ms: number): Promise<void> {
    const target = this.#now + ms
    await flushMicrotasks()
    for (let timer = this.#nextDue(target); timer; timer = this.#nextDue(target)) {
      this.#fire(timer)
      await flushMicrotasks()
    }
    this.#now = target
    await flushMicrotasks()
  }

  /** Fires timers until none is left (intervals excluded), returning how many fired. */
  runAll(limit = 10_000): number {
    let fired = 0
    for (;;) {
      let next: ManualTimer | undefined
      for (const timer of this.#timers.values()) {
        if (timer.every !== undefined) continue
        if (!next || timer.at < next.at || (timer.at === next.at && timer.id < next.id))
          next = timer
      }
      if (!next) return fired
      if (++fired > limit) throw new Error(`ManualClock.runAll: more than ${limit} timers fired`)
      this.#fire(next)
    }
  }

  #add(callback: () => void, ms: number, every: number | undefined): TimerHandle {
    const id = this.#nextId++
    this.#timers.set(id, { id, at: this.#now + Math.max(0, ms), every, callback })
    return { id } as unknown as TimerHandle
  }

  #nextDue(target: number): ManualTimer | undefined {
    let next: ManualTimer | undefined
    for (const timer of this.#timers.values()) {
      if (timer.at > target) continue
      if (!next || timer.at < next.at || (timer.at === next.at && timer.id < next.id)) next = timer
    }
    return next
  }

  #fire(timer: ManualTimer): void {
    this.#now = Math.max(this.#now, timer.at)
    if (timer.every === undefined) this.#timers.delete(timer.id)
    else timer.at += timer.every
    timer.callback()
  }
}

async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve()
  await new Promise<void>((resolve) => setImmediate(resolve))
}
