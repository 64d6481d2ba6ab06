/**
 * `@aide/orchestrator/local`: the pieces of local code completion that need
 * no ONNX runtime: the code tokenizer, the text-completion adapter over any
 * next-token model backend, the in-JS trainer, and the shipped model's files.
 * Load the shipped model with `loadDefaultCompletionModel()` from
 * `@aide/orchestrator/onnx`.
 *
 * @packageDocumentation
 */
export {
  type CompletionBackend,
  type CompletionBackendOptions,
  createCompletionBackend,
  MAX_COMPLETION_TOKENS,
} from './completion.js'
export {
  type DefaultCompletionModelFiles,
  defaultCompletionModelFiles,
} from './default-model-files.js'
export { CodeTokenizer, PAD_ID, splitTokens, type TokenizerJSON, UNKNOWN_ID } from './tokenizer.js'
export {
  createRandom,
  evaluationRows,
  type NextTokenShape,
  type NextTokenWeights,
  nextTokenModelToOnnx,
  type TrainOptions,
  trainNextTokenModel,
} from './trainer.js'
