/**
 * A backend for OpenAI-compatible `chat/completions` endpoints (OpenAI,
 * llama.cpp server, Ollama, vLLM…) over `fetch`, with SSE streaming parsed by
 * `eventsource-parser`. Maps HTTP failures to `AideError` codes the
 * orchestrator routes on, and never lets the API key reach an error, log,
 * event or stats.
 */
import {
  AideError,
  assertFunction,
  assertNumber,
  assertObject,
  assertString,
  cancelledError,
  invalidInput,
  isAideError,
} from '@aide/core'
import { createParser } from 'eventsource-parser'
import type {
  BackendCallOptions,
  BackendChunk,
  BackendRequest,
  BackendResult,
  ChatMessage,
  FinishReason,
  ModelBackend,
  Usage,
} from './backend.js'

/** Options of {@link openAICompatible}. */
export interface OpenAICompatibleOptions {
  /** Base URL up to and including the version, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`. */
  baseUrl: string
  /** Bearer token. Sent only in the `Authorization` header; redacted from everything else. */
  apiKey?: string
  /** Model name sent to the provider. Defaults to the orchestrator's model id. */
  model?: string
  /** Extra request headers (e.g. `OpenAI-Organization`). */
  headers?: Readonly<Record<string, string>>
  /** Largest response body accepted, in bytes (whole body, or whole stream). Default 8 MiB. */
  maxResponseBytes?: number
  /** Ask for token usage in streams (`stream_options.include_usage`). Default true. */
  streamUsage?: boolean
  /** A `fetch` implementation. Defaults to the global one. */
  fetch?: typeof fetch
  /** Name in stats and error messages. Default `openai`. */
  name?: string
}

const FINISH: Record<string, FinishReason> = {
  stop: 'stop',
  length: 'length',
  content_filter: 'content-filter',
  tool_calls: 'tool-calls',
  function_call: 'tool-calls',
}

const CONTEXT_LENGTH =
  /context[_ ]length|context window|maximum context|too many tokens|prompt is too long/i

/** Parses `retry-after-ms` / `retry-after` (seconds or HTTP date) into ms. */
export function parseRetryAfter(headers: Headers, now = Date.now()): number | undefined {
  const ms = headers.get('retry-after-ms')
  if (ms !== null && ms.trim() !== '' && Number.isFinite(Number(ms))) return Math.max(0, Number(ms))
  const value = headers.get('retry-after')
  if (value === null || value.trim() === '') return undefined
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.max(0, Number(value) * 1000)
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/**
 * Creates a backend for an OpenAI-compatible server.
 *
 * Errors: 401/403 → `E_PERMISSION` (not retryable); 408 → `E_TIMEOUT`;
 * 409 and 5xx → `E_UNAVAILABLE`; 429 → `E_LIMIT` with `details.retryAfterMs`;
 * a context-length 400 → `E_INVALID_INPUT` with `details.reason = 'context-length'`;
 * other 4xx → `E_MODEL`; connection failures → `E_UNAVAILABLE`; malformed
 * JSON or SSE, or a body over `maxResponseBytes` → `E_PROTOCOL`; a stream
 * that ends before `[DONE]` or a finish reason → `E_MODEL` (`reason: 'truncated'`).
 */
export function openAICompatible(options: OpenAICompatibleOptions): ModelBackend {
  assertObject(options, 'options')
  assertString(options.baseUrl, 'options.baseUrl')
  let base: URL
  try {
    base = new URL(options.baseUrl)
  } catch {
    throw invalidInput('options.baseUrl', 'must be an absolute URL')
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:')
    throw invalidInput('options.baseUrl', 'must be http or https')
  if (options.apiKey !== undefined) assertString(options.apiKey, 'options.apiKey')
  if (options.model !== undefined) assertString(options.model, 'options.model')
  if (options.maxResponseBytes !== undefined)
    assertNumber(options.maxResponseBytes, 'options.maxResponseBytes', { min: 1, integer: true })
  if (options.fetch !== undefined) assertFunction(options.fetch, 'options.fetch')
  if (options.headers !== undefined) assertObject(options.headers, 'options.headers')
  if (!base.pathname.endsWith('/')) base.pathname += '/'
  const endpointUrl = new URL('chat/completions', base)
  // Keep a query the server needs (e.g. an api-version).
  endpointUrl.search = base.search
  const endpoint = endpointUrl.toString()
  // What stats may show: no user:password part, no query string (some gateways take keys there).
  const shownEndpoint = `${endpointUrl.origin}${endpointUrl.pathname}`
  const name = options.name ?? 'openai'
  const apiKey = options.apiKey
  const maxBytes = options.maxResponseBytes ?? 8 * 1024 * 1024
  const doFetch = options.fetch ?? globalThis.fetch
  const counters = { requests: 0, streams: 0, failures: 0, inputTokens: 0, outputTokens: 0 }

  /** Removes the API key from any text that may be shown. */
  const secrets = [apiKey, base.password && decodeURIComponent(base.password)].filter(
    (secret): secret is string => typeof secret === 'string' && secret.length >= 4,
  )
  const redact = (text: string): string =>
    secrets.reduce((out, secret) => out.split(secret).join('[redacted]'), text)

  const fail = (
    code: ConstructorParameters<typeof AideError>[0],
    message: string,
    details: Record<string, unknown>,
    isRetryable?: boolean,
    cause?: unknown,
  ) => {
    counters.failures++
    return new AideError(code, redact(`${name}: ${message}`), {
      details: { provider: name, ...details },
      ...(isRetryable === undefined ? {} : { isRetryable }),
      ...(cause === undefined ? {} : { cause: sanitize(cause) }),
    })
  }

  const sanitize = (cause: unknown): unknown => {
    if (!(cause instanceof Error)) return cause
    const copy = new Error(redact(cause.message))
    copy.name = cause.name
    const code =
      (cause as { code?: unknown }).code ?? (cause as { cause?: { code?: unknown } }).cause?.code
    if (typeof code === 'string') (copy as Error & { code: string }).code = code
    return copy
  }

  const messagesOf = (request: BackendRequest): ChatMessage[] => {
    const input = request.input
    if (input.messages && input.messages.length > 0) return [...input.messages]
    if (input.prompt !== undefined) return [{ role: 'user', content: input.prompt }]
    throw invalidInput('request.input', 'needs messages or a prompt for an OpenAI-compatible model')
  }

  const body = (request: BackendRequest, stream: boolean): string => {
    const input = request.input
    return JSON.stringify({
      model: options.model ?? request.model,
      messages: messagesOf(request),
      ...(input.maxTokens === undefined ? {} : { max_tokens: input.maxTokens }),
      ...(input.temperature === undefined ? {} : { temperature: input.temperature }),
      ...(input.stop === undefined ? {} : { stop: input.stop }),
      ...(stream
        ? {
            stream: true,
            ...(options.streamUsage === false ? {} : { stream_options: { include_usage: true } }),
          }
        : {}),
    })
  }

  const post = async (
    request: BackendRequest,
    stream: boolean,
    signal: AbortSignal,
  ): Promise<Response> => {
    const payload = body(request, stream)
    let response: Response
    try {
      response = await doFetch(endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: stream ? 'text/event-stream' : 'application/json',
          ...options.headers,
          ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
        },
        body: payload,
        signal,
      })
    } catch (error) {
      if (signal.aborted) throw cancelledError(signal.reason, `${name}: request`)
      const code =
        ((error as { cause?: { code?: unknown } }).cause?.code as string | undefined) ?? 'unknown'
      throw fail(
        'E_UNAVAILABLE',
        `cannot reach ${base.origin} (${code}); check that the server is running`,
        { reason: 'connection', errno: code },
        true,
        error,
      )
    }
    if (!response.ok) throw await httpError(response, request, signal)
    return response
  }

  const readAll = async (response: Response, signal: AbortSignal): Promise<string> => {
    const declared = Number(response.headers.get('content-length'))
    if (Number.isFinite(declared) && declared > maxBytes) {
      void response.body?.cancel().catch(() => undefined)
      throw fail(
        'E_PROTOCOL',
        `response of ${declared} bytes exceeds maxResponseBytes (${maxBytes})`,
        { reason: 'oversized', limit: maxBytes },
        false,
      )
    }
    const reader = response.body?.getReader()
    if (!reader) return ''
    const decoder = new TextDecoder()
    let text = ''
    let bytes = 0
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        bytes += value.byteLength
        if (bytes > maxBytes) {
          throw fail(
            'E_PROTOCOL',
            `response exceeds maxResponseBytes (${maxBytes})`,
            { reason: 'oversized', limit: maxBytes },
            false,
          )
        }
        text += decoder.decode(value, { stream: true })
      }
    } catch (error) {
      void reader.cancel().catch(() => undefined)
      if (signal.aborted) throw cancelledError(signal.reason, `${name}: response`)
      if (isAideError(error)) throw error
      throw fail(
        'E_UNAVAILABLE',
        'connection failed while reading the response',
        { reason: 'connection' },
        true,
        error,
      )
    }
    return text + decoder.decode()
  }

  const httpError = async (
    response: Response,
    request: BackendRequest,
    signal: AbortSignal,
  ): Promise<AideError> => {
    let raw = ''
    try {
      raw = (await readAll(response, signal)).slice(0, 2000)
    } catch {
      raw = ''
    }
    let message = raw
    let providerCode: string | undefined
    try {
      const parsed = JSON.parse(raw) as {
        error?: { message?: unknown; code?: unknown; type?: unknown } | string
      }
      if (typeof parsed.error === 'string') message = parsed.error
      else if (parsed.error) {
        if (typeof parsed.error.message === 'string') message = parsed.error.message
        if (typeof parsed.error.code === 'string') providerCode = parsed.error.code
        else if (typeof parsed.error.type === 'string') providerCode = parsed.error.type
      }
    } catch {
      // Not JSON: keep the text as it is.
    }
    const status = response.status
    const details: Record<string, unknown> = {
      status,
      model: request.model,
      ...(providerCode ? { providerCode } : {}),
    }
    const text = `HTTP ${status}${message ? `: ${message.slice(0, 300)}` : ''}`
    if (status === 401 || status === 403)
      return fail('E_PERMISSION', `${text} (check the API key)`, details, false)
    if (status === 429) {
      const retryAfterMs = parseRetryAfter(response.headers)
      return fail(
        'E_LIMIT',
        `${text} (rate limited)`,
        { ...details, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
        true,
      )
    }
    if (status === 408) return fail('E_TIMEOUT', text, details, true)
    if (status === 409 || status >= 500) {
      const retryAfterMs = parseRetryAfter(response.headers)
      return fail(
        'E_UNAVAILABLE',
        text,
        { ...details, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
        true,
      )
    }
    if (
      (status === 400 || status === 413 || status === 422) &&
      (providerCode === 'context_length_exceeded' || CONTEXT_LENGTH.test(message))
    ) {
      return fail(
        'E_INVALID_INPUT',
        `${text} (input is longer than the model's context window)`,
        { ...details, reason: 'context-length' },
        false,
      )
    }
    if (status === 404)
      return fail('E_NOT_FOUND', `${text} (unknown model or endpoint)`, details, false)
    return fail('E_MODEL', text, details, false)
  }

  const usageOf = (value: unknown): Usage | undefined => {
    if (typeof value !== 'object' || value === null) return undefined
    const u = value as { prompt_tokens?: unknown; completion_tokens?: unknown }
    if (typeof u.prompt_tokens !== 'number' || typeof u.completion_tokens !== 'number')
      return undefined
    return { inputTokens: u.prompt_tokens, outputTokens: u.completion_tokens }
  }

  const protocol = (message: string, extra: Record<string, unknown> = {}) =>
    fail('E_PROTOCOL', message, { reason: 'malformed', ...extra }, false)

  return {
    kind: name,

    async invoke(request: BackendRequest, { signal }: BackendCallOptions): Promise<BackendResult> {
      counters.requests++
      const response = await post(request, false, signal)
      const raw = await readAll(response, signal)
      let parsed: {
        choices?: Array<{
          message?: { content?: unknown }
          text?: unknown
          finish_reason?: unknown
        }>
        usage?: unknown
      }
      try {
        parsed = JSON.parse(raw)
      } catch {
        throw protocol(`response is not valid JSON (${raw.length} characters)`)
      }
      const choice = Array.isArray(parsed?.choices) ? parsed.choices[0] : undefined
      const content = choice?.message?.content ?? choice?.text
      if (typeof content !== 'string')
        throw protocol('response has no choices[0].message.content string')
      const usage = usageOf(parsed.usage)
      if (usage) {
        counters.inputTokens += usage.inputTokens
        counters.outputTokens += usage.outputTokens
      }
      const finish =
        typeof choice?.finish_reason === 'string'
          ? (FINISH[choice.finish_reason] ?? 'unknown')
          : 'unknown'
      return { output: { text: content }, finishReason: finish, ...(usage ? { usage } : {}) }
    },

    async *stream(
      request: BackendRequest,
      { signal }: BackendCallOptions,
    ): AsyncIterable<BackendChunk> {
      counters.streams++
      const response = await post(request, true, signal)
      const reader = response.body?.getReader()
      if (!reader) throw protocol('stream response has no body')
      const pending: BackendChunk[] = []
      let parseError: AideError | undefined
      let finishReason: FinishReason | undefined
      let usage: Usage | undefined
      let sawDone = false
      const parser = createParser({
        onEvent(event) {
          if (parseError || sawDone) return
          if (event.data === '[DONE]') {
            sawDone = true
            return
          }
          let data: {
            choices?: Array<{ delta?: { content?: unknown }; finish_reason?: unknown }>
            usage?: unknown
            error?: { message?: unknown }
          }
          try {
            data = JSON.parse(event.data)
          } catch {
            parseError = protocol('stream event is not valid JSON')
            return
          }
          if (data.error) {
            const message =
              typeof data.error.message === 'string' ? data.error.message : 'error event'
            parseError = fail(
              'E_MODEL',
              `stream error: ${message.slice(0, 300)}`,
              { reason: 'stream-error' },
              true,
            )
            return
          }
          const choice = Array.isArray(data.choices) ? data.choices[0] : undefined
          const content = choice?.delta?.content
          if (typeof content === 'string' && content.length > 0)
            pending.push({ type: 'delta', text: content })
          if (typeof choice?.finish_reason === 'string')
            finishReason = FINISH[choice.finish_reason] ?? 'unknown'
          usage = usageOf(data.usage) ?? usage
        },
        onError(error) {
          parseError ??= protocol(`malformed SSE (${error.type})`)
        },
      })
      const decoder = new TextDecoder()
      let bytes = 0
      try {
        for (;;) {
          let read: Awaited<ReturnType<typeof reader.read>>
          try {
            read = await reader.read()
          } catch (error) {
            if (signal.aborted) throw cancelledError(signal.reason, `${name}: stream`)
            throw fail(
              'E_MODEL',
              'connection dropped mid-stream',
              { reason: 'truncated' },
              true,
              error,
            )
          }
          if (read.done) break
          bytes += read.value.byteLength
          if (bytes > maxBytes)
            throw fail(
              'E_PROTOCOL',
              `stream exceeds maxResponseBytes (${maxBytes})`,
              { reason: 'oversized', limit: maxBytes },
              false,
            )
          parser.feed(decoder.decode(read.value, { stream: true }))
          while (pending.length > 0) yield pending.shift()!
          if (parseError) throw parseError
          if (sawDone) break
        }
        if (parseError) throw parseError
        if (!sawDone && finishReason === undefined) {
          throw fail(
            'E_MODEL',
            'stream ended before completion (no finish reason, no [DONE])',
            { reason: 'truncated' },
            true,
          )
        }
        if (usage) {
          counters.inputTokens += usage.inputTokens
          counters.outputTokens += usage.outputTokens
        }
        yield { type: 'done', ...(usage ? { usage } : {}), finishReason: finishReason ?? 'stop' }
      } finally {
        void reader.cancel().catch(() => undefined)
      }
    },

    stats() {
      return { endpoint: redact(shownEndpoint), ...counters }
    },
  }
}
