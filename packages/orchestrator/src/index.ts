/**
 * `@aide/orchestrator`: routes model requests across backends with selection
 * strategies, fallback chains, per-model resilience (circuit breaker, retry,
 * per-attempt timeout, bulkhead, rate limits), tenant budgets, a response
 * cache and streaming failover; plus an OpenAI-compatible HTTP backend.
 *
 * Local ONNX backends live under `@aide/orchestrator/onnx` and
 * `@aide/orchestrator/onnx-web`; test doubles under `@aide/orchestrator/testing`.
 *
 * @packageDocumentation
 */
export type {
  BackendCallOptions,
  BackendChunk,
  BackendRequest,
  BackendResult,
  ChatMessage,
  FinishReason,
  ModelBackend,
  ModelInput,
  ModelOutput,
  TensorData,
  Usage,
} from './backend.js'
export { Budget, TokenBucket } from './limits.js'
export { type OpenAICompatibleOptions, openAICompatible, parseRetryAfter } from './openai.js'
export { createOrchestrator, Orchestrator } from './orchestrator.js'
export {
  costStrategy,
  latencyStrategy,
  leastBusyStrategy,
  priorityStrategy,
  weightedStrategy,
} from './strategies.js'
export type {
  Attempt,
  BreakerSettings,
  Candidate,
  ModelConfig,
  ModelCost,
  ModelStats,
  OrchestratorEvents,
  OrchestratorOptions,
  OrchestratorRequest,
  OrchestratorStats,
  PartialFailureMode,
  ProbeSettings,
  RateLimit,
  RetrySettings,
  RunResult,
  Strategy,
  StrategyContext,
  StrategyName,
  StreamPart,
  TenantPolicy,
} from './types.js'
