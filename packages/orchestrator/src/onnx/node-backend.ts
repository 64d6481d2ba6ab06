/**
 * The onnxruntime-node backend factory (re-exported by `@aide/orchestrator/onnx`).
 */

import { readFile } from 'node:fs/promises'
import { assertNumber, assertOneOf } from '@aide/core'
import { AutoExecutor } from './auto-executor.js'
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
   * Where `session.run` executes. onnxruntime-node's `session.run` blocks the
   * thread it runs on for the whole inference.
   * - `'auto'` (default): on the calling thread while runs are short, in
   *   worker threads once they are not (5 of the last 8 runs blocked for more
   *   than `maxBlockingMs`). A run shorter than a thread round trip (~80 µs)
   *   is not worth moving; a long one must not stall the event loop.
   * - `'inline'`: always on the calling thread (lowest overhead, blocks the
   *   event loop for each run).
   * - `'worker'`: always in worker threads (a round trip per batch).
   */
  execution?: 'auto' | 'worker' | 'inline'
  /**
   * With `execution: 'auto'`: the longest an in-thread run may block the
   * event loop, in ms, before the backend moves to worker threads. Default 2.
   */
  maxBlockingMs?: number
  /** Worker threads when runs go to workers (`'worker'`, or `'auto'` after moving). Default 1. */
  workerThreads?: number
}

/**
 * Default `maxBlockingMs`: a 2 ms block keeps event-loop lag well under 5 ms,
 * and at 2 ms a worker round trip (~80 µs) would add only ~4%, so a model that
 * slow loses little by moving.
 */
export const DEFAULT_MAX_BLOCKING_MS = 2

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
  const execution = options.execution ?? 'auto'
  assertOneOf(execution, 'options.execution', ['auto', 'worker', 'inline'])
  const threads = options.workerThreads ?? 1
  assertNumber(threads, 'options.workerThreads', { min: 1, max: 64, integer: true })
  const maxBlockingMs = options.maxBlockingMs ?? DEFAULT_MAX_BLOCKING_MS
  assertNumber(maxBlockingMs, 'options.maxBlockingMs', { min: 0 })
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
        : execution === 'inline'
          ? new InlineExecutor(ort, models, settings)
          : new AutoExecutor(
              new InlineExecutor(ort, models, settings),
              () => new WorkerExecutor(models, settings, threads),
              threads,
              maxBlockingMs,
            )
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
