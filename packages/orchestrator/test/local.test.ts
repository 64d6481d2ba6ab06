import { isAideError } from '@aide/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { BackendChunk } from '../src/backend.js'
import {
  CodeTokenizer,
  type CompletionBackend,
  createCompletionBackend,
  nextTokenModelToOnnx,
  splitTokens,
  trainNextTokenModel,
} from '../src/local/index.js'
import { createOnnxBackend } from '../src/onnx.js'

const CORPUS = Array.from(
  { length: 30 },
  (_, i) => `function add${i % 3}(a, b) {\n  return a + b;\n}\n`,
).join('')

describe('code tokenizer', () => {
  it('splits code into identifiers, operators, punctuation and whitespace, and round-trips', () => {
    expect(splitTokens('const x = a?.b ?? 42;\n\tif (x === y) {}')).toEqual([
      'const',
      ' ',
      'x',
      ' ',
      '=',
      ' ',
      'a',
      '?.',
      'b',
      ' ',
      '??',
      ' ',
      '42',
      ';',
      '\n  ',
      'if',
      ' ',
      '(',
      'x',
      ' ',
      '===',
      ' ',
      'y',
      ')',
      ' ',
      '{',
      '}',
    ])
    const tokenizer = CodeTokenizer.train([CORPUS], 64)
    const text = 'function add1(a, b) {\n  return a + b;\n}\n'
    expect(tokenizer.decode(tokenizer.encode(text))).toBe(text)
    expect(tokenizer.encode('zzz_unknown')).toEqual([0])
    expect(CodeTokenizer.fromJSON(JSON.parse(JSON.stringify(tokenizer))).vocabulary).toEqual(
      tokenizer.vocabulary,
    )
    expect(() => CodeTokenizer.fromJSON({ kind: 'other' })).toThrow(/tokenizer/)
    expect(() => tokenizer.decode([9999])).toThrow(/ids/)
    expect(CodeTokenizer.window([5, 6], 4)).toEqual([1, 1, 5, 6])
  })
})

describe('next-token training and text completion', () => {
  let tokenizer: CodeTokenizer
  let completion: CompletionBackend
  let fp32: Uint8Array
  const shape = { contextLength: 4, embeddingSize: 8, hiddenSize: 16 }

  beforeAll(async () => {
    tokenizer = CodeTokenizer.train([CORPUS], 64)
    const stream = Int32Array.from(tokenizer.encode(CORPUS))
    const weights = trainNextTokenModel([stream], {
      vocabularySize: tokenizer.size,
      ...shape,
      steps: 4000,
      learningRate: 0.1,
      seed: 3,
    })
    fp32 = await nextTokenModelToOnnx(weights)
    const backend = await createOnnxBackend({ model: fp32, execution: 'inline' })
    completion = createCompletionBackend({
      model: backend,
      tokenizer,
      contextLength: shape.contextLength,
    })
  })
  afterAll(async () => {
    await completion.dispose()
    await completion.dispose()
  })

  it('is deterministic for the same seed', () => {
    const stream = Int32Array.from(tokenizer.encode(CORPUS))
    const options = { vocabularySize: tokenizer.size, ...shape, steps: 200, seed: 9 }
    const a = trainNextTokenModel([stream], options)
    const b = trainNextTokenModel([stream], options)
    expect(Buffer.from(a.outputWeights.buffer).equals(Buffer.from(b.outputWeights.buffer))).toBe(
      true,
    )
  })

  it('completes a learned pattern greedily and stops at a stop sequence', async () => {
    const result = await completion.invoke(
      {
        task: 'completion',
        model: 'tiny',
        input: { prompt: 'function add1(a, b) {\n  return', maxTokens: 12, stop: ['}'] },
      },
      { signal: new AbortController().signal },
    )
    expect(result.output.text).toBe(' a + b;\n')
    expect(result.finishReason).toBe('stop')
    expect(result.usage?.outputTokens).toBeGreaterThan(0)
    expect(result.output.candidates?.[0]?.text).toBe(' ')
  })

  it('stops at maxTokens with finishReason length, and streams the same text', async () => {
    const request = {
      task: 'completion',
      model: 'tiny',
      input: { prompt: 'function add2(a, b) {\n  return a', maxTokens: 3 },
    }
    const result = await completion.invoke(request, { signal: new AbortController().signal })
    expect(result.output.text).toBe(' + ')
    expect(result.finishReason).toBe('length')
    const chunks: BackendChunk[] = []
    for await (const chunk of completion.stream(request, { signal: new AbortController().signal }))
      chunks.push(chunk)
    expect(
      chunks
        .filter((c) => c.type === 'delta')
        .map((c) => (c as { text: string }).text)
        .join(''),
    ).toBe(' + ')
    expect(chunks.at(-1)).toMatchObject({
      type: 'done',
      finishReason: 'length',
      usage: { outputTokens: 3 },
    })
  })

  it('returns ranked next-token candidates with probabilities', async () => {
    const result = await completion.invoke(
      { task: 'next-token', model: 'tiny', input: { prompt: 'function', topK: 3 } },
      { signal: new AbortController().signal },
    )
    const candidates = result.output.candidates!
    expect(candidates).toHaveLength(3)
    expect(candidates[0]!.text).toBe(' ')
    expect(candidates[0]!.score).toBeGreaterThan(candidates[1]!.score)
    expect(candidates.reduce((a, c) => a + c.score, 0)).toBeLessThanOrEqual(1.0001)
  })

  it('stops generating for a caller that cancelled', async () => {
    const controller = new AbortController()
    const chunks: BackendChunk[] = []
    const consume = (async () => {
      for await (const chunk of completion.stream(
        { task: 'completion', model: 'tiny', input: { prompt: 'function', maxTokens: 200 } },
        { signal: controller.signal },
      )) {
        chunks.push(chunk)
        if (chunks.length === 2) controller.abort()
      }
    })()
    const error = await consume.catch((e: unknown) => e)
    expect(isAideError(error, 'E_CANCELLED')).toBe(true)
    expect(chunks.length).toBe(2)
    expect(completion.stats()).toMatchObject({ cancelled: 1 })
  })

  it('rejects malformed requests and options naming the field', async () => {
    const signal = new AbortController().signal
    const cases: Array<[unknown, string]> = [
      [{ task: 'chat', model: 'm', input: { prompt: 'x' } }, 'request.task'],
      [{ task: 'completion', model: 'm', input: {} }, 'request.input.prompt'],
      [
        { task: 'completion', model: 'm', input: { prompt: 'x', maxTokens: 0 } },
        'request.input.maxTokens',
      ],
      [
        { task: 'completion', model: 'm', input: { prompt: 'x', stop: [''] } },
        'request.input.stop',
      ],
      [{ task: 'next-token', model: 'm', input: { prompt: 'x', topK: 0 } }, 'request.input.topK'],
    ]
    for (const [request, field] of cases) {
      const error = await completion.invoke(request as never, { signal }).catch((e: unknown) => e)
      expect(isAideError(error, 'E_INVALID_INPUT'), String(error)).toBe(true)
      expect((error as { details: { field: string } }).details.field).toBe(field)
    }
    expect(() =>
      createCompletionBackend({ model: {} as never, tokenizer, contextLength: 4 }),
    ).toThrow(/options.model/)
    expect(() =>
      createCompletionBackend({ model: completion, tokenizer, contextLength: 0 }),
    ).toThrow(/options.contextLength/)
  })

  it('refuses a model whose logits do not match the tokenizer', async () => {
    const other = CodeTokenizer.train(['a b c d e f g'], 8)
    const backend = await createOnnxBackend({ model: fp32, execution: 'inline' })
    const mismatched = createCompletionBackend({
      model: backend,
      tokenizer: other,
      contextLength: 4,
    })
    try {
      const error = await mismatched
        .invoke(
          { task: 'completion', model: 'm', input: { prompt: 'a' } },
          { signal: new AbortController().signal },
        )
        .catch((e: unknown) => e)
      expect(isAideError(error, 'E_MODEL')).toBe(true)
    } finally {
      await mismatched.dispose()
    }
  })
})
