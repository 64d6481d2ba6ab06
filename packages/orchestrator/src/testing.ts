/**
 * `@aide/orchestrator/testing`: an in-process model backend for tests, in the
 * spirit of vercel/ai's `MockLanguageModel`. It records every call, answers
 * with what you give it, honours the abort signal, and can fail on demand.
 *
 * @packageDocumentation
 */
import { AideError, assertObject, cancelledError, sleep } from '@aide/core'
import type {
  BackendCallOptions,
  BackendChunk,
  BackendRequest,
  BackendResult,
  ModelBackend,
} from './backend.js'

/** What a mock answers: a text, a full result, or an error to throw. */
export type MockReply = string | BackendResult | Error

/** Options of {@link MockBackend}. */
export interface MockBackendOptions {
  /** Kind reported in stats. Default `mock`. */
  kind?: string
  /**
   * The reply to a call: a fixed reply, or a function of the request and the
   * call number (0-based). Default: echoes the last user message or the prompt.
   */
  reply?: MockReply | ((request: BackendRequest, call: number) => MockReply | Promise<MockReply>)
  /** Stream chunks for `stream`; default: the reply text split into words. */
  chunks?: (request: BackendRequest, call: number) => readonly string[]
  /** Delay in ms before answering (and between streamed chunks), honouring the signal. */
  delayMs?: number
  /** Omit `stream` so the backend looks like one that cannot stream. */
  noStream?: boolean
  /** What `probe` does: resolve (default) or throw this error. */
  probe?: () => void | Promise<void>
}

function echo(request: BackendRequest): string {
  const messages = request.input.messages
  const last = messages?.filter((m) => m.role === 'user').at(-1)
  return last?.content ?? request.input.prompt ?? ''
}

/** An in-process backend that records calls and replies as told. */
export class MockBackend implements ModelBackend {
  readonly kind: string
  /** Every request received, in order (invoke and stream). */
  readonly calls: BackendRequest[] = []
  /** Number of times `dispose` ran. */
  disposed = 0
  readonly #options: MockBackendOptions
  declare stream?: ModelBackend['stream']

  constructor(options: MockBackendOptions = {}) {
    assertObject(options, 'options')
    this.#options = options
    this.kind = options.kind ?? 'mock'
    if (!options.noStream)
      this.stream = (request, callOptions) => this.#stream(request, callOptions)
  }

  async #reply(
    request: BackendRequest,
    signal: AbortSignal,
  ): Promise<{ result: BackendResult; call: number }> {
    const call = this.calls.length
    this.calls.push(request)
    if (signal.aborted) throw cancelledError(signal.reason, 'mock backend')
    if (this.#options.delayMs) await sleep(this.#options.delayMs, { signal })
    const source = this.#options.reply ?? ((r: BackendRequest) => echo(r))
    const reply = typeof source === 'function' ? await source(request, call) : source
    if (reply instanceof Error) throw reply
    const result: BackendResult =
      typeof reply === 'string'
        ? {
            output: { text: reply },
            finishReason: 'stop',
            usage: {
              inputTokens: Math.ceil(echo(request).length / 4),
              outputTokens: Math.ceil(reply.length / 4),
            },
          }
        : reply
    return { result, call }
  }

  async invoke(request: BackendRequest, options: BackendCallOptions): Promise<BackendResult> {
    return (await this.#reply(request, options.signal)).result
  }

  async *#stream(
    request: BackendRequest,
    options: BackendCallOptions,
  ): AsyncIterable<BackendChunk> {
    const { result, call } = await this.#reply(request, options.signal)
    const text = result.output.text ?? ''
    const chunks = this.#options.chunks?.(request, call) ?? text.split(/(?<= )/)
    for (const chunk of chunks) {
      if (options.signal.aborted) throw cancelledError(options.signal.reason, 'mock backend')
      yield { type: 'delta', text: chunk }
      if (this.#options.delayMs) await sleep(this.#options.delayMs, { signal: options.signal })
    }
    yield {
      type: 'done',
      ...(result.usage ? { usage: result.usage } : {}),
      finishReason: result.finishReason ?? 'stop',
    }
  }

  async probe(options: BackendCallOptions): Promise<void> {
    if (options.signal.aborted) throw cancelledError(options.signal.reason, 'mock backend probe')
    await this.#options.probe?.()
  }

  stats(): Record<string, unknown> {
    return { calls: this.calls.length }
  }

  dispose(): void {
    this.disposed++
  }
}

/** Creates a {@link MockBackend}. */
export function mockBackend(options: MockBackendOptions = {}): MockBackend {
  return new MockBackend(options)
}

/** A retryable provider-side failure, as a remote backend would throw it (`E_UNAVAILABLE`). */
export function unavailableError(message = 'mock: unavailable'): AideError {
  return new AideError('E_UNAVAILABLE', message, { isRetryable: true })
}
