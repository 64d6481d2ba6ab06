/**
 * The small shapes through which upper layers reach a cache or an event bus
 * without depending on `@aide/cache` or `@aide/event-bus`. Both packages
 * satisfy these interfaces as they are.
 */
import type { DeadlineOptions } from './abort.js'

/** Options for writing a cache entry. */
export interface CacheSetOptions {
  /** Time to live in milliseconds. */
  ttl?: number
  /** Tags for group invalidation. */
  tags?: readonly string[]
}

/** Options for {@link CacheLike.getOrSet}. */
export interface CacheGetOrSetOptions extends CacheSetOptions, DeadlineOptions {}

/** The minimal cache an orchestrator or plugin host accepts. */
export interface CacheLike<V = unknown> {
  /** The cached value, or `undefined` on a miss. */
  get(key: string, options?: DeadlineOptions): Promise<V | undefined>
  /** Stores a value. */
  set(key: string, value: V, options?: CacheSetOptions): Promise<void>
  /**
   * The cached value, or the loader's result (stored, then returned). Concurrent
   * callers for one key share one loader call.
   */
  getOrSet(
    key: string,
    loader: (signal: AbortSignal) => Promise<V>,
    options?: CacheGetOrSetOptions,
  ): Promise<V>
  /** Removes a key. Resolves to whether it was present (where the cache can tell). */
  delete(key: string): Promise<boolean | void>
}

/**
 * Where a component sends its typed events. `Events` maps an event name to
 * its payload type; `@aide/event-bus` satisfies this with `emit`.
 */
export interface EventSink<Events extends object = Record<string, unknown>> {
  emit<K extends keyof Events & string>(type: K, payload: Events[K]): void
}

/** An event sink that drops everything. */
export const noopEventSink: EventSink<any> = { emit: () => undefined }
