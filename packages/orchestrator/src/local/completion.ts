/**
 * Text completion on top of a next-token model backend: tokenize the prompt,
 * feed the last `contextLength` ids, take the best next token (greedy),
 * append, repeat; stop at `maxTokens` or a stop sequence.
 */
import {
  AideError,
  assertNumber,
  assertObject,
  assertString,
  invalidInput,
  throwIfAborted,
} from '@aide/core'
import type {
  BackendCallOptions,
  BackendChunk,
  BackendRequest,
  BackendResult,
  FinishReason,
  ModelBackend,
} from '../backend.js'
import { type CodeTokenizer, PAD_ID } from './tokenizer.js'

/** Options of {@link createCompletionBackend}. */
export interface CompletionBackendOptions {
  /** The next-token model: `[batch, contextLength]` int64 ids in, `[batch, vocabulary]` logits out. */
  model: ModelBackend
  /** The tokenizer the model was trained with. */
  tokenizer: CodeTokenizer
  /** Context window of the model, in tokens. */
  contextLength: number
  /** Name of the model's id input. Default `input_ids`. */
  inputName?: string
  /** Name of the model's logits output. Default `logits`. */
  outputName?: string
  /** Tokens generated when the request sets no `maxTokens`. Default 16. */
  defaultMaxTokens?: number
  /** Release the model when this backend is disposed. Default true. */
  disposeModel?: boolean
}

/** Most tokens one request may generate. */
export const MAX_COMPLETION_TOKENS = 256

/** A text-completion backend (tasks `completion` and `next-token`). */
export interface CompletionBackend extends ModelBackend {
  readonly tokenizer: CodeTokenizer
  readonly contextLength: number
  stream(request: BackendRequest, options: BackendCallOptions): AsyncIterable<BackendChunk>
  stats(): Record<string, unknown>
  dispose(): Promise<void>
}

interface Step {
  token: string
  candidates?: Array<{ text: string; score: number }>
}

/**
 * Wraps a next-token model as a text-completion {@link ModelBackend}.
 * Task `completion` generates text after `input.prompt`; task `next-token`
 * returns the `input.topK` (default 5) most likely next tokens as candidates.
 */
export function createCompletionBackend(options: CompletionBackendOptions): CompletionBackend {
  assertObject(options, 'options')
  assertObject(options.model, 'options.model')
  if (typeof options.model.invoke !== 'function')
    throw invalidInput('options.model', 'must be a ModelBackend')
  assertObject(options.tokenizer, 'options.tokenizer')
  if (typeof options.tokenizer.encode !== 'function')
    throw invalidInput('options.tokenizer', 'must be a CodeTokenizer')
  assertNumber(options.contextLength, 'options.contextLength', { min: 1, integer: true })
  const defaultMaxTokens = options.defaultMaxTokens ?? 16
  assertNumber(defaultMaxTokens, 'options.defaultMaxTokens', {
    min: 1,
    max: MAX_COMPLETION_TOKENS,
    integer: true,
  })
  const { model, tokenizer, contextLength } = options
  const inputName = options.inputName ?? 'input_ids'
  const outputName = options.outputName ?? 'logits'
  const counters = { requests: 0, generatedTokens: 0, errors: 0, cancelled: 0 }
  let disposed = false

  async function nextToken(
    ids: number[],
    modelId: string,
    signal: AbortSignal,
    candidates: number,
  ): Promise<Step> {
    const window = BigInt64Array.from(
      (ids.length >= contextLength
        ? ids.slice(ids.length - contextLength)
        : [...new Array(contextLength - ids.length).fill(PAD_ID), ...ids]
      ).map(BigInt),
    )
    const result = await model.invoke(
      {
        task: 'next-token',
        model: modelId,
        input: {
          tensors: { [inputName]: { type: 'int64', data: window, dims: [1, contextLength] } },
        },
      },
      { signal },
    )
    const logits = result.output.tensors?.[outputName]?.data as Float32Array | undefined
    if (!logits || logits.length !== tokenizer.size) {
      throw new AideError(
        'E_MODEL',
        `completion: the model's "${outputName}" output does not have one logit per token (${tokenizer.size})`,
      )
    }
    let best = -1
    for (let v = PAD_ID + 1; v < logits.length; v++)
      if (best < 0 || logits[v]! > logits[best]!) best = v
    const step: Step = { token: tokenizer.vocabulary[best]! }
    if (candidates > 0) {
      let max = -Infinity
      for (const l of logits) if (l > max) max = l
      let sum = 0
      for (const l of logits) sum += Math.exp(l - max)
      const ranked = Array.from({ length: logits.length - PAD_ID - 1 }, (_, i) => i + PAD_ID + 1)
        .sort((a, b) => logits[b]! - logits[a]!)
        .slice(0, candidates)
      step.candidates = ranked.map((id) => ({
        text: tokenizer.vocabulary[id]!,
        score: Math.exp(logits[id]! - max) / sum,
      }))
    }
    ids.push(best)
    return step
  }

  function parse(request: BackendRequest) {
    assertObject(request, 'request')
    if (request.task !== 'completion' && request.task !== 'next-token') {
      throw invalidInput(
        'request.task',
        `must be "completion" or "next-token", got ${JSON.stringify(request.task)}`,
      )
    }
    assertString(request.model, 'request.model', { allowEmpty: true })
    assertObject(request.input, 'request.input')
    assertString(request.input.prompt, 'request.input.prompt', { allowEmpty: true })
    const maxTokens = request.input.maxTokens ?? defaultMaxTokens
    assertNumber(maxTokens, 'request.input.maxTokens', {
      min: 1,
      max: MAX_COMPLETION_TOKENS,
      integer: true,
    })
    const topK = request.input.topK ?? 5
    assertNumber(topK, 'request.input.topK', { min: 1, max: tokenizer.size, integer: true })
    const stop = request.input.stop ?? []
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s.length === 0)) {
      throw invalidInput('request.input.stop', 'must be an array of non-empty strings')
    }
    return { prompt: request.input.prompt, maxTokens, topK, stop: stop as string[] }
  }

  async function* generate(
    request: BackendRequest,
    signal: AbortSignal,
  ): AsyncGenerator<Step, FinishReason> {
    if (disposed) throw new AideError('E_DISPOSED', 'completion: the backend is disposed')
    const { prompt, maxTokens, topK, stop } = parse(request)
    throwIfAborted(signal, 'completion')
    const ids = tokenizer.encode(prompt)
    if (request.task === 'next-token') {
      yield await nextToken(ids, request.model, signal, topK)
      return 'stop'
    }
    let text = ''
    for (let i = 0; i < maxTokens; i++) {
      throwIfAborted(signal, 'completion')
      const step = await nextToken(ids, request.model, signal, i === 0 ? topK : 0)
      text += step.token
      const hit = stop.map((s) => text.indexOf(s)).filter((at) => at >= 0)
      if (hit.length > 0) {
        const cut = Math.min(...hit) - (text.length - step.token.length)
        if (cut > 0) yield { ...step, token: step.token.slice(0, cut) }
        return 'stop'
      }
      yield step
    }
    return 'length'
  }

  async function track<T>(work: () => Promise<T>): Promise<T> {
    counters.requests++
    try {
      return await work()
    } catch (error) {
      if (AideError.isInstance(error) && error.code === 'E_CANCELLED') counters.cancelled++
      else counters.errors++
      throw error
    }
  }

  return {
    kind: `${model.kind}-completion`,
    tokenizer,
    contextLength,
    invoke(request, callOptions) {
      return track(async () => {
        const iterator = generate(request, callOptions.signal)
        let text = ''
        let candidates: Step['candidates']
        let outputTokens = 0
        let next = await iterator.next()
        while (!next.done) {
          text += next.value.token
          candidates ??= next.value.candidates
          outputTokens++
          next = await iterator.next()
        }
        counters.generatedTokens += outputTokens
        const inputTokens = tokenizer.encode(request.input.prompt ?? '').length
        return {
          output:
            request.task === 'next-token'
              ? { candidates: candidates ?? [] }
              : { text, candidates: candidates ?? [] },
          usage: { inputTokens, outputTokens },
          finishReason: next.value,
        } satisfies BackendResult
      })
    },
    async *stream(request, callOptions) {
      counters.requests++
      let outputTokens = 0
      try {
        const iterator = generate(request, callOptions.signal)
        let next = await iterator.next()
        while (!next.done) {
          outputTokens++
          counters.generatedTokens++
          if (next.value.token) yield { type: 'delta', text: next.value.token }
          next = await iterator.next()
        }
        yield {
          type: 'done',
          usage: { inputTokens: tokenizer.encode(request.input.prompt ?? '').length, outputTokens },
          finishReason: next.value,
        }
      } catch (error) {
        if (AideError.isInstance(error) && error.code === 'E_CANCELLED') counters.cancelled++
        else counters.errors++
        throw error
      }
    },
    stats() {
      return {
        ...counters,
        contextLength,
        vocabularySize: tokenizer.size,
        model: model.stats?.() ?? {},
      }
    },
    async dispose() {
      if (disposed) return
      disposed = true
      if (options.disposeModel ?? true) await model.dispose?.()
    },
  }
}
