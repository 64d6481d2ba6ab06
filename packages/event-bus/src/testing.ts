/**
 * `@aide/event-bus/testing`: helpers for testing code that uses the bus.
 *
 * - {@link collect} records the events a pattern receives and waits for a
 *   number of them.
 * - {@link createMemoryTransport} is an in-memory transport with the same
 *   interface and delivery rules as the Redis one (consumer groups, ack after
 *   the handler resolved, redelivery with a delivery count, dead letters),
 *   plus switches to simulate an outage and to inject malformed entries. Use
 *   it to test {@link bridge} code, or your own consumers, without Redis.
 *
 * @packageDocumentation
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
  systemClock,
  throwIfAborted,
  validateDeadlineOptions,
  withDeadline,
} from '@aide/core'
import type { EventBus, SubscribeOptions, WildcardPattern } from './bus.js'
import { compilePattern } from './pattern.js'
import { jsonSerializer, type Serializer } from './serializer.js'
import type {
  EventTransport,
  PublishedEvent,
  TransportBatchEvent,
  TransportConsumeOptions,
  TransportConsumer,
  TransportEvent,
  TransportHandler,
  TransportPublishOptions,
} from './transport.js'
import { encodeBatch, encodeEvent } from './transport-encoding.js'

// ------------------------------------------------------------------- collect

/** One event recorded by {@link collect}. */
export interface CollectedEvent<Events extends object> {
  /** The event type. */
  type: keyof Events & string
  /** The payload as delivered. */
  payload: Events[keyof Events]
}

/** Records the events of one pattern. Dispose to unsubscribe. */
export interface EventCollector<Events extends object> extends DisposableHandle {
  /** The events received so far, oldest first. */
  readonly events: ReadonlyArray<CollectedEvent<Events>>
  /** The payloads received so far. */
  payloads(): Array<Events[keyof Events]>
  /** The types received so far. */
  types(): Array<keyof Events & string>
  /**
   * Resolves with the events once at least `count` have arrived. Rejects with
   * `E_TIMEOUT` after `timeoutMs` (default 5,000), naming what did arrive.
   */
  waitForCount(
    count: number,
    options?: DeadlineOptions,
  ): Promise<ReadonlyArray<CollectedEvent<Events>>>
  /** Forgets the events received so far. */
  clear(): void
}

/**
 * Subscribes to `pattern` (default `**`, every type) and records what arrives,
 * from `emit` and `publish` alike.
 *
 * @example
 * ```ts
 * const saved = collect(bus, 'document.*')
 * await service.save('file:///a.ts')
 * const [event] = await saved.waitForCount(1)
 * expect(event).toEqual({ type: 'document.saved', payload: { uri: 'file:///a.ts' } })
 * saved.dispose()
 * ```
 */
export function collect<Events extends object>(
  bus: EventBus<Events>,
  pattern = '**',
  options: Omit<SubscribeOptions, 'signal'> & { signal?: AbortSignal } = {},
): EventCollector<Events> {
  assertObject(bus, 'collect: bus')
  assertFunction(bus.on, 'collect: bus.on')
  compilePattern(pattern, 'collect: pattern')
  const events: Array<CollectedEvent<Events>> = []
  const waiters = new Set<() => void>()
  const handle = bus.on(
    pattern as WildcardPattern,
    (payload, type) => {
      events.push({ type, payload })
      for (const check of [...waiters]) check()
    },
    {
      name: `collect(${pattern})`,
      concurrency: Number.POSITIVE_INFINITY,
      queueSize: Number.POSITIVE_INFINITY,
      ...options,
    },
  )
  return {
    events,
    payloads: () => events.map((event) => event.payload),
    types: () => events.map((event) => event.type),
    clear: () => {
      events.length = 0
    },
    waitForCount(count, deadline = {}) {
      try {
        assertNumber(count, 'waitForCount: count', { min: 0, integer: true })
        assertObject(deadline, 'waitForCount: options')
        validateDeadlineOptions(deadline, 'waitForCount: options')
      } catch (error) {
        return Promise.reject(error)
      }
      if (events.length >= count) return Promise.resolve([...events])
      let check: (() => void) | undefined
      return withDeadline(
        () =>
          new Promise<ReadonlyArray<CollectedEvent<Events>>>((resolve) => {
            check = () => {
              if (events.length < count) return
              if (check) waiters.delete(check)
              resolve([...events])
            }
            waiters.add(check)
          }),
        {
          signal: deadline.signal,
          timeoutMs: deadline.timeoutMs ?? 5_000,
          label: `collect(${pattern}): waiting for ${count} events, got ${events.length} so far`,
        },
      ).finally(() => {
        if (check) waiters.delete(check)
      })
    },
    get disposed() {
      return handle.disposed
    },
    dispose: () => handle.dispose(),
    [Symbol.dispose]: () => handle.dispose(),
    [Symbol.asyncDispose]: () => handle[Symbol.asyncDispose](),
  }
}

// ---------------------------------------------------------- memory transport

/** Options of {@link createMemoryTransport}. */
export interface MemoryTransportOptions {
  /** Payload codec. Default: the strict JSON of the Redis transport, so bad payloads fail the same way. */
  serializer?: Serializer
  /** After this many deliveries an entry goes to the dead letters instead (default 5). */
  maxDeliveries?: number
  /** How long a failed entry waits before it is delivered again, in ms (default 10). */
  retryDelayMs?: number
  /** Clock for timestamps and retry timers. */
  clock?: Clock
}

/** An entry of the in-memory log. */
export interface MemoryEntry {
  /** Position-based id (`<n>-0`), like a Redis stream entry id. */
  entryId: string
  /** The event id, when the entry is well formed. */
  id: string | undefined
  /** The event type, when the entry is well formed. */
  type: string | undefined
  /** The serialised payload. */
  data: string
  /** The publishing node, when set. */
  origin: string | undefined
}

/** An entry moved to the dead letters, with the reason. */
export interface MemoryDeadLetter extends MemoryEntry {
  /** The group that gave up on it. */
  group: string
  /** Why. */
  reason: string
}

/** Counters of the in-memory transport. Plain data. */
export interface MemoryTransportStats {
  /** Entries appended. */
  published: number
  /** Entries acknowledged, over all groups. */
  acknowledged: number
  /** Deliveries that failed (handler threw, or the transport was down at ack time). */
  failed: number
  /** Entries moved to the dead letters. */
  deadLettered: number
  /** Running consumers. */
  consumers: number
  /** Whether the transport accepts calls (see {@link MemoryTransport.setAvailable}). */
  available: boolean
}

/** The in-memory transport: an {@link EventTransport} plus inspection and fault injection. */
export interface MemoryTransport<Events extends object = Record<string, unknown>>
  extends EventTransport<Events> {
  /** Every entry appended so far, oldest first. */
  entries(): MemoryEntry[]
  /** Entries given up on, oldest first. */
  deadLetters(): MemoryDeadLetter[]
  /** Entries of `group` delivered but not acknowledged yet. Rejects with `E_NOT_FOUND` for an unknown group. */
  pending(group: string): Promise<number>
  /** The names of the consumer groups. */
  groups(): string[]
  /**
   * Appends an entry as raw fields, bypassing validation: use it to test how
   * consumers cope with what another publisher may write (a `data` that is not
   * valid for the serializer, a missing type…). Returns the entry id.
   */
  appendRaw(fields: { id?: string; type?: string; data: string; origin?: string }): string
  /**
   * Simulates an outage (`false`) and recovery (`true`). While unavailable,
   * calls reject with `E_UNAVAILABLE`, nothing is delivered, and handlers that
   * finish cannot acknowledge: their entries are delivered again after recovery.
   */
  setAvailable(available: boolean): void
  /** Counters. */
  stats(): MemoryTransportStats
}

interface Entry {
  entryId: string
  id: string | undefined
  type: string | undefined
  data: string
  origin: string | undefined
  publishedAt: number
}

interface Pending {
  entry: Entry
  /** The consumer handling it now, or undefined when it waits for (re)delivery. */
  owner: MemoryConsumer<any> | undefined
  deliveryCount: number
  /** Clock time before which it is not delivered again. */
  retryAt: number
}

interface Group {
  name: string
  /** Index of the next entry never delivered to this group. */
  next: number
  /** Delivered, unacknowledged entries, in entry order. */
  pending: Map<string, Pending>
  consumers: Set<MemoryConsumer<any>>
}

const LABEL = 'event-bus/testing: memory transport'

/**
 * Creates an in-memory transport. One instance stands for the shared log: give
 * the same instance to the bridges of several buses to connect them.
 *
 * @example
 * ```ts
 * const transport = createMemoryTransport<Events>()
 * const a = await bridge(busA, transport, { types: ['document.*'] })
 * const b = await bridge(busB, transport, { types: ['document.*'] })
 * busA.emit('document.saved', { uri: 'file:///a.ts' }) // reaches busB
 * ```
 */
export function createMemoryTransport<Events extends object = Record<string, unknown>>(
  options: MemoryTransportOptions = {},
): MemoryTransport<Events> {
  assertObject(options, 'createMemoryTransport: options')
  if (options.serializer !== undefined) {
    assertObject(options.serializer, 'createMemoryTransport: options.serializer')
    assertFunction(
      options.serializer.serialize,
      'createMemoryTransport: options.serializer.serialize',
    )
    assertFunction(
      options.serializer.deserialize,
      'createMemoryTransport: options.serializer.deserialize',
    )
  }
  if (options.maxDeliveries !== undefined)
    assertNumber(options.maxDeliveries, 'createMemoryTransport: options.maxDeliveries', {
      min: 1,
      integer: true,
    })
  if (options.retryDelayMs !== undefined)
    assertNumber(options.retryDelayMs, 'createMemoryTransport: options.retryDelayMs', { min: 0 })
  return new MemoryTransportImpl<Events>(options)
}

class MemoryTransportImpl<Events extends object> implements MemoryTransport<Events> {
  readonly #serializer: Serializer
  readonly #maxDeliveries: number
  readonly #retryDelayMs: number
  readonly clock: Clock
  readonly #entries: Entry[] = []
  readonly #groups = new Map<string, Group>()
  readonly #deadLetters: MemoryDeadLetter[] = []
  #available = true
  #disposed = false
  #consumerSerial = 0
  readonly counters = { published: 0, acknowledged: 0, failed: 0, deadLettered: 0 }

  constructor(options: MemoryTransportOptions) {
    this.#serializer = options.serializer ?? jsonSerializer
    this.#maxDeliveries = options.maxDeliveries ?? 5
    this.#retryDelayMs = options.retryDelayMs ?? 10
    this.clock = options.clock ?? systemClock
  }

  get available(): boolean {
    return this.#available && !this.#disposed
  }

  #check(method: string, signal?: AbortSignal): void {
    if (this.#disposed) {
      throw new AideError('E_DISPOSED', `${LABEL}: ${method} called after dispose`, {
        details: { method },
      })
    }
    throwIfAborted(signal, `${LABEL}: ${method}`)
    if (!this.#available) {
      throw new AideError(
        'E_UNAVAILABLE',
        `${LABEL}: ${method} failed: the transport is unavailable (setAvailable(false))`,
        { details: { method } },
      )
    }
  }

  #encode(
    type: unknown,
    payload: unknown,
    id: unknown,
    origin: unknown,
    prefix: string,
  ): Omit<Entry, 'entryId'> {
    return {
      ...encodeEvent(this.#serializer, type, payload, id, origin, prefix),
      publishedAt: this.clock.now(),
    }
  }

  #append(fields: Omit<Entry, 'entryId'>): Entry {
    const entry: Entry = { entryId: `${this.#entries.length + 1}-0`, ...fields }
    this.#entries.push(entry)
    this.counters.published++
    this.#wakeAll()
    return entry
  }

  async publish<K extends keyof Events & string>(
    type: K,
    payload: Events[K],
    options: TransportPublishOptions = {},
  ): Promise<PublishedEvent> {
    assertObject(options, 'publish: options')
    validateDeadlineOptions(options, 'publish: options')
    const fields = this.#encode(type, payload, options.id, options.origin, 'publish: ')
    this.#check('publish', options.signal)
    const entry = this.#append(fields)
    return { id: entry.id!, entryId: entry.entryId }
  }

  async publishBatch(
    events: ReadonlyArray<TransportBatchEvent<Events>>,
    options: DeadlineOptions = {},
  ): Promise<PublishedEvent[]> {
    const encoded = encodeBatch(this.#serializer, events, options).map((event) => ({
      ...event,
      publishedAt: this.clock.now(),
    }))
    this.#check('publishBatch', options.signal)
    return encoded.map((fields) => {
      const entry = this.#append(fields)
      return { id: entry.id!, entryId: entry.entryId }
    })
  }

  appendRaw(fields: { id?: string; type?: string; data: string; origin?: string }): string {
    assertObject(fields, 'appendRaw: fields')
    assertString(fields.data, 'appendRaw: fields.data', { allowEmpty: true })
    this.#check('appendRaw')
    return this.#append({
      id: fields.id,
      type: fields.type,
      data: fields.data,
      origin: fields.origin,
      publishedAt: this.clock.now(),
    }).entryId
  }

  async consume(
    options: TransportConsumeOptions<Events>,
    deadline: DeadlineOptions = {},
  ): Promise<TransportConsumer> {
    const f = 'consume: options'
    assertObject(options, f)
    assertString(options.group, `${f}.group`)
    if (options.consumer !== undefined) assertString(options.consumer, `${f}.consumer`)
    assertFunction(options.handler, `${f}.handler`)
    if (options.startFrom !== undefined)
      assertOneOf(options.startFrom, `${f}.startFrom`, ['beginning', 'new'])
    if (options.concurrency !== undefined)
      assertNumber(options.concurrency, `${f}.concurrency`, { min: 1, integer: true })
    validateDeadlineOptions({ signal: options.signal }, f)
    validateDeadlineOptions(deadline, 'consume: deadline')
    this.#check('consume', deadline.signal)
    let group = this.#groups.get(options.group)
    if (!group) {
      group = {
        name: options.group,
        next: options.startFrom === 'new' ? this.#entries.length : 0,
        pending: new Map(),
        consumers: new Set(),
      }
      this.#groups.set(options.group, group)
    }
    const consumer = new MemoryConsumer<Events>(
      this,
      group,
      options.consumer ?? `memory-consumer-${++this.#consumerSerial}`,
      options.handler,
      options.concurrency ?? 1,
    )
    group.consumers.add(consumer)
    const signal = options.signal
    if (signal) {
      if (signal.aborted) void consumer.dispose()
      else signal.addEventListener('abort', () => void consumer.dispose(), { once: true })
    }
    consumer.wake()
    return consumer
  }

  async deleteGroup(group: string, options: DeadlineOptions = {}): Promise<boolean> {
    assertString(group, 'deleteGroup: group')
    validateDeadlineOptions(options, 'deleteGroup: options')
    this.#check('deleteGroup', options.signal)
    const found = this.#groups.get(group)
    if (!found) return false
    for (const consumer of found.consumers) void consumer.dispose()
    this.#groups.delete(group)
    return true
  }

  async pending(group: string): Promise<number> {
    assertString(group, 'pending: group')
    const found = this.#groups.get(group)
    if (!found) {
      throw new AideError('E_NOT_FOUND', `${LABEL}: group "${group}" does not exist`, {
        details: { group },
      })
    }
    return found.pending.size
  }

  groups(): string[] {
    return [...this.#groups.keys()]
  }

  entries(): MemoryEntry[] {
    return this.#entries.map(({ entryId, id, type, data, origin }) => ({
      entryId,
      id,
      type,
      data,
      origin,
    }))
  }

  deadLetters(): MemoryDeadLetter[] {
    return this.#deadLetters.map((letter) => ({ ...letter }))
  }

  setAvailable(available: boolean): void {
    if (typeof available !== 'boolean') {
      throw new AideError('E_INVALID_INPUT', 'setAvailable: available must be a boolean', {
        details: { field: 'setAvailable: available' },
      })
    }
    this.#available = available
    if (available) this.#wakeAll()
  }

  stats(): MemoryTransportStats {
    let consumers = 0
    for (const group of this.#groups.values()) consumers += group.consumers.size
    return { ...this.counters, consumers, available: this.available }
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return
    const consumers = [...this.#groups.values()].flatMap((group) => [...group.consumers])
    await Promise.all(consumers.map((consumer) => consumer.dispose()))
    this.#disposed = true
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose()
  }

  // ------------------------------------------------- used by MemoryConsumer

  #wakeAll(): void {
    for (const group of this.#groups.values())
      for (const consumer of group.consumers) consumer.wake()
  }

  /** Wakes a group's consumers after `ms`, for an entry waiting to be retried. */
  wakeLater(group: Group, ms: number): void {
    this.clock.setTimeout(() => {
      for (const consumer of group.consumers) consumer.wake()
    }, ms)
  }

  /** The next entry for `consumer`: a released or failed one due for retry first, then a new one. */
  take(group: Group, consumer: MemoryConsumer<any>): Pending | undefined {
    if (!this.available || !this.#groups.has(group.name)) return undefined
    const now = this.clock.now()
    let nextDue = Number.POSITIVE_INFINITY
    for (const pending of group.pending.values()) {
      if (pending.owner !== undefined) continue
      if (pending.retryAt <= now) {
        pending.owner = consumer
        pending.deliveryCount++
        return pending
      }
      if (pending.retryAt < nextDue) nextDue = pending.retryAt
    }
    if (group.next < this.#entries.length) {
      const entry = this.#entries[group.next++]!
      const pending: Pending = { entry, owner: consumer, deliveryCount: 1, retryAt: 0 }
      group.pending.set(entry.entryId, pending)
      return pending
    }
    // A retry timer can fire a little before the clock reaches the retry time
    // (timers and Date.now() round differently): look again when it is due.
    if (nextDue !== Number.POSITIVE_INFINITY) this.wakeLater(group, Math.max(1, nextDue - now))
    return undefined
  }

  /** Decodes an entry for a handler; a string says why it cannot be delivered. */
  decode(pending: Pending): TransportEvent<Events> | string {
    const { entry } = pending
    if (!entry.id || !entry.type) return 'malformed entry'
    if (pending.deliveryCount > this.#maxDeliveries)
      return `delivered ${pending.deliveryCount} times (max ${this.#maxDeliveries})`
    let payload: unknown
    try {
      payload = this.#serializer.deserialize(entry.data)
    } catch {
      return 'payload could not be deserialised'
    }
    return {
      id: entry.id,
      entryId: entry.entryId,
      type: entry.type as keyof Events & string,
      payload: payload as Events[keyof Events],
      publishedAt: entry.publishedAt,
      deliveryCount: pending.deliveryCount,
      origin: entry.origin,
    }
  }

  /** Acknowledges; false (the entry stays pending) when the transport is down. */
  ack(group: Group, pending: Pending): boolean {
    if (!this.available) return false
    group.pending.delete(pending.entry.entryId)
    this.counters.acknowledged++
    return true
  }

  /** Leaves a failed entry pending, to be delivered again after the retry delay. */
  release(group: Group, pending: Pending, failed: boolean): void {
    if (!group.pending.has(pending.entry.entryId)) return
    pending.owner = undefined
    if (failed) {
      this.counters.failed++
      pending.retryAt = this.clock.now() + this.#retryDelayMs
      this.wakeLater(group, this.#retryDelayMs)
    } else {
      pending.retryAt = 0
      for (const consumer of group.consumers) consumer.wake()
    }
  }

  deadLetter(group: Group, pending: Pending, reason: string): void {
    const { entryId, id, type, data, origin } = pending.entry
    this.#deadLetters.push({ entryId, id, type, data, origin, group: group.name, reason })
    group.pending.delete(entryId)
    this.counters.deadLettered++
  }
}

class MemoryConsumer<Events extends object> implements TransportConsumer {
  readonly #transport: MemoryTransportImpl<Events>
  readonly #group: Group
  readonly #handler: TransportHandler<Events>
  readonly #concurrency: number
  readonly #stop = new AbortController()
  readonly #running = new Set<Pending>()
  #scheduled = false
  #disposing: Promise<void> | undefined

  constructor(
    transport: MemoryTransportImpl<Events>,
    group: Group,
    readonly name: string,
    handler: TransportHandler<Events>,
    concurrency: number,
  ) {
    this.#transport = transport
    this.#group = group
    this.#handler = handler
    this.#concurrency = concurrency
  }

  /** Schedules a look for work (on a microtask, as a network transport is never synchronous). */
  wake(): void {
    if (this.#scheduled || this.#stop.signal.aborted) return
    this.#scheduled = true
    queueMicrotask(() => {
      this.#scheduled = false
      this.#pump()
    })
  }

  #pump(): void {
    while (!this.#stop.signal.aborted && this.#running.size < this.#concurrency) {
      const pending = this.#transport.take(this.#group, this)
      if (!pending) return
      this.#running.add(pending)
      void this.#deliver(pending).finally(() => {
        this.#running.delete(pending)
        this.wake()
      })
    }
  }

  async #deliver(pending: Pending): Promise<void> {
    const transport = this.#transport
    const event = transport.decode(pending)
    if (typeof event === 'string') {
      transport.deadLetter(this.#group, pending, event)
      return
    }
    try {
      await this.#handler(event, this.#stop.signal)
    } catch (error) {
      if (pending.owner !== this) return
      if (AideError.isInstance(error) && error.code === 'E_INVALID_INPUT' && !this.#stopped) {
        transport.deadLetter(this.#group, pending, `handler refused it: ${error.message}`)
        return
      }
      transport.release(this.#group, pending, !this.#stopped)
      return
    }
    // A consumer stopped mid-handler has released its entries to the group already.
    if (pending.owner !== this) return
    if (!transport.ack(this.#group, pending)) transport.release(this.#group, pending, true)
  }

  get #stopped(): boolean {
    return this.#stop.signal.aborted
  }

  dispose(): Promise<void> {
    this.#disposing ??= (async () => {
      this.#stop.abort(new AideError('E_CANCELLED', `${LABEL}: consumer "${this.name}" stopped`))
      this.#group.consumers.delete(this)
      // Like a consumer that died: its unacknowledged entries go back to the group.
      for (const pending of this.#running) this.#transport.release(this.#group, pending, false)
    })()
    return this.#disposing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose()
  }
}
