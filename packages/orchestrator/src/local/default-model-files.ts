/**
 * Where the shipped code-completion model's files are.
 */
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { AideError } from '@aide/core'

/** Files of the shipped model. */
export interface DefaultCompletionModelFiles {
  /** Folder holding the files. */
  directory: string
  /** fp32 ONNX model. */
  fp32: string
  /** int8 (weight-only) ONNX model. */
  int8: string
  /** Tokenizer vocabulary (JSON). */
  tokenizer: string
  /** Shape, corpus and measured accuracy (JSON). */
  metadata: string
}

function moduleDirectory(): string {
  if (typeof __dirname === 'string') return __dirname
  return dirname(fileURLToPath(import.meta.url))
}

/** Paths of the shipped model files (`models/code-completion` in the package). */
export function defaultCompletionModelFiles(): DefaultCompletionModelFiles {
  const here = moduleDirectory()
  const candidates = [
    join(here, '..', '..', 'models', 'code-completion'),
    join(here, '..', 'models', 'code-completion'),
  ]
  const directory = candidates.find((c) => existsSync(join(c, 'metadata.json')))
  if (!directory) {
    throw new AideError(
      'E_NOT_FOUND',
      'completion: the shipped model files are missing; rebuild them with `pnpm --filter @aide/orchestrator build:model`',
      { details: { candidates } },
    )
  }
  return {
    directory,
    fp32: join(directory, 'model.onnx'),
    int8: join(directory, 'model.int8.onnx'),
    tokenizer: join(directory, 'tokenizer.json'),
    metadata: join(directory, 'metadata.json'),
  }
}
