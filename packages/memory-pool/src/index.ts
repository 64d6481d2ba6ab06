/**
 * `@aide/memory-pool`: pooled ArrayBuffers and objects. This entry is
 * browser-safe; the file-backed `WorkspaceMemory` lives in
 * `@aide/memory-pool/workspace`.
 *
 * @packageDocumentation
 */
export {
  BufferPool,
  type BufferPoolEvents,
  type BufferPoolOptions,
  type BufferPoolStats,
  type CompactionOptions,
  ELEMENT_BYTES,
  type ElementArrays,
  type ElementKind,
  type ExhaustedPolicy,
  type PoolHandle,
  type SizeClassStats,
} from './buffer-pool.js'
export {
  ObjectPool,
  type ObjectPoolEvents,
  type ObjectPoolOptions,
  type ObjectPoolStats,
  type PooledObject,
} from './object-pool.js'
export { MAX_CLASS_SIZE, sizeClassOf } from './size-classes.js'
