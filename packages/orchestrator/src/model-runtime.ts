/**
 * Per-model resilience: cockatiel's circuit breaker, retry (decorrelated
 * jitter) and bulkhead, plus what cockatiel lacks: a half-open state that
 * fails fast for everyone but the one probe (cockatiel makes the others wait),
 * Retry-After, a combined consecutive + rate breaker, a token bucket and
 * per-attempt deadlines on the injected clock.
 */
import {
  AideError,
  type Clock,
  cancelledError,
  type EventSink,
  isAideError,
  type TimerHandle,
  timeoutError,
  toAideError,
  withDeadline,
} from '@aide/core'
import {
  BrokenCircuitError,
  type BulkheadPolicy,
  bulkhead,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  CountBreaker,
  circuitBreaker,
  decorrelatedJitterGenerator,
  ExponentialBackoff,
  handleWhen,
  type IBackoff,
  type IBackoffFactory,
  type IBreaker,
  type IRetryBackoffContext,
  isBrokenCircuitError,
  isBulkheadRejectedError,
  isTaskCancelledError,
  type RetryPolicy,
  retry,
} from 'cockatiel'
import type { BackendChunk, BackendRequest, BackendResult } from './backend.js'
import { LatencyWindow, OutcomeWindow, TokenBucket } from './limits.js'
import type { Attempt, ModelConfig, ModelStats, OrchestratorEvents } from './types.js'

/** Error codes that count against a model's breaker. */
const BREAKER_CODES = new Set([
  'E_UNAVAILABLE',
  'E_TIMEOUT',
  'E_MODEL',
  'E_PROTOCOL',
  'E_LIMIT',
  'E_PERMISSION',
  'E_INTERNAL',
])

/** A breaker that opens when either of its parts says so. */
class EitherBreaker implements IBreaker {
  constructor(readonly parts: IBreaker[]) {}
  get state(): unknown {
    return this.parts.map((p) => p.state)
  }
  set state(value: unknown) {
    if (!Array.isArray(value)) return
    this.parts.forEach((part, i) => {
      part.state = value[i]
    })
  }
  success(state: CircuitState): void {
    for (const part of this.parts) part.success(state)
  }
  failure(state: CircuitState): boolean {
    let open = false
    for (const part of this.parts) open = part.failure(state) || open
    return open
  }
}

/** The Retry-After an error carries, in ms. */
function retryAfterOf(error: unknown): number | undefined {
  if (!isAideError(error)) return undefined
  const value = error.details.retryAfterMs
  return typeof value === 'number' && value >= 0 ? value : undefined
}

/** Wraps a backoff so a provider's Retry-After wins when it is longer. */
function honourRetryAfter(
  inner: IBackoffFactory<IRetryBackoffContext<unknown>>,
): IBackoffFactory<IRetryBackoffContext<unknown>> {
  const wrapNext = (factory: IBackoffFactory<IRetryBackoffContext<unknown>>) => ({
    next(context: IRetryBackoffContext<unknown>): IBackoff<IRetryBackoffContext<unknown>> {
      const backoff = factory.next(context)
      const retryAfter = 'error' in context.result ? retryAfterOf(context.result.error) : undefined
      return {
        duration: Math.max(backoff.duration, retryAfter ?? 0),
        next: (next) => wrapNext(backoff).next(next),
      }
    },
  })
  return wrapNext(inner)
}

/** A signal that never aborts: handed to calls nothing can cancel. */
export const NEVER_ABORTED: AbortSignal = new AbortController().signal

/** One attempt waiting for its deadline. */
interface PendingAttempt {
  deadline: number
  timeoutMs?: number
  controller: AbortController
  reject: (error: unknown) => void
  done: boolean
}

/** What a call needs from the orchestrator. */
export interface CallContext {
  /** Aborts when the caller goes or the request deadline passes. */
  signal: AbortSignal
  /** Absolute request deadline on the clock, or Infinity. */
  deadlineAt: number
  /** Where attempts are recorded. */
  attempts: Attempt[]
}

/** Errors created because the caller left: never counted, never retried. */
const callerAborted = new WeakSet<object>()
/** Errors after streamed text was delivered: counted, never retried on the same model. */
const afterDelivery = new WeakSet<object>()

/** True when a stream error happened after text was delivered. */
export function isAfterDelivery(error: unknown): boolean {
  return typeof error === 'object' && error !== null && afterDelivery.has(error)
}

/** The runtime state and policies of one model. */
export class ModelRuntime {
  readonly config: ModelConfig
  readonly breaker: CircuitBreakerPolicy
  readonly bulkhead: BulkheadPolicy
  readonly retry: RetryPolicy
  readonly bucket: TokenBucket | undefined
  readonly latency = new LatencyWindow()
  readonly outcomes = new OutcomeWindow()
  latencyEwmaMs: number | undefined
  inFlight = 0
  calls = 0
  successes = 0
  failures = 0
  costSpent = 0
  inputTokens = 0
  outputTokens = 0
  rateLimited = 0
  /** False after a failed active probe, until one succeeds. */
  healthy = true
  /** True while an active probe runs (probes never overlap). */
  probing = false
  readonly #clock: Clock
  readonly #attemptTimeoutMs: number
  readonly #maxRetryAfterMs: number
  readonly #halfOpenAfterMs: number
  #openedAt = 0
  #deadlines: PendingAttempt[] = []
  #deadlineHead = 0
  #deadlineTimer: TimerHandle | undefined
  #isolation: { dispose(): void } | undefined

  constructor(config: ModelConfig, clock: Clock, events: EventSink<OrchestratorEvents>) {
    this.config = config
    this.#clock = clock
    this.#attemptTimeoutMs = config.attemptTimeoutMs ?? 30_000
    this.#maxRetryAfterMs = config.retry?.maxRetryAfterMs ?? 2_000
    this.#halfOpenAfterMs = config.breaker?.halfOpenAfterMs ?? 10_000
    const parts: IBreaker[] = [new ConsecutiveBreaker(config.breaker?.consecutiveFailures ?? 5)]
    const rate = config.breaker?.failureRate
    if (rate) {
      parts.push(
        new CountBreaker({
          threshold: rate.threshold,
          size: rate.window,
          minimumNumberOfCalls: rate.minimumCalls ?? rate.window,
        }),
      )
    }
    this.breaker = circuitBreaker(
      handleWhen(
        (error) => isAideError(error) && BREAKER_CODES.has(error.code) && !callerAborted.has(error),
      ),
      {
        halfOpenAfter: this.#halfOpenAfterMs,
        breaker: parts.length === 1 ? parts[0]! : new EitherBreaker(parts),
      },
    )
    this.breaker.onBreak((reason) => {
      // cockatiel measures the open period with Date.now(); so do we.
      this.#openedAt = Date.now()
      events.emit('breaker-open', { model: config.id, isolated: 'isolated' in reason })
    })
    this.breaker.onHalfOpen(() => events.emit('breaker-half-open', { model: config.id }))
    this.breaker.onReset(() => events.emit('breaker-close', { model: config.id }))
    this.bulkhead = bulkhead(config.maxConcurrency ?? 16, config.maxQueue ?? 64)
    const retries = config.retry?.retries ?? 1
    this.retry = retry(
      handleWhen((error) => this.#shouldRetry(error)),
      {
        maxAttempts: retries,
        backoff: honourRetryAfter(
          new ExponentialBackoff({
            generator: decorrelatedJitterGenerator,
            initialDelay: config.retry?.initialDelayMs ?? 100,
            maxDelay: config.retry?.maxDelayMs ?? 1_000,
          }) as IBackoffFactory<IRetryBackoffContext<unknown>>,
        ),
      },
    )
    // The backoff timer stays ref'd on purpose: it is part of a call someone awaits,
    // and an unref'd one lets a script exit mid-retry with its await unsettled.
    this.bucket = config.rateLimit ? new TokenBucket(config.rateLimit, clock) : undefined
  }

  get id(): string {
    return this.config.id
  }

  /** Breaker state in plain words. */
  get breakerState(): ModelStats['breaker'] {
    switch (this.breaker.state) {
      case CircuitState.Closed:
        return 'closed'
      case CircuitState.HalfOpen:
        return 'half-open'
      case CircuitState.Isolated:
        return 'isolated'
      default:
        return 'open'
    }
  }

  /** Whether a call could go through now (closed, or open long enough for its one probe). */
  get admits(): boolean {
    const state = this.breaker.state
    if (state === CircuitState.Closed) return true
    if (state === CircuitState.Open) return Date.now() - this.#openedAt >= this.#halfOpenAfterMs
    return false
  }

  /** Holds the breaker open until {@link restore}. */
  isolate(): void {
    if (!this.#isolation) this.#isolation = this.breaker.isolate()
  }

  /** Releases a manual isolation. */
  restore(): void {
    this.#isolation?.dispose()
    this.#isolation = undefined
  }

  #shouldRetry(error: unknown): boolean {
    if (!isAideError(error) || !error.isRetryable) return false
    if (callerAborted.has(error) || afterDelivery.has(error)) return false
    const retryAfter = retryAfterOf(error)
    return retryAfter === undefined || retryAfter <= this.#maxRetryAfterMs
  }

  /** Runs one request on this model with retry, breaker, bulkhead and per-attempt timeout. */
  invoke(request: BackendRequest, context: CallContext): Promise<BackendResult> {
    return this.#guarded(context, (signal) => this.config.backend.invoke(request, { signal }))
  }

  /**
   * Streams one request on this model. `onDelta` receives text as it arrives.
   * No first text within `firstTokenTimeoutMs`, or silence longer than
   * `idleTimeoutMs`, fails the attempt. A stream that ends without its `done`
   * chunk is a failure, never a short success.
   */
  stream(
    request: BackendRequest,
    context: CallContext,
    options: {
      firstTokenTimeoutMs: number
      idleTimeoutMs: number
      onDelta: (text: string) => void
    },
  ): Promise<BackendResult & { text: string }> {
    const backend = this.config.backend
    return this.#guarded(
      context,
      async (signal) => {
        if (!backend.stream) {
          const result = await backend.invoke(request, { signal })
          const text = result.output.text ?? ''
          if (text) options.onDelta(text)
          return { ...result, text }
        }
        const iterator = backend.stream(request, { signal })[Symbol.asyncIterator]()
        let text = ''
        try {
          for (;;) {
            const limitMs = text ? options.idleTimeoutMs : options.firstTokenTimeoutMs
            const waitMs = limitMs < context.deadlineAt - this.#clock.now() ? limitMs : undefined
            let next: IteratorResult<BackendChunk>
            try {
              next = await withDeadline(() => iterator.next(), {
                signal,
                timeoutMs: waitMs,
                clock: this.#clock,
                label: `orchestrator: model "${this.id}" ${text ? 'stream went idle' : 'first token'}`,
              })
            } catch (error) {
              throw this.#markDelivered(error, text)
            }
            if (next.done) {
              throw this.#markDelivered(
                new AideError(
                  'E_MODEL',
                  `orchestrator: model "${this.id}" stream ended without completing`,
                  {
                    isRetryable: true,
                    details: { model: this.id, reason: 'truncated' },
                  },
                ),
                text,
              )
            }
            const chunk = next.value
            if (chunk.type === 'delta') {
              if (chunk.text) {
                text += chunk.text
                options.onDelta(chunk.text)
              }
            } else {
              return {
                output: { text },
                text,
                ...(chunk.usage ? { usage: chunk.usage } : {}),
                ...(chunk.finishReason ? { finishReason: chunk.finishReason } : {}),
              }
            }
          }
        } finally {
          void Promise.resolve(iterator.return?.()).catch(() => undefined)
        }
      },
      false,
    )
  }

  /**
   * Runs one attempt with its own abort signal. The attempt rejects (and its
   * signal aborts) when the caller's signal aborts or its timeout passes, even
   * if the backend ignores the signal.
   *
   * Attempt timeouts share one clock timer per model instead of one each: a
   * model's attempts start in time order with the same timeout, so their
   * deadlines form a FIFO queue and only its head needs a timer. This keeps
   * timer churn (and its p99 cost) off the hot path.
   */
  #attempt<T>(
    call: (signal: AbortSignal) => Promise<T>,
    outer: AbortSignal,
    started: number,
    timeoutMs: number | undefined,
  ): Promise<T> {
    const cancellable = outer !== NEVER_ABORTED
    if (!cancellable && timeoutMs === undefined) return call(NEVER_ABORTED)
    const controller = new AbortController()
    return new Promise<T>((resolve, reject) => {
      const entry: PendingAttempt = { deadline: 0, controller, reject, done: false }
      const onAbort = () => {
        if (entry.done) return
        entry.done = true
        const error = cancelledError(outer.reason, `orchestrator: model "${this.id}" attempt`)
        controller.abort(error)
        reject(error)
      }
      if (cancellable) outer.addEventListener('abort', onAbort, { once: true })
      if (timeoutMs !== undefined) {
        entry.deadline = started + timeoutMs
        entry.timeoutMs = timeoutMs
        this.#track(entry)
      }
      const settle = () => {
        entry.done = true
        if (cancellable) outer.removeEventListener('abort', onAbort)
      }
      let pending: Promise<T>
      try {
        pending = call(controller.signal)
      } catch (error) {
        settle()
        reject(error)
        return
      }
      pending.then(
        (value) => {
          if (entry.done) return
          settle()
          resolve(value)
        },
        (error: unknown) => {
          if (entry.done) return
          settle()
          reject(error)
        },
      )
    })
  }

  #track(entry: PendingAttempt): void {
    const queue = this.#deadlines
    while (this.#deadlineHead < queue.length && queue[this.#deadlineHead]!.done)
      this.#deadlineHead++
    if (this.#deadlineHead > 1024 && this.#deadlineHead * 2 > queue.length) {
      this.#deadlines = queue.slice(this.#deadlineHead)
      this.#deadlineHead = 0
    }
    this.#deadlines.push(entry)
    if (this.#deadlineTimer === undefined) this.#armDeadlines(entry.deadline)
  }

  #armDeadlines(at: number): void {
    this.#deadlineTimer = this.#clock.setTimeout(
      () => this.#sweepDeadlines(),
      Math.max(0, at - this.#clock.now()),
    )
  }

  #sweepDeadlines(): void {
    this.#deadlineTimer = undefined
    const now = this.#clock.now()
    const queue = this.#deadlines
    while (this.#deadlineHead < queue.length) {
      const entry = queue[this.#deadlineHead]!
      if (!entry.done && entry.deadline > now) break
      this.#deadlineHead++
      if (entry.done) continue
      entry.done = true
      const error = timeoutError(entry.timeoutMs ?? 0, `orchestrator: model "${this.id}" attempt`)
      entry.controller.abort(error)
      entry.reject(error)
    }
    if (this.#deadlineHead >= queue.length) {
      this.#deadlines = []
      this.#deadlineHead = 0
    } else {
      this.#armDeadlines(queue[this.#deadlineHead]!.deadline)
    }
  }

  /** Stops the deadline timer (the orchestrator is being disposed). */
  dispose(): void {
    if (this.#deadlineTimer !== undefined) this.#clock.clearTimer(this.#deadlineTimer)
    this.#deadlineTimer = undefined
  }

  #markDelivered(error: unknown, text: string): unknown {
    if (text && typeof error === 'object' && error !== null) afterDelivery.add(error)
    return error
  }

  async #guarded<T>(
    context: CallContext,
    call: (signal: AbortSignal) => Promise<T>,
    useAttemptTimeout = true,
  ): Promise<T> {
    const { signal, deadlineAt, attempts } = context
    try {
      return await this.retry.execute(async () => {
        if (signal.aborted) throw this.#callerGone(signal)
        const state = this.breaker.state
        if (
          state === CircuitState.HalfOpen ||
          state === CircuitState.Isolated ||
          (state === CircuitState.Open && !this.admits)
        ) {
          // Fail fast instead of queueing behind the single half-open probe.
          throw this.#skip(
            attempts,
            'E_CIRCUIT_OPEN',
            `orchestrator: model "${this.id}" circuit is ${this.breakerState}`,
          )
        }
        const started = this.#clock.now()
        const remaining = deadlineAt - started
        // When the request deadline comes first, let it (not an attempt timeout) end the call.
        // Streams are bounded by their first-token and idle timeouts instead, so a long
        // answer that keeps flowing is not cut by the attempt timeout.
        const timeoutMs =
          useAttemptTimeout && this.#attemptTimeoutMs < remaining
            ? this.#attemptTimeoutMs
            : undefined
        this.inFlight++
        this.calls++
        try {
          const value = await this.breaker.execute(
            () =>
              this.bulkhead.execute(() => this.#attempt(call, signal, started, timeoutMs), signal),
            signal,
          )
          const latencyMs = this.#clock.now() - started
          this.#recordSuccess(latencyMs)
          attempts.push({ model: this.id, outcome: 'success', latencyMs })
          return value
        } catch (raw) {
          const error = this.#normalise(raw, signal)
          const latencyMs = this.#clock.now() - started
          const skipped =
            error.code === 'E_CIRCUIT_OPEN' ||
            (error.code === 'E_LIMIT' && error.details.reason === 'bulkhead')
          if (!skipped && !callerAborted.has(error)) {
            this.failures++
            this.outcomes.add(true)
          }
          attempts.push({
            model: this.id,
            outcome: skipped ? 'skipped' : 'failure',
            code: error.code,
            message: error.message,
            latencyMs,
          })
          throw error
        } finally {
          this.inFlight--
        }
      }, signal)
    } catch (error) {
      throw this.#normalise(error, signal)
    }
  }

  #skip(attempts: Attempt[], code: 'E_CIRCUIT_OPEN' | 'E_LIMIT', message: string): AideError {
    attempts.push({ model: this.id, outcome: 'skipped', code, message, latencyMs: 0 })
    return new AideError(code, message, { isRetryable: false, details: { model: this.id } })
  }

  #callerGone(signal: AbortSignal): AideError {
    const error = cancelledError(signal.reason, `orchestrator: request to model "${this.id}"`)
    callerAborted.add(error)
    return error
  }

  #normalise(raw: unknown, signal: AbortSignal): AideError {
    if (signal.aborted) {
      // Whatever the backend threw, the caller's cancellation or deadline is the story.
      return this.#callerGone(signal)
    }
    if (isAideError(raw)) return raw
    if (raw instanceof BrokenCircuitError || isBrokenCircuitError(raw)) {
      return new AideError('E_CIRCUIT_OPEN', `orchestrator: model "${this.id}" circuit is open`, {
        isRetryable: false,
        cause: raw,
        details: { model: this.id },
      })
    }
    if (isBulkheadRejectedError(raw)) {
      return new AideError(
        'E_LIMIT',
        `orchestrator: model "${this.id}" is at its concurrency and queue limit`,
        {
          isRetryable: false,
          cause: raw,
          details: { model: this.id, reason: 'bulkhead' },
        },
      )
    }
    if (isTaskCancelledError(raw)) return this.#callerGone(signal)
    return toAideError(
      raw,
      'E_MODEL',
      `orchestrator: model "${this.id}" failed: ${raw instanceof Error ? raw.message : String(raw)}`,
    )
  }

  #recordSuccess(latencyMs: number): void {
    this.successes++
    this.outcomes.add(false)
    this.latency.add(latencyMs)
    this.latencyEwmaMs =
      this.latencyEwmaMs === undefined ? latencyMs : this.latencyEwmaMs * 0.8 + latencyMs * 0.2
  }

  /** Takes a rate-limit token; records a skipped attempt and returns false when there is none. */
  takeToken(attempts: Attempt[]): boolean {
    if (!this.bucket || this.bucket.tryTake()) return true
    this.rateLimited++
    attempts.push({
      model: this.id,
      outcome: 'skipped',
      code: 'E_LIMIT',
      message: `orchestrator: model "${this.id}" rate limit reached`,
      latencyMs: 0,
    })
    return false
  }

  /** Plain-data figures. */
  stats(): ModelStats {
    const [p50, p95, p99] = this.latency.percentiles(0.5, 0.95, 0.99)
    const backendStats = this.config.backend.stats?.()
    return {
      id: this.id,
      backend: this.config.backend.kind,
      calls: this.calls,
      successes: this.successes,
      failures: this.failures,
      errorRate: this.outcomes.rate,
      inFlight: this.inFlight,
      queued: Math.max(0, (this.config.maxQueue ?? 64) - this.bulkhead.queueSlots),
      latencyMs: {
        p50: p50!,
        p95: p95!,
        p99: p99!,
        ewma: this.latencyEwmaMs,
        samples: this.latency.size,
      },
      breaker: this.breakerState,
      healthy: this.healthy,
      costSpent: this.costSpent,
      inputTokens: this.inputTokens,
      outputTokens: this.outputTokens,
      rateLimited: this.rateLimited,
      ...(backendStats ? { backendStats } : {}),
    }
  }
}
