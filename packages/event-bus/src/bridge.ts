/**
 * Connects an in-process bus to a transport, so that the buses of several
 * processes behave as one for the bridged event types.
 *
 * - **Out.** Every bridged event emitted or published on the local bus is
 *   appended to the transport with a fresh event id and this node's name as
 *   its origin, in batches, in order. While the transport is down the bridge
 *   keeps the events (up to `maxPending`) and retries with the same ids.
 * - **In.** The bridge consumes the transport in its own consumer group and
 *   publishes every event from another node on the local bus with
 *   `awaitDelivery`. Only then does the transport acknowledge it, so an event
 *   is never lost between the two: delivery is at least once, and the bridge
 *   drops redeliveries it has already delivered by event id.
 * - **No echo.** Events the bridge brought in are published on the bus with
 *   the bridge's origin, which its own outgoing subscriptions ignore; events
 *   this node wrote come back from the transport with its name and are
 *   acknowledged without delivery.
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
  invalidInput,
  type Logger,
  noopLogger,
  sleep,
  systemClock,
  toAideError,
  validateDeadlineOptions,
  withDeadline,
} from '@aide/core'
import type { EventBus, WildcardPattern } from './bus.js'
import { type CompiledPattern, compilePattern } from './pattern.js'
import type {
  EventTransport,
  TransportConsumeOptions,
  TransportConsumer,
  TransportEvent,
} from './transport.js'

const LABEL = 'event-bus/bridge'

/** Options of {@link bridge}. */
export interface BridgeOptions {
  /**
   * Event types carried in both directions, as types or wildcard patterns
   * (`document.*`, `plugin.**`). Default `['**']`: every type.
   */
  types?: readonly string[]
  /**
   * This node's name, written as the origin of every event it sends; unique per
   * process. Default: a random UUID. Give a stable name (e.g. `indexer-1`) for
   * delivery across restarts: the node's consumer group then keeps what was
   * published while the process was down.
   */
  node?: string
  /** Consumer group of this node. Default `aide-bridge:<node>`. */
  group?: string
  /** Where this node's group starts when it is created: `new` (default) or `beginning`. */
  startFrom?: 'beginning' | 'new'
  /**
   * Extra options for the transport's `consume` (e.g. `claimIdleMs`,
   * `blockMs` of the Redis transport).
   */
  consume?: Record<string, unknown>
  /** Recently delivered event ids remembered to drop redeliveries (default 10,000). */
  dedupeWindow?: number
  /**
   * Outgoing events waiting to be written before further ones fail with
   * `E_LIMIT` (reported on the bus's error channel). Default 10,000.
   */
  maxPending?: number
  /** Outgoing events per transport write (default 100). */
  batchSize?: number
  /** Deadline of one transport write, in ms (default 5,000). A failed write is retried. */
  publishTimeoutMs?: number
  /**
   * Deadline for the local bus to take an incoming event, in ms (default: none).
   * On expiry the event is not acknowledged and comes back later.
   */
  deliveryTimeoutMs?: number
  /**
   * Checks an incoming event before delivery; throw to refuse it. A refused
   * event is not delivered and goes to the transport's dead letters at once.
   */
  validate?: (type: string, payload: unknown) => void
  /** Receives transport trouble and refused events. */
  logger?: Logger
  /** Clock for retry backoff. */
  clock?: Clock
}

/** Options of {@link EventBridge.dispose}. */
export interface BridgeDisposeOptions {
  /** How long to keep writing pending outgoing events before cancelling them, in ms (default 5,000). */
  timeoutMs?: number
}

/** Counters of a bridge. Plain data. */
export interface BridgeStats {
  /** This node's name. */
  node: string
  /** This node's consumer group. */
  group: string
  /** Local events written to the transport. */
  forwarded: number
  /** Local events that could not be written (refused by the serializer, over `maxPending`, or cancelled by dispose). */
  forwardFailed: number
  /** Failed transport writes that were retried. */
  retries: number
  /** Local events waiting to be written. */
  pendingOut: number
  /** Events from other nodes delivered on the local bus. */
  received: number
  /** Redeliveries dropped because their event id was already delivered. */
  duplicates: number
  /** Events of this node that came back from the transport (acknowledged, not delivered). */
  skippedOwn: number
  /** Events of types this bridge does not carry (acknowledged, not delivered). */
  skippedType: number
  /** Incoming events refused by `validate` or by the bus (bad type), sent to dead letters. */
  refused: number
  /** Whether the bridge has been disposed. */
  disposed: boolean
}

/** A running bridge between a bus and a transport. */
export interface EventBridge {
  /** This node's name (the origin of the events it sends). */
  readonly node: string
  /** This node's consumer group. */
  readonly group: string
  /** Resolves when every outgoing event accepted so far has been written to the transport. */
  flush(options?: DeadlineOptions): Promise<void>
  /** Counters. */
  stats(): BridgeStats
  /**
   * Stops the bridge: stops consuming (events not yet acknowledged stay
   * pending for this node's group), unsubscribes from the bus, keeps writing
   * pending outgoing events up to `timeoutMs`, then cancels the rest (each
   * reported on the bus's error channel). A bridge with a generated node name
   * deletes its consumer group. Idempotent. The bus and the transport stay open.
   */
  dispose(options?: BridgeDisposeOptions): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

interface Outgoing {
  type: string
  payload: unknown
  id: string
  resolve: () => void
  reject: (error: unknown) => void
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

function isInvalidInput(error: unknown): error is AideError {
  return AideError.isInstance(error) && error.code === 'E_INVALID_INPUT'
}

/**
 * Connects `bus` to `transport`: events of the bridged `types` published on
 * this bus reach the buses of every other bridged process, and theirs reach
 * this one. Resolves once this node's consumer group exists and consuming has
 * started.
 *
 * @example
 * ```ts
 * const transport = await createRedisTransport<Events>({ url, stream: 'aide:bus' })
 * const link = await bridge(bus, transport, { types: ['document.*'], node: 'indexer-1' })
 * bus.emit('document.saved', { uri }) // also delivered on the other processes' buses
 * await link.dispose()
 * ```
 */
export async function bridge<Events extends object>(
  bus: EventBus<Events>,
  transport: EventTransport<Events>,
  options: BridgeOptions = {},
  deadline: DeadlineOptions = {},
): Promise<EventBridge> {
  assertObject(bus, 'bridge: bus')
  assertFunction(bus.on, 'bridge: bus.on')
  assertFunction(bus.publish, 'bridge: bus.publish')
  assertObject(transport, 'bridge: transport')
  for (const method of ['publishBatch', 'publish', 'consume', 'deleteGroup'] as const)
    assertFunction(transport[method], `bridge: transport.${method}`)
  assertObject(options, 'bridge: options')
  validateDeadlineOptions(deadline, 'bridge: deadline')
  const types = options.types ?? ['**']
  if (!Array.isArray(types) || types.length === 0)
    throw invalidInput('bridge: options.types', 'must be a non-empty array of types or patterns')
  const patterns = types.map((type, i) => compilePattern(type, `bridge: options.types[${i}]`))
  if (options.node !== undefined)
    assertString(options.node, 'bridge: options.node', { maxLength: 200 })
  if (options.group !== undefined) assertString(options.group, 'bridge: options.group')
  if (options.startFrom !== undefined)
    assertOneOf(options.startFrom, 'bridge: options.startFrom', ['beginning', 'new'])
  if (options.consume !== undefined) assertObject(options.consume, 'bridge: options.consume')
  const count = (value: number | undefined, field: string, fallback: number) => {
    if (value === undefined) return fallback
    assertNumber(value, `bridge: options.${field}`, { min: 1, integer: true })
    return value
  }
  if (options.validate !== undefined) assertFunction(options.validate, 'bridge: options.validate')
  const settings: Settings = {
    patterns,
    node: options.node ?? globalThis.crypto.randomUUID(),
    generatedNode: options.node === undefined,
    group: '',
    startFrom: options.startFrom ?? 'new',
    consume: options.consume ?? {},
    dedupeWindow: count(options.dedupeWindow, 'dedupeWindow', 10_000),
    maxPending: count(options.maxPending, 'maxPending', 10_000),
    batchSize: count(options.batchSize, 'batchSize', 100),
    publishTimeoutMs: count(options.publishTimeoutMs, 'publishTimeoutMs', 5_000),
    deliveryTimeoutMs:
      options.deliveryTimeoutMs === undefined
        ? undefined
        : count(options.deliveryTimeoutMs, 'deliveryTimeoutMs', 0),
    validate: options.validate,
    logger: options.logger ?? noopLogger,
    clock: options.clock ?? systemClock,
  }
  settings.group = options.group ?? `aide-bridge:${settings.node}`
  const link = new Bridge<Events>(bus, transport, settings)
  await link.start(deadline)
  return link
}

interface Settings {
  patterns: CompiledPattern[]
  node: string
  generatedNode: boolean
  group: string
  startFrom: 'beginning' | 'new'
  consume: Record<string, unknown>
  dedupeWindow: number
  maxPending: number
  batchSize: number
  publishTimeoutMs: number
  deliveryTimeoutMs: number | undefined
  validate: ((type: string, payload: unknown) => void) | undefined
  logger: Logger
  clock: Clock
}

class Bridge<Events extends object> implements EventBridge {
  readonly node: string
  readonly group: string
  readonly #bus: EventBus<Events>
  readonly #transport: EventTransport<Events>
  readonly #settings: Settings
  /** The bus origin of events this bridge brought in; its own subscriptions ignore it. */
  readonly #origin: string
  readonly #handles: DisposableHandle[] = []
  readonly #outbox: Outgoing[] = []
  /** Per type: index of the first pattern matching it, or -1. */
  readonly #owner = new Map<string, number>()
  /** Recently delivered incoming event ids, oldest first. */
  readonly #seen = new Set<string>()
  readonly #stop = new AbortController()
  #consumer: TransportConsumer | undefined
  #flushing: Promise<void> | undefined
  #closed = false
  #disposing: Promise<void> | undefined
  readonly #stats = {
    forwarded: 0,
    forwardFailed: 0,
    retries: 0,
    received: 0,
    duplicates: 0,
    skippedOwn: 0,
    skippedType: 0,
    refused: 0,
  }

  constructor(bus: EventBus<Events>, transport: EventTransport<Events>, settings: Settings) {
    this.#bus = bus
    this.#transport = transport
    this.#settings = settings
    this.node = settings.node
    this.group = settings.group
    this.#origin = `${LABEL}:${settings.node}:${globalThis.crypto.randomUUID()}`
  }

  async start(deadline: DeadlineOptions): Promise<void> {
    const consumeOptions: TransportConsumeOptions<Events> = {
      ...this.#settings.consume,
      group: this.group,
      consumer: `${this.node}`,
      startFrom: this.#settings.startFrom,
      handler: (event, signal) => this.#receive(event, signal),
    }
    this.#consumer = await this.#transport.consume(consumeOptions, deadline)
    try {
      this.#settings.patterns.forEach((pattern, index) => {
        this.#handles.push(
          this.#bus.on(
            pattern.source as WildcardPattern,
            (payload: unknown, type: string) => {
              // A type matched by several patterns is sent by the first one only.
              if (this.#ownerOf(type) !== index) return undefined
              return this.#send(type, payload)
            },
            {
              name: `bridge(${this.node}) -> ${pattern.source}`,
              ignoreOrigin: this.#origin,
              concurrency: Number.POSITIVE_INFINITY,
              queueSize: Number.POSITIVE_INFINITY,
            },
          ),
        )
      })
    } catch (error) {
      for (const handle of this.#handles) handle.dispose()
      await this.#consumer.dispose()
      throw error
    }
  }

  #ownerOf(type: string): number {
    let owner = this.#owner.get(type)
    if (owner === undefined) {
      owner = this.#settings.patterns.findIndex((pattern) => pattern.matches(type))
      if (this.#owner.size >= 10_000) this.#owner.clear()
      this.#owner.set(type, owner)
    }
    return owner
  }

  // ---------------------------------------------------------------- outgoing

  #send(type: string, payload: unknown): Promise<void> {
    if (this.#closed) {
      this.#stats.forwardFailed++
      return Promise.reject(
        new AideError('E_DISPOSED', `${LABEL}: "${type}" arrived after the bridge was disposed`, {
          details: { type, node: this.node },
        }),
      )
    }
    if (this.#outbox.length >= this.#settings.maxPending) {
      this.#stats.forwardFailed++
      return Promise.reject(
        new AideError(
          'E_LIMIT',
          `${LABEL}: ${this.#outbox.length} events are already waiting for the transport; "${type}" was not forwarded. Check the transport, or raise maxPending.`,
          { details: { type, node: this.node, maxPending: this.#settings.maxPending } },
        ),
      )
    }
    return new Promise<void>((resolve, reject) => {
      this.#outbox.push({ type, payload, id: globalThis.crypto.randomUUID(), resolve, reject })
      this.#kick()
    })
  }

  #kick(): void {
    this.#flushing ??= this.#flushLoop().finally(() => {
      this.#flushing = undefined
      // Events that arrived after the loop's last look start a new one.
      if (this.#outbox.length > 0 && !this.#closed) this.#kick()
    })
  }

  /** Writes the outbox in order, in batches, retrying with backoff (same event ids) while the transport fails. */
  async #flushLoop(): Promise<void> {
    // Let the events of the current synchronous burst join the first batch.
    await Promise.resolve()
    let backoff = 50
    while (this.#outbox.length > 0 && !this.#stop.signal.aborted) {
      const batch = this.#outbox.slice(0, this.#settings.batchSize)
      let ok: boolean
      try {
        await this.#transport.publishBatch(
          batch.map((event) => ({
            type: event.type as keyof Events & string,
            payload: event.payload as Events[keyof Events],
            id: event.id,
            origin: this.node,
          })),
          { timeoutMs: this.#settings.publishTimeoutMs, signal: this.#stop.signal },
        )
        this.#outbox.splice(0, batch.length)
        this.#stats.forwarded += batch.length
        for (const event of batch) event.resolve()
        ok = true
      } catch (error) {
        if (this.#stop.signal.aborted) return
        // One payload the serializer refuses fails the whole batch: send one by
        // one, so that only the refused events fail.
        ok = isInvalidInput(error) ? await this.#sendEach(batch) : false
        if (!ok) {
          this.#stats.retries++
          this.#settings.logger.warn(
            { err: toAideError(error), node: this.node, pending: this.#outbox.length },
            `${LABEL}: writing ${batch.length} events failed, retrying in ${backoff} ms: ${errorMessage(error)}`,
          )
        }
      }
      if (ok) {
        backoff = 50
        continue
      }
      try {
        await sleep(backoff, { signal: this.#stop.signal, clock: this.#settings.clock })
      } catch {
        return
      }
      backoff = Math.min(backoff * 2, 2_000)
    }
  }

  /** Writes a batch one event at a time; false when the transport itself failed. */
  async #sendEach(batch: Outgoing[]): Promise<boolean> {
    for (const event of batch) {
      try {
        await this.#transport.publish(
          event.type as keyof Events & string,
          event.payload as Events[keyof Events & string],
          {
            id: event.id,
            origin: this.node,
            timeoutMs: this.#settings.publishTimeoutMs,
            signal: this.#stop.signal,
          },
        )
        this.#stats.forwarded++
        this.#outbox.shift()
        event.resolve()
      } catch (error) {
        if (!isInvalidInput(error)) return false
        this.#stats.forwardFailed++
        this.#outbox.shift()
        event.reject(error)
      }
    }
    return true
  }

  flush(options: DeadlineOptions = {}): Promise<void> {
    try {
      assertObject(options, 'flush: options')
      validateDeadlineOptions(options, 'flush: options')
    } catch (error) {
      return Promise.reject(error)
    }
    const idle = async () => {
      while (this.#flushing) await this.#flushing
    }
    if (options.signal === undefined && options.timeoutMs === undefined) return idle()
    return withDeadline(idle, {
      ...options,
      clock: this.#settings.clock,
      label: `${LABEL}: flush`,
    })
  }

  // ---------------------------------------------------------------- incoming

  #accepts(type: string): boolean {
    return this.#ownerOf(type) >= 0
  }

  async #receive(event: TransportEvent<Events>, signal: AbortSignal): Promise<void> {
    if (event.origin === this.node) {
      this.#stats.skippedOwn++
      return
    }
    if (!this.#accepts(event.type)) {
      this.#stats.skippedType++
      return
    }
    if (this.#seen.has(event.id)) {
      this.#stats.duplicates++
      return
    }
    const validate = this.#settings.validate
    if (validate) {
      try {
        validate(event.type, event.payload)
      } catch (error) {
        throw this.#refuse(event, errorMessage(error), error)
      }
    }
    try {
      await this.#bus.publish(event.type, event.payload as Events[keyof Events & string], {
        awaitDelivery: true,
        origin: this.#origin,
        signal,
        timeoutMs: this.#settings.deliveryTimeoutMs,
      })
    } catch (error) {
      // A type the bus refuses (a pattern, say) will never be deliverable.
      if (isInvalidInput(error)) throw this.#refuse(event, error.message, error)
      throw error
    }
    this.#remember(event.id)
    this.#stats.received++
  }

  #refuse(event: TransportEvent<Events>, reason: string, cause: unknown): AideError {
    this.#stats.refused++
    this.#settings.logger.warn(
      { node: this.node, event: event.id, type: event.type, origin: event.origin },
      `${LABEL}: refused "${event.type}" (${event.id}) from ${event.origin ?? 'an unknown node'}: ${reason}`,
    )
    return new AideError(
      'E_INVALID_INPUT',
      `${LABEL}: refused "${event.type}" (${event.id}): ${reason}`,
      { cause, details: { field: 'event', type: event.type, id: event.id } },
    )
  }

  #remember(id: string): void {
    this.#seen.add(id)
    if (this.#seen.size > this.#settings.dedupeWindow) {
      const oldest = this.#seen.values().next().value
      if (oldest !== undefined) this.#seen.delete(oldest)
    }
  }

  // -------------------------------------------------------------- lifecycle

  stats(): BridgeStats {
    return {
      node: this.node,
      group: this.group,
      ...this.#stats,
      pendingOut: this.#outbox.length,
      disposed: this.#disposing !== undefined,
    }
  }

  dispose(options: BridgeDisposeOptions = {}): Promise<void> {
    if (this.#disposing) return this.#disposing
    try {
      assertObject(options, 'dispose: options')
      if (options.timeoutMs !== undefined)
        assertNumber(options.timeoutMs, 'dispose: options.timeoutMs', { min: 0 })
    } catch (error) {
      return Promise.reject(error)
    }
    this.#disposing = this.#shutdown(options.timeoutMs ?? 5_000)
    return this.#disposing
  }

  async #shutdown(timeoutMs: number): Promise<void> {
    // Incoming first: what is not acknowledged stays pending for this node's group.
    await this.#consumer?.dispose()
    for (const handle of this.#handles) handle.dispose()
    if (this.#outbox.length > 0 && timeoutMs > 0) {
      try {
        await this.flush({ timeoutMs })
      } catch {
        // Cancelled below.
      }
    }
    this.#closed = true
    this.#stop.abort()
    await this.#flushing
    for (const event of this.#outbox.splice(0)) {
      this.#stats.forwardFailed++
      event.reject(
        new AideError(
          'E_CANCELLED',
          `${LABEL}: disposed before "${event.type}" (${event.id}) could be written to the transport`,
          { details: { type: event.type, id: event.id, node: this.node } },
        ),
      )
    }
    if (this.#settings.generatedNode) {
      try {
        await this.#transport.deleteGroup(this.group, { timeoutMs: 2_000 })
      } catch (error) {
        this.#settings.logger.warn(
          { err: toAideError(error), group: this.group },
          `${LABEL}: could not delete consumer group "${this.group}": ${errorMessage(error)}`,
        )
      }
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose()
  }
}
