/**
 * `@aide/orchestrator/onnx`: a local ONNX model as a {@link ModelBackend} on
 * onnxruntime-node (an optional peer, loaded on first use), plus the shipped
 * code-completion model.
 *
 * @packageDocumentation
 */
import type { ModelBackend } from './backend.js'

export {
  type DefaultCompletionModelOptions,
  type LoadedCompletionModel,
  loadDefaultCompletionModel,
} from './local/default-model.js'
export {
  type BatchingOptions,
  choosePrecision,
  type LocalBackendOptions,
  type LocalBackendStats,
  LocalOnnxBackend,
  type ModelSource,
  type ModelVariant,
  PRECISIONS,
  type Precision,
  supportedPrecisions,
} from './onnx/backend.js'
export {
  createOnnxBackend,
  listExecutionProviders,
  type OnnxBackendOptions,
} from './onnx/node-backend.js'
export type { ModelSignature } from './onnx/runtime.js'
export { MemoryPoolTensorAllocator, type TensorAllocator, type TensorLease } from './onnx/tensor.js'
export type { ModelBackend }
