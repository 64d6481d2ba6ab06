/**
 * `ObjectPool<T>`: reuse of objects that are costly to build (parsers,
 * scratch arrays, encoders), with the same release rules as `BufferPool`.
 */
import {
  AideError,
  assertFunction,
  assertLogger,
  assertNumber,
  assertObject,
  type EventSink,
  guardEventSink,
  invalidInput,
  type Logger,
  noopEventSink,
  noopLogger,
} from '@aide/core'
import { guardLogger } from './guard.js'

/** Events an {@link ObjectPool} reports through its `events` sink. */
export interface ObjectPoolEvents {
  /** An object was garbage-collected while still borrowed (leak detection on). */
  'object-leak': {
    /** Pool name. */
    pool: string
    /** Stack trace of the `acquire` call (debug mode only). */
    acquiredAt: string | undefined
  }
}

/** Options of {@link ObjectPool}. */
export interface ObjectPoolOptions<T extends object> {
  /** Builds a new object when no free one is available. */
  create: () => T
  /**
   * Makes a returned object ready for its next borrower. If it throws, the
   * object is discarded and `release` rethrows (as `E_INTERNAL`, with the cause).
   */
  reset?: (value: T) => void
  /** Most free objects kept for reuse; extra releases are discarded. Default 64. */
  max?: number
  /** Most objects borrowed at once; `acquire` beyond it throws `E_LIMIT`. Default `Infinity`. */
  maxInUse?: number
  /** Names the pool in messages and events. Default `"object-pool"`. */
  name?: string
  /** Debug mode: record where each object was borrowed and report leaks with that stack. */
  debug?: boolean
  /** Report objects garbage-collected while borrowed, even outside debug mode. Default: same as `debug`. */
  detectLeaks?: boolean
  /** Where warnings (leaks) are logged. */
  logger?: Logger
  /** Where pool events go. */
  events?: EventSink<ObjectPoolEvents>
}

/** A snapshot of an {@link ObjectPool}'s accounting, as plain data. */
export interface ObjectPoolStats {
  /** Objects borrowed and not yet released. */
  inUse: number
  /** Objects waiting for reuse. */
  free: number
  /** Acquisitions served by a free object. */
  hits: number
  /** Acquisitions that called `create`. */
  misses: number
  /** `hits / (hits + misses)`, 0 before the first acquisition. */
  hitRate: number
  /** Highest `inUse` seen. */
  highWater: number
  /** Released objects discarded because `max` free objects were already kept. */
  dropped: number
  /** Releases whose `reset` threw (the object was discarded). */
  resetFailures: number
  /** Acquisitions refused with `E_LIMIT`. */
  rejected: number
  /** Objects garbage-collected while borrowed (leak detection on). */
  leaked: number
}

/** A borrowed object that releases itself with `using`. */
export interface PooledObject<T> {
  /** The borrowed object. */
  readonly value: T
  /** Returns the object to its pool. Throws `E_INVALID_STATE` if already released. */
  release(): void
  /** Same as `release()`. */
  [Symbol.dispose](): void
}

/**
 * A pool of reusable objects.
 *
 * ```ts
 * const pool = new ObjectPool({ create: () => ({ tokens: [] as number[] }), reset: (o) => { o.tokens.length = 0 } })
 * const scratch = pool.acquire()
 * try { ... } finally { pool.release(scratch) }
 * ```
 *
 * Releasing an object twice throws `E_INVALID_STATE`; releasing an object the
 * pool did not create throws `E_INVALID_INPUT`.
 */
export class ObjectPool<T extends object> {
  readonly name: string
  readonly #create: () => T
  readonly #reset: ((value: T) => void) | undefined
  readonly #max: number
  readonly #maxInUse: number
  readonly #debug: boolean
  readonly #logger: Logger
  readonly #events: EventSink<ObjectPoolEvents>
  readonly #free: T[] = []
  readonly #borrowed = new WeakSet<T>()
  readonly #known = new WeakSet<T>()
  readonly #registry: FinalizationRegistry<string | undefined> | undefined
  #inUse = 0
  #hits = 0
  #misses = 0
  #highWater = 0
  #dropped = 0
  #resetFailures = 0
  #rejected = 0
  #leaked = 0

  constructor(options: ObjectPoolOptions<T>) {
    assertObject(options, 'options')
    const {
      create,
      reset,
      max = 64,
      maxInUse = Number.POSITIVE_INFINITY,
      name = 'object-pool',
      debug = false,
      detectLeaks = debug,
      logger = noopLogger,
      events = noopEventSink,
    } = options
    assertFunction(create, 'options.create')
    if (reset !== undefined) assertFunction(reset, 'options.reset')
    assertNumber(max, 'options.max', { integer: true, min: 0 })
    assertNumber(maxInUse, 'options.maxInUse', { min: 1, allowInfinity: true })
    if (typeof name !== 'string' || name.length === 0)
      throw invalidInput('options.name', 'must be a non-empty string')
    if (typeof debug !== 'boolean') throw invalidInput('options.debug', 'must be a boolean')
    if (typeof detectLeaks !== 'boolean')
      throw invalidInput('options.detectLeaks', 'must be a boolean')
    assertLogger(logger, 'options.logger')
    assertObject(events, 'options.events')
    assertFunction(events.emit, 'options.events.emit')
    this.name = name
    this.#create = create
    this.#reset = reset
    this.#max = max
    this.#maxInUse = maxInUse
    this.#debug = debug
    // Sinks are called from the leak finaliser: one that throws is logged, never propagated.
    this.#logger = guardLogger(logger)
    this.#events = guardEventSink(events, this.#logger, name)
    if (detectLeaks) this.#registry = new FinalizationRegistry((stack) => this.#onLeak(stack))
  }

  /**
   * Borrows an object: a free one if any, otherwise a new one from `create`.
   *
   * @throws `E_LIMIT` when `maxInUse` objects are already borrowed.
   * @throws `E_INTERNAL` (with the cause) when `create` throws or returns a non-object.
   */
  acquire(): T {
    if (this.#inUse >= this.#maxInUse) {
      this.#rejected++
      throw new AideError(
        'E_LIMIT',
        `${this.name}: ${this.#inUse} objects already borrowed (maxInUse ${this.#maxInUse}); release some first`,
        { details: { inUse: this.#inUse, maxInUse: this.#maxInUse } },
      )
    }
    let value = this.#free.pop()
    if (value !== undefined) {
      this.#hits++
    } else {
      value = this.#make()
      this.#misses++
    }
    this.#borrowed.add(value)
    this.#inUse++
    if (this.#inUse > this.#highWater) this.#highWater = this.#inUse
    if (this.#registry) {
      this.#registry.register(
        value,
        this.#debug ? new Error('acquired here').stack : undefined,
        value,
      )
    }
    return value
  }

  /** Borrows an object wrapped in a handle that releases it with `using`. */
  acquireHandle(): PooledObject<T> {
    const value = this.acquire()
    let released = false
    const release = () => {
      if (released) throw doubleRelease(this.name)
      released = true
      this.release(value)
    }
    return { value, release, [Symbol.dispose]: release }
  }

  /**
   * Returns a borrowed object: it is reset and kept for reuse (up to `max`).
   *
   * @throws `E_INVALID_STATE` when the object was already released.
   * @throws `E_INVALID_INPUT` when the object did not come from this pool.
   */
  release(value: T): void {
    if (typeof value !== 'object' || value === null || !this.#known.has(value)) {
      throw invalidInput('value', `was not acquired from ${this.name}`)
    }
    if (!this.#borrowed.delete(value)) throw doubleRelease(this.name)
    this.#inUse--
    this.#registry?.unregister(value)
    if (this.#reset) {
      try {
        this.#reset(value)
      } catch (error) {
        this.#resetFailures++
        this.#known.delete(value)
        throw new AideError('E_INTERNAL', `${this.name}: reset threw; the object was discarded`, {
          cause: error,
        })
      }
    }
    if (this.#free.length >= this.#max) {
      this.#dropped++
      this.#known.delete(value)
      return
    }
    this.#free.push(value)
  }

  /** Drops every free object. Returns how many were dropped. */
  clear(): number {
    const count = this.#free.length
    for (const value of this.#free) this.#known.delete(value)
    this.#free.length = 0
    return count
  }

  /** A snapshot of the pool's accounting. */
  stats(): ObjectPoolStats {
    const lookups = this.#hits + this.#misses
    return {
      inUse: this.#inUse,
      free: this.#free.length,
      hits: this.#hits,
      misses: this.#misses,
      hitRate: lookups === 0 ? 0 : this.#hits / lookups,
      highWater: this.#highWater,
      dropped: this.#dropped,
      resetFailures: this.#resetFailures,
      rejected: this.#rejected,
      leaked: this.#leaked,
    }
  }

  #make(): T {
    let value: T
    try {
      value = this.#create()
    } catch (error) {
      throw new AideError('E_INTERNAL', `${this.name}: create threw`, { cause: error })
    }
    if (typeof value !== 'object' || value === null) {
      throw new AideError(
        'E_INTERNAL',
        `${this.name}: create must return an object, got ${value === null ? 'null' : typeof value}`,
      )
    }
    if (this.#known.has(value)) {
      throw new AideError(
        'E_INTERNAL',
        `${this.name}: create returned an object the pool already holds`,
      )
    }
    this.#known.add(value)
    return value
  }

  #onLeak(stack: string | undefined): void {
    this.#leaked++
    this.#inUse--
    const payload = { pool: this.name, acquiredAt: stack }
    this.#logger.warn(payload, `${this.name}: an object was garbage-collected without release()`)
    this.#events.emit('object-leak', payload)
  }
}

function doubleRelease(name: string): AideError {
  return new AideError(
    'E_INVALID_STATE',
    `${name}: object released twice; release each object exactly once`,
  )
}
