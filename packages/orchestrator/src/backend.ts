/**
 * The contract between the orchestrator and a model backend (remote
 * OpenAI-compatible provider, local ONNX model, or a custom one). A backend
 * does one call; routing, retries, breakers, budgets and failover are the
 * orchestrator's job.
 */

/** One chat message. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool'
  content: string
  name?: string
}

/** A dense tensor passed to or from a local model. */
export interface TensorData {
  /** Element type, as ONNX names it: 'float32', 'float16', 'int32', 'int64', 'uint8', 'int8', 'bool'. */
  type: string
  data: ArrayBufferView | readonly number[] | readonly bigint[]
  dims: readonly number[]
}

/** What a request asks a model to work on. Backends use the fields they understand. */
export interface ModelInput {
  /** Chat-style input (remote providers). */
  messages?: readonly ChatMessage[]
  /** Plain text prompt (completion-style models, local completion). */
  prompt?: string
  /** Text after the cursor, for fill-in-the-middle capable models. */
  suffix?: string
  /** Named input tensors (local models). */
  tensors?: Readonly<Record<string, TensorData>>
  /** Generation limits. */
  maxTokens?: number
  temperature?: number
  stop?: readonly string[]
  /** How many alternatives to return, where the backend supports it. */
  topK?: number
}

/** Token accounting for one call. */
export interface Usage {
  inputTokens: number
  outputTokens: number
}

/** Why generation stopped. `length` means truncated by a token limit. */
export type FinishReason = 'stop' | 'length' | 'content-filter' | 'tool-calls' | 'error' | 'unknown'

/** What a backend produced. */
export interface ModelOutput {
  /** Generated text, for text-producing models. */
  text?: string
  /** Ranked alternatives (e.g. next-token candidates), best first. */
  candidates?: ReadonlyArray<{ text: string; score: number }>
  /** Named output tensors (local models). */
  tensors?: Readonly<Record<string, TensorData>>
}

/** The result of one backend call. */
export interface BackendResult {
  output: ModelOutput
  usage?: Usage
  finishReason?: FinishReason
}

/** One piece of a streamed answer. */
export type BackendChunk =
  | { type: 'delta'; text: string }
  | { type: 'done'; usage?: Usage; finishReason?: FinishReason }

/** One call as the orchestrator hands it to a backend. */
export interface BackendRequest {
  /** Task type, e.g. 'chat', 'completion', 'next-token', 'embedding'. */
  task: string
  input: ModelInput
  /** The model id the orchestrator chose (a backend may serve several). */
  model: string
}

/** Per-call options. The signal aborts when the caller goes or a deadline passes. */
export interface BackendCallOptions {
  signal: AbortSignal
}

/**
 * A model backend. Throws `AideError`s: `E_UNAVAILABLE`/`E_TIMEOUT`
 * (retryable), `E_MODEL` (model-side failure), `E_LIMIT` (rate limited, with
 * `details.retryAfterMs` when known), `E_INVALID_INPUT` (e.g. context too long,
 * with `details.reason = 'context-length'`), `E_PERMISSION` (auth, not retryable).
 */
export interface ModelBackend {
  /** Short kind name for stats and logs: 'openai', 'onnx', 'onnx-web', 'custom'… */
  readonly kind: string
  /** Runs one request to completion. */
  invoke(request: BackendRequest, options: BackendCallOptions): Promise<BackendResult>
  /** Streams one request; absent when the backend cannot stream. */
  stream?(request: BackendRequest, options: BackendCallOptions): AsyncIterable<BackendChunk>
  /** A cheap health check used by active probes; absent means "use a tiny invoke". */
  probe?(options: BackendCallOptions): Promise<void>
  /** Backend-specific figures (plain data). */
  stats?(): Record<string, unknown>
  /** Releases sessions, sockets and workers. */
  dispose?(): void | Promise<void>
}
