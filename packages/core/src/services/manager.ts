/**
 * The lazy service manager: typed services with declared dependencies,
 * initialised on first use, exactly once, dependencies first; torn down in
 * reverse order of initialisation.
 */
import { timeoutError, withDeadline } from '../abort.js'
import type { Clock } from '../clock.js'
import { systemClock } from '../clock.js'
import { isDisposable } from '../disposable.js'
import { AideError, invalidInput, toAideError } from '../errors.js'
import type { EventSink } from '../interfaces.js'
import { assertClock, assertEventSink, assertLogger, guardEventSink } from '../sinks.js'
import { type Logger, noopLogger } from '../telemetry.js'
import { assertFunction, assertNumber, assertObject, assertString } from '../validate.js'
import { PrioritySemaphore } from './semaphore.js'
import { type TraceDocument, type TraceSpan, toTraceDocument } from './trace.js'

declare const serviceType: unique symbol

/** A typed service identifier. Create with {@link defineService}. */
export interface ServiceId<T> {
  /** Unique name of the service within a manager. */
  readonly name: string
  /** Phantom field carrying the service type; never set at run time. */
  readonly [serviceType]?: T
}

/** The service type behind a `ServiceId`. */
export type ServiceType<I> = I extends ServiceId<infer T> ? T : never

/** Resolved dependency values, in the order the dependencies were declared. */
export type ResolvedDeps<D extends readonly ServiceId<unknown>[]> = {
  -readonly [K in keyof D]: ServiceType<D[K]>
}

const NAME_PATTERN = /^[A-Za-z0-9_.:@/-]{1,200}$/

/**
 * Defines a typed service id. The name must be unique within a manager and may
 * use letters, digits and `_ . : @ / -`.
 *
 * ```ts
 * const Config = defineService<{ url: string }>('config')
 * ```
 */
export function defineService<T>(name: string): ServiceId<T> {
  assertString(name, 'name')
  if (!NAME_PATTERN.test(name)) {
    throw invalidInput(
      'name',
      `"${name}" may only use letters, digits and _ . : @ / - (1-200 characters)`,
    )
  }
  return Object.freeze({ name }) as ServiceId<T>
}

/** What a factory receives besides its dependencies. */
export interface FactoryContext {
  /** Aborts when the init timeout passes or the manager is disposed. */
  signal: AbortSignal
  /** The service being created. */
  name: string
  /** The chain of services that led to this initialisation, ending with this one. */
  chain: readonly string[]
}

/** How to create (and tear down) one service. */
export interface ServiceRegistration<T, D extends readonly ServiceId<unknown>[]> {
  /** Services this one needs, resolved before the factory runs. */
  deps?: D
  /** Creates the instance from its resolved dependencies. May be async. */
  factory: (deps: ResolvedDeps<D>, context: FactoryContext) => T | Promise<T>
  /**
   * Tears the instance down. Defaults to calling the instance's own
   * `dispose()` or `[Symbol.asyncDispose]()` when it has one.
   */
  dispose?: (instance: T) => void | Promise<void>
  /** Higher first in `start()`, `preload()` and when the init budget is contended. Default 0. */
  priority?: number
  /** Fail the initialisation with `E_TIMEOUT` after this many ms. Default: the manager's. */
  initTimeoutMs?: number
  /** Initialise in `start()` rather than on first use. Default false. */
  eager?: boolean
}

/** Life-cycle state of one service. */
export type ServiceState = 'registered' | 'initializing' | 'ready' | 'failed' | 'disposed'

/** Per-service figures in {@link ServiceManager.stats}. */
export interface ServiceStats {
  name: string
  state: ServiceState
  deps: string[]
  priority: number
  eager: boolean
  /** Completed initialisation attempts, successful or not. */
  attempts: number
  /** Time the factory took on the successful attempt (ms). */
  initMs: number | undefined
  /** Time spent waiting for dependencies and the init budget (ms). */
  waitMs: number | undefined
  /** Position in initialisation order (0 first), if ready. */
  initOrder: number | undefined
  /** The dependency chain from the first requester when it was initialised. */
  chain: string[] | undefined
  /** Message of the last failure, if the last attempt failed. */
  lastError: string | undefined
}

/** Figures for the whole manager. */
export interface ServiceManagerStats {
  registered: number
  ready: number
  initializing: number
  failed: number
  /** Initialisations holding a budget slot now. */
  activeInits: number
  /** Initialisations waiting for a budget slot. */
  queuedInits: number
  maxConcurrentInits: number
  disposed: boolean
  services: ServiceStats[]
}

/** The dependency graph. */
export interface ServiceGraph {
  nodes: Array<{
    name: string
    state: ServiceState
    deps: string[]
    priority: number
    eager: boolean
  }>
  /** `from` depends on `to`. */
  edges: Array<{ from: string; to: string }>
}

/** Events the manager emits through an {@link EventSink}. */
export interface ServiceManagerEvents {
  'service-init-start': { name: string; chain: string[] }
  'service-init-end': { name: string; durationMs: number }
  'service-init-error': { name: string; chain: string[]; error: AideError }
  'service-dispose': { name: string }
  'service-dispose-error': { name: string; error: unknown }
}

/** Options of {@link ServiceManager}. */
export interface ServiceManagerOptions {
  /** At most this many factories run at once. Default: unlimited. */
  maxConcurrentInits?: number
  /** Init timeout for services that set none. Default: none. */
  defaultInitTimeoutMs?: number
  /** Clock for timeouts and for the durations in stats and traces (default: real time). */
  clock?: Clock
  logger?: Logger
  events?: EventSink<ServiceManagerEvents>
}

const REGISTERED = 0
const INITIALIZING = 1
const READY = 2
const FAILED = 3
const DISPOSED = 4
const STATE_NAMES: readonly ServiceState[] = [
  'registered',
  'initializing',
  'ready',
  'failed',
  'disposed',
]

/** A request path as a linked list (cheap to extend; turned into names only when needed). */
interface ChainLink {
  name: string
  parent: ChainLink | undefined
}

function chainNames(link: ChainLink | undefined): string[] {
  const names: string[] = []
  for (let at = link; at; at = at.parent) names.push(at.name)
  return names.reverse()
}

interface Entry {
  name: string
  deps: Entry[] | undefined
  depNames: string[]
  factory: (deps: any, context: FactoryContext) => unknown
  disposer: ((instance: any) => void | Promise<void>) | undefined
  priority: number
  initTimeoutMs: number | undefined
  eager: boolean
  state: number
  value: unknown
  promise: Promise<unknown> | undefined
  controller: AbortController | undefined
  verified: boolean
  attempts: number
  initMs: number | undefined
  waitMs: number | undefined
  initOrder: number | undefined
  chain: ChainLink | undefined
  lastError: AideError | undefined
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === 'function'
  )
}

async function defaultDispose(instance: unknown): Promise<void> {
  if (isDisposable(instance)) await instance.dispose()
  else if (
    typeof instance === 'object' &&
    instance !== null &&
    typeof (instance as AsyncDisposable)[Symbol.asyncDispose] === 'function'
  ) {
    await (instance as AsyncDisposable)[Symbol.asyncDispose]()
  }
}

/**
 * Holds service registrations and their instances.
 *
 * - `get(id)` initialises on first use, exactly once; concurrent callers share
 *   the one initialisation; dependencies first. Synchronous factories whose
 *   dependencies are ready run without a promise round trip.
 * - A failed or timed-out initialisation rejects every waiter with an error
 *   naming the service and its dependency chain; a later `get` tries again.
 * - `dispose()` tears services down in reverse order of initialisation.
 */
export class ServiceManager implements AsyncDisposable {
  readonly #entries = new Map<string, Entry>()
  readonly #ready: Entry[] = []
  readonly #spans: Array<TraceSpan & { chain?: ChainLink; deps?: string[] }> = []
  readonly #budget: PrioritySemaphore | undefined
  readonly #defaultTimeout: number | undefined
  readonly #clock: Clock
  readonly #now: () => number
  readonly #origin: number
  readonly #logger: Logger
  readonly #events: EventSink<ServiceManagerEvents>
  #inflight = new Set<Promise<unknown>>()
  #disposing: Promise<void> | undefined

  constructor(options: ServiceManagerOptions = {}) {
    assertObject(options, 'options')
    if (options.maxConcurrentInits !== undefined) {
      assertNumber(options.maxConcurrentInits, 'options.maxConcurrentInits', {
        min: 1,
        integer: true,
      })
      this.#budget = new PrioritySemaphore(options.maxConcurrentInits)
    }
    if (options.defaultInitTimeoutMs !== undefined) {
      assertNumber(options.defaultInitTimeoutMs, 'options.defaultInitTimeoutMs', { min: 0 })
    }
    if (options.clock !== undefined) assertClock(options.clock, 'options.clock')
    if (options.logger !== undefined) assertLogger(options.logger, 'options.logger')
    if (options.events !== undefined) assertEventSink(options.events, 'options.events')
    this.#defaultTimeout = options.defaultInitTimeoutMs
    this.#clock = options.clock ?? systemClock
    const clock = options.clock
    this.#now = clock ? () => clock.now() : () => performance.now()
    this.#origin = this.#now()
    this.#logger = options.logger ?? noopLogger
    // A sink that throws must not wedge an initialisation half-way through.
    this.#events = guardEventSink(options.events, this.#logger, 'services')
  }

  /**
   * Registers a service. Dependencies may be registered later, but must exist
   * by the time the service is first requested.
   *
   * @throws `E_ALREADY_EXISTS` for a duplicate name, `E_INVALID_INPUT` for a
   *   malformed registration, `E_DISPOSED` after `dispose()`.
   */
  register<T, const D extends readonly ServiceId<unknown>[] = []>(
    id: ServiceId<T>,
    registration: ServiceRegistration<T, D>,
  ): this {
    this.#assertOpen('register')
    assertObject(id, 'id')
    assertString(id.name, 'id.name')
    assertObject(registration, 'registration')
    assertFunction(registration.factory, 'registration.factory')
    if (registration.dispose !== undefined)
      assertFunction(registration.dispose, 'registration.dispose')
    if (registration.priority !== undefined)
      assertNumber(registration.priority, 'registration.priority')
    if (registration.initTimeoutMs !== undefined) {
      assertNumber(registration.initTimeoutMs, 'registration.initTimeoutMs', { min: 0 })
    }
    const deps = registration.deps ?? []
    if (!Array.isArray(deps))
      throw invalidInput('registration.deps', 'must be an array of service ids')
    const depNames = deps.map((dep, index) => {
      assertObject(dep, `registration.deps[${index}]`)
      assertString(dep.name, `registration.deps[${index}].name`)
      return dep.name
    })
    if (this.#entries.has(id.name)) {
      throw new AideError('E_ALREADY_EXISTS', `services: "${id.name}" is already registered`, {
        details: { service: id.name },
      })
    }
    this.#entries.set(id.name, {
      name: id.name,
      deps: undefined,
      depNames,
      factory: registration.factory as Entry['factory'],
      disposer: registration.dispose as Entry['disposer'],
      priority: registration.priority ?? 0,
      initTimeoutMs: registration.initTimeoutMs ?? this.#defaultTimeout,
      eager: registration.eager ?? false,
      state: REGISTERED,
      value: undefined,
      promise: undefined,
      controller: undefined,
      verified: false,
      attempts: 0,
      initMs: undefined,
      waitMs: undefined,
      initOrder: undefined,
      chain: undefined,
      lastError: undefined,
    })
    return this
  }

  /** Registers an already-built instance (state `ready`, not disposed by the manager unless `dispose` is given). */
  registerValue<T>(
    id: ServiceId<T>,
    value: T,
    options: { dispose?: (instance: T) => void | Promise<void> } = {},
  ): this {
    this.register(id, { factory: () => value, dispose: options.dispose ?? (() => undefined) })
    return this
  }

  /** True when `id` is registered. */
  has(id: ServiceId<unknown>): boolean {
    return this.#entries.has(id.name)
  }

  /** The state of one service. @throws `E_NOT_FOUND` if it is not registered. */
  state(id: ServiceId<unknown>): ServiceState {
    return STATE_NAMES[this.#lookup(id.name, []).state]!
  }

  /**
   * The service instance, initialising it (and its dependencies) on first use.
   * Concurrent callers share one initialisation.
   *
   * @throws `E_NOT_FOUND` (unknown service or dependency), `E_CYCLE` (the whole
   *   path is named), `E_INIT` / `E_TIMEOUT` (naming the failing service and its
   *   chain), `E_DISPOSED` (after `dispose()`).
   */
  get<T>(id: ServiceId<T>): Promise<T> {
    const entry = this.#entries.get(id?.name)
    if (entry !== undefined && entry.state === READY) {
      return (entry.promise ??= Promise.resolve(entry.value)) as Promise<T>
    }
    try {
      return this.#getCold(id) as Promise<T>
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * The instance of a service that is already initialised, synchronously.
   * @throws `E_INVALID_STATE` when it is not ready yet (use `get`).
   */
  getSync<T>(id: ServiceId<T>): T {
    const entry = this.#entries.get(id?.name)
    if (entry !== undefined && entry.state === READY) return entry.value as T
    this.#assertOpen('getSync')
    const known = this.#lookup(id?.name, [])
    throw new AideError(
      'E_INVALID_STATE',
      `services: "${known.name}" is ${STATE_NAMES[known.state]}, not ready; await get() first`,
      { details: { service: known.name, state: STATE_NAMES[known.state] } },
    )
  }

  /** Initialises the given services (and their dependencies), highest priority first. */
  async preload(ids: Iterable<ServiceId<unknown>>): Promise<void> {
    this.#assertOpen('preload')
    const entries = [...ids].map((id, index) => {
      assertObject(id, `ids[${index}]`)
      return this.#lookup(id.name, [])
    })
    entries.sort((a, b) => b.priority - a.priority)
    for (const entry of entries) this.#verify(entry, [entry.name])
    const results = await Promise.allSettled(
      entries.map((entry) => this.#getCold({ name: entry.name })),
    )
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed) throw failed.reason
  }

  /** Initialises every eager service, highest priority first. */
  start(): Promise<void> {
    return this.preload(
      [...this.#entries.values()].filter((e) => e.eager).map((e) => ({ name: e.name })),
    )
  }

  /** Checks the whole graph: every dependency registered, no cycle. Throws the first problem found. */
  validate(): void {
    for (const entry of this.#entries.values()) this.#verify(entry, [entry.name])
  }

  /** Per-service state, timing and dependency chain. */
  stats(): ServiceManagerStats {
    const services: ServiceStats[] = []
    let ready = 0
    let initializing = 0
    let failed = 0
    for (const entry of this.#entries.values()) {
      if (entry.state === READY) ready++
      else if (entry.state === INITIALIZING) initializing++
      else if (entry.state === FAILED) failed++
      services.push({
        name: entry.name,
        state: STATE_NAMES[entry.state]!,
        deps: [...entry.depNames],
        priority: entry.priority,
        eager: entry.eager,
        attempts: entry.attempts,
        initMs: entry.initMs,
        waitMs: entry.waitMs,
        initOrder: entry.initOrder,
        chain: entry.chain ? chainNames(entry.chain) : undefined,
        lastError: entry.lastError?.message,
      })
    }
    return {
      registered: this.#entries.size,
      ready,
      initializing,
      failed,
      activeInits: this.#budget?.inUse ?? initializing,
      queuedInits: this.#budget?.waiting ?? 0,
      maxConcurrentInits: this.#budget?.capacity ?? Number.POSITIVE_INFINITY,
      disposed: this.#disposing !== undefined,
      services,
    }
  }

  /** The dependency graph: nodes with state, and `from -> to` edges. */
  graph(): ServiceGraph {
    const nodes: ServiceGraph['nodes'] = []
    const edges: ServiceGraph['edges'] = []
    for (const entry of this.#entries.values()) {
      nodes.push({
        name: entry.name,
        state: STATE_NAMES[entry.state]!,
        deps: [...entry.depNames],
        priority: entry.priority,
        eager: entry.eager,
      })
      for (const to of entry.depNames) edges.push({ from: entry.name, to })
    }
    return { nodes, edges }
  }

  /**
   * The start-up trace in Chrome trace-event format: one span per factory run
   * (`service.init`) and per wait for dependencies or budget (`service.wait`).
   * Save `JSON.stringify(manager.trace())` and open it in Perfetto.
   */
  trace(): TraceDocument {
    const document = toTraceDocument(
      this.#spans.map(({ chain, deps, ...span }) =>
        chain ? { ...span, args: { chain: chainNames(chain).join(' -> '), deps } } : span,
      ),
    )
    document.otherData = { generator: '@aide/core ServiceManager', services: this.#entries.size }
    return document
  }

  /**
   * Tears down every initialised service in reverse order of initialisation,
   * awaiting async disposers. In-flight initialisations are aborted first.
   * Continues past failing disposers and rejects with one `E_DISPOSE` error
   * naming them all. Idempotent.
   */
  dispose(): Promise<void> {
    this.#disposing ??= this.#disposeAll()
    return this.#disposing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose()
  }

  async #disposeAll(): Promise<void> {
    for (const entry of this.#entries.values()) {
      entry.controller?.abort(
        new AideError(
          'E_DISPOSED',
          `services: manager disposed while "${entry.name}" was initialising`,
        ),
      )
    }
    await Promise.allSettled([...this.#inflight])
    const failures: Array<{ service: string; error: unknown }> = []
    for (let i = this.#ready.length - 1; i >= 0; i--) {
      const entry = this.#ready[i]!
      if (entry.state !== READY) continue
      entry.state = DISPOSED
      try {
        await (entry.disposer ?? defaultDispose)(entry.value)
        this.#events.emit('service-dispose', { name: entry.name })
      } catch (error) {
        failures.push({ service: entry.name, error })
        this.#logger.error({ service: entry.name, err: error }, 'services: disposer failed')
        this.#events.emit('service-dispose-error', { name: entry.name, error })
      }
      entry.value = undefined
      entry.promise = undefined
    }
    for (const entry of this.#entries.values()) entry.state = DISPOSED
    this.#ready.length = 0
    if (failures.length > 0) {
      throw new AideError(
        'E_DISPOSE',
        `services: ${failures.length} disposer(s) failed: ${failures
          .map(
            (f) => `${f.service} (${f.error instanceof Error ? f.error.message : String(f.error)})`,
          )
          .join(', ')}`,
        {
          cause:
            failures.length === 1
              ? failures[0]!.error
              : new AggregateError(failures.map((f) => f.error)),
          details: { services: failures.map((f) => f.service) },
        },
      )
    }
  }

  #assertOpen(operation: string): void {
    if (this.#disposing) {
      throw new AideError('E_DISPOSED', `services: ${operation}() called after dispose()`, {
        details: { operation },
      })
    }
  }

  #lookup(name: string, chain: readonly string[]): Entry {
    const entry = this.#entries.get(name)
    if (entry) return entry
    if (typeof name !== 'string')
      throw invalidInput('id', 'must be a service id from defineService()')
    const parent = chain.length > 0 ? chain[chain.length - 1] : undefined
    throw new AideError(
      'E_NOT_FOUND',
      parent
        ? `services: "${name}" is not registered (required by ${[...chain].join(' -> ')})`
        : `services: "${name}" is not registered`,
      { details: { service: name, chain: [...chain, name] } },
    )
  }

  /** Checks a cold service's closure once: every dependency exists and there is no cycle. */
  #verify(root: Entry, rootChain: string[]): void {
    if (root.verified) return
    // Iterative DFS with an explicit path, so a cycle is reported in full.
    const onPath = new Set<Entry>()
    const path: string[] = rootChain.slice(0, -1)
    const visit = (entry: Entry) => {
      if (entry.verified) return
      if (onPath.has(entry)) {
        const start = path.indexOf(entry.name)
        const cycle = [...path.slice(start), entry.name]
        throw new AideError('E_CYCLE', `services: dependency cycle ${cycle.join(' -> ')}`, {
          details: { cycle },
        })
      }
      onPath.add(entry)
      path.push(entry.name)
      if (!entry.deps) entry.deps = entry.depNames.map((name) => this.#lookup(name, path))
      for (const dep of entry.deps) visit(dep)
      path.pop()
      onPath.delete(entry)
      entry.verified = true
    }
    visit(root)
  }

  #getCold(id: ServiceId<unknown>): Promise<unknown> {
    this.#assertOpen('get')
    if (typeof id !== 'object' || id === null)
      throw invalidInput('id', 'must be a service id from defineService()')
    const entry = this.#lookup(id.name, [])
    this.#verify(entry, [entry.name])
    this.#begin(entry, { name: entry.name, parent: undefined })
    if (entry.state === READY) return (entry.promise ??= Promise.resolve(entry.value))
    if (entry.state === FAILED) return Promise.reject(entry.lastError)
    return entry.promise!
  }

  /**
   * Starts the initialisation of `entry` unless it is ready or under way.
   * Runs synchronously to completion when every dependency is ready, the
   * factory is synchronous, a budget slot is free and no timeout applies.
   */
  #begin(entry: Entry, chain: ChainLink): void {
    if (entry.state === READY || entry.state === INITIALIZING) return
    entry.state = INITIALIZING
    entry.chain = chain
    entry.lastError = undefined
    const deps = entry.deps!
    let allReady = true
    for (const dep of deps) {
      this.#begin(dep, { name: dep.name, parent: chain })
      if (dep.state === FAILED) {
        this.#fail(entry, dep.lastError!, chain, false)
        return
      }
      if (dep.state !== READY) allReady = false
    }
    const waitStart = this.#now()
    if (
      allReady &&
      entry.initTimeoutMs === undefined &&
      (!this.#budget || this.#budget.tryAcquire())
    ) {
      let result: unknown
      try {
        result = this.#runFactory(entry, deps, chain, waitStart, true)
      } catch {
        // #runFactory has already marked the entry failed; callers read entry.lastError.
        return
      }
      // An async factory: wait for it like any other initialisation.
      if (entry.state === INITIALIZING) this.#track(entry, result as Promise<unknown>)
      return
    }
    this.#track(entry, this.#initAsync(entry, deps, chain, waitStart))
  }

  #track(entry: Entry, pending: Promise<unknown>): void {
    entry.promise = pending
    this.#inflight.add(pending)
    const forget = () => this.#inflight.delete(pending)
    pending.then(forget, forget)
  }

  async #initAsync(
    entry: Entry,
    deps: Entry[],
    chain: ChainLink,
    waitStart: number,
  ): Promise<unknown> {
    for (const dep of deps) {
      if (dep.state === INITIALIZING) {
        try {
          await dep.promise
        } catch {
          // Reported below from the dependency's own state.
        }
      }
      if (dep.state !== READY) {
        const reason =
          dep.lastError ??
          new AideError(
            'E_INIT',
            `services: dependency "${dep.name}" of "${entry.name}" is ${STATE_NAMES[dep.state]}`,
          )
        throw this.#fail(entry, reason, chain, false)
      }
    }
    if (this.#disposing) {
      throw this.#fail(
        entry,
        new AideError('E_DISPOSED', `services: disposed before "${entry.name}" initialised`),
        chain,
        false,
      )
    }
    let slotHeld = false
    if (this.#budget) {
      await this.#budget.acquire(entry.priority)
      slotHeld = true
      // Dispose may have begun while this waited for a slot: it aborted only the
      // initialisations that had started, so this one must not start now.
      if (this.#disposing) {
        this.#budget.release()
        throw this.#fail(
          entry,
          new AideError('E_DISPOSED', `services: disposed before "${entry.name}" initialised`),
          chain,
          false,
        )
      }
    }
    try {
      return await this.#runFactory(entry, deps, chain, waitStart, slotHeld)
    } catch (error) {
      throw entry.lastError ?? error
    }
  }

  /** Runs the factory; releases the budget slot (if held) when it settles. */
  #runFactory(
    entry: Entry,
    deps: Entry[],
    chain: ChainLink,
    waitStart: number,
    slotHeld: boolean,
  ): unknown {
    const values = deps.map((dep) => dep.value)
    // Created only when the factory reads its signal or the initialisation goes async:
    // most synchronous factories never need one.
    let lazyController: AbortController | undefined
    const getController = () => {
      lazyController ??= new AbortController()
      return lazyController
    }
    const start = this.#now()
    entry.waitMs = start - waitStart
    if (entry.waitMs > 0) {
      this.#spans.push({
        name: entry.name,
        category: 'service.wait',
        startMs: waitStart - this.#origin,
        endMs: start - this.#origin,
      })
    }
    entry.attempts++
    this.#events.emit('service-init-start', { name: entry.name, chain: chainNames(chain) })
    const context: FactoryContext = {
      get signal() {
        return getController().signal
      },
      name: entry.name,
      get chain() {
        return chainNames(chain)
      },
    }
    const release = () => {
      entry.controller = undefined
      if (slotHeld && this.#budget) this.#budget.release()
      slotHeld = false
    }
    let result: unknown
    try {
      result = entry.factory(values, context)
    } catch (error) {
      release()
      throw this.#fail(entry, error, chain, true)
    }
    if (!isThenable(result) && entry.initTimeoutMs === undefined) {
      release()
      this.#succeed(entry, result, start, chain)
      return result
    }
    const controller = getController()
    entry.controller = controller
    const timeoutMs = entry.initTimeoutMs
    const settled = withDeadline(() => result as PromiseLike<unknown>, {
      signal: controller.signal,
      clock: this.#clock,
      label: `services: "${entry.name}"`,
    })
    const guarded =
      timeoutMs === undefined
        ? settled
        : new Promise<unknown>((resolve, reject) => {
            const timer = this.#clock.setTimeout(() => {
              controller.abort(timeoutError(timeoutMs, `services: "${entry.name}" initialisation`))
            }, timeoutMs)
            settled.then(
              (value) => {
                this.#clock.clearTimer(timer)
                resolve(value)
              },
              (error: unknown) => {
                this.#clock.clearTimer(timer)
                reject(error)
              },
            )
          })
    const promise = guarded.then(
      (value) => {
        release()
        if (this.#disposing) {
          // Disposed while the factory ran: tear down what it built.
          void Promise.resolve((entry.disposer ?? defaultDispose)(value)).catch(() => undefined)
          throw this.#fail(
            entry,
            new AideError(
              'E_DISPOSED',
              `services: disposed while "${entry.name}" was initialising`,
            ),
            chain,
            false,
          )
        }
        this.#succeed(entry, value, start, chain)
        return value
      },
      (error: unknown) => {
        release()
        if (controller.signal.aborted) {
          // The factory was abandoned; if it still produces an instance, release it.
          Promise.resolve(result).then(
            (late) =>
              Promise.resolve((entry.disposer ?? defaultDispose)(late)).catch(() => undefined),
            () => undefined,
          )
        }
        throw this.#fail(entry, error, chain, true)
      },
    )
    return promise
  }

  #succeed(entry: Entry, value: unknown, start: number, chain: ChainLink): void {
    const end = this.#now()
    entry.value = value
    entry.state = READY
    entry.promise = undefined
    entry.initMs = end - start
    entry.initOrder = this.#ready.length
    this.#ready.push(entry)
    this.#spans.push({
      name: entry.name,
      category: 'service.init',
      startMs: start - this.#origin,
      endMs: end - this.#origin,
      chain,
      deps: entry.depNames,
    })
    this.#events.emit('service-init-end', { name: entry.name, durationMs: entry.initMs })
    this.#logger.debug({ service: entry.name, initMs: entry.initMs }, 'services: initialised')
  }

  /**
   * Marks `entry` failed. `own` is true when its own factory failed (the error
   * is wrapped to name it); false when a dependency failed (that error, which
   * already names the failing service, is passed on).
   */
  #fail(entry: Entry, error: unknown, link: ChainLink, own: boolean): AideError {
    const chain = chainNames(link)
    let failure: AideError
    if (!own) {
      failure = toAideError(error)
    } else if (
      AideError.isInstance(error) &&
      (error.code === 'E_TIMEOUT' || error.code === 'E_DISPOSED')
    ) {
      failure = new AideError(
        error.code,
        `services: "${entry.name}" ${error.code === 'E_TIMEOUT' ? `did not initialise within ${entry.initTimeoutMs} ms` : 'was disposed while initialising'} (chain: ${chain.join(' -> ')})`,
        { cause: error, details: { service: entry.name, chain } },
      )
    } else {
      const reason = error instanceof Error ? error.message : String(error)
      failure = new AideError(
        'E_INIT',
        `services: "${entry.name}" failed to initialise (chain: ${chain.join(' -> ')}): ${reason}`,
        { cause: error, details: { service: entry.name, chain } },
      )
    }
    if (entry.state !== DISPOSED) entry.state = FAILED
    entry.promise = undefined
    entry.lastError = failure
    if (own) {
      this.#events.emit('service-init-error', { name: entry.name, chain, error: failure })
      this.#logger.warn({ service: entry.name, chain, err: failure }, failure.message)
    }
    return failure
  }
}
