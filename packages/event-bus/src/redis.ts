/**
 * `@aide/event-bus/redis`: carries events between processes and machines over
 * Redis Streams with consumer groups.
 *
 * Delivery is at least once: an entry is acknowledged (XACK) only after its
 * handler succeeded; entries left pending by a consumer that died or failed are
 * reclaimed by another consumer of the group once idle (XAUTOCLAIM). Every
 * event carries an `id` chosen by the publisher, so handlers can de-duplicate
 * redeliveries and publishers can retry a publish whose outcome is unknown.
 *
 * `ioredis` is an optional peer dependency, imported only when a transport is created.
 *
 * @packageDocumentation
 */
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import {
  AideError,
  assertFunction,
  assertNumber,
  assertObject,
  assertOneOf,
  assertString,
  type Clock,
  type DeadlineOptions,
  invalidInput,
  type Logger,
  type Meter,
  noopLogger,
  noopMeter,
  sleep,
  systemClock,
  type TimerHandle,
  throwIfAborted,
  toAideError,
  validateDeadlineOptions,
  withDeadline,
} from '@aide/core'
import type { Redis, RedisOptions } from 'ioredis'
import { type EntryFields, jsonSerializer, loadRedis, parseFields } from './redis-support.js'
import type { Serializer } from './serializer.js'
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
import { type EncodedEvent, encodeBatch, encodeEvent } from './transport-encoding.js'

export type { Serializer } from './serializer.js'
export type {
  EventTransport,
  PublishedEvent,
  TransportBatchEvent,
  TransportConsumeOptions,
  TransportConsumer,
  TransportEvent,
  TransportHandler,
  TransportPublishOptions,
} from './transport.js'

/** Options of {@link createRedisTransport}. */
export interface RedisTransportOptions {
  /** Stream key the events go to, e.g. `aide:events`. */
  stream: string
  /** Redis URL (`redis://host:port/db`). Ignored when `client` is given. Default `redis://127.0.0.1:6379`. */
  url?: string
  /**
   * An ioredis client to use for commands. The transport does not close it;
   * consumers still open their own connection (a duplicate) for blocking reads.
   */
  client?: Redis
  /** Extra ioredis options for connections the transport opens. */
  redisOptions?: RedisOptions
  /** Approximate maximum stream length (`XADD MAXLEN ~`). 0 turns trimming off. Default 100,000. */
  maxLength?: number
  /** Payload codec. Default: strict JSON, rejecting what JSON would silently change. */
  serializer?: Serializer
  /** Clock for reclaim timers and backoff. */
  clock?: Clock
  /** Receives connection trouble and handler failures. */
  logger?: Logger
  /** Counts published, delivered, failed, reclaimed and dead-lettered entries. */
  meter?: Meter
}

/** Options of {@link RedisTransport.publish}. */
export interface RedisPublishOptions extends TransportPublishOptions {}

/** Options of {@link RedisTransport.consume}. */
export interface ConsumeOptions<Events extends object> extends TransportConsumeOptions<Events> {
  /** This consumer's name, unique within the group. Default `<hostname>-<pid>-<random>`. */
  consumer?: string
  /** Where a new group starts: `beginning` (default: every entry still in the stream) or `new`. */
  startFrom?: 'beginning' | 'new'
  /** Entries read per call (default 50). */
  batchSize?: number
  /** Handlers running at once (default 1: entries are handled in stream order). */
  concurrency?: number
  /** How long one read blocks waiting for entries, in ms (default 2,000). */
  blockMs?: number
  /** Entries pending longer than this (ms) are reclaimed from their consumer (default 30,000). */
  claimIdleMs?: number
  /** How often to look for entries to reclaim, in ms (default `claimIdleMs / 2`). */
  claimIntervalMs?: number
  /** After this many deliveries an entry goes to the dead-letter stream instead (default 5). */
  maxDeliveries?: number
  /** A handler taking longer than this (ms) fails that delivery (default: no limit). */
  handlerTimeoutMs?: number
}

/** Counters of one consumer. Plain data. */
export interface ConsumerStats {
  /** The consumer group. */
  group: string
  /** This consumer's name in the group. */
  consumer: string
  /** Entries handed to the handler. */
  received: number
  /** Entries acknowledged after the handler succeeded. */
  acknowledged: number
  /** Handler failures (the entry stays pending and is retried). */
  failed: number
  /** Entries this consumer took over from idle consumers. */
  reclaimed: number
  /** Entries moved to the dead-letter stream. */
  deadLettered: number
  /** Failed reads or acks (Redis unreachable, group lost…), each followed by a retry. */
  readErrors: number
  /** Times the consumer group had to be created again (e.g. Redis restarted without persistence). */
  groupRecreated: number
  /** Handlers running now. */
  inFlight: number
  /** Whether the consumer has stopped. */
  stopped: boolean
}

/** A running consumer. Dispose to stop it; entries it had not acknowledged stay pending for others. */
export interface RedisConsumer extends TransportConsumer {
  /** Counters. */
  stats(): ConsumerStats
  /** Stops reading, waits for running handlers to settle, closes its connection. Idempotent. */
  dispose(): Promise<void>
}

/** Counters of the transport. Plain data. */
export interface RedisTransportStats {
  /** The stream key. */
  stream: string
  /** Events published. */
  published: number
  /** Publishes that failed (invalid payloads excluded). */
  publishFailed: number
  /** Running consumers. */
  consumers: ConsumerStats[]
}

/** The Redis Streams transport. */
export interface RedisTransport<Events extends object = Record<string, unknown>>
  extends EventTransport<Events> {
  /** The stream key. */
  readonly stream: string
  /** The dead-letter stream key (`<stream>:dead`). */
  readonly deadLetterStream: string
  /**
   * Appends an event to the stream. Rejects with `E_INVALID_INPUT` for a
   * payload the serializer cannot carry, `E_TIMEOUT` / `E_CANCELLED` per the
   * options, and `E_UNAVAILABLE` when Redis fails.
   */
  publish<K extends keyof Events & string>(
    type: K,
    payload: Events[K],
    options?: RedisPublishOptions,
  ): Promise<PublishedEvent>
  /** Appends several events in order in one round trip. Validates all before writing any. */
  publishBatch(
    events: ReadonlyArray<TransportBatchEvent<Events>>,
    options?: DeadlineOptions,
  ): Promise<PublishedEvent[]>
  /** Starts a consumer in a group (created if missing). Resolves once the group exists and the consumer is connected. */
  consume(options: ConsumeOptions<Events>, deadline?: DeadlineOptions): Promise<RedisConsumer>
  /** Deletes a consumer group (`XGROUP DESTROY`); false when it did not exist. */
  deleteGroup(group: string, options?: DeadlineOptions): Promise<boolean>
  /** Entries waiting for acknowledgement in `group` (XPENDING summary). */
  pending(group: string, options?: DeadlineOptions): Promise<number>
  /** Counters. */
  stats(): RedisTransportStats
  /** Stops every consumer and closes connections the transport opened. Idempotent. */
  dispose(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

const LABEL = 'event-bus/redis'

/**
 * The entries of a one-stream XREADGROUP reply. RESP2 answers
 * `[[stream, entries]]`; RESP3 (ioredis 6's default) answers a map, which
 * ioredis hands over as `[stream, entries]` (or a Map).
 */
function streamEntries(reply: unknown): Array<[string, unknown]> {
  if (reply === null || reply === undefined) return []
  if (reply instanceof Map) return ([...reply.values()][0] as Array<[string, unknown]>) ?? []
  if (!Array.isArray(reply) || reply.length === 0) return []
  if (typeof reply[0] === 'string' || Buffer.isBuffer(reply[0]))
    return (reply[1] as Array<[string, unknown]>) ?? []
  return ((reply[0] as [string, Array<[string, unknown]>])[1] ?? []) as Array<[string, unknown]>
}

function unavailable(action: string, cause: unknown): AideError {
  if (AideError.isInstance(cause)) return cause
  const message = cause instanceof Error ? cause.message : String(cause)
  return new AideError(
    'E_UNAVAILABLE',
    `${LABEL}: ${action} failed: ${message}. Check that Redis is reachable.`,
    {
      cause,
    },
  )
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * Connects to Redis and returns a transport. Rejects with `E_UNAVAILABLE`
 * when `ioredis` is not installed or Redis cannot be reached in time.
 *
 * @example
 * ```ts
 * const transport = await createRedisTransport<Events>({ url: 'redis://127.0.0.1:6379', stream: 'aide:events' })
 * await transport.consume({ group: 'indexer', handler: async (event) => index(event.payload) })
 * await transport.publish('document.saved', { uri: 'file:///a.ts' })
 * ```
 */
export async function createRedisTransport<Events extends object = Record<string, unknown>>(
  options: RedisTransportOptions,
  deadline: DeadlineOptions = {},
): Promise<RedisTransport<Events>> {
  assertObject(options, 'createRedisTransport: options')
  assertString(options.stream, 'createRedisTransport: options.stream')
  if (options.url !== undefined) assertString(options.url, 'createRedisTransport: options.url')
  if (options.client !== undefined) {
    assertObject(options.client, 'createRedisTransport: options.client')
    assertFunction(options.client.call, 'createRedisTransport: options.client.call')
  }
  if (options.maxLength !== undefined) {
    assertNumber(options.maxLength, 'createRedisTransport: options.maxLength', {
      min: 0,
      integer: true,
    })
  }
  if (options.serializer !== undefined) {
    assertObject(options.serializer, 'createRedisTransport: options.serializer')
    assertFunction(
      options.serializer.serialize,
      'createRedisTransport: options.serializer.serialize',
    )
    assertFunction(
      options.serializer.deserialize,
      'createRedisTransport: options.serializer.deserialize',
    )
  }
  validateDeadlineOptions(deadline, 'createRedisTransport: deadline')
  throwIfAborted(deadline.signal, `${LABEL}: connect`)
  const RedisClass = await loadRedis()
  const url = options.url ?? 'redis://127.0.0.1:6379'
  const owned = options.client === undefined
  const client =
    options.client ??
    new RedisClass(url, { lazyConnect: true, maxRetriesPerRequest: null, ...options.redisOptions })
  if (owned) {
    // ioredis reconnects by itself; without a listener its errors would be printed as unhandled.
    client.on('error', (error: unknown) => {
      options.logger?.warn(
        { err: error, url },
        `${LABEL}: connection error: ${errorMessage(error)}`,
      )
    })
  }
  try {
    if (owned) {
      await withDeadline(() => client.connect(), {
        ...deadline,
        timeoutMs: deadline.timeoutMs ?? 10_000,
        label: `${LABEL}: connect to ${url}`,
      })
    }
  } catch (error) {
    client.disconnect()
    throw unavailable(`connect to ${url}`, error)
  }
  return new Transport<Events>(options, client, owned)
}

/**
 * A timeout, cancellation or dispose: passed through as it is, where any other
 * failure is reported as `E_UNAVAILABLE`.
 */
function isOwnEnding(error: unknown): error is AideError {
  return (
    AideError.isInstance(error) &&
    (error.code === 'E_TIMEOUT' || error.code === 'E_CANCELLED' || error.code === 'E_DISPOSED')
  )
}

class Transport<Events extends object> implements RedisTransport<Events> {
  readonly stream: string
  readonly deadLetterStream: string
  readonly #client: Redis
  readonly #owned: boolean
  readonly #maxLength: number
  readonly #xaddPrefix: string[]
  readonly #serializer: Serializer
  readonly #clock: Clock
  readonly #logger: Logger
  readonly #meter: Meter
  readonly #consumers = new Set<Consumer<Events>>()
  #published = 0
  #publishFailed = 0
  #disposing: Promise<void> | undefined
  /**
   * Aborted at the end of dispose: rejects publishes still waiting then (a
   * healthy connection has answered them before its QUIT; an unreachable one
   * would keep them queued for ever).
   */
  readonly #closed = new AbortController()

  constructor(options: RedisTransportOptions, client: Redis, owned: boolean) {
    this.stream = options.stream
    this.deadLetterStream = `${options.stream}:dead`
    this.#client = client
    this.#owned = owned
    this.#maxLength = options.maxLength ?? 100_000
    this.#xaddPrefix = [this.stream, 'MAXLEN', '~', String(this.#maxLength), '*']
    this.#serializer = options.serializer ?? jsonSerializer
    this.#clock = options.clock ?? systemClock
    this.#logger = options.logger ?? noopLogger
    this.#meter = options.meter ?? noopMeter
  }

  /** Runs `task`, rejecting with `E_DISPOSED` if the transport closes first. */
  #untilClosed<T>(task: () => Promise<T>): Promise<T> {
    return withDeadline(task, { signal: this.#closed.signal, label: `${LABEL}: publish` })
  }

  #assertOpen(method: string): void {
    if (this.#disposing) {
      throw new AideError('E_DISPOSED', `${LABEL}: ${method} called after dispose`, {
        details: { method },
      })
    }
  }

  /** Validates and encodes one event. `prefix` names its fields (`publish: `, `publishBatch: events[2].`). */
  /** An encoded event as XADD field-value pairs (`id` is always at index 1). */
  #fields(event: EncodedEvent): string[] {
    const fields = [
      'id',
      event.id,
      'type',
      event.type,
      'data',
      event.data,
      'ts',
      String(this.#clock.now()),
    ]
    if (event.origin !== undefined) fields.push('origin', event.origin)
    return fields
  }

  #xaddArgs(fields: string[]): string[] {
    return this.#maxLength > 0 ? [...this.#xaddPrefix, ...fields] : [this.stream, '*', ...fields]
  }

  async publish<K extends keyof Events & string>(
    type: K,
    payload: Events[K],
    options: RedisPublishOptions = {},
  ): Promise<PublishedEvent> {
    this.#assertOpen('publish')
    assertObject(options, 'publish: options')
    validateDeadlineOptions(options, 'publish: options')
    const fields = this.#fields(
      encodeEvent(this.#serializer, type, payload, options.id, options.origin, 'publish: '),
    )
    throwIfAborted(options.signal, `${LABEL}: publish`)
    try {
      const entryId = (await this.#untilClosed(() =>
        withDeadline(() => this.#client.call('XADD', ...this.#xaddArgs(fields)), {
          signal: options.signal,
          timeoutMs: options.timeoutMs,
          clock: this.#clock,
          label: `${LABEL}: publish "${type}"`,
        }),
      )) as string
      this.#published++
      this.#meter
        .counter('aide_event_bus_redis_published_total', { help: 'Events appended to the stream' })
        .inc()
      return { id: fields[1]!, entryId }
    } catch (error) {
      this.#publishFailed++
      if (isOwnEnding(error)) throw error
      throw unavailable(`publish "${type}"`, error)
    }
  }

  async publishBatch(
    events: ReadonlyArray<TransportBatchEvent<Events>>,
    options: DeadlineOptions = {},
  ): Promise<PublishedEvent[]> {
    this.#assertOpen('publishBatch')
    const encoded = encodeBatch(this.#serializer, events, options).map((event) =>
      this.#fields(event),
    )
    if (encoded.length === 0) return []
    throwIfAborted(options.signal, `${LABEL}: publishBatch`)
    try {
      const pipeline = this.#client.pipeline()
      for (const fields of encoded) pipeline.call('XADD', ...this.#xaddArgs(fields))
      const results = await this.#untilClosed(() =>
        withDeadline(() => pipeline.exec(), {
          signal: options.signal,
          timeoutMs: options.timeoutMs,
          clock: this.#clock,
          label: `${LABEL}: publishBatch`,
        }),
      )
      const out: PublishedEvent[] = []
      for (let i = 0; i < encoded.length; i++) {
        const [error, entryId] = results?.[i] ?? [new Error('no reply'), undefined]
        if (error) throw error
        out.push({ id: encoded[i]![1]!, entryId: entryId as string })
      }
      this.#published += out.length
      this.#meter
        .counter('aide_event_bus_redis_published_total', { help: 'Events appended to the stream' })
        .inc(out.length)
      return out
    } catch (error) {
      this.#publishFailed += encoded.length
      if (isOwnEnding(error)) throw error
      throw unavailable('publishBatch', error)
    }
  }

  async consume(
    options: ConsumeOptions<Events>,
    deadline: DeadlineOptions = {},
  ): Promise<RedisConsumer> {
    this.#assertOpen('consume')
    const settings = validateConsumeOptions(options)
    validateDeadlineOptions(deadline, 'consume: deadline')
    const consumer = new Consumer<Events>(this, settings, this.#client, {
      clock: this.#clock,
      logger: this.#logger,
      meter: this.#meter,
      serializer: this.#serializer,
      onStopped: (c) => this.#consumers.delete(c),
    })
    try {
      await withDeadline(
        async () => {
          await consumer.ensureGroup()
          await consumer.connect()
        },
        {
          ...deadline,
          timeoutMs: deadline.timeoutMs ?? 10_000,
          clock: this.#clock,
          label: `${LABEL}: create group "${settings.group}"`,
        },
      )
    } catch (error) {
      await consumer.dispose()
      if (isOwnEnding(error)) throw error
      throw unavailable(`create group "${settings.group}"`, error)
    }
    this.#consumers.add(consumer)
    consumer.start()
    return consumer
  }

  async deleteGroup(group: string, options: DeadlineOptions = {}): Promise<boolean> {
    this.#assertOpen('deleteGroup')
    assertString(group, 'deleteGroup: group')
    validateDeadlineOptions(options, 'deleteGroup: options')
    try {
      const removed = await withDeadline(
        () => this.#client.call('XGROUP', 'DESTROY', this.stream, group),
        { ...options, clock: this.#clock, label: `${LABEL}: deleteGroup` },
      )
      return Number(removed) === 1
    } catch (error) {
      if (AideError.isInstance(error)) throw error
      // XGROUP DESTROY on a missing stream answers an error, not 0.
      if (/requires the key to exist|no such key/i.test(errorMessage(error))) return false
      throw unavailable('deleteGroup', error)
    }
  }

  async pending(group: string, options: DeadlineOptions = {}): Promise<number> {
    this.#assertOpen('pending')
    assertString(group, 'pending: group')
    validateDeadlineOptions(options, 'pending: options')
    try {
      const summary = (await withDeadline(() => this.#client.call('XPENDING', this.stream, group), {
        ...options,
        clock: this.#clock,
        label: `${LABEL}: pending`,
      })) as [number | string, ...unknown[]]
      return Number(summary[0])
    } catch (error) {
      if (AideError.isInstance(error)) throw error
      if (/NOGROUP/.test(errorMessage(error))) {
        throw new AideError(
          'E_NOT_FOUND',
          `${LABEL}: group "${group}" does not exist on "${this.stream}"`,
          {
            cause: error,
            details: { group },
          },
        )
      }
      throw unavailable('pending', error)
    }
  }

  stats(): RedisTransportStats {
    return {
      stream: this.stream,
      published: this.#published,
      publishFailed: this.#publishFailed,
      consumers: [...this.#consumers].map((c) => c.stats()),
    }
  }

  dispose(): Promise<void> {
    this.#disposing ??= (async () => {
      await Promise.allSettled([...this.#consumers].map((c) => c.dispose()))
      if (this.#owned) {
        const client = this.#client
        if (client.status === 'ready') {
          // QUIT is never answered by a paused server: bound it.
          await withDeadline(() => client.quit(), {
            timeoutMs: 500,
            label: `${LABEL}: quit`,
          }).catch(() => undefined)
        }
        // Not ready: a QUIT would wait behind the commands queued for a
        // connection that may never come, and ioredis's disconnect() between
        // reconnect attempts neither ends the client nor settles that queue.
        client.disconnect()
      }
      this.#closed.abort(new AideError('E_DISPOSED', `${LABEL}: disposed before Redis answered`))
    })()
    return this.#disposing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose()
  }
}

interface ConsumerSettings<Events extends object> {
  group: string
  consumer: string
  handler: TransportHandler<Events>
  startFrom: 'beginning' | 'new'
  batchSize: number
  concurrency: number
  blockMs: number
  claimIdleMs: number
  claimIntervalMs: number
  maxDeliveries: number
  handlerTimeoutMs: number | undefined
  signal: AbortSignal | undefined
}

function validateConsumeOptions<Events extends object>(
  options: ConsumeOptions<Events>,
): ConsumerSettings<Events> {
  const f = 'consume: options'
  assertObject(options, f)
  assertString(options.group, `${f}.group`)
  if (options.consumer !== undefined) assertString(options.consumer, `${f}.consumer`)
  assertFunction(options.handler, `${f}.handler`)
  if (options.startFrom !== undefined)
    assertOneOf(options.startFrom, `${f}.startFrom`, ['beginning', 'new'])
  const positive = (value: number | undefined, field: string, fallback: number, min = 1) => {
    if (value === undefined) return fallback
    assertNumber(value, `${f}.${field}`, { min, integer: true })
    return value
  }
  const claimIdleMs = positive(options.claimIdleMs, 'claimIdleMs', 30_000)
  validateDeadlineOptions({ signal: options.signal }, f)
  if (options.handlerTimeoutMs !== undefined) {
    assertNumber(options.handlerTimeoutMs, `${f}.handlerTimeoutMs`, { min: 1, integer: true })
    if (options.handlerTimeoutMs >= claimIdleMs) {
      throw invalidInput(
        `${f}.handlerTimeoutMs`,
        `must be less than claimIdleMs (${claimIdleMs}), or entries still being handled would be reclaimed`,
      )
    }
  }
  return {
    group: options.group,
    consumer: options.consumer ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`,
    handler: options.handler,
    startFrom: options.startFrom ?? 'beginning',
    batchSize: positive(options.batchSize, 'batchSize', 50),
    concurrency: positive(options.concurrency, 'concurrency', 1),
    blockMs: positive(options.blockMs, 'blockMs', 2_000),
    claimIdleMs,
    claimIntervalMs: positive(
      options.claimIntervalMs,
      'claimIntervalMs',
      Math.max(1, Math.floor(claimIdleMs / 2)),
    ),
    maxDeliveries: positive(options.maxDeliveries, 'maxDeliveries', 5),
    handlerTimeoutMs:
      options.handlerTimeoutMs === undefined
        ? undefined
        : positive(options.handlerTimeoutMs, 'handlerTimeoutMs', 0),
    signal: options.signal,
  }
}

interface ConsumerDeps<Events extends object> {
  clock: Clock
  logger: Logger
  meter: Meter
  serializer: Serializer
  onStopped: (consumer: Consumer<Events>) => void
}

/** One stream entry with its delivery count, ready for the handler. */
interface Delivery {
  entryId: string
  fields: EntryFields | undefined
  raw: unknown
  deliveryCount: number
  /** Why the handler refused the event for good (it threw `E_INVALID_INPUT`). */
  refused?: string
}

class Consumer<Events extends object> implements RedisConsumer {
  readonly name: string
  readonly #transport: Transport<Events>
  readonly #settings: ConsumerSettings<Events>
  readonly #client: Redis
  readonly #deps: ConsumerDeps<Events>
  readonly #stop = new AbortController()
  #reader: Redis | undefined
  #loop: Promise<void> | undefined
  #claimTimer: TimerHandle | undefined
  #claiming: Promise<void> | undefined
  #disposing: Promise<void> | undefined
  readonly #stats = {
    received: 0,
    acknowledged: 0,
    failed: 0,
    reclaimed: 0,
    deadLettered: 0,
    readErrors: 0,
    groupRecreated: 0,
    inFlight: 0,
  }
  #onAbort = () => void this.dispose()
  /** Set when the reader reconnected: re-read this consumer's pending entries. */
  #rereadPending = false
  /** Entries this consumer is handling now: a reclaim must not hand them out twice. */
  readonly #handling = new Set<string>()

  constructor(
    transport: Transport<Events>,
    settings: ConsumerSettings<Events>,
    client: Redis,
    deps: ConsumerDeps<Events>,
  ) {
    this.#transport = transport
    this.#settings = settings
    this.#client = client
    this.#deps = deps
    this.name = settings.consumer
  }

  /**
   * A Redis command that is given up when the consumer stops: a dead, paused or
   * unreachable server must not hold up dispose (ioredis keeps such a command
   * queued, and its disconnect() does not settle it while reconnecting). An
   * entry whose ack is given up stays pending and is delivered again.
   */
  #call(client: Redis, command: string, ...args: (string | number)[]): Promise<unknown> {
    // withDeadline listens to the stop signal only while the command is out
    // (a race against one long-lived promise would pile up a reaction per call).
    return withDeadline(() => client.call(command, ...args), {
      signal: this.#stop.signal,
      label: `${LABEL}: ${command}`,
    })
  }

  async ensureGroup(): Promise<boolean> {
    try {
      await this.#call(
        this.#client,
        'XGROUP',
        'CREATE',
        this.#transport.stream,
        this.#settings.group,
        this.#settings.startFrom === 'new' ? '$' : '0',
        'MKSTREAM',
      )
      return true
    } catch (error) {
      if (/BUSYGROUP/.test(errorMessage(error))) return false
      throw error
    }
  }

  /** Opens the connection for blocking reads, which never hold up publishes and acks. */
  async connect(): Promise<void> {
    this.#reader = this.#client.duplicate({
      maxRetriesPerRequest: null,
      lazyConnect: true,
      connectionName: `aide-event-bus:${this.name}:reader`,
    })
    this.#reader.on('error', (error: unknown) => {
      this.#deps.logger.debug(
        { err: error, consumer: this.name },
        `${LABEL}: reader connection error`,
      )
    })
    await this.#reader.connect()
    // After a reconnect ioredis re-sends an interrupted `XREADGROUP ... >`. If Redis had
    // already recorded that delivery, its entries sit in our pending list and the re-sent
    // read never returns them: read our pending entries again before new ones.
    this.#reader.on('ready', () => {
      this.#rereadPending = true
    })
  }

  start(): void {
    this.#loop = this.#readLoop()
    this.#claimTimer = this.#deps.clock.setInterval(() => {
      this.#claiming ??= this.#claim().finally(() => {
        this.#claiming = undefined
      })
    }, this.#settings.claimIntervalMs)
    const signal = this.#settings.signal
    if (signal) {
      if (signal.aborted) void this.dispose()
      else signal.addEventListener('abort', this.#onAbort, { once: true })
    }
  }

  async #readLoop(): Promise<void> {
    const { group, batchSize, blockMs } = this.#settings
    const stream = this.#transport.stream
    // First re-read this consumer's own pending entries (a restart under the same name), then new ones.
    let cursor = '0'
    let backoff = 50
    while (!this.#stop.signal.aborted) {
      if (this.#rereadPending) {
        this.#rereadPending = false
        cursor = '0'
      }
      try {
        const args =
          cursor === '>'
            ? [
                'GROUP',
                group,
                this.name,
                'COUNT',
                batchSize,
                'BLOCK',
                blockMs,
                'STREAMS',
                stream,
                '>',
              ]
            : ['GROUP', group, this.name, 'COUNT', batchSize, 'STREAMS', stream, cursor]
        const reply = await this.#call(this.#reader!, 'XREADGROUP', ...args)
        backoff = 50
        const entries = streamEntries(reply)
        if (cursor !== '>') {
          if (entries.length === 0) {
            cursor = '>'
            continue
          }
          cursor = entries[entries.length - 1]![0]
          const counts = await this.#deliveryCounts(entries.map((e) => e[0]))
          await this.#handleBatch(
            entries.map(([entryId, raw]) => this.#delivery(entryId, raw, counts.get(entryId) ?? 1)),
          )
        } else if (entries.length > 0) {
          await this.#handleBatch(entries.map(([entryId, raw]) => this.#delivery(entryId, raw, 1)))
        }
      } catch (error) {
        if (this.#stop.signal.aborted) return
        this.#stats.readErrors++
        const message = errorMessage(error)
        this.#deps.logger.warn(
          { err: error, consumer: this.name },
          `${LABEL}: read failed, retrying: ${message}`,
        )
        if (/NOGROUP/.test(message)) {
          // The stream or the group vanished (e.g. Redis restarted without persistence).
          try {
            if (await this.ensureGroup()) this.#stats.groupRecreated++
          } catch {
            // Redis still unreachable: retried after the backoff.
          }
        }
        cursor = '0'
        try {
          await sleep(backoff, { signal: this.#stop.signal, clock: this.#deps.clock })
        } catch {
          return
        }
        backoff = Math.min(backoff * 2, 2_000)
      }
    }
  }

  #delivery(entryId: string, raw: unknown, deliveryCount: number): Delivery {
    return { entryId, raw, fields: parseFields(raw), deliveryCount }
  }

  async #deliveryCounts(entryIds: string[]): Promise<Map<string, number>> {
    const counts = new Map<string, number>()
    if (entryIds.length === 0) return counts
    const first = entryIds[0]!
    const last = entryIds[entryIds.length - 1]!
    const rows = (await this.#call(
      this.#client,
      'XPENDING',
      this.#transport.stream,
      this.#settings.group,
      first,
      last,
      entryIds.length,
    )) as Array<[string, string, number, number]>
    for (const row of rows) counts.set(row[0], Number(row[3]))
    return counts
  }

  /** Reclaims entries idle longer than `claimIdleMs` from any consumer of the group. */
  async #claim(): Promise<void> {
    if (this.#stop.signal.aborted) return
    const { group, batchSize, claimIdleMs } = this.#settings
    const stream = this.#transport.stream
    let start = '0-0'
    try {
      for (let round = 0; round < 100 && !this.#stop.signal.aborted; round++) {
        const reply = (await this.#call(
          this.#client,
          'XAUTOCLAIM',
          stream,
          group,
          this.name,
          claimIdleMs,
          start,
          'COUNT',
          batchSize,
        )) as [string, Array<[string, unknown] | null>, ...unknown[]]
        const entries = (reply[1] ?? []).filter(
          (e): e is [string, unknown] =>
            Array.isArray(e) && e[1] !== null && !this.#handling.has(e[0] as string),
        )
        if (entries.length > 0) {
          this.#stats.reclaimed += entries.length
          this.#deps.meter
            .counter('aide_event_bus_redis_reclaimed_total', {
              help: 'Pending entries taken over from idle consumers',
            })
            .inc(entries.length)
          const counts = await this.#deliveryCounts(entries.map((e) => e[0]))
          await this.#handleBatch(
            entries.map(([entryId, raw]) => this.#delivery(entryId, raw, counts.get(entryId) ?? 2)),
          )
        }
        start = reply[0]
        if (start === '0-0') return
      }
    } catch (error) {
      if (this.#stop.signal.aborted) return
      this.#stats.readErrors++
      this.#deps.logger.warn(
        { err: error, consumer: this.name },
        `${LABEL}: reclaim failed: ${errorMessage(error)}`,
      )
    }
  }

  /** Runs the handler over a batch with the concurrency limit, then acknowledges the successes at once. */
  async #handleBatch(deliveries: Delivery[]): Promise<void> {
    const acks: string[] = []
    const dead: Delivery[] = []
    let next = 0
    const worker = async () => {
      while (next < deliveries.length && !this.#stop.signal.aborted) {
        const delivery = deliveries[next++]!
        const outcome = await this.#handleOne(delivery)
        if (outcome === 'ack') acks.push(delivery.entryId)
        else if (outcome === 'dead') dead.push(delivery)
      }
    }
    for (const delivery of deliveries) this.#handling.add(delivery.entryId)
    try {
      const workers = Math.min(this.#settings.concurrency, deliveries.length)
      await Promise.all(Array.from({ length: workers }, worker))
      for (const delivery of dead) await this.#deadLetter(delivery)
      if (acks.length > 0) {
        await this.#call(
          this.#client,
          'XACK',
          this.#transport.stream,
          this.#settings.group,
          ...acks,
        )
        this.#stats.acknowledged += acks.length
      }
    } finally {
      for (const delivery of deliveries) this.#handling.delete(delivery.entryId)
    }
  }

  async #handleOne(delivery: Delivery): Promise<'ack' | 'retry' | 'dead'> {
    const { fields } = delivery
    if (!fields) return 'dead'
    if (delivery.deliveryCount > this.#settings.maxDeliveries) return 'dead'
    let payload: unknown
    try {
      payload = this.#deps.serializer.deserialize(fields.data)
    } catch {
      return 'dead'
    }
    const event: TransportEvent<Events> = {
      id: fields.id,
      entryId: delivery.entryId,
      type: fields.type as keyof Events & string,
      payload: payload as Events[keyof Events],
      publishedAt: fields.ts,
      deliveryCount: delivery.deliveryCount,
      origin: fields.origin,
    }
    this.#stats.received++
    this.#stats.inFlight++
    try {
      if (this.#settings.handlerTimeoutMs !== undefined) {
        await withDeadline((signal) => this.#settings.handler(event, signal), {
          signal: this.#stop.signal,
          timeoutMs: this.#settings.handlerTimeoutMs,
          clock: this.#deps.clock,
          label: `${LABEL}: handler for "${fields.type}" (${fields.id})`,
        })
      } else {
        const result = this.#settings.handler(event, this.#stop.signal)
        // A handler that ignores the stop signal must not hold up dispose.
        if (result !== undefined && result !== null && typeof result.then === 'function') {
          await withDeadline(() => result, {
            signal: this.#stop.signal,
            label: `${LABEL}: handler`,
          })
        }
      }
      return 'ack'
    } catch (error) {
      if (this.#stop.signal.aborted) return 'retry'
      this.#stats.failed++
      if (AideError.isInstance(error) && error.code === 'E_INVALID_INPUT') {
        // The event itself is bad: retrying cannot help.
        delivery.refused = `handler refused it: ${error.message}`
        return 'dead'
      }
      this.#deps.meter
        .counter('aide_event_bus_redis_failed_total', { help: 'Handler failures' })
        .inc()
      this.#deps.logger.error(
        { err: toAideError(error), consumer: this.name, event: fields.id, type: fields.type },
        `${LABEL}: handler failed for "${fields.type}" (delivery ${delivery.deliveryCount}); it stays pending and will be retried`,
      )
      return 'retry'
    } finally {
      this.#stats.inFlight--
    }
  }

  /** Copies an entry to the dead-letter stream and acknowledges it. */
  async #deadLetter(delivery: Delivery): Promise<void> {
    const reason = delivery.refused
      ? delivery.refused
      : !delivery.fields
        ? 'malformed entry'
        : delivery.deliveryCount > this.#settings.maxDeliveries
          ? `delivered ${delivery.deliveryCount} times (max ${this.#settings.maxDeliveries})`
          : 'payload could not be deserialised'
    const raw = Array.isArray(delivery.raw) ? delivery.raw.map(String) : []
    await this.#call(
      this.#client,
      'XADD',
      this.#transport.deadLetterStream,
      '*',
      'entryId',
      delivery.entryId,
      'group',
      this.#settings.group,
      'reason',
      reason,
      ...raw,
    )
    await this.#call(
      this.#client,
      'XACK',
      this.#transport.stream,
      this.#settings.group,
      delivery.entryId,
    )
    this.#stats.deadLettered++
    this.#deps.meter
      .counter('aide_event_bus_redis_dead_lettered_total', {
        help: 'Entries moved to the dead-letter stream',
      })
      .inc()
    this.#deps.logger.error(
      { consumer: this.name, entryId: delivery.entryId, reason },
      `${LABEL}: moved entry ${delivery.entryId} to ${this.#transport.deadLetterStream}: ${reason}`,
    )
  }

  stats(): ConsumerStats {
    return {
      group: this.#settings.group,
      consumer: this.name,
      ...this.#stats,
      stopped: this.#disposing !== undefined,
    }
  }

  dispose(): Promise<void> {
    this.#disposing ??= (async () => {
      this.#stop.abort(new AideError('E_CANCELLED', `${LABEL}: consumer "${this.name}" stopped`))
      this.#settings.signal?.removeEventListener('abort', this.#onAbort)
      if (this.#claimTimer !== undefined) this.#deps.clock.clearTimer(this.#claimTimer)
      // Disconnecting interrupts a blocking read at once.
      this.#reader?.disconnect()
      await Promise.allSettled([this.#loop, this.#claiming])
      this.#deps.onStopped(this)
    })()
    return this.#disposing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose()
  }
}
