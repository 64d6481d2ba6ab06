/**
 * `BufferPool`: reusable ArrayBuffers in size classes, so hot paths (inference
 * tensors, protocol buffers) stop allocating external memory and stop forcing
 * V8 into full garbage collections.
 */
import {
  AideError,
  assertClock,
  assertLogger,
  assertNumber,
  assertObject,
  assertOneOf,
  type Clock,
  type EventSink,
  guardEventSink,
  invalidInput,
  type Logger,
  type Meter,
  noopEventSink,
  noopLogger,
  systemClock,
  type TimerHandle,
} from '@aide/core'
import { guardLogger } from './guard.js'
import { assertMeterOptions, type MetricSpec, startMetrics } from './metrics.js'
import { CLASS_COUNT, classIndex, classSize, MAX_CLASS_SIZE } from './size-classes.js'

/** Element types a {@link PoolHandle} can be viewed as. */
export type ElementKind =
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'float32'
  | 'float64'
  | 'bigint64'
  | 'biguint64'

/** Bytes per element of each {@link ElementKind}. */
export const ELEMENT_BYTES: Readonly<Record<ElementKind, number>> = Object.freeze({
  int8: 1,
  uint8: 1,
  int16: 2,
  uint16: 2,
  int32: 4,
  uint32: 4,
  float32: 4,
  float64: 8,
  bigint64: 8,
  biguint64: 8,
})

const ELEMENT_KINDS = Object.keys(ELEMENT_BYTES) as ElementKind[]

/** The typed array type of each {@link ElementKind}. */
export interface ElementArrays {
  int8: Int8Array
  uint8: Uint8Array
  int16: Int16Array
  uint16: Uint16Array
  int32: Int32Array
  uint32: Uint32Array
  float32: Float32Array
  float64: Float64Array
  bigint64: BigInt64Array
  biguint64: BigUint64Array
}

const CONSTRUCTORS: {
  [K in ElementKind]: new (
    buffer: ArrayBuffer,
    byteOffset: number,
    length: number,
  ) => ElementArrays[K]
} = {
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  float32: Float32Array,
  float64: Float64Array,
  bigint64: BigInt64Array,
  biguint64: BigUint64Array,
}

/**
 * A buffer borrowed from a {@link BufferPool}. Read and write it through the
 * typed views, then give it back with `release()` (or `using handle = pool.acquire(n)`).
 *
 * After release every accessor throws `E_INVALID_STATE`, and so does a second
 * `release()`. Views taken before release must not be used afterwards: the
 * memory goes to the next borrower (in debug mode the old views are detached
 * and read as empty).
 */
export interface PoolHandle {
  /** Bytes visible through the views: the request for `acquireExact`, the class capacity for `acquire`. */
  readonly byteLength: number
  /** Bytes of the underlying buffer (>= `byteLength`). */
  readonly capacity: number
  /** False when the buffer bypassed the pool (small size, oversize, or budget exhausted with `onExhausted: 'unpooled'`). */
  readonly pooled: boolean
  /** True once released (or once the pool reclaimed a leaked handle). */
  readonly released: boolean
  /**
   * The underlying ArrayBuffer. For pooled handles its length is `capacity`
   * and, with `zeroOnReuse`, all of it is zeroed when released. Small bypassed
   * requests (under `minPooledSize`) are slices of a shared slab: their bytes
   * start at `byteOffset`, and the rest of the buffer belongs to other handles.
   */
  readonly buffer: ArrayBuffer
  /** Where this handle's bytes start in `buffer` (0 except for small bypassed requests). */
  readonly byteOffset: number
  /** A `Uint8Array` over the first `byteLength` bytes. */
  bytes(): Uint8Array
  /** A typed view over the first `byteLength` bytes (the length is rounded down to whole elements). */
  view<K extends ElementKind>(kind: K): ElementArrays[K]
  /** Shorthand for `view('float32')`. */
  float32(): Float32Array
  /** Shorthand for `view('float64')`. */
  float64(): Float64Array
  /** Shorthand for `view('int32')`. */
  int32(): Int32Array
  /** Shorthand for `view('uint32')`. */
  uint32(): Uint32Array
  /** Shorthand for `view('bigint64')`. */
  bigint64(): BigInt64Array
  /** A `DataView` over the first `byteLength` bytes. */
  dataView(): DataView
  /** Returns the buffer to its pool. Throws `E_INVALID_STATE` if already released. */
  release(): void
  /** Same as `release()`, for `using`. */
  [Symbol.dispose](): void
}

/** What the pool does when a new allocation would pass `maxBytes`. */
export type ExhaustedPolicy = 'reject' | 'unpooled'

/** Background compaction settings of a {@link BufferPool}. */
export interface CompactionOptions {
  /** How often the pool checks its fragmentation, in ms. Default 1000. */
  intervalMs?: number
  /** Compact when free / retained bytes passes this fraction (0..1). Default 0.5. */
  threshold?: number
  /** Only buffers free for at least this long are trimmed by background compaction, in ms. Default 5000. */
  idleMs?: number
  /** Longest stretch of work per slice before yielding to the event loop, in ms. Default 1. */
  sliceMs?: number
}

/** Events a {@link BufferPool} reports through its `events` sink. */
export interface BufferPoolEvents {
  /** A handle was garbage-collected without being released (leak detection on). */
  'handle-leak': {
    /** Bytes the handle exposed. */
    byteLength: number
    /** Bytes of its buffer. */
    capacity: number
    /** Stack trace of the `acquire` call (debug mode only). */
    acquiredAt: string | undefined
  }
  /** Free buffers were dropped so the garbage collector can reclaim them. */
  'pool-compact': {
    /** Why: the background timer, an explicit `compact()`, or making room under the budget. */
    reason: 'background' | 'manual' | 'budget'
    /** Bytes no longer retained. */
    releasedBytes: number
    /** Buffers dropped. */
    buffers: number
  }
  /** An allocation would have passed `maxBytes`. */
  'budget-exhaust': {
    requestedBytes: number
    retainedBytes: number
    maxBytes: number
    policy: ExhaustedPolicy
  }
}

/** Options of {@link BufferPool}. */
export interface BufferPoolOptions {
  /** Names the pool in messages and events. Default `"buffer-pool"`. */
  name?: string
  /** Budget for retained pooled bytes (in use + free). Default `Infinity`. */
  maxBytes?: number
  /** When a new buffer would pass `maxBytes`: throw `E_LIMIT` (`'reject'`, default) or allocate outside the pool and count it (`'unpooled'`). */
  onExhausted?: ExhaustedPolicy
  /**
   * Zero a buffer before anyone else can borrow it. Default true; turn off when
   * every byte is overwritten anyway. The pool zeroes the whole buffer when it is
   * released (not when it is next acquired), so `acquire` costs the same at
   * every size and stale data does not linger in the free lists; buffers the
   * pool drops on release (class full, pool disposed) are not zeroed.
   */
  zeroOnReuse?: boolean
  /** Requests below this many bytes bypass the pool (a fresh buffer is cheaper). Default 4096. */
  minPooledSize?: number
  /** Requests above this many bytes bypass the pool. Default 64 MiB, at most 1 GiB. */
  maxPooledSize?: number
  /** Cap on free bytes kept per size class; releases beyond it are dropped. Default 64 MiB. */
  maxFreeBytesPerClass?: number
  /** Background compaction settings, or `false` to only compact on demand. */
  compaction?: CompactionOptions | false
  /**
   * Debug mode: record where each handle was acquired, detach a buffer's old
   * views on release, and report handles garbage-collected without release.
   */
  debug?: boolean
  /** Report leaked handles (without stacks) even outside debug mode. Default: same as `debug`. */
  detectLeaks?: boolean
  /** Time source for idle tracking and the compaction timer. Default: the system clock. */
  clock?: Clock
  /** Where warnings (leaks) are logged. */
  logger?: Logger
  /** Where pool events go. */
  events?: EventSink<BufferPoolEvents>
  /**
   * Where the pool publishes its metrics (labelled `pool`): gauges
   * `aide_buffer_pool_in_use_bytes`, `aide_buffer_pool_free_bytes`,
   * `aide_buffer_pool_fragmentation_ratio`, counters `aide_buffer_pool_hits_total`,
   * `aide_buffer_pool_misses_total`, `aide_buffer_pool_leaks_total`. Published every
   * `metricsIntervalMs` and on dispose, never on the acquire path.
   */
  meter?: Meter
  /** How often metrics are published, in ms. Default 10000. */
  metricsIntervalMs?: number
}

/** Statistics of one size class. */
export interface SizeClassStats {
  /** Capacity of the buffers in this class, in bytes. */
  capacity: number
  /** Buffers handed out and not yet released. */
  inUse: number
  /** Buffers waiting for reuse. */
  free: number
  /** Acquisitions served from the free list. */
  hits: number
  /** Acquisitions that allocated a new buffer. */
  misses: number
}

/** A snapshot of a {@link BufferPool}'s accounting, as plain data. */
export interface BufferPoolStats {
  /** Pooled bytes handed out (class capacities). */
  inUseBytes: number
  /** Pooled bytes waiting for reuse. */
  freeBytes: number
  /** `inUseBytes + freeBytes`: what the pool keeps alive. */
  retainedBytes: number
  /** Highest `inUseBytes` seen. */
  highWaterBytes: number
  /** The byte budget (`Infinity` when unbounded). */
  maxBytes: number
  /** Acquisitions served from a free list. */
  hits: number
  /** Pooled acquisitions that allocated. */
  misses: number
  /** `hits / (hits + misses)`, 0 before any pooled acquisition. */
  hitRate: number
  /** `freeBytes / retainedBytes`, 0 when nothing is retained. */
  fragmentation: number
  /** Requests that bypassed the pool because of their size. */
  bypassed: number
  /** Allocations made outside the pool because the budget was exhausted. */
  unpooled: number
  /** Acquisitions refused with `E_LIMIT`. */
  rejected: number
  /** Released buffers dropped because their class was at `maxFreeBytesPerClass`. */
  dropped: number
  /** Handles garbage-collected without release (leak detection on). */
  leaked: number
  /** Compaction runs that released something. */
  compactions: number
  /** Bytes released by compaction so far. */
  compactedBytes: number
  /** Handles currently outstanding, pooled or not. */
  outstandingHandles: number
  /** Per size class, only classes that have been used, smallest first. */
  classes: SizeClassStats[]
}

interface SizeClass {
  capacity: number
  /** Free buffers in release order (the newest last: acquire takes it). */
  free: Uint8Array[]
  /**
   * When the oldest `freedAt.length` free buffers were first seen free: a
   * prefix of `free`. With background compaction on, releases are not dated
   * one by one (a clock read was a third of a release's cost): each compaction
   * check (`#stampFree`) dates the buffers freed since the last one, so an idle
   * age is never over-estimated. Without it, each release reads the clock.
   */
  freedAt: number[]
  inUse: number
  hits: number
  misses: number
}

interface LeakRecord {
  classIdx: number
  capacity: number
  byteLength: number
  stack: string | undefined
}

const NO_CLASS = -1
/** Bytes of a slab that small bypassed requests are carved from. */
const SLAB_SIZE = 32 * 1024
/** Largest request served from a slab (a quarter of it, so a slab serves at least four). */
const SLAB_MAX_REQUEST = SLAB_SIZE / 4
/** Slab slices start at multiples of 8, so every element view is aligned. */
const SLAB_ALIGN = 8

type ReturnFunction = (handle: Handle, bytes: Uint8Array) => void

class Handle implements PoolHandle {
  #pool: ReturnFunction | undefined
  #bytes: Uint8Array | undefined
  readonly byteLength: number
  readonly capacity: number
  readonly classIdx: number

  constructor(pool: ReturnFunction, bytes: Uint8Array, byteLength: number, classIdx: number) {
    this.#pool = pool
    this.#bytes = bytes
    this.byteLength = byteLength
    this.capacity = bytes.byteLength
    this.classIdx = classIdx
  }

  get pooled(): boolean {
    return this.classIdx !== NO_CLASS
  }

  get released(): boolean {
    return this.#bytes === undefined
  }

  get buffer(): ArrayBuffer {
    return this.#live().buffer as ArrayBuffer
  }

  get byteOffset(): number {
    return this.#live().byteOffset
  }

  bytes(): Uint8Array {
    const bytes = this.#live()
    return this.byteLength === bytes.byteLength ? bytes : bytes.subarray(0, this.byteLength)
  }

  view<K extends ElementKind>(kind: K): ElementArrays[K] {
    const bytes = this.#live()
    if (!Object.hasOwn(ELEMENT_BYTES, kind)) assertOneOf(kind, 'kind', ELEMENT_KINDS)
    const size = ELEMENT_BYTES[kind]
    return new CONSTRUCTORS[kind](
      bytes.buffer as ArrayBuffer,
      bytes.byteOffset,
      Math.floor(this.byteLength / size),
    )
  }

  float32(): Float32Array {
    return this.view('float32')
  }

  float64(): Float64Array {
    return this.view('float64')
  }

  int32(): Int32Array {
    return this.view('int32')
  }

  uint32(): Uint32Array {
    return this.view('uint32')
  }

  bigint64(): BigInt64Array {
    return this.view('bigint64')
  }

  dataView(): DataView {
    const bytes = this.#live()
    return new DataView(bytes.buffer, bytes.byteOffset, this.byteLength)
  }

  release(): void {
    const bytes = this.#bytes
    const pool = this.#pool
    if (bytes === undefined || pool === undefined) {
      throw new AideError(
        'E_INVALID_STATE',
        'buffer-pool: handle released twice; release each handle exactly once',
        {
          details: { byteLength: this.byteLength },
        },
      )
    }
    this.#bytes = undefined
    this.#pool = undefined
    pool(this, bytes)
  }

  [Symbol.dispose](): void {
    this.release()
  }

  #live(): Uint8Array {
    const bytes = this.#bytes
    if (bytes === undefined) {
      throw new AideError(
        'E_INVALID_STATE',
        'buffer-pool: handle used after release; acquire a new one',
        {
          details: { byteLength: this.byteLength },
        },
      )
    }
    return bytes
  }
}

/**
 * A pool of ArrayBuffers in size classes (at most 12.5% wasted per request).
 *
 * ```ts
 * const pool = new BufferPool({ maxBytes: 256 * 1024 * 1024 })
 * using input = pool.acquireElements('float32', 1 * 3 * 224 * 224)
 * input.float32().set(pixels)
 * ```
 *
 * Requests under `minPooledSize` or over `maxPooledSize` bypass the pool.
 * Dispose the pool to stop its compaction timer and drop its free buffers.
 */
export class BufferPool {
  readonly name: string
  readonly #maxBytes: number
  readonly #onExhausted: ExhaustedPolicy
  readonly #zeroOnReuse: boolean
  readonly #minPooledSize: number
  readonly #maxPooledSize: number
  readonly #maxFreePerClass: number
  readonly #debug: boolean
  readonly #clock: Clock
  readonly #logger: Logger
  readonly #events: EventSink<BufferPoolEvents>
  readonly #compaction: Required<CompactionOptions> | undefined
  readonly #classes: Array<SizeClass | undefined> = new Array(CLASS_COUNT)
  readonly #registry: FinalizationRegistry<LeakRecord> | undefined
  #timer: TimerHandle | undefined
  #metrics: { dispose(): void } | undefined
  #sliceTimer: TimerHandle | undefined
  #disposed = false
  #inUseBytes = 0
  #freeBytes = 0
  #highWater = 0
  #hits = 0
  #misses = 0
  #bypassed = 0
  #unpooled = 0
  #rejected = 0
  #dropped = 0
  #leaked = 0
  #compactions = 0
  #compactedBytes = 0
  #outstanding = 0
  #compactCursor = 0
  #slab: ArrayBuffer | undefined
  #slabOffset = 0

  constructor(options: BufferPoolOptions = {}) {
    assertObject(options, 'options')
    const {
      name = 'buffer-pool',
      maxBytes = Number.POSITIVE_INFINITY,
      onExhausted = 'reject',
      zeroOnReuse = true,
      minPooledSize = 4096,
      maxPooledSize = 64 * 1024 * 1024,
      maxFreeBytesPerClass = 64 * 1024 * 1024,
      compaction = {},
      debug = false,
      detectLeaks = debug,
      clock = systemClock,
      logger = noopLogger,
      events = noopEventSink,
      meter,
      metricsIntervalMs = 10_000,
    } = options
    if (typeof name !== 'string' || name.length === 0)
      throw invalidInput('options.name', 'must be a non-empty string')
    assertNumber(maxBytes, 'options.maxBytes', { min: 0, allowInfinity: true })
    assertOneOf(onExhausted, 'options.onExhausted', ['reject', 'unpooled'] as const)
    assertBoolean(zeroOnReuse, 'options.zeroOnReuse')
    assertNumber(minPooledSize, 'options.minPooledSize', {
      integer: true,
      min: 1,
      max: MAX_CLASS_SIZE,
    })
    assertNumber(maxPooledSize, 'options.maxPooledSize', {
      integer: true,
      min: minPooledSize,
      max: MAX_CLASS_SIZE,
    })
    assertNumber(maxFreeBytesPerClass, 'options.maxFreeBytesPerClass', {
      min: 0,
      allowInfinity: true,
    })
    assertBoolean(debug, 'options.debug')
    assertBoolean(detectLeaks, 'options.detectLeaks')
    assertClock(clock, 'options.clock')
    assertLogger(logger, 'options.logger')
    assertObject(events, 'options.events')
    if (typeof events.emit !== 'function')
      throw invalidInput('options.events.emit', 'must be a function')
    if (meter !== undefined) assertMeterOptions(meter, metricsIntervalMs)
    let compactionSettings: Required<CompactionOptions> | undefined
    if (compaction !== false) {
      assertObject(compaction, 'options.compaction')
      const { intervalMs = 1000, threshold = 0.5, idleMs = 5000, sliceMs = 1 } = compaction
      assertNumber(intervalMs, 'options.compaction.intervalMs', { min: 1 })
      assertNumber(threshold, 'options.compaction.threshold', { min: 0, max: 1 })
      assertNumber(idleMs, 'options.compaction.idleMs', { min: 0 })
      assertNumber(sliceMs, 'options.compaction.sliceMs', { min: 0.01 })
      compactionSettings = { intervalMs, threshold, idleMs, sliceMs }
    }
    // Everything is validated: only now start timers, so a rejected pool leaves none behind.
    this.name = name
    this.#maxBytes = maxBytes
    this.#onExhausted = onExhausted
    this.#zeroOnReuse = zeroOnReuse
    this.#minPooledSize = minPooledSize
    this.#maxPooledSize = maxPooledSize
    this.#maxFreePerClass = maxFreeBytesPerClass
    this.#debug = debug
    this.#clock = clock
    // Sinks are called from the compaction timer and the leak finaliser: one that throws is
    // logged, never propagated.
    this.#logger = guardLogger(logger)
    this.#events = guardEventSink(events, this.#logger, name)
    this.#compaction = compactionSettings
    if (compactionSettings) {
      this.#timer = clock.setInterval(
        () => this.#backgroundCompact(),
        compactionSettings.intervalMs,
      )
    }
    if (detectLeaks) {
      this.#registry = new FinalizationRegistry((record) => this.#onLeak(record))
    }
    if (meter !== undefined) {
      this.#metrics = startMetrics(
        meter,
        { pool: name },
        this.#metricSpecs(),
        clock,
        metricsIntervalMs,
      )
    }
  }

  #metricSpecs(): MetricSpec[] {
    return [
      {
        kind: 'gauge',
        name: 'aide_buffer_pool_in_use_bytes',
        help: 'Pooled bytes handed out',
        unit: 'bytes',
        read: () => this.#inUseBytes,
      },
      {
        kind: 'gauge',
        name: 'aide_buffer_pool_free_bytes',
        help: 'Pooled bytes waiting for reuse',
        unit: 'bytes',
        read: () => this.#freeBytes,
      },
      {
        kind: 'gauge',
        name: 'aide_buffer_pool_fragmentation_ratio',
        help: 'Free bytes divided by retained bytes',
        read: () => this.#fragmentation(),
      },
      {
        kind: 'counter',
        name: 'aide_buffer_pool_hits_total',
        help: 'Acquisitions served from a free list',
        read: () => this.#hits,
      },
      {
        kind: 'counter',
        name: 'aide_buffer_pool_misses_total',
        help: 'Pooled acquisitions that allocated',
        read: () => this.#misses,
      },
      {
        kind: 'counter',
        name: 'aide_buffer_pool_leaks_total',
        help: 'Handles garbage-collected without release',
        read: () => this.#leaked,
      },
    ]
  }

  /**
   * Borrows a buffer of at least `size` bytes; `byteLength` is the class
   * capacity (up to 12.5% more than asked). Use it when spare room helps.
   *
   * @param size - Bytes needed, an integer >= 0.
   * @throws `E_LIMIT` when the budget is exhausted and `onExhausted` is `'reject'`.
   */
  acquire(size: number): PoolHandle {
    return this.#acquire(size, false)
  }

  /**
   * Borrows a buffer whose views cover exactly `size` bytes (the buffer
   * underneath may be larger).
   *
   * @param size - Bytes needed, an integer >= 0.
   * @throws `E_LIMIT` when the budget is exhausted and `onExhausted` is `'reject'`.
   */
  acquireExact(size: number): PoolHandle {
    return this.#acquire(size, true)
  }

  /**
   * Borrows a buffer for `length` elements of `kind`, e.g. a tensor:
   * `pool.acquireElements('float32', 3 * 224 * 224).float32()`.
   *
   * @param kind - Element type, which sets the bytes per element.
   * @param length - Number of elements, an integer >= 0.
   */
  acquireElements(kind: ElementKind, length: number): PoolHandle {
    assertOneOf(kind, 'kind', ELEMENT_KINDS)
    assertNumber(length, 'length', { integer: true, min: 0 })
    return this.#acquire(length * ELEMENT_BYTES[kind], true)
  }

  /**
   * Drops free buffers idle for at least `idleMs` (default 0: all of them),
   * so the garbage collector can reclaim them. Returns the bytes released.
   */
  compact(options: { idleMs?: number } = {}): number {
    assertObject(options, 'options')
    const { idleMs = 0 } = options
    assertNumber(idleMs, 'options.idleMs', { min: 0 })
    const now = this.#stampFree()
    const cutoff = idleMs === 0 ? Number.POSITIVE_INFINITY : now - idleMs
    let released = 0
    let buffers = 0
    for (const cls of this.#classes) {
      if (!cls) continue
      const count = countIdle(cls, cutoff)
      if (count > 0) {
        released += this.#trim(cls, count)
        buffers += count
      }
    }
    this.#noteCompaction('manual', released, buffers)
    return released
  }

  /** A snapshot of the pool's accounting. */
  stats(): BufferPoolStats {
    const classes: SizeClassStats[] = []
    for (const cls of this.#classes) {
      if (!cls) continue
      classes.push({
        capacity: cls.capacity,
        inUse: cls.inUse,
        free: cls.free.length,
        hits: cls.hits,
        misses: cls.misses,
      })
    }
    const retained = this.#inUseBytes + this.#freeBytes
    const lookups = this.#hits + this.#misses
    return {
      inUseBytes: this.#inUseBytes,
      freeBytes: this.#freeBytes,
      retainedBytes: retained,
      highWaterBytes: this.#highWater,
      maxBytes: this.#maxBytes,
      hits: this.#hits,
      misses: this.#misses,
      hitRate: lookups === 0 ? 0 : this.#hits / lookups,
      fragmentation: retained === 0 ? 0 : this.#freeBytes / retained,
      bypassed: this.#bypassed,
      unpooled: this.#unpooled,
      rejected: this.#rejected,
      dropped: this.#dropped,
      leaked: this.#leaked,
      compactions: this.#compactions,
      compactedBytes: this.#compactedBytes,
      outstandingHandles: this.#outstanding,
      classes,
    }
  }

  /** True once disposed. */
  get disposed(): boolean {
    return this.#disposed
  }

  /**
   * Stops the compaction timer and drops every free buffer. Outstanding
   * handles stay valid and may still be released. Idempotent.
   */
  dispose(): void {
    if (this.#disposed) return
    this.#disposed = true
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer)
    if (this.#sliceTimer !== undefined) this.#clock.clearTimer(this.#sliceTimer)
    this.#timer = undefined
    this.#sliceTimer = undefined
    for (const cls of this.#classes) if (cls) this.#trim(cls, cls.free.length)
    this.#metrics?.dispose()
    this.#metrics = undefined
  }

  [Symbol.dispose](): void {
    this.dispose()
  }

  #acquire(size: number, exact: boolean): PoolHandle {
    if (this.#disposed) {
      throw new AideError('E_DISPOSED', `${this.name}: acquire after dispose; create a new pool`)
    }
    if (!Number.isInteger(size) || size < 0) assertNumber(size, 'size', { integer: true, min: 0 })
    if (size < this.#minPooledSize || size > this.#maxPooledSize) {
      this.#bypassed++
      return this.#unpooledHandle(size, size < this.#minPooledSize && size <= SLAB_MAX_REQUEST)
    }
    const capacity = classSize(size)
    const idx = classIndex(capacity)
    let cls = this.#classes[idx]
    if (cls === undefined) {
      cls = { capacity, free: [], freedAt: [], inUse: 0, hits: 0, misses: 0 }
      this.#classes[idx] = cls
    }
    const visible = exact ? size : capacity
    let bytes = cls.free.pop()
    if (bytes !== undefined) {
      if (cls.freedAt.length > cls.free.length) cls.freedAt.pop()
      this.#freeBytes -= capacity
      cls.hits++
      this.#hits++
      // With zeroOnReuse the buffer was scrubbed when it was released (see #return).
    } else {
      if (
        this.#inUseBytes + this.#freeBytes + capacity > this.#maxBytes &&
        !this.#makeRoom(capacity)
      ) {
        this.#events.emit('budget-exhaust', {
          requestedBytes: size,
          retainedBytes: this.#inUseBytes + this.#freeBytes,
          maxBytes: this.#maxBytes,
          policy: this.#onExhausted,
        })
        if (this.#onExhausted === 'reject') {
          this.#rejected++
          throw new AideError(
            'E_LIMIT',
            `${this.name}: budget of ${this.#maxBytes} bytes exhausted (${this.#inUseBytes} in use) allocating ${capacity}; release handles or raise maxBytes`,
            {
              details: {
                requestedBytes: size,
                inUseBytes: this.#inUseBytes,
                maxBytes: this.#maxBytes,
              },
            },
          )
        }
        this.#unpooled++
        return this.#unpooledHandle(size)
      }
      bytes = new Uint8Array(capacity)
      cls.misses++
      this.#misses++
    }
    cls.inUse++
    this.#inUseBytes += capacity
    if (this.#inUseBytes > this.#highWater) this.#highWater = this.#inUseBytes
    this.#outstanding++
    const handle = new Handle(this.#returnFunction, bytes, visible, idx)
    if (this.#registry) {
      const stack = this.#debug ? new Error('acquired here').stack : undefined
      this.#registry.register(
        handle,
        { classIdx: idx, capacity, byteLength: visible, stack },
        handle,
      )
    }
    return handle
  }

  /**
   * A buffer outside the pool. Small requests are carved from a shared slab
   * (as Node's `Buffer.allocUnsafe` pool does, but zeroed: a slab is fresh
   * memory and no slice is ever handed out twice), which saves an allocation
   * of external memory per request; the slab is reclaimed by the garbage
   * collector once none of its slices is reachable.
   */
  #unpooledHandle(size: number, fromSlab = false): PoolHandle {
    let bytes: Uint8Array
    if (fromSlab) {
      const aligned = (size + SLAB_ALIGN - 1) & ~(SLAB_ALIGN - 1)
      let slab = this.#slab
      if (slab === undefined || this.#slabOffset + aligned > SLAB_SIZE) {
        slab = new ArrayBuffer(SLAB_SIZE)
        this.#slab = slab
        this.#slabOffset = 0
      }
      bytes = new Uint8Array(slab, this.#slabOffset, size)
      this.#slabOffset += aligned
      return this.#outsideHandle(bytes, size)
    }
    try {
      bytes = new Uint8Array(size)
    } catch (error) {
      throw new AideError(
        'E_LIMIT',
        `${this.name}: cannot allocate ${size} bytes; request less memory`,
        {
          cause: error,
          details: { requestedBytes: size },
        },
      )
    }
    return this.#outsideHandle(bytes, size)
  }

  #outsideHandle(bytes: Uint8Array, size: number): PoolHandle {
    this.#outstanding++
    const handle = new Handle(this.#returnFunction, bytes, size, NO_CLASS)
    if (this.#registry) {
      const stack = this.#debug ? new Error('acquired here').stack : undefined
      this.#registry.register(
        handle,
        { classIdx: NO_CLASS, capacity: size, byteLength: size, stack },
        handle,
      )
    }
    return handle
  }

  readonly #returnFunction: ReturnFunction = (handle, bytes) => this.#return(handle, bytes)

  /** Called by a handle's `release()`. */
  #return(handle: Handle, bytes: Uint8Array): void {
    this.#outstanding--
    this.#registry?.unregister(handle)
    if (handle.classIdx === NO_CLASS) return
    const cls = this.#classes[handle.classIdx]!
    const capacity = cls.capacity
    cls.inUse--
    this.#inUseBytes -= capacity
    if (this.#disposed || (cls.free.length + 1) * capacity > this.#maxFreePerClass) {
      this.#dropped++
      return
    }
    let reusable = bytes
    if (this.#debug) {
      // Moving the memory to a new ArrayBuffer detaches every view the borrower kept.
      const moved = structuredClone(bytes.buffer as ArrayBuffer, {
        transfer: [bytes.buffer as ArrayBuffer],
      })
      reusable = new Uint8Array(moved)
    }
    // Scrub on release rather than on acquire: acquire stays O(1) whatever the
    // size, and stale data (tokens, file contents) does not linger in free lists.
    if (this.#zeroOnReuse) reusable.fill(0)
    cls.free.push(reusable)
    // Without the background timer nothing else dates releases, so date them here.
    if (this.#compaction === undefined) cls.freedAt.push(this.#clock.now())
    this.#freeBytes += capacity
  }

  /** Drops free buffers (largest classes first) until `capacity` more bytes fit the budget. */
  #makeRoom(capacity: number): boolean {
    const needed = this.#inUseBytes + this.#freeBytes + capacity - this.#maxBytes
    if (needed > this.#freeBytes) return false
    let released = 0
    let buffers = 0
    for (let i = this.#classes.length - 1; i >= 0 && released < needed; i--) {
      const cls = this.#classes[i]
      if (!cls || cls.free.length === 0) continue
      const count = Math.min(cls.free.length, Math.ceil((needed - released) / cls.capacity))
      released += this.#trim(cls, count)
      buffers += count
    }
    this.#noteCompaction('budget', released, buffers)
    return released >= needed
  }

  /** Drops the `count` oldest free buffers of a class; returns the bytes released. */
  #trim(cls: SizeClass, count: number): number {
    if (count <= 0) return 0
    cls.free.splice(0, count)
    cls.freedAt.splice(0, count)
    const bytes = count * cls.capacity
    this.#freeBytes -= bytes
    return bytes
  }

  #noteCompaction(
    reason: BufferPoolEvents['pool-compact']['reason'],
    releasedBytes: number,
    buffers: number,
  ): void {
    if (releasedBytes === 0) return
    this.#compactions++
    this.#compactedBytes += releasedBytes
    this.#events.emit('pool-compact', { reason, releasedBytes, buffers })
  }

  #fragmentation(): number {
    const retained = this.#inUseBytes + this.#freeBytes
    return retained === 0 ? 0 : this.#freeBytes / retained
  }

  /** Dates the free buffers released since the last call with the current time; returns it. */
  #stampFree(): number {
    const now = this.#clock.now()
    for (const cls of this.#classes) {
      if (!cls) continue
      const { free, freedAt } = cls
      while (freedAt.length < free.length) freedAt.push(now)
    }
    return now
  }

  #backgroundCompact(): void {
    const settings = this.#compaction
    if (!settings || this.#disposed) return
    this.#stampFree()
    if (this.#sliceTimer !== undefined) return
    if (this.#fragmentation() <= settings.threshold) return
    this.#compactSlice(settings, 0, 0)
  }

  /**
   * Trims idle buffers class by class until fragmentation is back under half
   * the threshold, yielding to the event loop after `sliceMs` of work.
   */
  #compactSlice(
    settings: Required<CompactionOptions>,
    releasedSoFar: number,
    buffersSoFar: number,
  ): void {
    this.#sliceTimer = undefined
    if (this.#disposed) return
    const started = performance.now()
    const cutoff = this.#clock.now() - settings.idleMs
    const target = settings.threshold / 2
    let released = releasedSoFar
    let buffers = buffersSoFar
    const classes = this.#classes
    for (let visited = 0; visited < classes.length; visited++) {
      if (this.#fragmentation() <= target) break
      const idx = this.#compactCursor
      this.#compactCursor = (idx + 1) % classes.length
      const cls = classes[idx]
      if (cls && cls.free.length > 0) {
        const count = countIdle(cls, cutoff)
        if (count > 0) {
          released += this.#trim(cls, count)
          buffers += count
        }
      }
      if (performance.now() - started >= settings.sliceMs && visited + 1 < classes.length) {
        this.#sliceTimer = this.#clock.setTimeout(
          () => this.#compactSlice(settings, released, buffers),
          0,
        )
        return
      }
    }
    this.#noteCompaction('background', released, buffers)
  }

  #onLeak(record: LeakRecord): void {
    this.#leaked++
    this.#outstanding--
    const cls = this.#classes[record.classIdx]
    if (cls) {
      // The buffer may still be reachable through views the borrower kept, so it is not reused.
      cls.inUse--
      this.#inUseBytes -= record.capacity
    }
    const payload = {
      byteLength: record.byteLength,
      capacity: record.capacity,
      acquiredAt: record.stack,
    }
    this.#logger.warn(payload, `${this.name}: a handle was garbage-collected without release()`)
    this.#events.emit('handle-leak', payload)
  }
}

function countIdle(cls: SizeClass, cutoff: number): number {
  // freedAt is in release order, so the idle buffers are a prefix.
  let count = 0
  while (count < cls.freedAt.length && cls.freedAt[count]! <= cutoff) count++
  return count
}

function assertBoolean(value: unknown, field: string): asserts value is boolean {
  if (typeof value !== 'boolean')
    throw invalidInput(field, `must be a boolean, got ${typeof value}`)
}
