/**
 * Public types of the orchestrator: model declarations, requests, results,
 * strategies and events.
 */
import type { CacheLike, Clock, DeadlineOptions, EventSink, Logger, Meter } from '@aide/core'
import type { FinishReason, ModelBackend, ModelInput, ModelOutput, Usage } from './backend.js'

/** Price of a model in cost units (e.g. USD) per 1000 tokens. */
export interface ModelCost {
  /** Cost per 1000 input (prompt) tokens. */
  inputPer1k: number
  /** Cost per 1000 output (completion) tokens. */
  outputPer1k: number
}

/** A token bucket: `requestsPerSecond` refill, up to `burst` requests at once. */
export interface RateLimit {
  /** Sustained rate, in requests per second. */
  requestsPerSecond: number
  /** Bucket size: how many requests may go at once after a quiet period. Defaults to `max(1, requestsPerSecond)`. */
  burst?: number
}

/** Retry settings of one model (decorrelated jitter backoff, honouring Retry-After). */
export interface RetrySettings {
  /** Retries after the first try on the same model (0 disables retry). Default 1. */
  retries?: number
  /** First backoff delay in ms. Default 100. */
  initialDelayMs?: number
  /** Largest backoff delay in ms. Default 1000. */
  maxDelayMs?: number
  /**
   * A provider's Retry-After longer than this (ms) is not waited for on the same
   * model: the orchestrator fails over instead. Default 2000.
   */
  maxRetryAfterMs?: number
}

/** Circuit breaker settings of one model. */
export interface BreakerSettings {
  /** Open after this many consecutive failures. Default 5. */
  consecutiveFailures?: number
  /** Also open when the failure rate over the last `window` calls reaches `threshold`. */
  failureRate?: {
    /** Fraction of failed calls (0..1] that opens the breaker. */
    threshold: number
    /** Number of recent calls considered. */
    window: number
    /** Calls needed before the rate is judged. Defaults to `window`. */
    minimumCalls?: number
  }
  /** Time in ms the breaker stays open before letting one probe call through. Default 10000. */
  halfOpenAfterMs?: number
}

/** Active health probing of one model. */
export interface ProbeSettings {
  /** Interval between probes in ms. */
  intervalMs: number
  /** Timeout of one probe in ms. Default 5000. */
  timeoutMs?: number
}

/** One model the orchestrator can route to. */
export interface ModelConfig {
  /** Unique id, used in results, stats and events. */
  id: string
  /** The backend that runs calls for this model. */
  backend: ModelBackend
  /** Task types this model serves, e.g. `['chat', 'completion']`. */
  tasks: readonly string[]
  /** Price per 1000 tokens. Defaults to free. */
  cost?: ModelCost
  /** Context window in tokens (input plus requested output). Defaults to unlimited. */
  contextWindow?: number
  /** Quality score per task, 0..1; a request's `qualityFloor` is compared with it. Missing means 0. */
  quality?: Readonly<Record<string, number>>
  /** Concurrent calls allowed. Default 16. */
  maxConcurrency?: number
  /** Calls allowed to wait for a slot once `maxConcurrency` is reached. Default 64. */
  maxQueue?: number
  /** Requests per second this model accepts (token bucket). A model out of tokens is skipped. */
  rateLimit?: RateLimit
  /** Numeric precision of the weights (`fp32`, `fp16`, `int8`…), informational. */
  precision?: string
  /** Free-form tags; a request's `tags` must all be present. */
  tags?: readonly string[]
  /** Weight for the weighted strategy. Default 1. */
  weight?: number
  /** Higher is preferred by the priority strategy. Default 0; ties keep declaration order. */
  priority?: number
  /** Timeout of one attempt in ms (always inside the request's deadline). Default 30000. */
  attemptTimeoutMs?: number
  /** Retry settings. */
  retry?: RetrySettings
  /** Circuit breaker settings. */
  breaker?: BreakerSettings
  /** Active health probes; none by default. */
  probe?: ProbeSettings
}

/** What a tenant may spend and how fast it may call. */
export interface TenantPolicy {
  /** Request rate for the tenant (token bucket). */
  rateLimit?: RateLimit
  /** Spending limit in cost units per period, checked before each call. */
  budget?: {
    /** Cost units allowed per period. */
    limit: number
    /** Period length in ms; periods are aligned to multiples of it on the clock. */
    periodMs: number
  }
}

/** A request to the orchestrator. */
export interface OrchestratorRequest extends DeadlineOptions {
  /** Task type, e.g. `chat`. Only models declaring it are candidates. */
  task: string
  /** What the model works on. */
  input: ModelInput
  /** Minimum `quality[task]` a model must declare. */
  qualityFloor?: number
  /** Largest estimated cost (cost units) of a call; pricier models are skipped. */
  costCeiling?: number
  /** Models whose observed p95 latency (ms) exceeds this are skipped. */
  latencyCeilingMs?: number
  /** Tenant, for rate limits and budgets. */
  tenant?: string
  /** Tags every candidate model must carry. */
  tags?: readonly string[]
  /** Use the response cache and share identical in-flight requests. Default true. */
  cache?: boolean
}

/** One try of one model within a request. */
export interface Attempt {
  /** Model id. */
  model: string
  /** `success`, `failure`, or `skipped` (rate limited, breaker open, busy). */
  outcome: 'success' | 'failure' | 'skipped'
  /** Error code of a failure or skip. */
  code?: string
  /** Error message of a failure or skip (never contains credentials). */
  message?: string
  /** Time spent, in ms. */
  latencyMs: number
}

/** What `run` returns. */
export interface RunResult {
  /** Id of the model that produced the output. */
  model: string
  /** The backend output. */
  output: ModelOutput
  /** `output.text`, or the empty string. */
  text: string
  /** Token usage (reported by the backend, or estimated at 4 characters per token). */
  usage: Usage
  /** Why generation stopped; `length` means cut by a token limit. */
  finishReason: FinishReason
  /** Cost in cost units, from usage and the model's price. */
  cost: number
  /** Wall time of the whole request in ms. */
  latencyMs: number
  /** Every attempt, in order. */
  attempts: Attempt[]
  /** True when served from the response cache. */
  cached: boolean
}

/** One part of a streamed answer. */
export type StreamPart =
  | {
      /** More text. */
      type: 'delta'
      text: string
      /** Model that produced it. */
      model: string
    }
  | {
      /**
       * The model failed after text was delivered and the answer restarts on
       * `to`: discard everything received so far.
       */
      type: 'restart'
      from: string
      to: string
      /** The text delivered before the failure, now void. */
      discardedText: string
      /** Code of the failure. */
      code: string
    }
  | {
      /** The answer is complete. */
      type: 'done'
      result: RunResult
    }

/** What a strategy sees about each candidate. */
export interface Candidate {
  /** Model id. */
  id: string
  /** The declaration. */
  model: ModelConfig
  /** Index in `models` (declaration order). */
  index: number
  /** Calls in flight now. */
  inFlight: number
  /** Exponentially weighted moving average of successful latency in ms; undefined before the first success. */
  latencyEwmaMs: number | undefined
  /** Estimated cost of this request on this model. */
  estimatedCost: number
  /** `quality[task]`, or 0. */
  quality: number
}

/** Context handed to a strategy. */
export interface StrategyContext {
  /** The request being routed. */
  request: OrchestratorRequest
  /** A random number in [0, 1) (injectable for tests). */
  random(): number
}

/**
 * A selection strategy: returns the candidates in the order they should be
 * tried (it may drop some). The first is the chosen model.
 */
export type Strategy = (
  candidates: readonly Candidate[],
  context: StrategyContext,
) => readonly Candidate[]

/** Names of the built-in strategies. */
export type StrategyName = 'priority' | 'latency' | 'least-busy' | 'cost' | 'weighted'

/** What to do when a stream fails after text was delivered. */
export type PartialFailureMode = 'reject' | 'restart'

/** Events emitted through the `events` sink. */
export interface OrchestratorEvents {
  /** A model was chosen for a request. */
  'model-selected': { task: string; model: string; candidates: string[]; tenant?: string }
  /** A model failed or was skipped and the next one is tried. */
  'model-fallback': { task: string; from: string; to: string; code: string }
  /** A model's circuit breaker opened (`isolated` when held open by hand). */
  'breaker-open': { model: string; isolated: boolean }
  /** A model's breaker lets one probe call through. */
  'breaker-half-open': { model: string }
  /** A model's breaker closed again. */
  'breaker-close': { model: string }
  /** A tenant's budget for the period is spent; the request was refused before any call. */
  'budget-exceeded': { tenant: string; spent: number; limit: number; periodMs: number }
  /** A stream restarted on another model after text was delivered. */
  'stream-restart': { task: string; from: string; to: string; discardedChars: number; code: string }
  /** An active probe changed a model's health. */
  'model-health': { model: string; healthy: boolean; code?: string }
}

/** Options of {@link createOrchestrator}. */
export interface OrchestratorOptions {
  /** The models to route between (at least one). */
  models: readonly ModelConfig[]
  /** Selection strategy: a built-in name or a function. Default `priority`. */
  strategy?: StrategyName | Strategy
  /** Tolerance band of the `latency` strategy, as a fraction of the best average. Default 0.2. */
  latencyTolerance?: number
  /** Explicit fallback chains per task (model ids), tried after the chosen model and before the rest. */
  fallbacks?: Readonly<Record<string, readonly string[]>>
  /** Response cache. Only successful, complete results are stored. */
  cache?: CacheLike<RunResult>
  /** TTL of cached responses in ms. Default 5 minutes. */
  cacheTtlMs?: number
  /** Event sink (e.g. an `@aide/event-bus` bus). */
  events?: EventSink<OrchestratorEvents>
  /** Metrics. */
  meter?: Meter
  /** Logger. Never receives credentials. */
  logger?: Logger
  /** Clock for deadlines, rate limits, budgets and probes. Default the system clock. */
  clock?: Clock
  /** Random source for weighted and latency strategies. Default `Math.random`. */
  random?: () => number
  /** Tenant policies by tenant id. */
  tenants?: Readonly<Record<string, TenantPolicy>>
  /** Default request deadline in ms when a request gives none. Default none. */
  defaultTimeoutMs?: number
  /** Stream failure after text was delivered: `reject` (default, `E_MODEL` with the partial text) or `restart` on the next model. */
  onPartialFailure?: PartialFailureMode
  /** A stream that produces no first text within this many ms fails over. Default 15000. */
  firstTokenTimeoutMs?: number
  /** A stream that goes quiet for this many ms between chunks fails. Default 30000. */
  idleTimeoutMs?: number
  /** Output tokens assumed for cost estimates when a request sets no `maxTokens`. Default 256. */
  assumedOutputTokens?: number
}

/** Per-model figures from `stats()`. */
export interface ModelStats {
  id: string
  backend: string
  calls: number
  successes: number
  failures: number
  /** failures / calls over the recent window (0 when no call). */
  errorRate: number
  inFlight: number
  queued: number
  latencyMs: { p50: number; p95: number; p99: number; ewma: number | undefined; samples: number }
  breaker: 'closed' | 'open' | 'half-open' | 'isolated'
  healthy: boolean
  costSpent: number
  inputTokens: number
  outputTokens: number
  rateLimited: number
  backendStats?: Record<string, unknown>
}

/** Whole-orchestrator figures from `stats()`. */
export interface OrchestratorStats {
  requests: number
  successes: number
  failures: number
  cacheHits: number
  sharedInFlight: number
  fallbacks: number
  budgetRejections: number
  models: ModelStats[]
  tenants: Array<{ tenant: string; spent: number; limit: number | undefined }>
}
