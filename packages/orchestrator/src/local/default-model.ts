/**
 * The shipped code-completion model (built from source by
 * `scripts/build-model.ts`) and its loader.
 */
import { readFile } from 'node:fs/promises'
import {
  assertObject,
  assertOneOf,
  type DeadlineOptions,
  invalidInput,
  validateDeadlineOptions,
} from '@aide/core'
import type { Precision } from '../onnx/backend.js'
import { createOnnxBackend, type OnnxBackendOptions } from '../onnx/node-backend.js'
import { type CompletionBackend, createCompletionBackend } from './completion.js'
import { defaultCompletionModelFiles } from './default-model-files.js'
import { CodeTokenizer } from './tokenizer.js'

/** Options of {@link loadDefaultCompletionModel}. */
export interface DefaultCompletionModelOptions
  extends DeadlineOptions,
    Omit<OnnxBackendOptions, 'model' | 'signal' | 'timeoutMs'> {
  /** Variants to load. Default both (`['fp32', 'int8']`); requests pick one with a `#int8` model suffix. */
  precisions?: Array<'fp32' | 'int8'>
}

/** The shipped model, ready for completion requests. */
export interface LoadedCompletionModel extends CompletionBackend {
  /** Shape, corpus and measured held-out accuracy of the model. */
  readonly metadata: Record<string, unknown>
}

/**
 * Loads the shipped code-completion model on onnxruntime-node and wraps it
 * as a text-completion backend (tasks `completion` and `next-token`). The
 * measured top-5 accuracy of each variant becomes its `quality`.
 */
export async function loadDefaultCompletionModel(
  options: DefaultCompletionModelOptions = {},
): Promise<LoadedCompletionModel> {
  assertObject(options, 'options')
  validateDeadlineOptions(options)
  const files = defaultCompletionModelFiles()
  const metadata = JSON.parse(await readFile(files.metadata, 'utf8')) as {
    shape: { contextLength: number }
    variants: Record<'fp32' | 'int8', { top5: number }>
  }
  const tokenizer = CodeTokenizer.fromJSON(JSON.parse(await readFile(files.tokenizer, 'utf8')))
  const precisions = options.precisions ?? ['fp32', 'int8']
  const model: Partial<Record<Precision, { source: string; quality: number }>> = {}
  if (!Array.isArray(precisions) || precisions.length === 0)
    throw invalidInput('options.precisions', 'must be a non-empty array')
  for (const [i, precision] of precisions.entries()) {
    assertOneOf(precision, `options.precisions[${i}]`, ['fp32', 'int8'])
    model[precision] = { source: files[precision], quality: metadata.variants[precision].top5 }
  }
  const backendOptions: OnnxBackendOptions = { ...options, model }
  delete (backendOptions as DefaultCompletionModelOptions).precisions
  const backend = await createOnnxBackend(backendOptions)
  const completion = createCompletionBackend({
    model: backend,
    tokenizer,
    contextLength: metadata.shape.contextLength,
  })
  return Object.assign(completion, { metadata: metadata as unknown as Record<string, unknown> })
}
