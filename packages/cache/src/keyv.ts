/**
 * `@aide/cache/keyv`: a Keyv storage adapter over a {@link MultiLevelCache},
 * so code written against Keyv (and libraries built on Keyv stores) can use
 * the multi-level cache unchanged.
 */
import { EventEmitter } from 'node:events'
import { assertObject, invalidInput } from '@aide/core'
import type { MultiLevelCache } from './cache.js'

/** Options of {@link KeyvCacheStore}. */
export interface KeyvCacheStoreOptions {
  /** Dispose the cache when Keyv calls `disconnect()`. Default false (the caller owns the cache). */
  disposeCacheOnDisconnect?: boolean
}

/**
 * A Keyv store (`new Keyv({ store: new KeyvCacheStore(cache) })`). It follows
 * Keyv's store contract: `get`/`set(key, value, ttl)`/`delete`/`clear`, plus
 * `has`, `getMany`, `setMany`, `hasMany`, `deleteMany` and `disconnect`; Keyv
 * sets `namespace`, and `clear()` removes only that namespace's keys.
 * Failures are emitted as `error` events (which Keyv forwards) and rethrown.
 */
export class KeyvCacheStore extends EventEmitter {
  /** Adapter options, as Keyv expects a store to expose them. */
  readonly opts: { dialect: 'aide-cache'; disposeCacheOnDisconnect: boolean }
  /** Set by Keyv to its namespace; scopes `clear()`. */
  namespace: string | undefined
  readonly #cache: MultiLevelCache<unknown>

  constructor(cache: MultiLevelCache<unknown>, options: KeyvCacheStoreOptions = {}) {
    super()
    if (typeof cache !== 'object' || cache === null || typeof cache.getOrSet !== 'function') {
      throw invalidInput('cache', 'must be a MultiLevelCache from createCache()')
    }
    assertObject(options, 'options')
    this.#cache = cache
    this.opts = {
      dialect: 'aide-cache',
      disposeCacheOnDisconnect: options.disposeCacheOnDisconnect ?? false,
    }
  }

  #tags(): string[] {
    return [`keyv:${this.namespace ?? ''}`]
  }

  async #guard<T>(task: () => Promise<T>): Promise<T> {
    try {
      return await task()
    } catch (error) {
      if (this.listenerCount('error') > 0) this.emit('error', error)
      throw error
    }
  }

  get<Value>(key: string): Promise<Value | undefined> {
    return this.#guard(() => this.#cache.get(key) as Promise<Value | undefined>)
  }

  /** Stores a value; `ttl` in milliseconds (absent or 0: no expiry). */
  set(key: string, value: unknown, ttl?: number): Promise<boolean> {
    return this.#guard(async () => {
      const options = { tags: this.#tags(), ...(typeof ttl === 'number' && ttl > 0 ? { ttl } : {}) }
      await this.#cache.set(key, value, options)
      return true
    })
  }

  setMany(entries: Array<{ key: string; value: unknown; ttl?: number }>): Promise<void> {
    return this.#guard(async () => {
      await Promise.all(entries.map((entry) => this.set(entry.key, entry.value, entry.ttl)))
    })
  }

  delete(key: string): Promise<boolean> {
    return this.#guard(async () => Boolean(await this.#cache.delete(key)))
  }

  deleteMany(keys: string[]): Promise<boolean> {
    return this.#guard(async () => {
      const results = await Promise.all(keys.map((key) => this.#cache.delete(key)))
      return results.some(Boolean)
    })
  }

  /** Removes this namespace's keys (Keyv's contract), or everything without a namespace. */
  clear(): Promise<void> {
    return this.#guard(async () => {
      await this.#cache.deleteByTag(this.#tags()[0]!)
    })
  }

  has(key: string): Promise<boolean> {
    return this.#guard(() => this.#cache.has(key))
  }

  hasMany(keys: string[]): Promise<boolean[]> {
    return this.#guard(() => Promise.all(keys.map((key) => this.#cache.has(key))))
  }

  getMany<Value>(keys: string[]): Promise<Array<Value | undefined>> {
    return this.#guard(() =>
      Promise.all(keys.map((key) => this.#cache.get(key) as Promise<Value | undefined>)),
    )
  }

  disconnect(): Promise<void> {
    return this.#guard(async () => {
      if (this.opts.disposeCacheOnDisconnect) await this.#cache.dispose()
    })
  }
}
