/**
 * The driver interface every cache tier implements (memory, Redis, disk), and
 * the one the shared conformance suite exercises.
 */
import type { DeadlineOptions, Disposable } from '@aide/core'
import type { StoredEntry } from './entry.js'

/** Counters a tier keeps about itself. */
export interface TierOwnStats {
  /** Entries currently held (where the tier can tell cheaply; otherwise `undefined`). */
  size: number | undefined
  /** Entries removed to make room. */
  evictions: number
}

/** A message sent between cache instances to drop stale copies. */
export interface InvalidationMessage {
  /** Id of the cache instance that sent it (instances ignore their own messages). */
  origin: string
  /** What happened. */
  op: 'set' | 'delete' | 'tag' | 'clear'
  /** Full keys affected (for `set` and `delete`). */
  keys?: string[]
  /** Tag deleted (for `tag`). */
  tag?: string
}

/**
 * A storage tier. Tiers store and return whole {@link StoredEntry} objects and
 * drop entries past `staleUntil`; freshness and grace are decided by the cache.
 */
export interface CacheTier extends Disposable {
  /** Short name used in stats and events, e.g. `memory`, `redis`, `disk`. */
  readonly name: string
  /** The entry under `key` (fresh or stale), or `undefined`. */
  get(key: string, options?: DeadlineOptions): Promise<StoredEntry | undefined>
  /** Stores `entry` under `key`, replacing any previous one. */
  set(key: string, entry: StoredEntry, options?: DeadlineOptions): Promise<void>
  /** Removes `key`; resolves to whether it was present. */
  delete(key: string, options?: DeadlineOptions): Promise<boolean>
  /** Removes every entry tagged `tag`; resolves to how many were removed. */
  deleteByTag(tag: string, options?: DeadlineOptions): Promise<number>
  /** Removes every entry of this tier (within its key prefix, for shared stores). */
  clear(options?: DeadlineOptions): Promise<void>
  /** The tier's own counters. */
  stats(): TierOwnStats
  /**
   * Optional distributed lock for cross-process single-flight: resolves to a
   * token when acquired, `undefined` when another holder has it.
   */
  acquireLock?(key: string, ttlMs: number): Promise<string | undefined>
  /** Releases a lock taken with `acquireLock` if `token` still owns it. */
  releaseLock?(key: string, token: string): Promise<void>
  /** Whether the lock on `key` is currently held by anyone. */
  isLocked?(key: string): Promise<boolean>
  /** Optional cross-instance invalidation: publishes a message to the other instances. */
  publish?(message: InvalidationMessage): Promise<void>
  /** Subscribes to messages from other instances; returns an unsubscribe disposable. */
  subscribe?(listener: (message: InvalidationMessage) => void): Disposable
}
