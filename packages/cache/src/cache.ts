/**
 * `MultiLevelCache`: L1 in memory, optional L2 (Redis) and L3 (disk), with
 * single-flight loads, TTL and grace, tags, namespaces, cross-instance
 * invalidation, per-tier circuit breakers and stats.
 */
import {
  AideError,
  assertFunction,
  assertNumber,
  assertObject,
  assertString,
  type CacheLike,
  type Clock,
  type DeadlineOptions,
  type Disposable,
  type EventSink,
  invalidInput,
  isAideError,
  type Logger,
  noopLogger,
  sleep,
  systemClock,
  validateDeadlineOptions,
  withDeadline,
} from '@aide/core'
import { AdaptiveTtl } from './adaptive-ttl.js'
import { isFresh, isUsable, type StoredEntry } from './entry.js'
import {
  type EvictionReason,
  MemoryTier,
  type MemoryTierOptions,
  type MemoryTierStats,
} from './memory-tier.js'
import type { CacheTier, InvalidationMessage, TierOwnStats } from './tier.js'

/** Options for {@link MultiLevelCache.set}. */
export interface SetOptions extends DeadlineOptions {
  /** Time to live in ms (default: the cache's `ttl`). `Infinity` for no expiry. */
  ttl?: number
  /** How long after the TTL a stale value may still be served (default: the cache's `grace`). */
  grace?: number
  /** Tags for group invalidation with `deleteByTag`. */
  tags?: readonly string[]
}

/** Options for {@link MultiLevelCache.getOrSet}. */
export interface GetOrSetOptions extends SetOptions {
  /**
   * With a stale value in grace: if the loader takes longer than this (ms),
   * return the stale value and let the load finish in the background.
   */
  softTimeout?: number
  /** Abort the loader after this many ms (rejects `E_TIMEOUT` unless a stale value can be served). */
  hardTimeout?: number
}

/** Circuit-breaker settings for the lower tiers. */
export interface BreakerOptions {
  /** Consecutive failures that open the breaker. Default 3. */
  failureThreshold?: number
  /** How long an open breaker skips the tier before one probe is let through (ms). Default 2,000. */
  cooldownMs?: number
}

/** Cross-process single-flight settings (used when L2 offers locks). */
export interface LockOptions {
  /** Lock lifetime in ms: a holder that dies frees it after this. Default 10,000. */
  ttlMs?: number
  /** How often a waiter checks L2 for the holder's result (ms). Default 50. */
  pollMs?: number
}

/** Events a cache sends to its `events` sink. */
export interface CacheEvents {
  /** A value was served; `tier` says which one, `stale` whether it was past its TTL. */
  'cache-hit': { key: string; tier: string; stale: boolean }
  /** No tier had a usable value. */
  'cache-miss': { key: string }
  /** L1 dropped an entry for size or expiry. */
  'cache-evict': { key: string; reason: EvictionReason }
  /** A tier operation failed (the cache carried on without that tier). */
  'cache-error': { tier: string; operation: string; error: AideError }
  /** A tier's circuit breaker opened: the tier is skipped until the cooldown ends. */
  'breaker-open': { tier: string }
  /** A tier's circuit breaker closed again after a successful probe. */
  'breaker-close': { tier: string }
}

/** Options of {@link createCache}. */
export interface CacheOptions {
  /** L1 options (or a prebuilt `MemoryTier`); `false` disables L1. */
  l1?: MemoryTierOptions | MemoryTier | false
  /** L2 tier, typically `redisTier()` from `@aide/cache/redis`. */
  l2?: CacheTier
  /** L3 tier, typically `diskTier()` from `@aide/cache/disk`. */
  l3?: CacheTier
  /** Default TTL in ms. Default `Infinity` (no expiry). */
  ttl?: number
  /** Default grace in ms after the TTL during which stale values may be served. Default 0. */
  grace?: number
  /** Key prefix of this cache (keys become `namespace:key`). */
  namespace?: string
  /** Optional adaptive TTL policy, used by `getOrSet` when no `ttl` is given. */
  adaptiveTtl?: AdaptiveTtl
  /** Bound on each L2/L3 operation in ms, so a hung tier cannot stall reads. Default 1,000. */
  tierTimeoutMs?: number
  /** Circuit breaker of the lower tiers. */
  breaker?: BreakerOptions
  /** Cross-process single-flight. */
  lock?: LockOptions
  /** Where events go. */
  events?: EventSink<CacheEvents>
  /** Logger for tier failures. */
  logger?: Logger
  /** Clock for TTLs, timeouts and breakers. */
  clock?: Clock
}

/** Stats of one tier as seen by the cache. */
export interface TierStats {
  /** Tier name. */
  name: string
  /** Reads that found a usable entry. */
  hits: number
  /** Reads that found nothing usable. */
  misses: number
  /** hits / (hits + misses), 0 before any read. */
  ratio: number
  /** Entries evicted for size (where the tier tracks it). */
  evictions: number
  /** Failed operations. */
  errors: number
  /** Operations skipped because the breaker was open. */
  skipped: number
  /** Breaker state. */
  breaker: 'closed' | 'open' | 'half-open'
  /** Mean latency of operations in ms (lower tiers only; 0 for L1). */
  meanLatencyMs: number
  /** Slowest operation in ms (lower tiers only). */
  maxLatencyMs: number
  /** The tier's own counters. */
  own: TierOwnStats
}

/** Stats of a cache. */
export interface CacheStats {
  /** Per tier, top down. */
  tiers: TierStats[]
  /** Loader calls started. */
  loads: number
  /** Loader calls that failed. */
  loadErrors: number
  /** `getOrSet` callers that joined a load already in flight in this process. */
  coalesced: number
  /** Loads that waited for another process holding the L2 lock. */
  lockWaits: number
  /** Stale values served (grace). */
  staleServed: number
  /** Background refreshes started. */
  refreshes: number
  /** Loads in flight in this process (including background refreshes). */
  inflightLoads: number
  /** `getOrSet` callers waiting for those loads now (not those that timed out or were served stale). */
  waitingCallers: number
  /** Invalidation messages received from other instances. */
  invalidationsReceived: number
  /** L1 stats (undefined without L1). */
  l1: MemoryTierStats | undefined
}

class TierHandle {
  hits = 0
  misses = 0
  errors = 0
  skipped = 0
  latencyTotal = 0
  latencyCount = 0
  latencyMax = 0
  failures = 0
  state: 'closed' | 'open' | 'half-open' = 'closed'
  openUntil = 0
  probing = false

  constructor(
    readonly tier: CacheTier,
    readonly shared: Shared,
  ) {}

  /** Runs `operation` against the tier; on failure or open breaker returns `fallback`. */
  async call<T, F>(
    operation: string,
    task: (signal: AbortSignal) => Promise<T>,
    fallback: F,
  ): Promise<T | F> {
    const shared = this.shared
    const now = shared.clock.now()
    let probe = false
    if (this.state === 'open') {
      if (now < this.openUntil || this.probing) {
        this.skipped++
        return fallback
      }
      this.state = 'half-open'
    }
    if (this.state === 'half-open') {
      if (this.probing) {
        this.skipped++
        return fallback
      }
      this.probing = true
      probe = true
    }
    const started = performance.now()
    try {
      const result = await withDeadline(task, {
        timeoutMs: shared.tierTimeoutMs,
        clock: shared.clock,
        label: `cache: ${this.tier.name} ${operation}`,
      })
      this.#latency(started)
      this.failures = 0
      if (this.state !== 'closed') {
        this.state = 'closed'
        shared.emit('breaker-close', { tier: this.tier.name })
      }
      return result
    } catch (cause) {
      this.#latency(started)
      // A value the tier cannot encode is the caller's error, not the tier's:
      // it reaches the caller (see #write) and does not count against the breaker.
      if (operation === 'set' && isAideError(cause) && cause.code === 'E_SERIALIZE') throw cause
      this.errors++
      this.failures++
      const error = isAideError(cause)
        ? cause
        : new AideError('E_UNAVAILABLE', `cache: ${this.tier.name} ${operation} failed`, { cause })
      shared.logger.warn(
        { tier: this.tier.name, operation, err: error },
        'cache tier operation failed',
      )
      shared.emit('cache-error', { tier: this.tier.name, operation, error })
      if (this.state === 'half-open' || this.failures >= shared.failureThreshold) {
        if ((this.state as string) !== 'open') shared.emit('breaker-open', { tier: this.tier.name })
        this.state = 'open'
        this.openUntil = shared.clock.now() + shared.cooldownMs
      }
      return fallback
    } finally {
      if (probe) this.probing = false
    }
  }

  #latency(started: number): void {
    const elapsed = performance.now() - started
    this.latencyTotal += elapsed
    this.latencyCount++
    if (elapsed > this.latencyMax) this.latencyMax = elapsed
  }

  stats(): TierStats {
    const reads = this.hits + this.misses
    return {
      name: this.tier.name,
      hits: this.hits,
      misses: this.misses,
      ratio: reads === 0 ? 0 : this.hits / reads,
      evictions: this.tier.stats().evictions,
      errors: this.errors,
      skipped: this.skipped,
      breaker: this.state,
      meanLatencyMs: this.latencyCount === 0 ? 0 : this.latencyTotal / this.latencyCount,
      maxLatencyMs: this.latencyMax,
      own: this.tier.stats(),
    }
  }
}

type FlightOutcome = { ok: true; entry: StoredEntry } | { ok: false; error: unknown }

interface Flight {
  promise: Promise<StoredEntry>
  controller: AbortController
  keepAlive: boolean
  settled: boolean
  /**
   * Callers waiting for the outcome. A caller that leaves (timed out, cancelled,
   * or served stale after `softTimeout`) removes itself, so a load that takes
   * long holds on to nobody: a `.then` per caller on `promise` would stay
   * until the load settles.
   */
  listeners: Set<(outcome: FlightOutcome) => void>
  outcome: FlightOutcome | undefined
}

/** Waits for a flight's outcome until `leave()` is called. */
function joinFlight(flight: Flight): { promise: Promise<StoredEntry>; leave: () => void } {
  let listener!: (outcome: FlightOutcome) => void
  const promise = new Promise<StoredEntry>((resolve, reject) => {
    listener = (outcome) => (outcome.ok ? resolve(outcome.entry) : reject(outcome.error))
  })
  if (flight.outcome) listener(flight.outcome)
  else flight.listeners.add(listener)
  return { promise, leave: () => flight.listeners.delete(listener) }
}

const UNAVAILABLE = Symbol('unavailable')

class Shared {
  readonly id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`
  readonly clock: Clock
  readonly l1: MemoryTier | undefined
  readonly l1Hits = { hits: 0, misses: 0 }
  readonly lower: TierHandle[] = []
  readonly l2: TierHandle | undefined
  readonly defaultTtl: number
  readonly defaultGrace: number
  readonly tierTimeoutMs: number
  readonly failureThreshold: number
  readonly cooldownMs: number
  readonly lockTtlMs: number
  readonly lockPollMs: number
  readonly adaptiveTtl: AdaptiveTtl | undefined
  readonly events: EventSink<CacheEvents> | undefined
  readonly logger: Logger
  readonly inflight = new Map<string, Flight>()
  readonly counters = {
    loads: 0,
    loadErrors: 0,
    coalesced: 0,
    lockWaits: 0,
    staleServed: 0,
    refreshes: 0,
    received: 0,
  }
  subscription: Disposable | undefined
  disposed = false
  disposing: Promise<void> | undefined

  constructor(options: CacheOptions) {
    this.clock = options.clock ?? systemClock
    this.events = options.events
    this.logger = options.logger ?? noopLogger
    this.defaultTtl = options.ttl ?? Number.POSITIVE_INFINITY
    this.defaultGrace = options.grace ?? 0
    this.tierTimeoutMs = options.tierTimeoutMs ?? 1_000
    this.failureThreshold = options.breaker?.failureThreshold ?? 3
    this.cooldownMs = options.breaker?.cooldownMs ?? 2_000
    this.lockTtlMs = options.lock?.ttlMs ?? 10_000
    this.lockPollMs = options.lock?.pollMs ?? 50
    this.adaptiveTtl = options.adaptiveTtl
    if (options.l1 instanceof MemoryTier) this.l1 = options.l1
    else if (options.l1 !== false) {
      const onEvict = this.events
        ? (key: string, reason: EvictionReason) => this.emit('cache-evict', { key, reason })
        : undefined
      this.l1 = new MemoryTier({
        clock: this.clock,
        ...(onEvict ? { onEvict } : {}),
        ...(options.l1 ?? {}),
      })
    }
    if (options.l2) {
      this.l2 = new TierHandle(options.l2, this)
      this.lower.push(this.l2)
    }
    if (options.l3) this.lower.push(new TierHandle(options.l3, this))
    for (const handle of this.lower) {
      if (handle.tier.subscribe && !this.subscription) {
        this.subscription = handle.tier.subscribe((message) => this.onMessage(message))
      }
    }
  }

  emit<K extends keyof CacheEvents>(type: K, payload: CacheEvents[K]): void {
    if (!this.events) return
    try {
      this.events.emit(type, payload)
    } catch (error) {
      this.logger.warn({ err: error, type }, 'cache: event sink threw')
    }
  }

  onMessage(message: InvalidationMessage): void {
    if (message.origin === this.id || !this.l1) return
    this.counters.received++
    if (message.op === 'clear') this.l1.clearAll()
    else if (message.op === 'tag' && message.tag !== undefined) this.l1.deleteTag(message.tag)
    else for (const key of message.keys ?? []) this.l1.deleteEntry(key)
  }

  async publish(message: Omit<InvalidationMessage, 'origin'>): Promise<void> {
    for (const handle of this.lower) {
      const tier = handle.tier
      if (tier.publish) {
        await handle.call(
          'publish',
          () => tier.publish!({ origin: this.id, ...message }),
          undefined,
        )
        return
      }
    }
  }

  assertOpen(): void {
    if (this.disposed)
      throw new AideError('E_DISPOSED', 'cache: this cache has been disposed; create a new one')
  }
}

function validateTtl(value: unknown, field: string): void {
  if (value !== undefined) assertNumber(value, field, { min: 0, allowInfinity: true })
}

function validateTags(tags: unknown, field: string): void {
  if (tags === undefined) return
  if (!Array.isArray(tags)) throw invalidInput(field, 'must be an array of strings')
  for (let index = 0; index < tags.length; index++) validateTag(tags[index], `${field}[${index}]`)
}

function validateTag(tag: unknown, field: string): void {
  assertString(tag, field, { maxLength: 512 })
  assertWellFormed(tag, field)
  if (tag.startsWith(NAMESPACE_TAG)) {
    throw invalidInput(
      field,
      `must not start with "${NAMESPACE_TAG}", which namespaces use for their own entries`,
    )
  }
}

/** The tag every entry of a namespaced view carries, followed by the view's prefix. */
const NAMESPACE_TAG = '@ns:'

/**
 * Rejects a string with a lone surrogate: encoded as UTF-8 (Redis keys, disk
 * file names) it would become U+FFFD and share its storage with other strings.
 */
function assertWellFormed(value: string, field: string): void {
  if (!(value as string & { isWellFormed(): boolean }).isWellFormed()) {
    throw invalidInput(field, 'must not contain a lone surrogate (ill-formed UTF-16)')
  }
}

const MAX_KEY_LENGTH = 2048

/**
 * A multi-level cache. Satisfies `CacheLike` from `@aide/core`, so the
 * orchestrator and the LSP toolkit accept it as is.
 */
export class MultiLevelCache<V = unknown> implements CacheLike<V>, Disposable {
  readonly #shared: Shared
  readonly #prefix: string
  readonly #namespaceTags: readonly string[]
  // Hot-path shortcuts (undefined when there is no L1 / when keys are prefixed).
  readonly #l1: MemoryTier | undefined
  readonly #plainKeys: boolean

  /** @internal Use {@link createCache} (the first argument is internal state). */
  constructor(internal: unknown, prefix: string, namespaceTags: readonly string[]) {
    if (!(internal instanceof Shared)) {
      throw invalidInput('internal', 'is not cache state: create caches with createCache()')
    }
    const shared = internal
    this.#shared = shared
    this.#prefix = prefix
    this.#namespaceTags = namespaceTags
    this.#l1 = shared.l1
    this.#plainKeys = prefix === ''
  }

  #key(key: unknown): string {
    if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH) {
      assertString(key, 'key', { maxLength: MAX_KEY_LENGTH })
    }
    assertWellFormed(key as string, 'key')
    return this.#prefix === '' ? (key as string) : this.#prefix + (key as string)
  }

  #entry(
    value: unknown,
    ttl: number,
    grace: number,
    tags: readonly string[] | undefined,
  ): StoredEntry {
    const now = this.#shared.clock.now()
    const expiresAt = ttl === Number.POSITIVE_INFINITY ? ttl : now + ttl
    const allTags =
      tags === undefined || tags.length === 0
        ? this.#namespaceTags
        : [...this.#namespaceTags, ...tags.map((tag) => this.#prefix + tag)]
    return {
      value,
      createdAt: now,
      expiresAt,
      staleUntil: expiresAt === Number.POSITIVE_INFINITY ? expiresAt : expiresAt + grace,
      tags: allTags,
    }
  }

  /**
   * The fresh value from L1 only, synchronously, or `undefined`. The fastest
   * read; it never touches L2/L3.
   */
  getIfPresent(key: string): V | undefined {
    const l1 = this.#l1
    if (l1 === undefined) return undefined
    // `=== true`, not truthiness: in Node 20's optimised code a bare
    // `this.#plainKeys &&` compiled to a full ToBoolean (checks for false, '',
    // 0, NaN, 0n and undetectable objects) on every hit; this is one compare.
    const full =
      this.#plainKeys === true &&
      typeof key === 'string' &&
      key.length > 0 &&
      key.length <= MAX_KEY_LENGTH
        ? key
        : this.#key(key)
    return l1.getFreshValue(full) as V | undefined
  }

  /**
   * The fresh value under `key` from the first tier that has it (back-filling
   * the tiers above), or `undefined`. Never throws for a failing L2/L3: those
   * count as misses and are recorded in `stats()`.
   */
  get(key: string, options?: DeadlineOptions): Promise<V | undefined> {
    const shared = this.#shared
    let full: string
    try {
      shared.assertOpen()
      full = this.#key(key)
      if (options !== undefined) validateDeadlineOptions(options)
    } catch (error) {
      return Promise.reject(error)
    }
    const l1 = shared.l1
    if (l1 !== undefined) {
      const entry = l1.getEntry(full)
      if (
        entry !== undefined &&
        (entry.expiresAt === Number.POSITIVE_INFINITY || shared.clock.now() < entry.expiresAt)
      ) {
        shared.l1Hits.hits++
        if (shared.events) shared.emit('cache-hit', { key: full, tier: 'memory', stale: false })
        return Promise.resolve(entry.value as V)
      }
      shared.l1Hits.misses++
    }
    const lookup = async (): Promise<V | undefined> => {
      const found = await this.#lowerGet(full, false)
      if (found) return found.entry.value as V
      shared.emit('cache-miss', { key: full })
      return undefined
    }
    if (options?.signal === undefined && options?.timeoutMs === undefined) return lookup()
    return withDeadline(lookup, { ...options, clock: shared.clock, label: `cache: get "${key}"` })
  }

  /** Looks `full` up in L2 then L3; back-fills the tiers above a hit. */
  async #lowerGet(
    full: string,
    acceptStale: boolean,
  ): Promise<{ entry: StoredEntry; tier: string } | undefined> {
    const shared = this.#shared
    for (let index = 0; index < shared.lower.length; index++) {
      const handle = shared.lower[index]!
      const entry = await handle.call(
        'get',
        (signal) => handle.tier.get(full, { signal }),
        undefined,
      )
      const now = shared.clock.now()
      if (entry !== undefined && isUsable(entry, now) && (acceptStale || isFresh(entry, now))) {
        handle.hits++
        shared.l1?.setEntry(full, entry)
        for (let upper = 0; upper < index; upper++) {
          const above = shared.lower[upper]!
          void above.call(
            'backfill',
            (signal) => above.tier.set(full, entry, { signal }),
            undefined,
          )
        }
        shared.emit('cache-hit', { key: full, tier: handle.tier.name, stale: !isFresh(entry, now) })
        return { entry, tier: handle.tier.name }
      }
      handle.misses++
    }
    return undefined
  }

  /** Whether a fresh value is cached under `key` in any tier. */
  async has(key: string, options?: DeadlineOptions): Promise<boolean> {
    this.#shared.assertOpen()
    const full = this.#key(key)
    validateDeadlineOptions(options)
    const l1 = this.#shared.l1
    if (l1?.hasEntry(full)) {
      const entry = l1.getEntry(full)
      if (entry && isFresh(entry, this.#shared.clock.now())) return true
    }
    const found = await withDeadline(() => this.#lowerGet(full, false), {
      ...options,
      clock: this.#shared.clock,
    })
    return found !== undefined
  }

  /** Stores `value` in every tier (write-through) and tells other instances to drop their L1 copy. */
  async set(key: string, value: V, options: SetOptions = {}): Promise<void> {
    const shared = this.#shared
    shared.assertOpen()
    const full = this.#key(key)
    assertObject(options, 'options')
    validateTtl(options.ttl, 'options.ttl')
    validateTtl(options.grace, 'options.grace')
    validateTags(options.tags, 'options.tags')
    validateDeadlineOptions(options)
    const entry = this.#entry(
      value,
      options.ttl ?? shared.defaultTtl,
      options.grace ?? shared.defaultGrace,
      options.tags,
    )
    await withDeadline(() => this.#write(full, entry), {
      ...options,
      clock: shared.clock,
      label: `cache: set "${key}"`,
    })
  }

  async #write(full: string, entry: StoredEntry): Promise<void> {
    const shared = this.#shared
    shared.l1?.setEntry(full, entry)
    try {
      await Promise.all(
        shared.lower.map((handle) =>
          handle.call('set', (signal) => handle.tier.set(full, entry, { signal }), undefined),
        ),
      )
    } catch (error) {
      // The value cannot be stored below (E_SERIALIZE: a tier encodes before it
      // writes, so its old entry is intact). Take it out of L1 too, so that no
      // tier serves a value the set was refused for.
      shared.l1?.deleteEntry(full)
      throw error
    }
    await shared.publish({ op: 'set', keys: [full] })
  }

  /**
   * The cached value, or the loader's result (stored in every tier, then
   * returned). Concurrent callers share one loader call per process, and per
   * cluster when L2 offers locks. With grace, a stale value is returned at
   * once while a background load refreshes it, and is served when the loader
   * fails or exceeds `softTimeout`.
   */
  async getOrSet(
    key: string,
    loader: (signal: AbortSignal) => V | Promise<V>,
    options: GetOrSetOptions = {},
  ): Promise<V> {
    const shared = this.#shared
    shared.assertOpen()
    const full = this.#key(key)
    assertFunction(loader, 'loader')
    assertObject(options, 'options')
    validateTtl(options.ttl, 'options.ttl')
    validateTtl(options.grace, 'options.grace')
    validateTags(options.tags, 'options.tags')
    validateDeadlineOptions(options)
    if (options.softTimeout !== undefined)
      assertNumber(options.softTimeout, 'options.softTimeout', { min: 0 })
    if (options.hardTimeout !== undefined)
      assertNumber(options.hardTimeout, 'options.hardTimeout', { min: 0 })

    shared.adaptiveTtl?.recordAccess(full, shared.clock.now())
    let entry = shared.l1?.getEntry(full)
    let tier = 'memory'
    if (entry !== undefined) {
      if (isFresh(entry, shared.clock.now())) {
        shared.l1Hits.hits++
        shared.emit('cache-hit', { key: full, tier: 'memory', stale: false })
        return entry.value as V
      }
      // Stale here: another instance may have refreshed it in a lower tier already.
      if (shared.lower.length > 0) {
        const fresher = await this.#lowerGet(full, false)
        if (fresher) return fresher.entry.value as V
      }
    } else {
      if (shared.l1) shared.l1Hits.misses++
      const found = await this.#lowerGet(full, true)
      entry = found?.entry
      if (found) tier = found.tier
      if (entry !== undefined && isFresh(entry, shared.clock.now())) return entry.value as V
    }
    const stale = entry !== undefined && isUsable(entry, shared.clock.now()) ? entry : undefined
    if (stale !== undefined && options.softTimeout !== undefined && options.softTimeout > 0) {
      return this.#loadWithStale(full, loader, options, stale, options.softTimeout, tier)
    }
    if (stale !== undefined) {
      // Serve stale at once and refresh behind it.
      shared.counters.staleServed++
      // A stale hit in a lower tier was already reported by #lowerGet.
      if (tier === 'memory') shared.emit('cache-hit', { key: full, tier, stale: true })
      this.#refresh(full, loader, options)
      return stale.value as V
    }
    shared.emit('cache-miss', { key: full })
    return this.#waitForLoad(full, loader, options)
  }

  #refresh(
    full: string,
    loader: (signal: AbortSignal) => V | Promise<V>,
    options: GetOrSetOptions,
  ): void {
    const shared = this.#shared
    if (shared.inflight.has(full)) return
    shared.counters.refreshes++
    const flight = this.#startFlight(full, loader, options)
    flight.keepAlive = true
    flight.promise.catch(() => undefined)
  }

  async #waitForLoad(
    full: string,
    loader: (signal: AbortSignal) => V | Promise<V>,
    options: GetOrSetOptions,
  ): Promise<V> {
    const shared = this.#shared
    let flight = shared.inflight.get(full)
    if (flight) shared.counters.coalesced++
    else flight = this.#startFlight(full, loader, options)
    const joined = joinFlight(flight)
    try {
      const entry = await withDeadline(() => joined.promise, {
        signal: options.signal,
        timeoutMs: options.timeoutMs,
        clock: shared.clock,
        label: `cache: getOrSet "${full}"`,
      })
      return entry.value as V
    } finally {
      joined.leave()
      if (flight.listeners.size === 0 && !flight.keepAlive && !flight.settled) {
        // Every caller has gone (cancelled or timed out): stop the loader instead of working for nobody.
        flight.controller.abort(
          new AideError('E_CANCELLED', `cache: every caller of "${full}" has gone`),
        )
      }
    }
  }

  #startFlight(
    full: string,
    loader: (signal: AbortSignal) => V | Promise<V>,
    options: GetOrSetOptions,
  ): Flight {
    const shared = this.#shared
    const controller = new AbortController()
    const flight: Flight = {
      promise: undefined as unknown as Promise<StoredEntry>,
      controller,
      keepAlive: false,
      settled: false,
      listeners: new Set(),
      outcome: undefined,
    }
    flight.promise = this.#runLoad(full, loader, options, controller.signal).finally(() => {
      flight.settled = true
      if (shared.inflight.get(full) === flight) shared.inflight.delete(full)
    })
    const settle = (outcome: FlightOutcome) => {
      flight.outcome = outcome
      for (const listener of flight.listeners) listener(outcome)
      flight.listeners.clear()
    }
    flight.promise.then(
      (entry) => settle({ ok: true, entry }),
      (error: unknown) => settle({ ok: false, error }),
    )
    shared.inflight.set(full, flight)
    return flight
  }

  async #runLoad(
    full: string,
    loader: (signal: AbortSignal) => V | Promise<V>,
    options: GetOrSetOptions,
    signal: AbortSignal,
  ): Promise<StoredEntry> {
    const shared = this.#shared
    const l2 = shared.l2
    let token: string | undefined
    if (l2?.tier.acquireLock) {
      const acquire = l2.tier.acquireLock.bind(l2.tier)
      const waitUntil = shared.clock.now() + shared.lockTtlMs + shared.lockPollMs
      let waited = false
      for (;;) {
        const result = await l2.call('lock', () => acquire(full, shared.lockTtlMs), UNAVAILABLE)
        if (typeof result === 'string') {
          token = result
          break
        }
        if (result === UNAVAILABLE) break
        if (!waited) {
          waited = true
          shared.counters.lockWaits++
        }
        await sleep(shared.lockPollMs, { signal, clock: shared.clock })
        const entry = await l2.call('get', (s) => l2.tier.get(full, { signal: s }), undefined)
        if (entry !== undefined && isFresh(entry, shared.clock.now())) {
          l2.hits++
          shared.l1?.setEntry(full, entry)
          return entry
        }
        // The holder died or is slow past the lock's lifetime: load here (safe fallback).
        if (shared.clock.now() > waitUntil) break
      }
    }
    try {
      shared.counters.loads++
      let value: V
      try {
        value = await withDeadline((s) => loader(s), {
          signal,
          ...(options.hardTimeout !== undefined ? { timeoutMs: options.hardTimeout } : {}),
          clock: shared.clock,
          label: `cache: loader for "${full}"`,
        })
      } catch (error) {
        shared.counters.loadErrors++
        throw error
      }
      const ttl =
        options.ttl ??
        (shared.adaptiveTtl
          ? shared.adaptiveTtl.ttlFor(full, value, shared.clock.now())
          : shared.defaultTtl)
      const entry = this.#entry(value, ttl, options.grace ?? shared.defaultGrace, options.tags)
      await this.#write(full, entry)
      return entry
    } finally {
      if (token !== undefined && l2?.tier.releaseLock) {
        const release = l2.tier.releaseLock.bind(l2.tier)
        const owned = token
        await l2.call('unlock', () => release(full, owned), undefined)
      }
    }
  }

  /**
   * With a stale value in hand and a `softTimeout`: waits for the load up to
   * that long, then serves the stale value (the load goes on in the
   * background). A failed load also serves the stale value.
   */
  async #loadWithStale(
    full: string,
    loader: (signal: AbortSignal) => V | Promise<V>,
    options: GetOrSetOptions,
    stale: StoredEntry,
    softTimeout: number,
    tier: string,
  ): Promise<V> {
    const shared = this.#shared
    let flight = shared.inflight.get(full)
    if (flight) shared.counters.coalesced++
    else {
      shared.counters.refreshes++
      flight = this.#startFlight(full, loader, options)
    }
    flight.keepAlive = true
    const joined = joinFlight(flight)
    let outcome: StoredEntry | undefined
    try {
      outcome = await withDeadline(
        () =>
          new Promise<StoredEntry | undefined>((resolve) => {
            const timer = shared.clock.setTimeout(() => resolve(undefined), softTimeout)
            joined.promise.then(
              (entry) => {
                shared.clock.clearTimer(timer)
                resolve(entry)
              },
              () => {
                shared.clock.clearTimer(timer)
                resolve(undefined)
              },
            )
          }),
        {
          signal: options.signal,
          timeoutMs: options.timeoutMs,
          clock: shared.clock,
          label: `cache: getOrSet "${full}"`,
        },
      )
    } finally {
      joined.leave()
    }
    if (outcome !== undefined) return outcome.value as V
    shared.counters.staleServed++
    shared.emit('cache-hit', { key: full, tier, stale: true })
    return stale.value as V
  }

  /** Removes `key` from every tier and from other instances' L1. Resolves to whether any tier had it. */
  async delete(key: string, options?: DeadlineOptions): Promise<boolean> {
    const shared = this.#shared
    shared.assertOpen()
    const full = this.#key(key)
    validateDeadlineOptions(options)
    return withDeadline(
      async () => {
        let found = shared.l1?.deleteEntry(full) ?? false
        const results = await Promise.all(
          shared.lower.map((handle) =>
            handle.call('delete', (signal) => handle.tier.delete(full, { signal }), false),
          ),
        )
        for (const result of results) found = found || result
        await shared.publish({ op: 'delete', keys: [full] })
        return found
      },
      { ...options, clock: shared.clock },
    )
  }

  /** Removes every entry tagged `tag` (in this namespace) from every tier and other instances. */
  async deleteByTag(tag: string, options?: DeadlineOptions): Promise<number> {
    const shared = this.#shared
    shared.assertOpen()
    validateTag(tag, 'tag')
    validateDeadlineOptions(options)
    return this.#deleteTag(this.#prefix + tag, options)
  }

  async #deleteTag(fullTag: string, options: DeadlineOptions | undefined): Promise<number> {
    const shared = this.#shared
    return withDeadline(
      async () => {
        let removed = shared.l1?.deleteTag(fullTag) ?? 0
        const results = await Promise.all(
          shared.lower.map((handle) =>
            handle.call('deleteByTag', (signal) => handle.tier.deleteByTag(fullTag, { signal }), 0),
          ),
        )
        for (const count of results) removed = Math.max(removed, count)
        await shared.publish({ op: 'tag', tag: fullTag })
        return removed
      },
      { ...options, clock: shared.clock },
    )
  }

  /** Removes every entry of this cache (of this namespace, for a namespaced view). */
  async clear(options?: DeadlineOptions): Promise<void> {
    const shared = this.#shared
    shared.assertOpen()
    validateDeadlineOptions(options)
    if (this.#namespaceTags.length > 0) {
      await this.#deleteTag(this.#namespaceTags[this.#namespaceTags.length - 1]!, options)
      return
    }
    await withDeadline(
      async () => {
        shared.l1?.clearAll()
        await Promise.all(
          shared.lower.map((handle) =>
            handle.call('clear', (signal) => handle.tier.clear({ signal }), undefined),
          ),
        )
        await shared.publish({ op: 'clear' })
      },
      { ...options, clock: shared.clock },
    )
  }

  /**
   * A view whose keys and tags live under `name:`; it shares tiers, loads and
   * stats with this cache. `clear()` on the view clears only its entries.
   */
  namespace<T = V>(name: string): MultiLevelCache<T> {
    this.#shared.assertOpen()
    assertString(name, 'name', { maxLength: 256 })
    assertWellFormed(name, 'name')
    const prefix = `${this.#prefix}${name}:`
    return new MultiLevelCache<T>(this.#shared, prefix, [
      ...this.#namespaceTags,
      `${NAMESPACE_TAG}${prefix}`,
    ])
  }

  /** Plain-data stats per tier and for loads. */
  stats(): CacheStats {
    const shared = this.#shared
    const tiers: TierStats[] = []
    if (shared.l1) {
      const own = shared.l1.stats()
      const reads = shared.l1Hits.hits + shared.l1Hits.misses
      tiers.push({
        name: 'memory',
        hits: shared.l1Hits.hits,
        misses: shared.l1Hits.misses,
        ratio: reads === 0 ? 0 : shared.l1Hits.hits / reads,
        evictions: own.evictions,
        errors: 0,
        skipped: 0,
        breaker: 'closed',
        meanLatencyMs: 0,
        maxLatencyMs: 0,
        own,
      })
    }
    for (const handle of shared.lower) tiers.push(handle.stats())
    const c = shared.counters
    return {
      tiers,
      loads: c.loads,
      loadErrors: c.loadErrors,
      coalesced: c.coalesced,
      lockWaits: c.lockWaits,
      staleServed: c.staleServed,
      refreshes: c.refreshes,
      inflightLoads: shared.inflight.size,
      waitingCallers: [...shared.inflight.values()].reduce((n, f) => n + f.listeners.size, 0),
      invalidationsReceived: c.received,
      l1: shared.l1?.stats(),
    }
  }

  /** Stops subscriptions and disposes every tier. Idempotent; shared by all namespaced views. */
  dispose(): Promise<void> {
    const shared = this.#shared
    if (shared.disposing) return shared.disposing
    shared.disposed = true
    shared.disposing = (async () => {
      await shared.subscription?.dispose()
      for (const flight of shared.inflight.values()) {
        flight.controller.abort(new AideError('E_DISPOSED', 'cache: disposed'))
      }
      shared.l1?.dispose()
      const errors: unknown[] = []
      for (const handle of shared.lower) {
        try {
          await handle.tier.dispose()
        } catch (error) {
          errors.push(error)
        }
      }
      if (errors.length > 0) {
        throw new AideError('E_DISPOSE', `cache: ${errors.length} tier(s) failed to dispose`, {
          cause: errors[0],
        })
      }
    })()
    return shared.disposing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose()
  }
}

/** Creates a multi-level cache. See {@link CacheOptions}. */
export function createCache<V = unknown>(options: CacheOptions = {}): MultiLevelCache<V> {
  assertObject(options, 'options')
  validateTtl(options.ttl, 'options.ttl')
  validateTtl(options.grace, 'options.grace')
  if (options.l1 !== undefined && options.l1 !== false && !(options.l1 instanceof MemoryTier)) {
    assertObject(options.l1, 'options.l1')
  }
  for (const field of ['l2', 'l3'] as const) {
    const tier: CacheTier | undefined = options[field]
    if (tier === undefined) continue
    assertObject(tier, `options.${field}`)
    for (const method of [
      'get',
      'set',
      'delete',
      'deleteByTag',
      'clear',
      'stats',
      'dispose',
    ] as const) {
      if (typeof tier[method] !== 'function')
        throw invalidInput(`options.${field}.${method}`, 'must be a function')
    }
  }
  if (options.tierTimeoutMs !== undefined)
    assertNumber(options.tierTimeoutMs, 'options.tierTimeoutMs', { min: 1 })
  if (options.breaker !== undefined) {
    assertObject(options.breaker, 'options.breaker')
    if (options.breaker.failureThreshold !== undefined) {
      assertNumber(options.breaker.failureThreshold, 'options.breaker.failureThreshold', {
        min: 1,
        integer: true,
      })
    }
    if (options.breaker.cooldownMs !== undefined) {
      assertNumber(options.breaker.cooldownMs, 'options.breaker.cooldownMs', { min: 0 })
    }
  }
  if (options.lock !== undefined) {
    assertObject(options.lock, 'options.lock')
    if (options.lock.ttlMs !== undefined)
      assertNumber(options.lock.ttlMs, 'options.lock.ttlMs', { min: 1 })
    if (options.lock.pollMs !== undefined)
      assertNumber(options.lock.pollMs, 'options.lock.pollMs', { min: 1 })
  }
  if (options.adaptiveTtl !== undefined && !(options.adaptiveTtl instanceof AdaptiveTtl)) {
    throw invalidInput('options.adaptiveTtl', 'must be an AdaptiveTtl instance')
  }
  if (options.events !== undefined && typeof options.events?.emit !== 'function') {
    throw invalidInput('options.events.emit', 'must be a function')
  }
  let prefix = ''
  if (options.namespace !== undefined) {
    assertString(options.namespace, 'options.namespace', { maxLength: 256 })
    prefix = `${options.namespace}:`
  }
  return new MultiLevelCache<V>(new Shared(options), prefix, [])
}
