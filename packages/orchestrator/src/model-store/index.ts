/**
 * `@aide/orchestrator/model-store`: versioned ONNX models on disk with
 * sha256 verification, activation, rollback and an atomic switch.
 *
 * @packageDocumentation
 */
export {
  type AddModelOptions,
  type ModelRecord,
  ModelStore,
  type ModelStoreOptions,
  type ModelStoreStats,
} from './store.js'
