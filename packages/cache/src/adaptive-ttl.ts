/**
 * Adaptive TTL: sets each key's TTL from how often its value actually changes
 * and how often it is read, instead of one fixed TTL for everything.
 */
import { assertFunction, assertNumber, assertObject, invalidInput } from '@aide/core'

/** Options of {@link AdaptiveTtl}. */
export interface AdaptiveTtlOptions {
  /** Shortest TTL given, in ms (also the TTL of a key seen for the first time). */
  minTtl: number
  /** Longest TTL given, in ms. */
  maxTtl: number
  /** TTL as a share of the mean interval between value changes. Default 0.5. */
  factor?: number
  /** Whether two loaded values are the same. Default: `Object.is`, or equal JSON for plain data. */
  equals?: (previous: unknown, next: unknown) => boolean
  /** Most keys whose history is kept (oldest forgotten first). Default 10,000. */
  maxKeys?: number
}

interface History {
  value: unknown
  lastChangeAt: number
  meanUpdateInterval: number | undefined
  ttl: number
  lastAccessAt: number | undefined
  meanAccessInterval: number | undefined
}

/** Plain data describing the policy's state. */
export interface AdaptiveTtlStats {
  /** Keys with recorded history. */
  keys: number
}

function defaultEquals(previous: unknown, next: unknown): boolean {
  if (Object.is(previous, next)) return true
  if (
    typeof previous !== 'object' ||
    typeof next !== 'object' ||
    previous === null ||
    next === null
  )
    return false
  try {
    return JSON.stringify(previous) === JSON.stringify(next)
  } catch {
    return false
  }
}

const SMOOTHING = 0.5

/**
 * The rule, applied each time a key is loaded:
 *
 * 1. First load of a key: TTL = `minTtl`.
 * 2. The loaded value differs from the previous one: the interval since the
 *    last change updates a moving mean (weight 1/2) of update intervals, and
 *    TTL = `factor` × that mean.
 * 3. The value is unchanged: it is more stable than assumed, so TTL doubles.
 * 4. A key read less often than `maxTtl` (mean interval between reads) gets
 *    `minTtl`: a copy would go stale before anyone reads it again.
 *
 * The result is always clamped to [`minTtl`, `maxTtl`].
 */
export class AdaptiveTtl {
  readonly minTtl: number
  readonly maxTtl: number
  readonly factor: number
  readonly #equals: (previous: unknown, next: unknown) => boolean
  readonly #maxKeys: number
  readonly #history = new Map<string, History>()

  constructor(options: AdaptiveTtlOptions) {
    assertObject(options, 'options')
    assertNumber(options.minTtl, 'options.minTtl', { min: 1 })
    assertNumber(options.maxTtl, 'options.maxTtl', { min: 1 })
    if (options.maxTtl < options.minTtl)
      throw invalidInput('options.maxTtl', 'must be >= options.minTtl')
    const factor = options.factor ?? 0.5
    assertNumber(factor, 'options.factor', { min: 0 })
    if (options.equals !== undefined) assertFunction(options.equals, 'options.equals')
    const maxKeys = options.maxKeys ?? 10_000
    assertNumber(maxKeys, 'options.maxKeys', { min: 1, integer: true })
    this.minTtl = options.minTtl
    this.maxTtl = options.maxTtl
    this.factor = factor
    this.#equals = options.equals ?? defaultEquals
    this.#maxKeys = maxKeys
  }

  /** Records a read of `key` at `now`. */
  recordAccess(key: string, now: number): void {
    const history = this.#history.get(key)
    if (!history) return
    if (history.lastAccessAt !== undefined) {
      const interval = Math.max(0, now - history.lastAccessAt)
      history.meanAccessInterval =
        history.meanAccessInterval === undefined
          ? interval
          : SMOOTHING * interval + (1 - SMOOTHING) * history.meanAccessInterval
    }
    history.lastAccessAt = now
  }

  /** Records a load of `key` returning `value` at `now`; returns the TTL to use. */
  ttlFor(key: string, value: unknown, now: number): number {
    const history = this.#history.get(key)
    if (!history) {
      this.#history.set(key, {
        value,
        lastChangeAt: now,
        meanUpdateInterval: undefined,
        ttl: this.minTtl,
        lastAccessAt: undefined,
        meanAccessInterval: undefined,
      })
      if (this.#history.size > this.#maxKeys) {
        const oldest = this.#history.keys().next().value
        if (oldest !== undefined) this.#history.delete(oldest)
      }
      return this.minTtl
    }
    let ttl: number
    if (this.#equals(history.value, value)) {
      ttl = history.ttl * 2
    } else {
      const interval = Math.max(0, now - history.lastChangeAt)
      history.meanUpdateInterval =
        history.meanUpdateInterval === undefined
          ? interval
          : SMOOTHING * interval + (1 - SMOOTHING) * history.meanUpdateInterval
      history.lastChangeAt = now
      history.value = value
      ttl = this.factor * history.meanUpdateInterval
    }
    if (history.meanAccessInterval !== undefined && history.meanAccessInterval > this.maxTtl)
      ttl = this.minTtl
    ttl = Math.min(this.maxTtl, Math.max(this.minTtl, ttl))
    history.ttl = ttl
    return ttl
  }

  /** Forgets a key's history. */
  forget(key: string): void {
    this.#history.delete(key)
  }

  stats(): AdaptiveTtlStats {
    return { keys: this.#history.size }
  }
}
