/**
 * `@aide/cache/redis`: the L2 tier on Redis (ioredis, an optional peer
 * dependency loaded lazily). Besides storage it offers the cache a lock for
 * cross-process single-flight and a pub/sub channel for cross-instance
 * invalidation.
 */
import { randomBytes } from 'node:crypto'
import {
  AideError,
  assertNumber,
  assertObject,
  assertString,
  type Clock,
  type DeadlineOptions,
  type Disposable,
  invalidInput,
  systemClock,
  throwIfAborted,
  toDisposable,
  withDeadline,
} from '@aide/core'
import type { Redis, RedisOptions } from 'ioredis'
import type { StoredEntry } from './entry.js'
import { v8Serializer } from './serializer.js'
import type { Serializer } from './serializer-types.js'
import type { CacheTier, InvalidationMessage, TierOwnStats } from './tier.js'

export { v8Serializer } from './serializer.js'
export type { Serializer } from './serializer-types.js'

/** Options of {@link redisTier}. */
export interface RedisTierOptions {
  /**
   * Connection URL: `redis://[user:password@]host:port[/db]`, or `rediss://…`
   * for TLS. Ignored when `client` is given.
   */
  url?: string
  /**
   * ioredis options, passed through (ACL `username`/`password`, `tls`, `db`,
   * `host`/`port`, sentinels…). The tier's defaults for failing fast
   * (`enableOfflineQueue: false`, `maxRetriesPerRequest: 1`, `commandTimeout`,
   * an endless reconnect `retryStrategy`) apply unless set here.
   */
  redis?: RedisOptions
  /** An existing ioredis client to use (not closed on dispose). */
  client?: Redis
  /** Prefix of every key this tier writes, per application or tenant. Default `aide:cache:`. */
  prefix?: string
  /** Value encoding. Default: V8 structured clone. */
  serializer?: Serializer
  /** Pub/sub channel for invalidation. Default `<prefix>invalidate`. */
  channel?: string
  /** Per-command timeout in ms (ioredis `commandTimeout`). Default 1,000. */
  commandTimeoutMs?: number
  /** How long `redisTier()` waits for the first connection before returning anyway (ms). Default 2,000. */
  connectTimeoutMs?: number
  /** Clock for TTL arithmetic. Default: the system clock. */
  clock?: Clock
}

/** Counters of the Redis tier. */
export interface RedisTierStats extends TierOwnStats {
  /** Connection status of the command client (`ready`, `reconnecting`…); `end` once the tier is disposed. */
  status: string
  /** Times the command connection became ready after losing it. */
  reconnects: number
  /** Connection-level errors reported by ioredis. */
  connectionErrors: number
  /** Invalidation messages published / received. */
  published: number
  received: number
  /** Values that could not be decoded (deleted, read as misses). */
  corrupt: number
}

const RELEASE_LOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`
const DELETE_TAG = `local members = redis.call('SMEMBERS', KEYS[1])
local n = 0
for _, k in ipairs(members) do n = n + redis.call('DEL', ARGV[1] .. k) end
redis.call('DEL', KEYS[1])
return n`

/**
 * Adds a key to a tag set and keeps the set alive at least as long as its
 * entries: a set the call creates expires with this entry; an existing set's
 * expiry is only extended (GT); an entry that never expires makes the set
 * persistent. (`PEXPIRE … GT` alone never sets an expiry: Redis treats a key
 * without one as infinite, so new tag sets would have lived for ever.)
 * KEYS[1] tag set; ARGV[1] member; ARGV[2] TTL in ms, 0 for none.
 */
const ADD_TO_TAG = `local created = redis.call('EXISTS', KEYS[1]) == 0
redis.call('SADD', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl == 0 then redis.call('PERSIST', KEYS[1])
elseif created then redis.call('PEXPIRE', KEYS[1], ttl)
else redis.call('PEXPIRE', KEYS[1], ttl, 'GT') end
return 1`

type RedisConstructor = new (...args: unknown[]) => Redis

async function loadIoredis(): Promise<RedisConstructor> {
  try {
    const module = (await import('ioredis')) as unknown as {
      Redis?: RedisConstructor
      default?: RedisConstructor
    }
    const RedisClass = module.Redis ?? module.default
    if (typeof RedisClass !== 'function') throw new Error('ioredis has no Redis export')
    return RedisClass
  } catch (cause) {
    throw new AideError(
      'E_UNAVAILABLE',
      'cache: cannot import `ioredis`. Install it to use `@aide/cache/redis` (npm install ioredis).',
      { cause },
    )
  }
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}

/** The Redis tier. Create with {@link redisTier}. */
export class RedisTier implements CacheTier {
  readonly name = 'redis'
  readonly prefix: string
  readonly client: Redis
  readonly #subscriber: Redis
  readonly #ownsClient: boolean
  readonly #serializer: Serializer
  readonly #channel: string
  readonly #clock: Clock
  readonly #listeners = new Set<(message: InvalidationMessage) => void>()
  #subscribed: Promise<unknown> | undefined
  #reconnects = 0
  #connectionErrors = 0
  #published = 0
  #received = 0
  #corrupt = 0
  #disposed: Promise<void> | undefined
  /** Aborted on dispose: settles `subscribed()` calls still waiting. */
  readonly #closed = new AbortController()

  /** @internal Use {@link redisTier}. */
  constructor(client: Redis, subscriber: Redis, ownsClient: boolean, options: RedisTierOptions) {
    this.client = client
    this.#subscriber = subscriber
    this.#ownsClient = ownsClient
    this.prefix = options.prefix ?? 'aide:cache:'
    this.#serializer = options.serializer ?? v8Serializer
    this.#channel = options.channel ?? `${this.prefix}invalidate`
    this.#clock = options.clock ?? systemClock
    let wasReady = client.status === 'ready'
    client.on('ready', () => {
      if (wasReady) this.#reconnects++
      wasReady = true
    })
    client.on('error', () => {
      this.#connectionErrors++
    })
    let subscriberWasReady = false
    subscriber.on('error', () => {
      this.#connectionErrors++
    })
    subscriber.on('ready', () => {
      // Invalidations sent while we were cut off were missed: drop every L1 copy.
      if (subscriberWasReady) this.#deliver({ origin: 'redis-reconnect', op: 'clear' })
      subscriberWasReady = true
    })
    subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      if (channel.toString() !== this.#channel) return
      try {
        const parsed = JSON.parse(message.toString()) as InvalidationMessage
        if (typeof parsed?.origin !== 'string' || typeof parsed.op !== 'string') return
        this.#received++
        this.#deliver(parsed)
      } catch {
        // A foreign or damaged message on our channel: ignore it.
      }
    })
  }

  #deliver(message: InvalidationMessage): void {
    for (const listener of this.#listeners) {
      try {
        listener(message)
      } catch {
        // One listener's failure must not stop the others.
      }
    }
  }

  #entryKey(key: string): string {
    return `${this.prefix}e:${key}`
  }

  #tagKey(tag: string): string {
    return `${this.prefix}t:${tag}`
  }

  #lockKey(key: string): string {
    return `${this.prefix}l:${key}`
  }

  #check(signal: AbortSignal | undefined): void {
    if (this.#disposed) throw new AideError('E_DISPOSED', 'cache: redis tier has been disposed')
    throwIfAborted(signal)
  }

  async get(key: string, options: DeadlineOptions = {}): Promise<StoredEntry | undefined> {
    this.#check(options.signal)
    const entryKey = this.#entryKey(key)
    const bytes = await this.client.getBuffer(entryKey)
    if (bytes === null) return undefined
    let entry: StoredEntry
    try {
      entry = this.#serializer.deserialize(bytes) as StoredEntry
      if (typeof entry !== 'object' || entry === null || typeof entry.staleUntil !== 'number') {
        throw new TypeError('not a cache entry')
      }
    } catch {
      // Foreign or damaged data under our key: a miss, and it goes.
      this.#corrupt++
      await this.client.del(entryKey)
      return undefined
    }
    if (entry.staleUntil !== Number.POSITIVE_INFINITY && this.#clock.now() >= entry.staleUntil)
      return undefined
    return entry
  }

  async set(key: string, entry: StoredEntry, options: DeadlineOptions = {}): Promise<void> {
    this.#check(options.signal)
    const bytes = Buffer.from(this.#serializer.serialize(entry))
    const entryKey = this.#entryKey(key)
    const finite = entry.staleUntil !== Number.POSITIVE_INFINITY
    const ttl = finite ? Math.max(1, Math.ceil(entry.staleUntil - this.#clock.now())) : 0
    const multi = this.client.multi()
    if (finite) multi.set(entryKey, bytes, 'PX', ttl)
    else multi.set(entryKey, bytes)
    for (const tag of entry.tags) multi.eval(ADD_TO_TAG, 1, this.#tagKey(tag), key, ttl)
    const results = await multi.exec()
    const failed = results?.find(([error]) => error)
    if (failed) throw failed[0]
  }

  async delete(key: string, options: DeadlineOptions = {}): Promise<boolean> {
    this.#check(options.signal)
    return (await this.client.del(this.#entryKey(key))) > 0
  }

  /**
   * Removes the entries recorded under `tag`. An entry rewritten without the
   * tag since may be removed too (over-invalidation is safe for a cache).
   */
  async deleteByTag(tag: string, options: DeadlineOptions = {}): Promise<number> {
    this.#check(options.signal)
    const removed = await this.client.eval(DELETE_TAG, 1, this.#tagKey(tag), `${this.prefix}e:`)
    return Number(removed)
  }

  /** Removes every key under this tier's prefix (SCAN + UNLINK). */
  async clear(options: DeadlineOptions = {}): Promise<void> {
    this.#check(options.signal)
    let cursor = '0'
    const pattern = `${escapeGlob(this.prefix)}*`
    do {
      throwIfAborted(options.signal)
      const [next, keys] = await this.client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) await this.client.unlink(...keys)
    } while (cursor !== '0')
  }

  async acquireLock(key: string, ttlMs: number): Promise<string | undefined> {
    this.#check(undefined)
    const token = randomBytes(12).toString('hex')
    const result = await this.client.set(
      this.#lockKey(key),
      token,
      'PX',
      Math.max(1, Math.ceil(ttlMs)),
      'NX',
    )
    return result === 'OK' ? token : undefined
  }

  async releaseLock(key: string, token: string): Promise<void> {
    this.#check(undefined)
    await this.client.eval(RELEASE_LOCK, 1, this.#lockKey(key), token)
  }

  async isLocked(key: string): Promise<boolean> {
    this.#check(undefined)
    return (await this.client.exists(this.#lockKey(key))) > 0
  }

  async publish(message: InvalidationMessage): Promise<void> {
    this.#check(undefined)
    await this.client.publish(this.#channel, JSON.stringify(message))
    this.#published++
  }

  subscribe(listener: (message: InvalidationMessage) => void): Disposable {
    if (typeof listener !== 'function') throw invalidInput('listener', 'must be a function')
    this.#listeners.add(listener)
    if (!this.#subscribed) {
      this.#subscribed = this.#subscriber.subscribe(this.#channel).catch(() => {
        // Not connected yet: ioredis subscribes again when the connection is ready.
        this.#subscribed = undefined
      })
    }
    return toDisposable(() => {
      this.#listeners.delete(listener)
    })
  }

  /**
   * Resolves once the subscription is active (useful before relying on
   * invalidation). Rejects with `E_DISPOSED` once the tier is disposed.
   */
  async subscribed(): Promise<void> {
    if (this.#disposed) throw new AideError('E_DISPOSED', 'cache: redis tier has been disposed')
    await withDeadline(() => this.#subscribed, {
      signal: this.#closed.signal,
      label: 'cache: redis subscribe',
    })
  }

  stats(): RedisTierStats {
    return {
      size: undefined,
      evictions: 0,
      // A disposed tier reports `end` even where ioredis's own status stays
      // `reconnecting` (see `dispose`), or for a client it does not own.
      status: this.#disposed ? 'end' : this.client.status,
      reconnects: this.#reconnects,
      connectionErrors: this.#connectionErrors,
      published: this.#published,
      received: this.#received,
      corrupt: this.#corrupt,
    }
  }

  /** Closes the connections this tier opened. Idempotent. */
  dispose(): Promise<void> {
    if (this.#disposed) return this.#disposed
    this.#listeners.clear()
    this.#closed.abort(
      new AideError('E_DISPOSED', 'cache: redis tier was disposed before it subscribed'),
    )
    const close = async (client: Redis) => {
      if (client.status !== 'ready') {
        // Nothing to say goodbye to. A QUIT would wait behind whatever the
        // client queued for a connection that may never come, and ioredis's
        // disconnect() between reconnect attempts neither ends the client nor
        // settles that queue: stop reconnecting and do not wait.
        client.disconnect()
        return
      }
      // QUIT waits for a reply a dead or paused server never sends: bound it.
      await withDeadline(() => client.quit(), { timeoutMs: 500, label: 'cache: redis quit' }).catch(
        () => undefined,
      )
      client.disconnect()
    }
    // Both connections at once, so a paused server costs one 500 ms bound, not two.
    this.#disposed = Promise.all([
      close(this.#subscriber),
      this.#ownsClient ? close(this.client) : undefined,
    ]).then(() => undefined)
    return this.#disposed
  }
}

function waitReady(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      client.off('ready', done)
      resolve()
    }
    const timer = setTimeout(done, timeoutMs)
    timer.unref()
    client.on('ready', done)
  })
}

/**
 * Creates the Redis tier (L2). Loads `ioredis` on first use; rejects with
 * `E_UNAVAILABLE` saying what to install when it is missing. Resolves even if
 * Redis is down: the cache degrades and the client keeps reconnecting.
 */
export async function redisTier(options: RedisTierOptions = {}): Promise<RedisTier> {
  assertObject(options, 'options')
  if (options.url !== undefined) assertString(options.url, 'options.url')
  if (options.redis !== undefined) assertObject(options.redis, 'options.redis')
  if (options.prefix !== undefined)
    assertString(options.prefix, 'options.prefix', { maxLength: 256 })
  if (options.channel !== undefined)
    assertString(options.channel, 'options.channel', { maxLength: 256 })
  if (options.commandTimeoutMs !== undefined) {
    assertNumber(options.commandTimeoutMs, 'options.commandTimeoutMs', { min: 1 })
  }
  if (options.connectTimeoutMs !== undefined) {
    assertNumber(options.connectTimeoutMs, 'options.connectTimeoutMs', { min: 0 })
  }
  if (options.client !== undefined && typeof (options.client as Redis).getBuffer !== 'function') {
    throw invalidInput('options.client', 'must be an ioredis client')
  }
  if (options.serializer !== undefined) {
    assertObject(options.serializer, 'options.serializer')
    if (
      typeof options.serializer.serialize !== 'function' ||
      typeof options.serializer.deserialize !== 'function'
    ) {
      throw invalidInput('options.serializer', 'must have serialize and deserialize functions')
    }
  }
  let client: Redis
  let owns = false
  if (options.client) client = options.client
  else {
    const RedisClient = await loadIoredis()
    const defaults: RedisOptions = {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: options.commandTimeoutMs ?? 1_000,
      connectTimeout: 2_000,
      retryStrategy: (times: number) => Math.min(50 * times, 1_000),
    }
    const settings = { ...defaults, ...(options.redis ?? {}) }
    client = options.url ? new RedisClient(options.url, settings) : new RedisClient(settings)
    owns = true
  }
  // The subscriber needs its own connection; it may queue SUBSCRIBE until connected.
  const subscriber = client.duplicate({ enableOfflineQueue: true, commandTimeout: undefined })
  const tier = new RedisTier(client, subscriber, owns, options)
  await waitReady(client, options.connectTimeoutMs ?? 2_000)
  return tier
}
