/**
 * `@aide/cache`: a multi-level cache. L1 in process (W-TinyLFU or LRU), L2
 * Redis (`@aide/cache/redis`), L3 disk (`@aide/cache/disk`), and a Keyv store
 * adapter (`@aide/cache/keyv`).
 *
 * @packageDocumentation
 */
export { AdaptiveTtl, type AdaptiveTtlOptions, type AdaptiveTtlStats } from './adaptive-ttl.js'
export {
  type BreakerOptions,
  type CacheEvents,
  type CacheOptions,
  type CacheStats,
  createCache,
  type GetOrSetOptions,
  type LockOptions,
  MultiLevelCache,
  type SetOptions,
  type TierStats,
} from './cache.js'
export { isFresh, isUsable, type StoredEntry } from './entry.js'
export { FrequencySketch, hashKey } from './frequency-sketch.js'
export {
  type EvictionReason,
  estimateSize,
  MemoryTier,
  type MemoryTierOptions,
  type MemoryTierStats,
} from './memory-tier.js'
export type { Serializer } from './serializer-types.js'
export type { CacheTier, InvalidationMessage, TierOwnStats } from './tier.js'
