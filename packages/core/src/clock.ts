/**
 * Time as a dependency. Components that schedule take a `Clock`, so tests can
 * drive TTLs, debounces, backoff and probes exactly with a `ManualClock`.
 */
import { invalidInput } from './errors.js'
import { assertFunction, assertNumber } from './validate.js'

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
  /**
   * Calls `callback` once after `ms` milliseconds. `ms` is a number >= 0 of any size:
   * `Infinity` means never (the handle can still be cleared).
   */
  setTimeout(callback: () => void, ms: number, options?: TimerOptions): TimerHandle
  /** Calls `callback` every `ms` (> 0; `Infinity` means never) milliseconds until cleared. */
  setInterval(callback: () => void, ms: number): TimerHandle
  /** Cancels a timer from `setTimeout` or `setInterval`. Unknown handles are ignored. */
  clearTimer(handle: TimerHandle): void
}

/**
 * The longest delay platform timers honour (2^31-1 ms, about 24.8 days): Node and
 * browsers turn a longer one into 1 ms.
 */
const MAX_PLATFORM_DELAY = 2_147_483_647

/** Checks a timer's callback and delay: E_INVALID_INPUT naming the argument. */
function checkTimer(callback: unknown, ms: unknown, interval: boolean): void {
  assertFunction(callback, 'callback')
  // Fast path first: this runs for every timer.
  if (typeof ms === 'number' && (interval ? ms > 0 : ms >= 0)) return
  assertNumber(ms, 'ms', { min: 0, allowInfinity: true })
  throw invalidInput('ms', `of an interval must be > 0, got ${ms}`)
}

function unref<T>(timer: T): T {
  ;(timer as { unref?: () => void }).unref?.()
  return timer
}

/**
 * A timer longer than the platform allows: a chain of platform timers of at most
 * {@link MAX_PLATFORM_DELAY} each, calling back once the whole delay has passed
 * (then starting over, for an interval). `Infinity` re-arms forever, so it never fires.
 */
class ChainedTimer {
  #timer: ReturnType<typeof setTimeout> | undefined
  #remaining: number
  readonly #callback: () => void
  readonly #ms: number
  readonly #repeat: boolean
  readonly #keepAlive: boolean

  constructor(callback: () => void, ms: number, repeat: boolean, keepAlive: boolean) {
    this.#callback = callback
    this.#ms = ms
    this.#remaining = ms
    this.#repeat = repeat
    this.#keepAlive = keepAlive
    this.#arm()
  }

  clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #arm(): void {
    const step = Math.min(this.#remaining, MAX_PLATFORM_DELAY)
    this.#remaining -= step
    const timer = setTimeout(() => this.#tick(), step)
    this.#timer = this.#keepAlive ? timer : unref(timer)
  }

  #tick(): void {
    this.#timer = undefined
    if (this.#remaining > 0) {
      this.#arm()
      return
    }
    if (this.#repeat) {
      // Armed before the callback runs, so the callback can clear it.
      this.#remaining = this.#ms
      this.#arm()
    }
    this.#callback()
  }
}

/**
 * The real clock: `Date.now()` and unref'd platform timers. Delays longer than
 * platform timers allow (2^31-1 ms) are honoured by chaining timers; `Infinity`
 * means never.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms, options) => {
    checkTimer(callback, ms, false)
    const keepAlive = options?.keepAlive === true
    if (ms > MAX_PLATFORM_DELAY) return new ChainedTimer(callback, ms, false, keepAlive)
    const timer = setTimeout(callback, ms)
    return (keepAlive ? timer : unref(timer)) as unknown as TimerHandle
  },
  setInterval: (callback, ms) => {
    checkTimer(callback, ms, true)
    if (ms > MAX_PLATFORM_DELAY) return new ChainedTimer(callback, ms, true, false)
    return unref(setInterval(callback, ms)) as unknown as TimerHandle
  },
  clearTimer: (handle) => {
    if (handle instanceof ChainedTimer) {
      handle.clear()
      return
    }
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
 * Time only moves forward by finite amounts, so a timer set for `Infinity` never fires.
 */
export class ManualClock implements Clock {
  #now: number
  #nextId = 1
  #timers = new Map<number, ManualTimer>()

  constructor(start = 0) {
    assertNumber(start, 'start')
    this.#now = start
  }

  now(): number {
    return this.#now
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    checkTimer(callback, ms, false)
    return this.#add(callback, ms, undefined)
  }

  /** Like the platform's, an interval shorter than 1 ms repeats every 1 ms. */
  setInterval(callback: () => void, ms: number): TimerHandle {
    checkTimer(callback, ms, true)
    return this.#add(callback, ms, Math.max(1, ms))
  }

  clearTimer(handle: TimerHandle): void {
    if (typeof handle !== 'object' || handle === null) return
    const id = (handle as { id?: unknown }).id
    if (typeof id === 'number') this.#timers.delete(id)
  }

  /** Number of timers waiting to fire. */
  get pendingTimers(): number {
    return this.#timers.size
  }

  /** Sets the time (a finite number, backwards too) without firing timers (use `advance` to fire them). */
  set(now: number): void {
    assertNumber(now, 'now')
    this.#now = now
  }

  /**
   * Moves time forward by `ms` (a finite number >= 0), firing every timer that
   * falls due, synchronously.
   */
  advance(ms: number): void {
    assertNumber(ms, 'ms', { min: 0 })
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
    assertNumber(ms, 'ms', { min: 0 })
    const target = this.#now + ms
    await flushMicrotasks()
    for (let timer = this.#nextDue(target); timer; timer = this.#nextDue(target)) {
      this.#fire(timer)
      await flushMicrotasks()
    }
    this.#now = target
    await flushMicrotasks()
  }

  /**
   * Fires timers until none is left (intervals and timers set for `Infinity`
   * excluded), returning how many fired.
   */
  runAll(limit = 10_000): number {
    let fired = 0
    for (;;) {
      let next: ManualTimer | undefined
      for (const timer of this.#timers.values()) {
        if (timer.every !== undefined || timer.at === Number.POSITIVE_INFINITY) continue
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
    this.#timers.set(id, { id, at: this.#now + ms, every, callback })
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
