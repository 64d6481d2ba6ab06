/**
 * The stored form of a cache entry, shared by every tier.
 */

/** One cached value with its timing and tags, as every tier stores it. */
export interface StoredEntry<V = unknown> {
  /** The cached value (live in memory; serialised by the lower tiers). */
  value: V
  /** When the entry was written (ms since the epoch, by the cache's clock). */
  createdAt: number
  /** The entry is fresh until this time; `Infinity` when it has no TTL. */
  expiresAt: number
  /** After `expiresAt` the entry may still be served stale until this time (grace). */
  staleUntil: number
  /** Tags for group invalidation with `deleteByTag`. */
  tags: readonly string[]
}

/** True when `entry` may still be returned (fresh or within grace) at `now`. */
export function isUsable(entry: StoredEntry, now: number): boolean {
  return entry.staleUntil === Number.POSITIVE_INFINITY || now < entry.staleUntil
}

/** True when `entry` is fresh at `now`. */
export function isFresh(entry: StoredEntry, now: number): boolean {
  return entry.expiresAt === Number.POSITIVE_INFINITY || now < entry.expiresAt
}
