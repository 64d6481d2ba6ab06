/**
 * `@aide/orchestrator/onnx-web`: a local ONNX model as a {@link ModelBackend}
 * on onnxruntime-web (WebAssembly; an optional peer, loaded on first use).
 * Runs in browsers and under Node.
 *
 * @packageDocumentation
 */
import { AideError, assertNumber } from '@aide/core'
import {
  chooseExecutionProvider,
  type LocalBackendOptions,
  type LocalOnnxBackend,
  loadWithinDeadline,
  prepareModel,
  startLocalBackend,
  validateLocalOptions,
} from './onnx/backend.js'
import { loadOnnxRuntimeWeb } from './onnx/load-web.js'
import { InlineExecutor } from './onnx/runtime.js'

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
    const prepared = await prepareModel(options, fetchModel)
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

/**
 * Fetches a model (string sources of `@aide/orchestrator/onnx-web` are URLs, as a
 * page serves its model files).
 */
async function fetchModel(url: string): Promise<Uint8Array> {
  const response = await fetch(url)
  if (!response.ok) {
    throw new AideError(
      'E_NOT_FOUND',
      `onnx-web: fetching the model ${url} answered HTTP ${response.status}`,
      { details: { field: 'options.model', source: url, status: response.status } },
    )
  }
  return new Uint8Array(await response.arrayBuffer())
}
