/**
 * The onnxruntime-node backend factory (re-exported by `@aide/orchestrator/onnx`).
 */

import { readFile } from 'node:fs/promises'
import { assertNumber, assertOneOf } from '@aide/core'
import {
  chooseExecutionProvider,
  type LocalBackendOptions,
  type LocalOnnxBackend,
  loadWithinDeadline,
  prepareModel,
  startLocalBackend,
  validateLocalOptions,
} from './backend.js'
import { loadOnnxRuntimeNode } from './load-node.js'
import { InlineExecutor } from './runtime.js'
import { WorkerExecutor } from './worker-executor.js'

/** Options of {@link createOnnxBackend}. */
export interface OnnxBackendOptions extends LocalBackendOptions {
  /**
   * Where `session.run` executes. `'worker'` (default) runs sessions in
   * worker threads, because onnxruntime-node's `session.run`
   * blocks the event loop for the whole inference; `'inline'` runs them on
   * the calling thread (lowest overhead, blocks the event loop).
   */
  execution?: 'worker' | 'inline'
  /** Worker threads when `execution` is `'worker'`. Default 1. */
  workerThreads?: number
}

/** Execution providers this onnxruntime-node build offers (e.g. `['cpu']`). */
export async function listExecutionProviders(): Promise<string[]> {
  const ort = await loadOnnxRuntimeNode()
  return (ort.listSupportedBackends?.() ?? [{ name: 'cpu' }]).map((b) => b.name)
}

/**
 * Loads a model (path or bytes, optionally several precision variants) into
 * onnxruntime-node sessions and returns it as a model backend. One session
 * per variant (per worker) is kept until `dispose()`.
 */
export async function createOnnxBackend(options: OnnxBackendOptions): Promise<LocalOnnxBackend> {
  validateLocalOptions(options)
  const execution = options.execution ?? 'worker'
  assertOneOf(execution, 'options.execution', ['worker', 'inline'])
  const threads = options.workerThreads ?? 1
  assertNumber(threads, 'options.workerThreads', { min: 1, max: 64, integer: true })
  return loadWithinDeadline('onnx', options, async (signal) => {
    const prepared = await prepareModel(options, readModelFile)
    const ort = await loadOnnxRuntimeNode()
    const available = (ort.listSupportedBackends?.() ?? [{ name: 'cpu' }]).map((b) => b.name)
    const provider = chooseExecutionProvider(options.executionProviders ?? ['cpu'], available)
    const settings = {
      executionProviders: [provider],
      intraOpNumThreads: options.intraOpNumThreads ?? 1,
      interOpNumThreads: options.interOpNumThreads ?? 1,
    }
    const models = prepared.models as Record<string, Uint8Array>
    const executor =
      execution === 'worker'
        ? new WorkerExecutor(models, settings, threads)
        : new InlineExecutor(ort, models, settings)
    return startLocalBackend(
      'onnx',
      options,
      prepared,
      executor,
      provider,
      available,
      execution === 'worker' ? threads : 1,
      signal,
    )
  })
}

/** Reads a model file from disk (string sources of `@aide/orchestrator/onnx` are paths). */
async function readModelFile(path: string): Promise<Uint8Array> {
  return new Uint8Array(await readFile(path))
}
