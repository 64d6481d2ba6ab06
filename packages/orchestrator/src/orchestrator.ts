/**
 * The orchestrator: filters candidate models, orders them by strategy and
 * fallback chain, and runs the request through each model's resilience
 * policies until one succeeds, with a response cache and shared in-flight
 * requests.
 */
import {
  AideError,
  abortable,
  assertFunction,
  assertNumber,
  assertObject,
  assertOneOf,
  assertString,
  type Clock,
  type Counter,
  cancelledError,
  type DeadlineOptions,
  type EventSink,
  type Histogram,
  invalidInput,
  isAideError,
  type Logger,
  noopEventSink,
  noopLogger,
  systemClock,
  timeoutError,
  validateDeadlineOptions,
  withDeadline,
} from '@aide/core'
import type { BackendRequest, BackendResult, ModelInput, Usage } from './backend.js'
import { Budget, TokenBucket } from './limits.js'
import { type CallContext, isAfterDelivery, ModelRuntime, NEVER_ABORTED } from './model-runtime.js'
import { builtInStrategy } from './strategies.js'
import type {
  Attempt,
  Candidate,
  ModelConfig,
  OrchestratorEvents,
  OrchestratorOptions,
  OrchestratorRequest,
  OrchestratorStats,
  PartialFailureMode,
  RateLimit,
  RunResult,
  Strategy,
  StreamPart,
  TenantPolicy,
} from './types.js'

const STRATEGIES = ['priority', 'latency', 'least-busy', 'cost', 'weighted'] as const

function validateRateLimit(value: RateLimit | undefined, field: string): void {
  if (value === undefined) return
  assertObject(value, field)
  assertNumber(value.requestsPerSecond, `${field}.requestsPerSecond`, { min: 0 })
  if (value.burst !== undefined) assertNumber(value.burst, `${field}.burst`, { min: 1 })
}

function validateModel(model: ModelConfig, field: string): void {
  assertObject(model, field)
  assertString(model.id, `${field}.id`)
  assertObject(model.backend, `${field}.backend`)
  assertFunction(model.backend.invoke, `${field}.backend.invoke`)
  if (!Array.isArray(model.tasks) || model.tasks.length === 0) {
    throw invalidInput(`${field}.tasks`, 'must be a non-empty array of task names')
  }
  model.tasks.forEach((task, i) => {
    assertString(task, `${field}.tasks[${i}]`)
  })
  if (model.cost !== undefined) {
    assertObject(model.cost, `${field}.cost`)
    assertNumber(model.cost.inputPer1k, `${field}.cost.inputPer1k`, { min: 0 })
    assertNumber(model.cost.outputPer1k, `${field}.cost.outputPer1k`, { min: 0 })
  }
  if (model.contextWindow !== undefined)
    assertNumber(model.contextWindow, `${field}.contextWindow`, { min: 1, integer: true })
  if (model.quality !== undefined) {
    assertObject(model.quality, `${field}.quality`)
    for (const [task, q] of Object.entries(model.quality))
      assertNumber(q, `${field}.quality.${task}`, { min: 0, max: 1 })
  }
  if (model.maxConcurrency !== undefined)
    assertNumber(model.maxConcurrency, `${field}.maxConcurrency`, { min: 1, integer: true })
  if (model.maxQueue !== undefined)
    assertNumber(model.maxQueue, `${field}.maxQueue`, { min: 0, integer: true })
  validateRateLimit(model.rateLimit, `${field}.rateLimit`)
  if (model.weight !== undefined) assertNumber(model.weight, `${field}.weight`, { min: 0 })
  if (model.priority !== undefined) assertNumber(model.priority, `${field}.priority`)
  if (model.attemptTimeoutMs !== undefined)
    assertNumber(model.attemptTimeoutMs, `${field}.attemptTimeoutMs`, { min: 1 })
  if (model.tags !== undefined) {
    if (!Array.isArray(model.tags))
      throw invalidInput(`${field}.tags`, 'must be an array of strings')
    model.tags.forEach((tag, i) => {
      assertString(tag, `${field}.tags[${i}]`)
    })
  }
  if (model.retry !== undefined) {
    assertObject(model.retry, `${field}.retry`)
    const r = model.retry
    if (r.retries !== undefined)
      assertNumber(r.retries, `${field}.retry.retries`, { min: 0, integer: true })
    if (r.initialDelayMs !== undefined)
      assertNumber(r.initialDelayMs, `${field}.retry.initialDelayMs`, { min: 0 })
    if (r.maxDelayMs !== undefined)
      assertNumber(r.maxDelayMs, `${field}.retry.maxDelayMs`, { min: 0 })
    if (r.maxRetryAfterMs !== undefined)
      assertNumber(r.maxRetryAfterMs, `${field}.retry.maxRetryAfterMs`, { min: 0 })
  }
  if (model.breaker !== undefined) {
    assertObject(model.breaker, `${field}.breaker`)
    const b = model.breaker
    if (b.consecutiveFailures !== undefined) {
      assertNumber(b.consecutiveFailures, `${field}.breaker.consecutiveFailures`, {
        min: 1,
        integer: true,
      })
    }
    if (b.halfOpenAfterMs !== undefined)
      assertNumber(b.halfOpenAfterMs, `${field}.breaker.halfOpenAfterMs`, { min: 0 })
    if (b.failureRate !== undefined) {
      assertObject(b.failureRate, `${field}.breaker.failureRate`)
      assertNumber(b.failureRate.threshold, `${field}.breaker.failureRate.threshold`, {
        min: 0,
        max: 1,
      })
      assertNumber(b.failureRate.window, `${field}.breaker.failureRate.window`, {
        min: 1,
        integer: true,
      })
      if (b.failureRate.minimumCalls !== undefined) {
        assertNumber(b.failureRate.minimumCalls, `${field}.breaker.failureRate.minimumCalls`, {
          min: 1,
          integer: true,
        })
      }
    }
  }
  if (model.probe !== undefined) {
    assertObject(model.probe, `${field}.probe`)
    assertNumber(model.probe.intervalMs, `${field}.probe.intervalMs`, { min: 1 })
    if (model.probe.timeoutMs !== undefined)
      assertNumber(model.probe.timeoutMs, `${field}.probe.timeoutMs`, { min: 1 })
  }
}

function validateInput(input: ModelInput, field: string): void {
  assertObject(input, field)
  if (input.messages !== undefined) {
    if (!Array.isArray(input.messages)) throw invalidInput(`${field}.messages`, 'must be an array')
    input.messages.forEach((message, i) => {
      assertObject(message, `${field}.messages[${i}]`)
      assertOneOf(message.role, `${field}.messages[${i}].role`, [
        'system',
        'user',
        'assistant',
        'tool',
      ])
      assertString(message.content, `${field}.messages[${i}].content`, { allowEmpty: true })
    })
  }
  if (input.prompt !== undefined)
    assertString(input.prompt, `${field}.prompt`, { allowEmpty: true })
  if (input.suffix !== undefined)
    assertString(input.suffix, `${field}.suffix`, { allowEmpty: true })
  if (input.maxTokens !== undefined)
    assertNumber(input.maxTokens, `${field}.maxTokens`, { min: 1, integer: true })
  if (input.temperature !== undefined)
    assertNumber(input.temperature, `${field}.temperature`, { min: 0 })
  if (input.messages === undefined && input.prompt === undefined && input.tensors === undefined) {
    throw invalidInput(field, 'must carry messages, prompt or tensors')
  }
}

function validateRequest(request: OrchestratorRequest): void {
  assertObject(request, 'request')
  assertString(request.task, 'request.task')
  validateInput(request.input, 'request.input')
  validateDeadlineOptions(request, 'request')
  if (request.qualityFloor !== undefined)
    assertNumber(request.qualityFloor, 'request.qualityFloor', { min: 0, max: 1 })
  if (request.costCeiling !== undefined)
    assertNumber(request.costCeiling, 'request.costCeiling', { min: 0 })
  if (request.latencyCeilingMs !== undefined)
    assertNumber(request.latencyCeilingMs, 'request.latencyCeilingMs', { min: 0 })
  if (request.tenant !== undefined) assertString(request.tenant, 'request.tenant')
  if (request.tags !== undefined) {
    if (!Array.isArray(request.tags))
      throw invalidInput('request.tags', 'must be an array of strings')
    request.tags.forEach((tag, i) => {
      assertString(tag, `request.tags[${i}]`)
    })
  }
}

/** Rough token count: 4 characters per token. */
function estimateInputTokens(input: ModelInput): number {
  let chars = (input.prompt?.length ?? 0) + (input.suffix?.length ?? 0)
  if (input.messages) for (const message of input.messages) chars += message.content.length + 4
  return Math.ceil(chars / 4)
}

function costOf(model: ModelConfig, usage: Usage): number {
  if (!model.cost) return 0
  return (
    (usage.inputTokens / 1000) * model.cost.inputPer1k +
    (usage.outputTokens / 1000) * model.cost.outputPer1k
  )
}

interface Flight {
  promise: Promise<RunResult>
  controller: AbortController | undefined
  waiters: number
  settled: boolean
}

/** Where failover stands: the model tried last, why it failed, the smallest window still worth trying. */
interface Failover {
  lastError: AideError | undefined
  minWindow: number
  previous: string
}

interface Tenant {
  bucket: TokenBucket | undefined
  budget: Budget | undefined
}

/** Routes requests over a set of models with per-model resilience. See {@link createOrchestrator}. */
export class Orchestrator {
  readonly #models: ModelRuntime[]
  readonly #byId = new Map<string, ModelRuntime>()
  readonly #strategy: Strategy
  readonly #fallbacks: Readonly<Record<string, readonly string[]>>
  readonly #options: OrchestratorOptions
  readonly #events: EventSink<OrchestratorEvents>
  readonly #logger: Logger
  readonly #clock: Clock
  readonly #random: () => number
  readonly #tenants = new Map<string, Tenant>()
  readonly #inFlight = new Map<string, Flight>()
  /** Response-cache writes still under way, by request key. */
  readonly #cacheWrites = new Map<string, Promise<void>>()
  readonly #streams = new Set<AbortController>()
  readonly #timers: Array<ReturnType<Clock['setInterval']>> = []
  readonly #onPartialFailure: PartialFailureMode
  readonly #requestsCounter: Counter | undefined
  readonly #latencyHistogram: Histogram | undefined
  #disposed: Promise<void> | undefined
  #requests = 0
  #successes = 0
  #failures = 0
  #cacheHits = 0
  #shared = 0
  #fallbackCount = 0
  #budgetRejections = 0

  constructor(options: OrchestratorOptions) {
    assertObject(options, 'options')
    if (!Array.isArray(options.models) || options.models.length === 0) {
      throw invalidInput('options.models', 'must be a non-empty array of models')
    }
    options.models.forEach((model, i) => {
      validateModel(model, `options.models[${i}]`)
    })
    const strategy = options.strategy ?? 'priority'
    if (typeof strategy !== 'function') assertOneOf(strategy, 'options.strategy', STRATEGIES)
    if (options.latencyTolerance !== undefined)
      assertNumber(options.latencyTolerance, 'options.latencyTolerance', { min: 0 })
    if (options.cache !== undefined) {
      assertObject(options.cache, 'options.cache')
      assertFunction(options.cache.get, 'options.cache.get')
      assertFunction(options.cache.set, 'options.cache.set')
    }
    if (options.cacheTtlMs !== undefined)
      assertNumber(options.cacheTtlMs, 'options.cacheTtlMs', { min: 1 })
    if (options.events !== undefined) assertFunction(options.events.emit, 'options.events.emit')
    if (options.defaultTimeoutMs !== undefined)
      assertNumber(options.defaultTimeoutMs, 'options.defaultTimeoutMs', { min: 1 })
    if (options.onPartialFailure !== undefined)
      assertOneOf(options.onPartialFailure, 'options.onPartialFailure', ['reject', 'restart'])
    if (options.firstTokenTimeoutMs !== undefined)
      assertNumber(options.firstTokenTimeoutMs, 'options.firstTokenTimeoutMs', { min: 1 })
    if (options.idleTimeoutMs !== undefined)
      assertNumber(options.idleTimeoutMs, 'options.idleTimeoutMs', { min: 1 })
    if (options.assumedOutputTokens !== undefined) {
      assertNumber(options.assumedOutputTokens, 'options.assumedOutputTokens', {
        min: 0,
        integer: true,
      })
    }
    if (options.random !== undefined) assertFunction(options.random, 'options.random')
    if (options.tenants !== undefined) {
      assertObject(options.tenants, 'options.tenants')
      for (const [id, policy] of Object.entries(options.tenants))
        this.#validateTenant(policy, `options.tenants.${id}`)
    }
    this.#options = options
    this.#events = options.events ?? noopEventSink
    this.#logger = options.logger ?? noopLogger
    this.#clock = options.clock ?? systemClock
    this.#random = options.random ?? Math.random
    this.#onPartialFailure = options.onPartialFailure ?? 'reject'
    this.#strategy =
      typeof strategy === 'function'
        ? strategy
        : builtInStrategy(strategy, options.latencyTolerance)
    this.#models = options.models.map((config) => {
      if (this.#byId.has(config.id))
        throw invalidInput('options.models', `has the id "${config.id}" twice`)
      const runtime = new ModelRuntime(config, this.#clock, this.#events)
      this.#byId.set(config.id, runtime)
      return runtime
    })
    const fallbacks = options.fallbacks ?? {}
    assertObject(fallbacks, 'options.fallbacks')
    for (const [task, chain] of Object.entries(fallbacks)) {
      if (!Array.isArray(chain))
        throw invalidInput(`options.fallbacks.${task}`, 'must be an array of model ids')
      chain.forEach((id, i) => {
        if (!this.#byId.has(id))
          throw invalidInput(`options.fallbacks.${task}[${i}]`, `names unknown model "${id}"`)
      })
    }
    this.#fallbacks = fallbacks
    if (options.meter) {
      this.#requestsCounter = options.meter.counter('aide_orchestrator_attempts_total', {
        help: 'Model attempts by model and outcome',
      })
      this.#latencyHistogram = options.meter.histogram('aide_orchestrator_request_seconds', {
        help: 'Latency of successful requests by model',
      })
    }
    for (const runtime of this.#models) {
      const probe = runtime.config.probe
      if (probe) {
        this.#timers.push(
          this.#clock.setInterval(() => {
            // A slow probe is not stacked with the next one.
            if (runtime.probing) return
            runtime.probing = true
            void this.checkHealth(runtime.id)
              .catch(() => undefined)
              .finally(() => {
                runtime.probing = false
              })
          }, probe.intervalMs),
        )
      }
    }
  }

  #validateTenant(policy: TenantPolicy, field: string): void {
    assertObject(policy, field)
    validateRateLimit(policy.rateLimit, `${field}.rateLimit`)
    if (policy.budget !== undefined) {
      assertObject(policy.budget, `${field}.budget`)
      assertNumber(policy.budget.limit, `${field}.budget.limit`, { min: 0 })
      assertNumber(policy.budget.periodMs, `${field}.budget.periodMs`, { min: 1 })
    }
  }

  #tenant(id: string): Tenant | undefined {
    let tenant = this.#tenants.get(id)
    if (tenant) return tenant
    const policy = this.#options.tenants?.[id]
    if (!policy) return undefined
    tenant = {
      bucket: policy.rateLimit ? new TokenBucket(policy.rateLimit, this.#clock) : undefined,
      budget: policy.budget
        ? new Budget(policy.budget.limit, policy.budget.periodMs, this.#clock)
        : undefined,
    }
    this.#tenants.set(id, tenant)
    return tenant
  }

  #model(id: string, field: string): ModelRuntime {
    assertString(id, field)
    const runtime = this.#byId.get(id)
    if (!runtime)
      throw new AideError('E_NOT_FOUND', `orchestrator: no model "${id}"`, {
        details: { field, model: id },
      })
    return runtime
  }

  #assertLive(): void {
    if (this.#disposed)
      throw new AideError('E_DISPOSED', 'orchestrator: disposed; create a new orchestrator')
  }

  /**
   * Runs a request to completion on the best available model, failing over
   * along the fallback chain. Rejects with `E_CANCELLED`/`E_TIMEOUT` when the
   * caller's signal or deadline ends it, `E_LIMIT` when a tenant limit refuses
   * it, `E_UNAVAILABLE` when no model qualifies, or the last model's error
   * (with `details.attempts`) when every candidate failed.
   */
  run(request: OrchestratorRequest): Promise<RunResult> {
    try {
      this.#assertLive()
      validateRequest(request)
    } catch (error) {
      return Promise.reject(error)
    }
    if (request.signal?.aborted) {
      return Promise.reject(cancelledError(request.signal.reason, 'orchestrator: request'))
    }
    const timeoutMs = request.timeoutMs ?? this.#options.defaultTimeoutMs
    const shareable = request.cache !== false && request.input.tensors === undefined
    if (!shareable)
      return this.#deadline(request, timeoutMs, (signal, deadlineAt) =>
        this.#execute(request, signal, deadlineAt),
      )
    const key = this.#key(request)
    let flight = this.#inFlight.get(key)
    if (flight) {
      this.#shared++
    } else {
      // A first caller with no signal and no deadline never leaves early, so the
      // shared work can never need stopping: skip the controller (hot path).
      const controller =
        request.signal || timeoutMs !== undefined ? new AbortController() : undefined
      const created: Flight = {
        controller,
        waiters: 0,
        settled: false,
        promise: Promise.resolve() as never,
      }
      created.promise = this.#deadline(
        { signal: controller?.signal },
        timeoutMs,
        (signal, deadlineAt) => this.#cached(key, request, signal, deadlineAt),
      ).finally(() => {
        created.settled = true
        const forget = () => {
          if (this.#inFlight.get(key) === created) this.#inFlight.delete(key)
        }
        // Until the result is in the cache, an identical request joins this flight
        // (and gets its result) instead of missing the cache and calling the model again.
        const write = this.#cacheWrites.get(key)
        if (write) void write.then(forget)
        else forget()
      })
      // Waiters handle the outcome; this keeps an abandoned flight from being an unhandled rejection.
      created.promise.catch(() => undefined)
      this.#inFlight.set(key, created)
      flight = created
    }
    const joined = flight
    joined.waiters++
    const waiting =
      request.signal || timeoutMs !== undefined
        ? abortable(joined.promise, {
            signal: request.signal,
            timeoutMs,
            clock: this.#clock,
            label: `orchestrator: ${request.task} request`,
          })
        : joined.promise
    return waiting.finally(() => {
      // The last caller to leave stops the shared work.
      if (--joined.waiters === 0 && !joined.settled && joined.controller) {
        joined.controller.abort(cancelledError(undefined, 'orchestrator: request'))
      }
    })
  }

  #deadline<T>(
    options: DeadlineOptions,
    timeoutMs: number | undefined,
    task: (signal: AbortSignal, deadlineAt: number) => Promise<T>,
  ): Promise<T> {
    const deadlineAt =
      timeoutMs === undefined ? Number.POSITIVE_INFINITY : this.#clock.now() + timeoutMs
    if (!options.signal && timeoutMs === undefined) {
      // Nothing can cancel it: skip withDeadline's bookkeeping on the hot path.
      try {
        return task(NEVER_ABORTED, deadlineAt)
      } catch (error) {
        return Promise.reject(error)
      }
    }
    return withDeadline((signal) => task(signal, deadlineAt), {
      signal: options.signal,
      timeoutMs,
      clock: this.#clock,
      label: 'orchestrator: request',
    })
  }

  #key(request: OrchestratorRequest): string {
    return JSON.stringify([
      request.task,
      request.input,
      request.qualityFloor,
      request.costCeiling,
      request.latencyCeilingMs,
      request.tenant,
      request.tags,
    ])
  }

  async #cached(
    key: string,
    request: OrchestratorRequest,
    signal: AbortSignal,
    deadlineAt: number,
  ): Promise<RunResult> {
    const cache = this.#options.cache
    if (!cache) return this.#execute(request, signal, deadlineAt)
    let hit: RunResult | undefined
    try {
      hit = await cache.get(`orchestrator:${key}`, { signal })
    } catch (error) {
      if (signal.aborted) throw error
      this.#logger.warn(
        { error: describeError(error) },
        'orchestrator: cache read failed; calling the model',
      )
    }
    if (hit) {
      this.#cacheHits++
      return { ...hit, cached: true, attempts: [], latencyMs: 0 }
    }
    const result = await this.#execute(request, signal, deadlineAt)
    if (result.finishReason !== 'error') {
      let write: Promise<void>
      try {
        write = Promise.resolve(
          cache.set(`orchestrator:${key}`, result, { ttl: this.#options.cacheTtlMs ?? 300_000 }),
        )
      } catch (error) {
        write = Promise.reject(error)
      }
      const settled = write
        .catch((error: unknown) => {
          this.#logger.warn({ error: describeError(error) }, 'orchestrator: cache write failed')
        })
        .finally(() => {
          if (this.#cacheWrites.get(key) === settled) this.#cacheWrites.delete(key)
        })
      this.#cacheWrites.set(key, settled)
    }
    return result
  }

  /** Checks tenant limits and returns the ordered candidates. */
  #plan(request: OrchestratorRequest, attempts: Attempt[]): ModelRuntime[] {
    const tenant = request.tenant === undefined ? undefined : this.#tenant(request.tenant)
    if (tenant?.budget && tenant.budget.remaining <= 0) {
      this.#budgetRejections++
      const { spent, limit, periodMs } = tenant.budget
      this.#events.emit('budget-exceeded', { tenant: request.tenant!, spent, limit, periodMs })
      throw new AideError(
        'E_LIMIT',
        `orchestrator: tenant "${request.tenant}" has spent its budget for this period`,
        {
          isRetryable: false,
          details: { tenant: request.tenant, spent, limit, periodMs, reason: 'budget' },
        },
      )
    }
    if (tenant?.bucket && !tenant.bucket.tryTake()) {
      throw new AideError(
        'E_LIMIT',
        `orchestrator: tenant "${request.tenant}" is over its request rate`,
        {
          details: { tenant: request.tenant, reason: 'rate-limit' },
        },
      )
    }
    const inputTokens = estimateInputTokens(request.input)
    const outputTokens = request.input.maxTokens ?? this.#options.assumedOutputTokens ?? 256
    const remainingBudget = tenant?.budget?.remaining ?? Number.POSITIVE_INFINITY
    const candidates: Candidate[] = []
    const rejected: Record<string, string> = {}
    this.#models.forEach((runtime, index) => {
      const model = runtime.config
      const estimatedCost = costOf(model, { inputTokens, outputTokens })
      const quality = model.quality?.[request.task] ?? 0
      let reason: string | undefined
      if (!model.tasks.includes(request.task)) reason = 'task'
      else if (
        model.contextWindow !== undefined &&
        inputTokens + (request.input.maxTokens ?? 0) > model.contextWindow
      )
        reason = 'context-window'
      else if (request.qualityFloor !== undefined && quality < request.qualityFloor)
        reason = 'quality'
      else if (request.costCeiling !== undefined && estimatedCost > request.costCeiling)
        reason = 'cost'
      else if (estimatedCost > remainingBudget) reason = 'budget'
      else if (
        request.latencyCeilingMs !== undefined &&
        runtime.latency.size > 0 &&
        runtime.latency.percentiles(0.95)[0]! > request.latencyCeilingMs
      )
        reason = 'latency'
      else if (request.tags?.some((tag) => !model.tags?.includes(tag))) reason = 'tags'
      else if (!runtime.healthy) reason = 'unhealthy'
      else if (!runtime.admits) reason = `breaker-${runtime.breakerState}`
      if (reason) rejected[model.id] = reason
      else
        candidates.push({
          id: model.id,
          model,
          index,
          inFlight: runtime.inFlight,
          latencyEwmaMs: runtime.latencyEwmaMs,
          estimatedCost,
          quality,
        })
    })
    if (candidates.length === 0 && tenant?.budget && Object.values(rejected).includes('budget')) {
      this.#budgetRejections++
      const { spent, limit, periodMs } = tenant.budget
      this.#events.emit('budget-exceeded', { tenant: request.tenant!, spent, limit, periodMs })
      throw new AideError(
        'E_LIMIT',
        `orchestrator: tenant "${request.tenant}" has too little budget left for this request`,
        {
          isRetryable: false,
          details: { tenant: request.tenant, spent, limit, periodMs, reason: 'budget', rejected },
        },
      )
    }
    if (candidates.length === 0) {
      throw new AideError(
        'E_UNAVAILABLE',
        `orchestrator: no model can serve task "${request.task}" under the request's constraints`,
        {
          details: { task: request.task, rejected, attempts },
        },
      )
    }
    const ordered = this.#strategy(candidates, { request, random: this.#random })
    if (ordered.length === 0) {
      throw new AideError(
        'E_UNAVAILABLE',
        `orchestrator: the strategy chose no model for task "${request.task}"`,
        {
          details: { task: request.task, rejected },
        },
      )
    }
    const seen = new Set<string>()
    const plan: ModelRuntime[] = []
    const push = (id: string) => {
      if (seen.has(id)) return
      const runtime = this.#byId.get(id)
      if (!runtime || !candidates.some((c) => c.id === id)) return
      seen.add(id)
      plan.push(runtime)
    }
    push(ordered[0]!.id)
    for (const id of this.#fallbacks[request.task] ?? []) push(id)
    for (const candidate of ordered) push(candidate.id)
    this.#events.emit('model-selected', {
      task: request.task,
      model: plan[0]!.id,
      candidates: plan.map((r) => r.id),
      ...(request.tenant === undefined ? {} : { tenant: request.tenant }),
    })
    return plan
  }

  async #execute(
    request: OrchestratorRequest,
    signal: AbortSignal,
    deadlineAt: number,
  ): Promise<RunResult> {
    const started = this.#clock.now()
    this.#requests++
    const attempts: Attempt[] = []
    const context: CallContext = { signal, deadlineAt, attempts }
    try {
      const plan = this.#plan(request, attempts)
      const failover: Failover = { lastError: undefined, minWindow: 0, previous: plan[0]!.id }
      for (const runtime of plan) {
        if (!this.#enterCandidate(failover, runtime, request, attempts)) continue
        try {
          const backendRequest: BackendRequest = {
            task: request.task,
            input: request.input,
            model: runtime.id,
          }
          const result = await runtime.invoke(backendRequest, context)
          return this.#succeed(
            runtime,
            request,
            result,
            result.output.text ?? '',
            attempts,
            started,
          )
        } catch (error) {
          const failure = error as AideError
          this.#requestsCounter?.inc(1, { model: runtime.id, outcome: 'failure' })
          if (signal.aborted) throw failure
          if (!this.#failsOver(failure)) throw this.#final(failure, attempts)
          this.#recordFailure(failover, runtime, failure)
        }
      }
      throw this.#exhausted(request, failover.lastError, attempts)
    } catch (error) {
      this.#failures++
      throw this.#final(error, attempts)
    }
  }

  /**
   * Steps failover onto `runtime` (shared by `run` and `stream`). Returns false
   * when the candidate is skipped: its declared context window is too small for
   * a request that already overflowed one, or its rate limit is reached (which
   * becomes the last error). A fallback is counted and emitted, and passed to
   * `onFallback` (streams restart there).
   */
  #enterCandidate(
    failover: Failover,
    runtime: ModelRuntime,
    request: OrchestratorRequest,
    attempts: Attempt[],
    onFallback?: (from: string, to: string, code: string) => void,
  ): boolean {
    const lastError = failover.lastError
    if (lastError) {
      if ((runtime.config.contextWindow ?? Number.POSITIVE_INFINITY) <= failover.minWindow)
        return false
      this.#fallbackCount++
      this.#events.emit('model-fallback', {
        task: request.task,
        from: failover.previous,
        to: runtime.id,
        code: lastError.code,
      })
      onFallback?.(failover.previous, runtime.id, lastError.code)
    }
    failover.previous = runtime.id
    if (!runtime.takeToken(attempts)) {
      failover.lastError = new AideError(
        'E_LIMIT',
        `orchestrator: model "${runtime.id}" rate limit reached`,
        { details: { model: runtime.id } },
      )
      return false
    }
    return true
  }

  /** Records a failure that fails over, narrowing the eligible context windows. */
  #recordFailure(failover: Failover, runtime: ModelRuntime, failure: AideError): void {
    // Only models with a larger declared window can take it; without a declared
    // window we cannot tell, so every other model stays eligible.
    if (failure.code === 'E_INVALID_INPUT' && runtime.config.contextWindow !== undefined) {
      failover.minWindow = Math.max(failover.minWindow, runtime.config.contextWindow)
    }
    failover.lastError = failure
  }

  /** Whether a model's failure should move on to the next candidate. */
  #failsOver(error: AideError): boolean {
    if (error.code === 'E_CANCELLED') return false
    if (error.code === 'E_INVALID_INPUT') return error.details.reason === 'context-length'
    return true
  }

  #final(error: unknown, attempts: Attempt[]): AideError {
    if (isAideError(error)) {
      if (error.details.attempts) return error
      return new AideError(error.code, error.message, {
        cause: error.cause ?? error,
        details: { ...error.details, attempts },
        isRetryable: error.isRetryable,
      })
    }
    return new AideError(
      'E_INTERNAL',
      `orchestrator: ${error instanceof Error ? error.message : String(error)}`,
      {
        cause: error,
        details: { attempts },
      },
    )
  }

  #exhausted(
    request: OrchestratorRequest,
    lastError: AideError | undefined,
    attempts: Attempt[],
  ): AideError {
    const code = lastError?.code ?? 'E_UNAVAILABLE'
    return new AideError(
      code,
      `orchestrator: every model for task "${request.task}" failed or was skipped (last: ${lastError?.message ?? 'none'})`,
      {
        cause: lastError,
        details: {
          task: request.task,
          attempts,
          ...(lastError?.details.partialText ? { partialText: lastError.details.partialText } : {}),
        },
        isRetryable: lastError?.isRetryable ?? true,
      },
    )
  }

  #succeed(
    runtime: ModelRuntime,
    request: OrchestratorRequest,
    result: BackendResult,
    text: string,
    attempts: Attempt[],
    started: number,
  ): RunResult {
    const usage: Usage = result.usage ?? {
      inputTokens: estimateInputTokens(request.input),
      outputTokens: Math.ceil(text.length / 4),
    }
    const cost = costOf(runtime.config, usage)
    runtime.costSpent += cost
    runtime.inputTokens += usage.inputTokens
    runtime.outputTokens += usage.outputTokens
    if (request.tenant !== undefined) this.#tenant(request.tenant)?.budget?.charge(cost)
    const latencyMs = this.#clock.now() - started
    this.#successes++
    this.#requestsCounter?.inc(1, { model: runtime.id, outcome: 'success' })
    this.#latencyHistogram?.observe(latencyMs / 1000, { model: runtime.id })
    return {
      model: runtime.id,
      output: result.output,
      text,
      usage,
      finishReason: result.finishReason ?? 'unknown',
      cost,
      latencyMs,
      attempts,
      cached: false,
    }
  }

  /**
   * Streams a request. Yields `delta` parts as text arrives, a `restart` part
   * when (with `onPartialFailure: 'restart'`) a model failed after text was
   * delivered and the answer starts over on the next model, and finally one
   * `done` part with the full result. A failure before the first text fails
   * over silently. A failure after text was delivered, in `reject` mode,
   * throws `E_MODEL` with `details.partialText`: a cut answer is never a success.
   * Leaving the loop early cancels the model call.
   */
  async *stream(request: OrchestratorRequest): AsyncGenerator<StreamPart, void, undefined> {
    this.#assertLive()
    validateRequest(request)
    const timeoutMs = request.timeoutMs ?? this.#options.defaultTimeoutMs
    const controller = new AbortController()
    this.#streams.add(controller)
    const onCallerAbort = () =>
      controller.abort(cancelledError(request.signal?.reason, 'orchestrator: stream'))
    request.signal?.addEventListener('abort', onCallerAbort, { once: true })
    if (request.signal?.aborted) onCallerAbort()
    const timer =
      timeoutMs === undefined
        ? undefined
        : this.#clock.setTimeout(
            () => controller.abort(timeoutError(timeoutMs, 'orchestrator: stream')),
            timeoutMs,
          )
    const deadlineAt =
      timeoutMs === undefined ? Number.POSITIVE_INFINITY : this.#clock.now() + timeoutMs
    const queue = new PartQueue()
    const abortWait = () =>
      queue.fail(
        withPartial(cancelledError(controller.signal.reason, 'orchestrator: stream'), queue.text),
      )
    controller.signal.addEventListener('abort', abortWait, { once: true })
    void this.#drive(request, controller.signal, deadlineAt, queue)
    try {
      for (;;) {
        const part = await queue.next()
        if (!part) return
        yield part
      }
    } finally {
      if (timer !== undefined) this.#clock.clearTimer(timer)
      request.signal?.removeEventListener('abort', onCallerAbort)
      controller.signal.removeEventListener('abort', abortWait)
      this.#streams.delete(controller)
      if (!queue.finished)
        controller.abort(cancelledError(undefined, 'orchestrator: stream consumer left'))
    }
  }

  async #drive(
    request: OrchestratorRequest,
    signal: AbortSignal,
    deadlineAt: number,
    queue: PartQueue,
  ): Promise<void> {
    const started = this.#clock.now()
    this.#requests++
    const attempts: Attempt[] = []
    const context: CallContext = { signal, deadlineAt, attempts }
    let delivered = ''
    try {
      const plan = this.#plan(request, attempts)
      const failover: Failover = { lastError: undefined, minWindow: 0, previous: plan[0]!.id }
      // Falling back after text was delivered restarts the answer on the next model.
      const restart = (from: string, to: string, code: string) => {
        if (!delivered) return
        queue.push({ type: 'restart', from, to, discardedText: delivered, code })
        this.#events.emit('stream-restart', {
          task: request.task,
          from,
          to,
          discardedChars: delivered.length,
          code,
        })
        delivered = ''
      }
      for (const runtime of plan) {
        if (!this.#enterCandidate(failover, runtime, request, attempts, restart)) continue
        try {
          const result = await runtime.stream(
            { task: request.task, input: request.input, model: runtime.id },
            context,
            {
              firstTokenTimeoutMs: this.#options.firstTokenTimeoutMs ?? 15_000,
              idleTimeoutMs: this.#options.idleTimeoutMs ?? 30_000,
              onDelta: (text) => {
                delivered += text
                queue.push({ type: 'delta', text, model: runtime.id })
              },
            },
          )
          queue.push({
            type: 'done',
            result: this.#succeed(runtime, request, result, result.text, attempts, started),
          })
          queue.end()
          return
        } catch (error) {
          const failure = error as AideError
          if (signal.aborted) throw failure
          if (delivered && (this.#onPartialFailure === 'reject' || !isAfterDelivery(failure))) {
            throw new AideError(
              'E_MODEL',
              `orchestrator: model "${runtime.id}" failed after streaming ${delivered.length} characters; the partial answer is in details.partialText`,
              {
                cause: failure,
                isRetryable: true,
                details: { model: runtime.id, partialText: delivered, reason: 'partial-stream' },
              },
            )
          }
          if (!this.#failsOver(failure)) throw failure
          this.#recordFailure(failover, runtime, failure)
        }
      }
      const lastError = failover.lastError
      if (delivered && lastError) {
        throw new AideError(
          'E_MODEL',
          `orchestrator: every model failed; the last one after streaming ${delivered.length} characters (partial answer in details.partialText)`,
          {
            cause: lastError,
            details: { partialText: delivered, reason: 'partial-stream' },
          },
        )
      }
      throw this.#exhausted(request, lastError, attempts)
    } catch (error) {
      this.#failures++
      queue.fail(withPartial(this.#final(error, attempts), delivered))
    }
  }

  /** Runs an active health probe on one model now and records the outcome. */
  async checkHealth(modelId: string, options: DeadlineOptions = {}): Promise<boolean> {
    const runtime = this.#model(modelId, 'modelId')
    validateDeadlineOptions(options)
    const backend = runtime.config.backend
    const before = runtime.healthy
    let code: string | undefined
    try {
      await withDeadline<unknown>(
        (signal) =>
          backend.probe
            ? backend.probe({ signal })
            : backend.invoke(
                {
                  task: runtime.config.tasks[0]!,
                  model: runtime.id,
                  input: { prompt: 'ping', maxTokens: 1 },
                },
                { signal },
              ),
        {
          signal: options.signal,
          timeoutMs: options.timeoutMs ?? runtime.config.probe?.timeoutMs ?? 5_000,
          clock: this.#clock,
          label: `orchestrator: probe of model "${runtime.id}"`,
        },
      )
      runtime.healthy = true
    } catch (error) {
      if (options.signal?.aborted) throw error
      runtime.healthy = false
      code = isAideError(error) ? error.code : 'E_MODEL'
    }
    if (before !== runtime.healthy) {
      this.#events.emit('model-health', {
        model: runtime.id,
        healthy: runtime.healthy,
        ...(code ? { code } : {}),
      })
    }
    return runtime.healthy
  }

  /** Takes a model out of rotation (its breaker is held open) until {@link restore}. */
  isolate(modelId: string): void {
    this.#model(modelId, 'modelId').isolate()
  }

  /** Puts an isolated model back into rotation and marks it healthy. */
  restore(modelId: string): void {
    const runtime = this.#model(modelId, 'modelId')
    runtime.restore()
    runtime.healthy = true
  }

  /** Plain-data figures for the orchestrator and each model. */
  stats(): OrchestratorStats {
    return {
      requests: this.#requests,
      successes: this.#successes,
      failures: this.#failures,
      cacheHits: this.#cacheHits,
      sharedInFlight: this.#shared,
      fallbacks: this.#fallbackCount,
      budgetRejections: this.#budgetRejections,
      models: this.#models.map((m) => m.stats()),
      tenants: [...this.#tenants.entries()].map(([tenant, t]) => ({
        tenant,
        spent: t.budget?.spent ?? 0,
        limit: t.budget?.limit,
      })),
    }
  }

  /** Stops probes, cancels in-flight work and disposes each backend once. Idempotent. */
  dispose(): Promise<void> {
    if (this.#disposed) return this.#disposed
    for (const timer of this.#timers) this.#clock.clearTimer(timer)
    for (const runtime of this.#models) runtime.dispose()
    for (const controller of this.#streams) {
      controller.abort(new AideError('E_DISPOSED', 'orchestrator: disposed'))
    }
    for (const flight of this.#inFlight.values()) {
      flight.controller?.abort(new AideError('E_DISPOSED', 'orchestrator: disposed'))
    }
    const backends = new Set(this.#models.map((m) => m.config.backend))
    this.#disposed = Promise.allSettled(
      [...backends].map(async (backend) => backend.dispose?.()),
    ).then(() => undefined)
    return this.#disposed
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose()
  }
}

/** A single-consumer queue of stream parts. */
class PartQueue {
  /** Text delivered since the start or the last restart. */
  text = ''
  #items: StreamPart[] = []
  #waiter:
    | { resolve: (part: StreamPart | undefined) => void; reject: (error: unknown) => void }
    | undefined
  #error: unknown
  #ended = false

  get finished(): boolean {
    return this.#ended || this.#error !== undefined
  }

  push(part: StreamPart): void {
    if (this.finished) return
    if (part.type === 'delta') this.text += part.text
    else if (part.type === 'restart') this.text = ''
    if (this.#waiter) {
      const waiter = this.#waiter
      this.#waiter = undefined
      waiter.resolve(part)
    } else this.#items.push(part)
  }

  end(): void {
    if (this.finished) return
    this.#ended = true
    this.#waiter?.resolve(undefined)
    this.#waiter = undefined
  }

  fail(error: unknown): void {
    if (this.finished) return
    this.#error = error
    this.#waiter?.reject(error)
    this.#waiter = undefined
  }

  next(): Promise<StreamPart | undefined> {
    const item = this.#items.shift()
    if (item) return Promise.resolve(item)
    if (this.#error !== undefined) return Promise.reject(this.#error)
    if (this.#ended) return Promise.resolve(undefined)
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }))
  }
}

/** The error with `details.partialText` added when text was delivered. */
function withPartial(error: AideError, text: string): AideError {
  if (!text || error.details.partialText !== undefined) return error
  return new AideError(error.code, error.message, {
    cause: error.cause,
    isRetryable: error.isRetryable,
    details: { ...error.details, partialText: text },
  })
}

function describeError(error: unknown): Record<string, unknown> {
  return isAideError(error)
    ? { code: error.code, message: error.message }
    : { message: String(error) }
}

/**
 * Creates an orchestrator over `options.models`.
 *
 * ```ts
 * const orchestrator = createOrchestrator({ models: [{ id: 'gpt', backend, tasks: ['chat'] }] })
 * const result = await orchestrator.run({ task: 'chat', input: { messages: [{ role: 'user', content: 'hi' }] } })
 * ```
 */
export function createOrchestrator(options: OrchestratorOptions): Orchestrator {
  return new Orchestrator(options)
}
