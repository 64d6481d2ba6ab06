/**
 * The in-process typed event bus.
 *
 * Two delivery paths share one set of subscriptions:
 * - `emit` is the synchronous fast path: every matching listener is called
 *   immediately, in the emitter's call stack, in subscription order.
 * - `publish` / `publishBatch` deliver asynchronously through a bounded queue
 *   per subscriber with its own concurrency limit and overflow policy.
 *
 * Either way a throwing or rejecting listener never reaches the emitter or the
 * other listeners: the failure goes to the error channel and the dead-letter store.
 */
import {
  AideError,
  assertFunction,
  assertNumber,
  assertObject,
  assertOneOf,
  assertString,
  type Clock,
  type DeadlineOptions,
  type DisposableHandle,
  type EventSink,
  invalidInput,
  type Logger,
  type Meter,
  noopLogger,
  noopMeter,
  systemClock,
  throwIfAborted,
  toAideError,
  toDisposable,
  validateDeadlineOptions,
  withDeadline,
} from '@aide/core'
import { type CompiledPattern, compilePattern, isWildcard } from './pattern.js'

/** What a subscriber does when its queue is full and another event arrives. */
export type OverflowPolicy = 'wait' | 'drop-oldest' | 'drop-newest' | 'reject'

const OVERFLOW_POLICIES: readonly OverflowPolicy[] = [
  'wait',
  'drop-oldest',
  'drop-newest',
  'reject',
]

/** A listener: receives the payload and the event's type. May be async. */
export type EventListener<P = unknown, K extends string = string> = (
  payload: P,
  type: K,
) => void | PromiseLike<void>

/** A pattern with at least one wildcard segment (`document.*`, `plugin.**`). */
export type WildcardPattern = `${string}*${string}`

/** Options of {@link EventBus.on}. Queue options apply to `publish` / `publishBatch` only. */
export interface SubscribeOptions {
  /** Name in stats and dead letters. Defaults to `<pattern>#<id>`. */
  name?: string
  /** Handlers of this subscriber running at once (default 1, which keeps completion in publish order). */
  concurrency?: number
  /** Events queued for this subscriber before `overflow` applies (default 1024). */
  queueSize?: number
  /**
   * When the queue is full: `wait` makes `publish` wait for room (default),
   * `drop-oldest` / `drop-newest` discard an event (counted as dropped), `reject`
   * makes `publish` reject with `E_LIMIT` and deliver to nobody.
   */
  overflow?: OverflowPolicy
  /** Removes the subscription when this signal aborts. */
  signal?: AbortSignal
  /**
   * Events published with this `origin` (see {@link PublishOptions.origin})
   * are not delivered to this subscription. A bridge uses it so that events it
   * brought in from a transport are not sent back out.
   */
  ignoreOrigin?: string
}

/** Options of {@link EventBus.publish} and {@link EventBus.publishBatch}. */
export interface PublishOptions extends DeadlineOptions {
  /**
   * Resolve only after every matching subscriber has handled (or failed, or
   * dropped) the event. By default `publish` resolves once every subscriber has
   * accepted the event into its queue.
   */
  awaitDelivery?: boolean
  /**
   * Who publishes: subscriptions whose `ignoreOrigin` equals it skip the event
   * (it still counts as published, and every other subscriber receives it).
   */
  origin?: string
}

/** One event for {@link EventBus.publishBatch}. */
export interface BatchEvent<
  Events extends object,
  K extends keyof Events & string = keyof Events & string,
> {
  type: K
  payload: Events[K]
}

/** Options of {@link EventBus.waitFor}. */
export interface WaitForOptions<P> extends DeadlineOptions {
  /** Only resolve for a payload this returns true for. */
  filter?: (payload: P, type: string) => boolean
}

/** Options of {@link EventBus.dispose}. */
export interface DisposeOptions extends DeadlineOptions {
  /**
   * `drain` (default) delivers everything already queued before stopping;
   * `cancel` stops at once and moves queued events to the dead-letter store
   * with `E_CANCELLED`. If a drain passes its deadline the rest is cancelled.
   */
  mode?: 'drain' | 'cancel'
}

/** A failed delivery: which event, which subscriber, and why. */
export interface DeadLetter {
  /** The event type. */
  type: string
  /** The payload as published. */
  payload: unknown
  /** The subscriber's name. */
  subscriber: string
  /** The error the listener threw (wrapped as an `AideError`, the original in `cause`). */
  error: AideError
  /** Clock time of the failure, in ms. */
  at: number
}

/** Delivery counters of one event type. */
export interface EventTypeStats {
  /** Times the type was emitted or published. */
  published: number
  /** Successful deliveries to listeners. */
  delivered: number
  /** Deliveries whose listener threw or rejected. */
  failed: number
  /** Deliveries discarded by an overflow policy or by a cancelling dispose. */
  dropped: number
}

/** Counters of one subscriber. */
export interface SubscriberStats {
  /** The subscriber's name. */
  name: string
  /** The pattern it subscribed to. */
  pattern: string
  /** Successful deliveries. */
  delivered: number
  /** Failed deliveries. */
  failed: number
  /** Discarded deliveries. */
  dropped: number
  /** Events in its queue. */
  queueDepth: number
  /** Publishes waiting for room in its queue (`overflow: 'wait'`). */
  waiting: number
  /** Handlers running now. */
  running: number
  /** Delivery latency of queued deliveries (enqueue to handler settled), in ms. */
  latency: { count: number; meanMs: number; maxMs: number }
}

/** A snapshot of the bus. Plain data. */
export interface EventBusStats {
  /** Active subscriptions. */
  subscribers: number
  /** Per event type. */
  types: Record<string, EventTypeStats>
  /** Per subscriber. */
  subscriberStats: SubscriberStats[]
  /** Failures reported on the error channel since creation. */
  errors: number
  /** The dead-letter store. */
  deadLetters: { size: number; capacity: number; evicted: number }
  /** Whether the bus has been disposed. */
  disposed: boolean
}

/** Options of {@link createEventBus}. */
export interface EventBusOptions {
  /** Name used in messages and metric labels (default `event-bus`). */
  name?: string
  /** Clock for latency and dead-letter timestamps. */
  clock?: Clock
  /** Receives failures no error listener took, and failures of error listeners. */
  logger?: Logger
  /** Counts failures, drops and dead letters. */
  meter?: Meter
  /** Dead letters kept before the oldest is evicted (default 1000). */
  deadLetterCapacity?: number
  /** Queue defaults for every subscriber (each `on` may override them). */
  subscriberDefaults?: Pick<SubscribeOptions, 'concurrency' | 'queueSize' | 'overflow'>
}

/** The typed event bus. `Events` maps each event type to its payload type. */
export interface EventBus<Events extends object> extends EventSink<Events> {
  /** Subscribes to one event type. */
  on<K extends keyof Events & string>(
    type: K,
    listener: EventListener<Events[K], K>,
    options?: SubscribeOptions,
  ): DisposableHandle
  /** Subscribes to every type matching a wildcard pattern (`*` one segment, `**` any number). */
  on(
    pattern: WildcardPattern,
    listener: EventListener<Events[keyof Events], keyof Events & string>,
    options?: SubscribeOptions,
  ): DisposableHandle
  /** Like `on`, removed after the first delivery. */
  once<K extends keyof Events & string>(
    type: K,
    listener: EventListener<Events[K], K>,
    options?: SubscribeOptions,
  ): DisposableHandle
  once(
    pattern: WildcardPattern,
    listener: EventListener<Events[keyof Events], keyof Events & string>,
    options?: SubscribeOptions,
  ): DisposableHandle
  /** Removes the subscriptions of `listener` to exactly `pattern`. Returns whether any was removed. */
  off(pattern: string, listener: EventListener<any, any>): boolean
  /**
   * Synchronous fast path: calls every matching listener now, in subscription
   * order, bypassing queues. Listener failures go to the error channel.
   * Throws `E_DISPOSED` after dispose.
   */
  emit<K extends keyof Events & string>(type: K, payload: Events[K]): void
  /** Asynchronous delivery through each subscriber's queue (see {@link PublishOptions}). */
  publish<K extends keyof Events & string>(
    type: K,
    payload: Events[K],
    options?: PublishOptions,
  ): Promise<void>
  /** Publishes several events in order with one wait. Validates all before delivering any. */
  publishBatch(events: ReadonlyArray<BatchEvent<Events>>, options?: PublishOptions): Promise<void>
  /** Resolves with the payload of the next matching event. */
  waitFor<K extends keyof Events & string>(
    type: K,
    options?: WaitForOptions<Events[K]>,
  ): Promise<Events[K]>
  /** Subscribes to delivery failures. */
  onError(listener: (deadLetter: DeadLetter) => void): DisposableHandle
  /** A copy of the dead-letter store, oldest first. */
  deadLetters(): DeadLetter[]
  /** Removes and returns the dead letters, oldest first. */
  takeDeadLetters(): DeadLetter[]
  /** Resolves when every queue is empty and no handler is running. */
  drain(options?: DeadlineOptions): Promise<void>
  /** Number of active subscriptions, or of those that receive `type`. */
  listenerCount(type?: string): number
  /** Plain-data statistics. */
  stats(): EventBusStats
  /** Stops the bus (see {@link DisposeOptions}). Idempotent. */
  dispose(options?: DisposeOptions): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

interface QueueItem {
  type: string
  payload: unknown
  enqueuedAt: number
  tracker: Tracker | undefined
  stats: TypeCounters
}

interface Waiter {
  item: QueueItem
  resolve: () => void
  reject: (error: unknown) => void
}

/** The waits of one publish call: its promises and where its waiters sit. */
interface Waits {
  promises: Promise<void>[]
  entries: Array<{ sub: Subscription; waiter: Waiter }>
}

/** Counts outstanding deliveries of one `awaitDelivery` publish. */
class Tracker {
  remaining = 1
  resolve!: () => void
  readonly promise = new Promise<void>((resolve) => {
    this.resolve = resolve
  })
  add(): void {
    this.remaining++
  }
  settle(): void {
    if (--this.remaining === 0) this.resolve()
  }
}

interface TypeCounters extends EventTypeStats {}

/**
 * The matching subscribers of one event type, computed once and replaced (never
 * mutated) when a subscription changes: an emit that is running keeps iterating
 * the arrays it started with, so subscribing or unsubscribing from a listener
 * is safe. A class, so every route has the same shape.
 */
class Route {
  /**
   * Fast-path emits through this route not yet folded into the counters. Each
   * one counts as published once and as delivered to every subscriber of the
   * route; failures and pending promises are subtracted as they happen.
   */
  emits = 0
  /** The subscribers' listeners, in subscription order (`listeners[i]` is `subs[i].listener`). */
  readonly listeners: Array<EventListener<any, any>>
  /** No `once` subscription: emit can take the fast loop. */
  readonly simple: boolean

  constructor(
    readonly subs: Subscription[],
    readonly stats: TypeCounters,
  ) {
    const listeners: Array<EventListener<any, any>> = new Array(subs.length)
    let simple = true
    for (let i = 0; i < subs.length; i++) {
      const sub = subs[i]!
      listeners[i] = sub.listener
      if (sub.once) simple = false
    }
    this.listeners = listeners
    this.simple = simple
  }
}

/**
 * The route cache: an object whose prototype is null, created by a
 * constructor rather than `Object.create(null)`, so V8 keeps it in fast mode
 * and an emit of a constant type is a cached property load (as in
 * eventemitter3). Removed routes are set to undefined, never deleted, for
 * the same reason.
 */
type RouteTable = Record<string, Route | undefined>
const RouteTable = function RouteTable() {} as unknown as new () => RouteTable
RouteTable.prototype = Object.create(null)

const RESOLVED = Promise.resolve()
const DEFAULT_QUEUE_SIZE = 1024
const ROUTE_CACHE_LIMIT = 10_000

class Subscription {
  active = true
  fired = false
  readonly buffer: QueueItem[] = []
  head = 0
  readonly waiting: Waiter[] = []
  running = 0
  delivered = 0
  failed = 0
  dropped = 0
  latencyCount = 0
  latencyTotal = 0
  latencyMax = 0
  handle!: DisposableHandle

  constructor(
    readonly id: number,
    readonly pattern: CompiledPattern,
    readonly name: string,
    readonly listener: EventListener<any, any>,
    readonly once: boolean,
    readonly concurrency: number,
    readonly queueSize: number,
    readonly overflow: OverflowPolicy,
    readonly ignoreOrigin: string | undefined,
  ) {}

  get depth(): number {
    return this.buffer.length - this.head
  }

  get full(): boolean {
    return this.buffer.length - this.head >= this.queueSize
  }

  shift(): QueueItem | undefined {
    if (this.head >= this.buffer.length) return undefined
    const item = this.buffer[this.head]!
    this.buffer[this.head] = undefined as unknown as QueueItem
    this.head++
    if (this.head === this.buffer.length) {
      this.buffer.length = 0
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= this.buffer.length) {
      this.buffer.splice(0, this.head)
      this.head = 0
    }
    return item
  }
}

/**
 * Wraps a listener's failure. The wrapper's own stack would only show the
 * bus's dispatch code, while the listener's error (kept as `cause`) has the
 * stack that matters; skipping the capture makes a failing listener several
 * times cheaper, which matters when one fails on every event.
 */
function wrapListenerError(
  message: string,
  cause: unknown,
  details: Record<string, unknown>,
): AideError {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new AideError('E_INTERNAL', message, { cause, details })
  } finally {
    Error.stackTraceLimit = limit
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== undefined &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === 'function'
  )
}

class Bus<Events extends object> implements EventBus<Events> {
  readonly #name: string
  readonly #clock: Clock
  readonly #logger: Logger
  readonly #deadLetterCapacity: number
  readonly #defaults: Required<Pick<SubscribeOptions, 'concurrency' | 'queueSize' | 'overflow'>>
  readonly #failureCounter
  /** Metric labels, built once: a failing listener should not allocate them per failure. */
  readonly #labels: Readonly<Record<string, string>>
  readonly #dropCounter
  /** Subscriptions in subscription order. */
  #subs: Subscription[] = []
  #routes: RouteTable = new RouteTable()
  #routeCount = 0
  readonly #typeStats = new Map<string, TypeCounters>()
  #nextId = 1
  #errorListeners: Array<(deadLetter: DeadLetter) => void> = []
  #deadLetters: DeadLetter[] = []
  #evicted = 0
  #errors = 0
  /** Events accepted into a queue (or waiting for room) and not yet settled. */
  #outstanding = 0
  #idleWaiters: Array<() => void> = []
  #scheduled = new Set<Subscription>()
  #flushQueued = false
  #disposing: Promise<void> | undefined
  /** Aborted once dispose has drained: rejects `waitFor` calls still waiting. */
  readonly #closed = new AbortController()

  constructor(options: EventBusOptions) {
    this.#name = options.name ?? 'event-bus'
    this.#clock = options.clock ?? systemClock
    this.#logger = options.logger ?? noopLogger
    this.#deadLetterCapacity = options.deadLetterCapacity ?? 1000
    const defaults = options.subscriberDefaults ?? {}
    this.#defaults = {
      concurrency: defaults.concurrency ?? 1,
      queueSize: defaults.queueSize ?? DEFAULT_QUEUE_SIZE,
      overflow: defaults.overflow ?? 'wait',
    }
    const meter = options.meter ?? noopMeter
    this.#labels = Object.freeze({ bus: this.#name })
    this.#failureCounter = meter.counter('aide_event_bus_failures_total', {
      help: 'Event deliveries whose listener threw or rejected',
    })
    this.#dropCounter = meter.counter('aide_event_bus_dropped_total', {
      help: 'Event deliveries discarded by an overflow policy or a cancelling dispose',
    })
  }

  // ---------------------------------------------------------------- subscribe

  on(
    pattern: string,
    listener: EventListener<any, any>,
    options?: SubscribeOptions,
  ): DisposableHandle {
    return this.#subscribe(pattern, listener, options, false, 'on')
  }

  once(
    pattern: string,
    listener: EventListener<any, any>,
    options?: SubscribeOptions,
  ): DisposableHandle {
    return this.#subscribe(pattern, listener, options, true, 'once')
  }

  #subscribe(
    pattern: string,
    listener: EventListener<any, any>,
    options: SubscribeOptions | undefined,
    once: boolean,
    method: string,
  ): DisposableHandle {
    this.#assertOpen(method)
    const compiled = compilePattern(pattern, `${method}: pattern`)
    assertFunction(listener, `${method}: listener`)
    const resolved = this.#subscribeOptions(options, `${method}: options`)
    const id = this.#nextId++
    const sub = new Subscription(
      id,
      compiled,
      resolved.name ?? `${pattern}#${id}`,
      listener,
      once,
      resolved.concurrency,
      resolved.queueSize,
      resolved.overflow,
      resolved.ignoreOrigin,
    )
    this.#subs = [...this.#subs, sub]
    this.#invalidate(compiled)
    const signal = options?.signal
    const onAbort = () => sub.handle.dispose()
    sub.handle = toDisposable(() => {
      signal?.removeEventListener('abort', onAbort)
      this.#remove(sub)
    })
    if (signal) {
      if (signal.aborted) sub.handle.dispose()
      else signal.addEventListener('abort', onAbort, { once: true })
    }
    return sub.handle
  }

  #subscribeOptions(options: SubscribeOptions | undefined, field: string) {
    if (options === undefined)
      return { ...this.#defaults, name: undefined, ignoreOrigin: undefined }
    assertObject(options, field)
    if (options.name !== undefined) assertString(options.name, `${field}.name`)
    const concurrency = options.concurrency ?? this.#defaults.concurrency
    assertNumber(concurrency, `${field}.concurrency`, {
      min: 1,
      integer: true,
      allowInfinity: true,
    })
    const queueSize = options.queueSize ?? this.#defaults.queueSize
    assertNumber(queueSize, `${field}.queueSize`, { min: 1, integer: true, allowInfinity: true })
    const overflow = options.overflow ?? this.#defaults.overflow
    assertOneOf(overflow, `${field}.overflow`, OVERFLOW_POLICIES)
    validateDeadlineOptions({ signal: options.signal }, field)
    if (options.ignoreOrigin !== undefined)
      assertString(options.ignoreOrigin, `${field}.ignoreOrigin`)
    return {
      name: options.name,
      concurrency,
      queueSize,
      overflow,
      ignoreOrigin: options.ignoreOrigin,
    }
  }

  off(pattern: string, listener: EventListener<any, any>): boolean {
    assertString(pattern, 'off: pattern')
    assertFunction(listener, 'off: listener')
    let removed = false
    for (const sub of this.#subs) {
      if (sub.pattern.source === pattern && sub.listener === listener) {
        sub.handle.dispose()
        removed = true
      }
    }
    return removed
  }

  #remove(sub: Subscription): void {
    if (!sub.active) return
    sub.active = false
    this.#subs = this.#subs.filter((s) => s !== sub)
    this.#invalidate(sub.pattern)
  }

  #invalidate(pattern: CompiledPattern): void {
    if (pattern.wildcard) this.#clearRoutes()
    else {
      const route = this.#routes[pattern.source]
      if (route !== undefined) {
        this.#fold(route)
        this.#routes[pattern.source] = undefined
      }
    }
  }

  #clearRoutes(): void {
    for (const type in this.#routes) {
      const route = this.#routes[type]
      if (route) this.#fold(route)
    }
    this.#routes = new RouteTable()
    this.#routeCount = 0
  }

  /** Moves a route's fast-path emit count into the type and subscriber counters. */
  #fold(route: Route): void {
    const emits = route.emits
    if (emits === 0) return
    route.emits = 0
    route.stats.published += emits
    route.stats.delivered += emits * route.subs.length
    for (const sub of route.subs) sub.delivered += emits
  }

  #route(type: string, method: string): Route {
    if (typeof type !== 'string' || type.length === 0) {
      throw invalidInput(
        `${method}: type`,
        `must be a non-empty string, got ${JSON.stringify(type)}`,
      )
    }
    if (isWildcard(type)) {
      throw invalidInput(
        `${method}: type`,
        `must be a concrete event type, not a pattern: "${type}"`,
      )
    }
    let stats = this.#typeStats.get(type)
    if (!stats) {
      stats = { published: 0, delivered: 0, failed: 0, dropped: 0 }
      this.#typeStats.set(type, stats)
    }
    if (this.#disposing) throw this.#disposedError(method)
    const route = new Route(
      this.#subs.filter((sub) => sub.pattern.matches(type)),
      stats,
    )
    if (this.#routeCount >= ROUTE_CACHE_LIMIT) this.#clearRoutes()
    this.#routes[type] = route
    this.#routeCount++
    return route
  }

  // -------------------------------------------------------------------- emit

  emit<K extends keyof Events & string>(type: K, payload: Events[K]): void {
    // A disposed bus has no cached routes, so the miss path reports E_DISPOSED.
    const route = this.#routes[type] ?? this.#route(type, 'emit')
    if (!route.simple) {
      this.#emitSlow(route.subs, route.stats, type, payload)
      return
    }
    // Counted as published once and delivered to every subscriber up front
    // (see Route.emits): no counter per listener. A failure or a pending
    // promise takes its delivery back.
    route.emits++
    const listeners = route.listeners
    const count = listeners.length
    if (count === 1) {
      try {
        const result = listeners[0]!(payload, type)
        if (result !== undefined && isThenable(result))
          this.#watch(route.subs[0]!, route.stats, type, payload, result)
      } catch (error) {
        this.#failEmit(route.subs[0]!, route.stats, type, payload, error)
      }
      return
    }
    // Listeners are called from the route's arrays, a snapshot (like Node's
    // EventEmitter): one removed during this emit still receives it. One try
    // around the loop is cheaper than one per listener; after a throw the loop
    // resumes at the next listener.
    let i = 0
    while (i < count) {
      try {
        for (; i < count; i++) {
          const result = listeners[i]!(payload, type)
          if (result !== undefined && isThenable(result)) {
            this.#watch(route.subs[i]!, route.stats, type, payload, result)
          }
        }
      } catch (error) {
        this.#failEmit(route.subs[i]!, route.stats, type, payload, error)
        i++
      }
    }
  }

  /** A synchronous failure on the fast path: take back the delivery counted up front. */
  #failEmit(
    sub: Subscription,
    stats: TypeCounters,
    type: string,
    payload: unknown,
    error: unknown,
  ): void {
    sub.delivered--
    stats.delivered--
    this.#fail(sub, stats, type, payload, error)
  }

  /** Emit for routes holding `once` subscriptions, which must fire at most once. */
  #emitSlow(subs: Subscription[], stats: TypeCounters, type: string, payload: unknown): void {
    stats.published++
    for (let i = 0; i < subs.length; i++) {
      const sub = subs[i]!
      if (sub.once) {
        if (sub.fired) continue
        sub.fired = true
        sub.handle.dispose()
      }
      sub.delivered++
      stats.delivered++
      try {
        const result = sub.listener(payload, type)
        if (result !== undefined && isThenable(result))
          this.#watch(sub, stats, type, payload, result)
      } catch (error) {
        this.#failEmit(sub, stats, type, payload, error)
      }
    }
  }

  /** Tracks a listener's promise from `emit`; the delivery counts once it settles. */
  #watch(
    sub: Subscription,
    stats: TypeCounters,
    type: string,
    payload: unknown,
    result: PromiseLike<unknown>,
  ): void {
    sub.delivered--
    stats.delivered--
    // Promise.resolve adopts a malformed thenable (one whose then() throws)
    // as a rejection, instead of a throw here; a native promise passes as is.
    Promise.resolve(result).then(
      () => {
        sub.delivered++
        stats.delivered++
      },
      (error: unknown) => this.#fail(sub, stats, type, payload, error),
    )
  }

  // ----------------------------------------------------------------- publish

  publish<K extends keyof Events & string>(
    type: K,
    payload: Events[K],
    options?: PublishOptions,
  ): Promise<void> {
    try {
      if (this.#disposing) throw this.#disposedError('publish')
      if (options !== undefined) this.#validatePublishOptions(options, 'publish: options')
      const route = this.#routes[type] ?? this.#route(type, 'publish')
      this.#checkReject(route, type, options?.origin)
      const tracker = options?.awaitDelivery ? new Tracker() : undefined
      const waits = this.#enqueue(
        route,
        type,
        payload,
        tracker,
        undefined,
        this.#clock.now(),
        options?.origin,
      )
      return this.#finishPublish(waits, tracker, options, 'publish')
    } catch (error) {
      return Promise.reject(error)
    }
  }

  publishBatch(events: ReadonlyArray<BatchEvent<Events>>, options?: PublishOptions): Promise<void> {
    try {
      if (this.#disposing) throw this.#disposedError('publishBatch')
      if (!Array.isArray(events)) throw invalidInput('publishBatch: events', 'must be an array')
      if (options !== undefined) this.#validatePublishOptions(options, 'publishBatch: options')
      const routes: Route[] = new Array(events.length)
      // Validate every event and check every `reject` queue before delivering any.
      const room = new Map<Subscription, number>()
      for (let i = 0; i < events.length; i++) {
        const event = events[i]
        if (typeof event !== 'object' || event === null) {
          throw invalidInput(`publishBatch: events[${i}]`, 'must be an object { type, payload }')
        }
        const route =
          this.#routes[event.type] ?? this.#route(event.type, `publishBatch: events[${i}]`)
        routes[i] = route
        for (const sub of route.subs) {
          if (sub.overflow !== 'reject' || !sub.active) continue
          if (options?.origin !== undefined && sub.ignoreOrigin === options.origin) continue
          const used = (room.get(sub) ?? sub.depth) + 1
          room.set(sub, used)
          if (used > sub.queueSize) throw this.#limitError(sub, event.type)
        }
      }
      const tracker = options?.awaitDelivery ? new Tracker() : undefined
      let waits: Waits | undefined
      const now = this.#clock.now()
      for (let i = 0; i < events.length; i++) {
        const event = events[i]!
        waits = this.#enqueue(
          routes[i]!,
          event.type,
          event.payload,
          tracker,
          waits,
          now,
          options?.origin,
        )
      }
      return this.#finishPublish(waits, tracker, options, 'publishBatch')
    } catch (error) {
      return Promise.reject(error)
    }
  }

  #validatePublishOptions(options: PublishOptions, field: string): void {
    assertObject(options, field)
    validateDeadlineOptions(options, field)
    if (options.origin !== undefined) assertString(options.origin, `${field}.origin`)
    throwIfAborted(options.signal, `${this.#name}: publish`)
  }

  #checkReject(route: Route, type: string, origin: string | undefined): void {
    const subs = route.subs
    for (let i = 0; i < subs.length; i++) {
      const sub = subs[i]!
      if (origin !== undefined && sub.ignoreOrigin === origin) continue
      if (sub.overflow === 'reject' && sub.active && sub.full) throw this.#limitError(sub, type)
    }
  }

  #limitError(sub: Subscription, type: string): AideError {
    return new AideError(
      'E_LIMIT',
      `${this.#name}: queue of subscriber "${sub.name}" is full (${sub.queueSize}); "${type}" was not published. Retry later or raise queueSize.`,
      { details: { subscriber: sub.name, type, queueSize: sub.queueSize } },
    )
  }

  #enqueue(
    route: Route,
    type: string,
    payload: unknown,
    tracker: Tracker | undefined,
    waits: Waits | undefined,
    now: number,
    origin: string | undefined,
  ): Waits | undefined {
    route.stats.published++
    const subs = route.subs
    if (subs.length === 0) return waits
    const item: QueueItem = { type, payload, enqueuedAt: now, tracker, stats: route.stats }
    for (let i = 0; i < subs.length; i++) {
      const sub = subs[i]!
      if (!sub.active) continue
      if (origin !== undefined && sub.ignoreOrigin === origin) continue
      if (sub.once) {
        if (sub.fired) continue
        sub.fired = true
        sub.handle.dispose()
      }
      if (sub.full || sub.waiting.length > 0) {
        const policy = sub.overflow
        if (policy === 'drop-newest') {
          this.#dropped(sub, type)
          continue
        }
        if (policy === 'drop-oldest') {
          const oldest = sub.shift()
          if (oldest) {
            this.#dropped(sub, oldest.type)
            oldest.tracker?.settle()
            this.#settleOutstanding()
          }
        } else if (policy === 'wait') {
          tracker?.add()
          this.#outstanding++
          let waiter!: Waiter
          const promise = new Promise<void>((resolve, reject) => {
            waiter = { item, resolve, reject }
          })
          sub.waiting.push(waiter)
          waits ??= { promises: [], entries: [] }
          waits.promises.push(promise)
          waits.entries.push({ sub, waiter })
          continue
        } else {
          // `reject` queues were checked before anything was enqueued; only a
          // listener publishing re-entrantly can get here.
          throw this.#limitError(sub, type)
        }
      }
      tracker?.add()
      this.#outstanding++
      // A queue that already held items is already scheduled or being worked.
      if (sub.buffer.push(item) - sub.head === 1) this.#schedule(sub)
    }
    return waits
  }

  #finishPublish(
    waits: Waits | undefined,
    tracker: Tracker | undefined,
    options: PublishOptions | undefined,
    label: string,
  ): Promise<void> {
    tracker?.settle()
    if (!waits && !tracker) return RESOLVED
    const promises = waits?.promises
    const all = promises
      ? promises.length === 1
        ? promises[0]!
        : Promise.all(promises).then(() => undefined)
      : RESOLVED
    const done = tracker ? all.then(() => tracker.promise) : all
    if (!options || (options.signal === undefined && options.timeoutMs === undefined)) return done
    return withDeadline(
      (signal) => {
        signal.addEventListener('abort', () => this.#withdraw(waits), { once: true })
        return done
      },
      {
        signal: options.signal,
        timeoutMs: options.timeoutMs,
        clock: this.#clock,
        label: `${this.#name}: ${label}`,
      },
    )
  }

  /** Removes still-waiting items of a cancelled publish from their queues. */
  #withdraw(waits: Waits | undefined): void {
    if (!waits) return
    for (const { sub, waiter } of waits.entries) {
      const index = sub.waiting.indexOf(waiter)
      if (index < 0) continue
      sub.waiting.splice(index, 1)
      waiter.item.tracker?.settle()
      this.#settleOutstanding()
    }
  }

  // ---------------------------------------------------------------- delivery

  #schedule(sub: Subscription): void {
    if (sub.running >= sub.concurrency) return
    this.#scheduled.add(sub)
    if (!this.#flushQueued) {
      this.#flushQueued = true
      queueMicrotask(this.#flush)
    }
  }

  readonly #flush = (): void => {
    this.#flushQueued = false
    const subs = this.#scheduled
    this.#scheduled = new Set()
    for (const sub of subs) this.#pump(sub)
  }

  #pump(sub: Subscription): void {
    // One clock read serves every handler that completes synchronously in this turn.
    let now: number | undefined
    while (sub.running < sub.concurrency) {
      const item = sub.shift()
      if (!item) return
      if (sub.waiting.length > 0) this.#admitWaiter(sub)
      now = this.#run(sub, item, now)
    }
  }

  /** Moves the first waiting publish into the queue now that there is room. */
  #admitWaiter(sub: Subscription): void {
    const waiter = sub.waiting.shift()
    if (!waiter) return
    sub.buffer.push(waiter.item)
    waiter.resolve()
  }

  /** Runs one delivery; returns the clock time it read, if any, for reuse. */
  #run(sub: Subscription, item: QueueItem, now: number | undefined): number | undefined {
    sub.running++
    let result: unknown
    try {
      result = sub.listener(item.payload, item.type)
    } catch (error) {
      this.#fail(sub, item.stats, item.type, item.payload, error)
      now ??= this.#clock.now()
      this.#complete(sub, item, false, now)
      return now
    }
    if (result !== undefined && isThenable(result)) {
      // See #watch: a then() that throws becomes this delivery's failure.
      Promise.resolve(result).then(
        () => {
          this.#complete(sub, item, true, this.#clock.now())
          this.#pump(sub)
        },
        (error: unknown) => {
          this.#fail(sub, item.stats, item.type, item.payload, error)
          this.#complete(sub, item, false, this.#clock.now())
          this.#pump(sub)
        },
      )
      return now
    }
    now ??= this.#clock.now()
    this.#complete(sub, item, true, now)
    return now
  }

  #complete(sub: Subscription, item: QueueItem, ok: boolean, now: number): void {
    sub.running--
    if (ok) {
      sub.delivered++
      item.stats.delivered++
    }
    const latency = now - item.enqueuedAt
    sub.latencyCount++
    sub.latencyTotal += latency
    if (latency > sub.latencyMax) sub.latencyMax = latency
    item.tracker?.settle()
    this.#settleOutstanding()
  }

  #settleOutstanding(): void {
    if (--this.#outstanding === 0 && this.#idleWaiters.length > 0) {
      const waiters = this.#idleWaiters
      this.#idleWaiters = []
      for (const resolve of waiters) resolve()
    }
  }

  #dropped(sub: Subscription, type: string): void {
    sub.dropped++
    const stats = this.#typeStats.get(type)
    if (stats) stats.dropped++
    this.#dropCounter.inc(1, this.#labels)
  }

  // ------------------------------------------------------------------ errors

  #fail(
    sub: Subscription,
    stats: TypeCounters,
    type: string,
    payload: unknown,
    error: unknown,
  ): void {
    sub.failed++
    stats.failed++
    this.#failureCounter.inc(1, this.#labels)
    const wrapped =
      AideError.isInstance(error) && error.details.subscriber !== undefined
        ? error
        : wrapListenerError(
            `${this.#name}: subscriber "${sub.name}" failed on "${type}": ${error instanceof Error ? error.message : String(error)}`,
            error,
            { subscriber: sub.name, type },
          )
    this.#deadLetter({ type, payload, subscriber: sub.name, error: wrapped, at: this.#clock.now() })
  }

  #deadLetter(letter: DeadLetter): void {
    this.#errors++
    if (this.#deadLetterCapacity > 0) {
      if (this.#deadLetters.length >= this.#deadLetterCapacity) {
        this.#deadLetters.shift()
        this.#evicted++
      }
      this.#deadLetters.push(letter)
    }
    const listeners = this.#errorListeners
    if (listeners.length === 0) {
      this.#logger.error(
        { bus: this.#name, type: letter.type, subscriber: letter.subscriber, err: letter.error },
        letter.error.message,
      )
      return
    }
    for (const listener of listeners) {
      try {
        listener(letter)
      } catch (error) {
        this.#logger.error(
          { bus: this.#name, err: toAideError(error), original: letter.error },
          `${this.#name}: error listener threw while handling: ${letter.error.message}`,
        )
      }
    }
  }

  onError(listener: (deadLetter: DeadLetter) => void): DisposableHandle {
    assertFunction(listener, 'onError: listener')
    this.#errorListeners = [...this.#errorListeners, listener]
    return toDisposable(() => {
      this.#errorListeners = this.#errorListeners.filter((l) => l !== listener)
    })
  }

  deadLetters(): DeadLetter[] {
    return [...this.#deadLetters]
  }

  takeDeadLetters(): DeadLetter[] {
    const letters = this.#deadLetters
    this.#deadLetters = []
    return letters
  }

  // ----------------------------------------------------------------- waiting

  waitFor<K extends keyof Events & string>(
    type: K,
    options: WaitForOptions<Events[K]> = {},
  ): Promise<Events[K]> {
    try {
      this.#assertOpen('waitFor')
      assertObject(options, 'waitFor: options')
      validateDeadlineOptions(options, 'waitFor: options')
      const filter = options.filter
      if (filter !== undefined) assertFunction(filter, 'waitFor: options.filter')
      compilePattern(type, 'waitFor: type')
      const closed = this.#closed.signal
      const waiting = withDeadline<Events[K]>(
        (signal) =>
          new Promise<Events[K]>((resolve, reject) => {
            const handle = this.on(
              type as any,
              (payload: any, eventType: string) => {
                try {
                  if (filter && !filter(payload, eventType)) return
                } catch (error) {
                  handle.dispose()
                  reject(
                    invalidInput('waitFor: options.filter', `threw: ${String(error)}`, {
                      cause: String(error),
                    }),
                  )
                  return
                }
                handle.dispose()
                resolve(payload)
              },
              {
                name: `waitFor(${type})`,
                concurrency: Number.POSITIVE_INFINITY,
                queueSize: Number.POSITIVE_INFINITY,
              },
            )
            signal.addEventListener('abort', () => handle.dispose(), { once: true })
          }),
        {
          signal: options.signal,
          timeoutMs: options.timeoutMs,
          clock: this.#clock,
          label: `${this.#name}: waitFor("${type}")`,
        },
      )
      // Events queued before dispose may still satisfy it while the bus drains;
      // after that nothing can, so it rejects with E_DISPOSED (its listener is
      // removed when it settles).
      return withDeadline(() => waiting, { signal: closed, label: `${this.#name}: waitFor` })
    } catch (error) {
      return Promise.reject(error)
    }
  }

  drain(options: DeadlineOptions = {}): Promise<void> {
    try {
      assertObject(options, 'drain: options')
      validateDeadlineOptions(options, 'drain: options')
    } catch (error) {
      return Promise.reject(error)
    }
    if (this.#outstanding === 0) return RESOLVED
    let waiter: (() => void) | undefined
    const idle = new Promise<void>((resolve) => {
      waiter = resolve
      this.#idleWaiters.push(resolve)
    })
    if (options.signal === undefined && options.timeoutMs === undefined) return idle
    return withDeadline(
      (signal) => {
        signal.addEventListener('abort', () => {
          this.#idleWaiters = this.#idleWaiters.filter((w) => w !== waiter)
        })
        return idle
      },
      { ...options, clock: this.#clock, label: `${this.#name}: drain` },
    )
  }

  // ------------------------------------------------------------------- misc

  listenerCount(type?: string): number {
    if (type === undefined) return this.#subs.length
    assertString(type, 'listenerCount: type')
    return this.#subs.filter((sub) => sub.pattern.matches(type)).length
  }

  stats(): EventBusStats {
    for (const type in this.#routes) {
      const route = this.#routes[type]
      if (route) this.#fold(route)
    }
    const types: Record<string, EventTypeStats> = {}
    for (const [type, counters] of this.#typeStats) types[type] = { ...counters }
    return {
      subscribers: this.#subs.length,
      types,
      subscriberStats: this.#subs.map((sub) => ({
        name: sub.name,
        pattern: sub.pattern.source,
        delivered: sub.delivered,
        failed: sub.failed,
        dropped: sub.dropped,
        queueDepth: sub.depth,
        waiting: sub.waiting.length,
        running: sub.running,
        latency: {
          count: sub.latencyCount,
          meanMs: sub.latencyCount === 0 ? 0 : sub.latencyTotal / sub.latencyCount,
          maxMs: sub.latencyMax,
        },
      })),
      errors: this.#errors,
      deadLetters: {
        size: this.#deadLetters.length,
        capacity: this.#deadLetterCapacity,
        evicted: this.#evicted,
      },
      disposed: this.#disposing !== undefined,
    }
  }

  dispose(options: DisposeOptions = {}): Promise<void> {
    if (this.#disposing) return this.#disposing
    try {
      assertObject(options, 'dispose: options')
      validateDeadlineOptions(options, 'dispose: options')
      if (options.mode !== undefined)
        assertOneOf(options.mode, 'dispose: options.mode', ['drain', 'cancel'])
    } catch (error) {
      return Promise.reject(error)
    }
    this.#disposing = this.#shutdown(options)
    return this.#disposing
  }

  async #shutdown(options: DisposeOptions): Promise<void> {
    let failure: unknown
    if ((options.mode ?? 'drain') === 'drain') {
      try {
        await this.drain({ signal: options.signal, timeoutMs: options.timeoutMs })
      } catch (error) {
        failure = error
      }
    }
    this.#cancelQueued()
    this.#closed.abort(
      new AideError('E_DISPOSED', `${this.#name}: disposed while waitFor was waiting`, {
        details: { method: 'waitFor' },
      }),
    )
    for (const sub of this.#subs) sub.handle.dispose()
    this.#clearRoutes()
    if (failure) throw failure
  }

  /** Moves everything still queued to the dead-letter store with `E_CANCELLED`. */
  #cancelQueued(): void {
    for (const sub of this.#subs) {
      const cancelled: QueueItem[] = []
      for (let item = sub.shift(); item; item = sub.shift()) cancelled.push(item)
      for (const waiter of sub.waiting.splice(0)) {
        waiter.reject(this.#disposedError('publish'))
        cancelled.push(waiter.item)
      }
      for (const item of cancelled) {
        this.#dropped(sub, item.type)
        this.#deadLetter({
          type: item.type,
          payload: item.payload,
          subscriber: sub.name,
          error: new AideError(
            'E_CANCELLED',
            `${this.#name}: disposed before "${item.type}" reached "${sub.name}"`,
            {
              details: { subscriber: sub.name, type: item.type },
            },
          ),
          at: this.#clock.now(),
        })
        item.tracker?.settle()
        this.#settleOutstanding()
      }
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose()
  }

  #assertOpen(method: string): void {
    if (this.#disposing) throw this.#disposedError(method)
  }

  #disposedError(method: string): AideError {
    return new AideError('E_DISPOSED', `${this.#name}: ${method} called after dispose`, {
      details: { method },
    })
  }
}

/**
 * Creates a typed event bus. `Events` maps each event type (a dot-separated
 * routing key) to its payload type.
 *
 * @example
 * ```ts
 * type Events = { 'document.opened': { uri: string }; 'document.closed': { uri: string } }
 * const bus = createEventBus<Events>()
 * bus.on('document.*', (payload, type) => console.log(type, payload.uri))
 * bus.emit('document.opened', { uri: 'file:///a.ts' })
 * ```
 */
export function createEventBus<Events extends object = Record<string, unknown>>(
  options: EventBusOptions = {},
): EventBus<Events> {
  assertObject(options, 'createEventBus: options')
  if (options.name !== undefined) assertString(options.name, 'createEventBus: options.name')
  if (options.deadLetterCapacity !== undefined) {
    assertNumber(options.deadLetterCapacity, 'createEventBus: options.deadLetterCapacity', {
      min: 0,
      integer: true,
    })
  }
  if (options.clock !== undefined) {
    assertObject(options.clock, 'createEventBus: options.clock')
    assertFunction(options.clock.now, 'createEventBus: options.clock.now')
  }
  if (options.subscriberDefaults !== undefined) {
    const d = options.subscriberDefaults
    assertObject(d, 'createEventBus: options.subscriberDefaults')
    if (d.concurrency !== undefined) {
      assertNumber(d.concurrency, 'createEventBus: options.subscriberDefaults.concurrency', {
        min: 1,
        integer: true,
        allowInfinity: true,
      })
    }
    if (d.queueSize !== undefined) {
      assertNumber(d.queueSize, 'createEventBus: options.subscriberDefaults.queueSize', {
        min: 1,
        integer: true,
        allowInfinity: true,
      })
    }
    if (d.overflow !== undefined) {
      assertOneOf(
        d.overflow,
        'createEventBus: options.subscriberDefaults.overflow',
        OVERFLOW_POLICIES,
      )
    }
  }
  return new Bus<Events>(options)
}
