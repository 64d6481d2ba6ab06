/**
 * `@aide/orchestrator/onnx-web`: a local ONNX model as a {@link ModelBackend}
 * on onnxruntime-web (WebAssembly; an optional peer, loaded on first use).
 * Runs in browsers and under Node.
 *
 * @packageDocumentation
 */
import { assertNumber } from '@aide/core'
import {
  chooseExecutionProvider,
  type LocalBackendOptions,
  type LocalOnnxBackend,
  loadWithinDeadline,
  prepareModel,
  startLocalBackend,
  validateLocalOptions,
} from './onnx/backend.js'
import { InlineExecutor, loadOnnxRuntimeWeb } from './onnx/runtime.js'

/** Options of {@link createOnnxWebBackend}. */
export interface OnnxWebBackendOptions extends LocalBackendOptions {
  /** WebAssembly threads (`ort.env.wasm.numThreads`). Default 1. */
  wasmThreads?: number
}

/** Execution providers onnxruntime-web can use here (`wasm`, plus `webgpu`/`webnn` in capable browsers). */
export function listWebExecutionProviders(): string[] {
  const providers = ['wasm']
  const nav = (globalThis as { navigator?: { gpu?: unknown; ml?: unknown } }).navigator
  if (nav?.gpu) providers.unshift('webgpu')
  if (nav?.ml) providers.unshift('webnn')
  return providers
}

/**
 * Loads a model into onnxruntime-web sessions (on the calling thread) and
 * returns it as a model backend. Default execution provider: `wasm`.
 */
export async function createOnnxWebBackend(
  options: OnnxWebBackendOptions,
): Promise<LocalOnnxBackend> {
  validateLocalOptions(options)
  const wasmThreads = options.wasmThreads ?? 1
  assertNumber(wasmThreads, 'options.wasmThreads', { min: 1, max: 64, integer: true })
  return loadWithinDeadline('onnx-web', options, async (signal) => {
    const prepared = await prepareModel(options)
    const ort = await loadOnnxRuntimeWeb()
    if (ort.env?.wasm) ort.env.wasm.numThreads = wasmThreads
    const available = listWebExecutionProviders()
    const provider = chooseExecutionProvider(options.executionProviders ?? ['wasm'], available)
    const settings = { executionProviders: [provider] }
    const executor = new InlineExecutor(
      ort,
      prepared.models as Record<string, Uint8Array>,
      settings,
    )
    return startLocalBackend(
      'onnx-web',
      options,
      prepared,
      executor,
      provider,
      available,
      1,
      signal,
    )
  })
}

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
} from './onnx/backend.js'
