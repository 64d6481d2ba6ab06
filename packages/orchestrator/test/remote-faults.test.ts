import { type AideError, isAideError } from '@aide/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createOrchestrator,
  type ModelConfig,
  type OrchestratorEvents,
  type OrchestratorOptions,
  openAICompatible,
  parseRetryAfter,
  type StreamPart,
} from '../src/index.js'
import { type FakeProvider, refusedUrl, type Scenario, startFakeProvider } from './fake-provider.js'

const KEY = 'sk-test-SECRET-0123456789abcdef'
const chat = { messages: [{ role: 'user' as const, content: 'Say hello' }] }

let provider: FakeProvider

beforeAll(async () => {
  provider = await startFakeProvider()
})
afterAll(async () => {
  await provider.close()
})

function remote(
  id: string,
  scenario: Scenario,
  extra: Partial<ModelConfig> = {},
  maxResponseBytes?: number,
): ModelConfig {
  return {
    id,
    tasks: ['chat'],
    backend: openAICompatible({
      baseUrl: provider.url(scenario),
      apiKey: KEY,
      ...(maxResponseBytes ? { maxResponseBytes } : {}),
    }),
    retry: { retries: 1, initialDelayMs: 10, maxDelayMs: 50 },
    attemptTimeoutMs: 2_000,
    ...extra,
  }
}

function collect() {
  const events: Array<{ type: string; payload: unknown }> = []
  return {
    events,
    sink: {
      emit: <K extends keyof OrchestratorEvents>(type: K, payload: OrchestratorEvents[K]) =>
        void events.push({ type, payload }),
    },
  }
}

async function capture(promise: Promise<unknown>): Promise<AideError> {
  try {
    await promise
  } catch (error) {
    expect(isAideError(error)).toBe(true)
    return error as AideError
  }
  throw new Error('expected a rejection')
}

async function drain(iterable: AsyncIterable<StreamPart>): Promise<StreamPart[]> {
  const parts: StreamPart[] = []
  for await (const part of iterable) parts.push(part)
  return parts
}

function makeOrchestrator(models: ModelConfig[], extra: Partial<OrchestratorOptions> = {}) {
  return createOrchestrator({ models, ...extra })
}

describe('remote provider: happy path', () => {
  it('runs a chat completion with usage and cost', async () => {
    const orchestrator = makeOrchestrator([
      remote('a', 'ok', { cost: { inputPer1k: 1, outputPer1k: 2 } }),
    ])
    const result = await orchestrator.run({ task: 'chat', input: chat })
    expect(result.text).toBe(provider.answer)
    expect(result.model).toBe('a')
    expect(result.usage).toEqual({ inputTokens: 12, outputTokens: 9 })
    expect(result.cost).toBeCloseTo(0.012 + 0.018)
    expect(result.finishReason).toBe('stop')
    const last = provider.requests.at(-1)!
    expect(last.authorization).toBe(`Bearer ${KEY}`)
    expect(last.body.model).toBe('a')
    await orchestrator.run({
      task: 'chat',
      input: { prompt: 'Plain prompt', maxTokens: 5, temperature: 0.5, stop: ['\n'] },
    })
    expect(provider.requests.at(-1)!.body).toMatchObject({
      messages: [{ role: 'user', content: 'Plain prompt' }],
      max_tokens: 5,
      temperature: 0.5,
      stop: ['\n'],
    })
    await orchestrator.dispose()
  })

  it('streams deltas that add up to the answer, then done with usage', async () => {
    const orchestrator = makeOrchestrator([remote('a', 'ok')])
    const parts = await drain(orchestrator.stream({ task: 'chat', input: chat }))
    const text = parts.map((p) => (p.type === 'delta' ? p.text : '')).join('')
    expect(text).toBe(provider.answer)
    const done = parts.at(-1)!
    expect(done.type).toBe('done')
    if (done.type === 'done') {
      expect(done.result.text).toBe(provider.answer)
      expect(done.result.usage).toEqual({ inputTokens: 12, outputTokens: 9 })
    }
  })
})

describe('remote provider: each fault', () => {
  for (const status of [500, 502, 503] as const) {
    it(`HTTP ${status}: retried once, then fails over to the next model`, async () => {
      const scenario = `status-${status}` as Scenario
      const before = provider.count(scenario)
      const { events, sink } = collect()
      const orchestrator = makeOrchestrator([remote('bad', scenario), remote('good', 'ok')], {
        events: sink,
      })
      const result = await orchestrator.run({ task: 'chat', input: chat })
      expect(result.model).toBe('good')
      expect(result.attempts.map((a) => [a.model, a.outcome, a.code])).toEqual([
        ['bad', 'failure', 'E_UNAVAILABLE'],
        ['bad', 'failure', 'E_UNAVAILABLE'],
        ['good', 'success', undefined],
      ])
      expect(provider.count(scenario) - before).toBe(2)
      expect(events.find((e) => e.type === 'model-fallback')?.payload).toMatchObject({
        from: 'bad',
        to: 'good',
        code: 'E_UNAVAILABLE',
      })
    })
  }

  it('HTTP 503 on the only model rejects with E_UNAVAILABLE listing the attempts', async () => {
    const orchestrator = makeOrchestrator([remote('bad', 'status-503')])
    const error = await capture(orchestrator.run({ task: 'chat', input: chat }))
    expect(error.code).toBe('E_UNAVAILABLE')
    expect((error.details.attempts as unknown[]).length).toBe(2)
    expect(error.details.status ?? (error.cause as AideError).details.status).toBe(503)
  })

  it('HTTP 429 with a short Retry-After is retried on the same model after that delay', async () => {
    const orchestrator = makeOrchestrator([remote('flaky', 'flaky-429'), remote('good', 'ok')])
    const result = await orchestrator.run({ task: 'chat', input: chat })
    expect(result.model).toBe('flaky')
    expect(result.attempts.map((a) => a.code ?? a.outcome)).toEqual(['E_LIMIT', 'success'])
    const times = provider.requests.filter((r) => r.scenario === 'flaky-429').map((r) => r.at)
    expect(times).toHaveLength(2)
    // The provider asked for 300 ms (retry-after-ms); the default backoff alone is ~100 ms.
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(290)
  })

  it('HTTP 429 with a long Retry-After fails over at once instead of waiting', async () => {
    const before = provider.count('status-429')
    const orchestrator = makeOrchestrator([remote('limited', 'status-429'), remote('good', 'ok')])
    const result = await orchestrator.run({ task: 'chat', input: chat })
    expect(result.model).toBe('good')
    expect(provider.count('status-429') - before).toBe(1)
    const failure = result.attempts[0]!
    expect(failure.code).toBe('E_LIMIT')
  })

  it('HTTP 401 is not retried, fails over, and the API key appears nowhere', async () => {
    const before = provider.count('status-401')
    const { events, sink } = collect()
    const logs: unknown[] = []
    const log = (...args: unknown[]) => void logs.push(args)
    const logger = {
      trace: log,
      debug: log,
      info: log,
      warn: log,
      error: log,
      fatal: log,
      child: () => logger,
    }
    const single = makeOrchestrator([remote('denied', 'status-401')], { events: sink, logger })
    const error = await capture(single.run({ task: 'chat', input: chat }))
    expect(error.code).toBe('E_PERMISSION')
    expect(error.isRetryable).toBe(false)
    expect(provider.count('status-401') - before).toBe(1)
    const everything = [
      error.message,
      error.stack,
      JSON.stringify(error),
      JSON.stringify(error.details),
      String((error.cause as Error)?.message),
      JSON.stringify((error.cause as AideError)?.details),
      JSON.stringify(events),
      JSON.stringify(logs),
      JSON.stringify(single.stats()),
    ].join('\n')
    expect(everything).not.toContain(KEY)
    expect(everything).toContain('[redacted]')
    const failover = makeOrchestrator([remote('denied', 'status-401'), remote('good', 'ok')])
    expect((await failover.run({ task: 'chat', input: chat })).model).toBe('good')
  })

  for (const [status, code, tries] of [
    [403, 'E_PERMISSION', 1],
    [408, 'E_TIMEOUT', 2],
    [409, 'E_UNAVAILABLE', 2],
  ] as const) {
    it(`HTTP ${status} is ${code}, ${tries === 1 ? 'not retried' : 'retried once'}, then fails over`, async () => {
      const scenario = `status-${status}` as Scenario
      const before = provider.count(scenario)
      const orchestrator = makeOrchestrator([remote('bad', scenario), remote('good', 'ok')])
      const result = await orchestrator.run({ task: 'chat', input: chat })
      expect(result.model).toBe('good')
      expect(result.attempts.map((a) => [a.model, a.outcome, a.code])).toEqual([
        ...Array.from({ length: tries }, () => ['bad', 'failure', code]),
        ['good', 'success', undefined],
      ])
      expect(provider.count(scenario) - before).toBe(tries)

      const single = makeOrchestrator([remote('bad', scenario)])
      const error = await capture(single.run({ task: 'chat', input: chat }))
      expect(error.code).toBe(code)
      expect(error.isRetryable).toBe(code !== 'E_PERMISSION')
      expect(error.details.status ?? (error.cause as AideError).details.status).toBe(status)
      expect(provider.count(scenario) - before).toBe(2 * tries)
      await Promise.all([orchestrator.dispose(), single.dispose()])
    })
  }

  it('HTTP 404 (unknown model) is E_NOT_FOUND and fails over', async () => {
    const orchestrator = makeOrchestrator([remote('missing', 'status-404'), remote('good', 'ok')])
    const result = await orchestrator.run({ task: 'chat', input: chat })
    expect(result.model).toBe('good')
    expect(result.attempts[0]!.code).toBe('E_NOT_FOUND')
  })

  it('connection refused is E_UNAVAILABLE and fails over', async () => {
    const url = await refusedUrl()
    const orchestrator = makeOrchestrator([
      {
        id: 'down',
        tasks: ['chat'],
        backend: openAICompatible({ baseUrl: url, apiKey: KEY }),
        retry: { retries: 0 },
      },
      remote('good', 'ok'),
    ])
    const result = await orchestrator.run({ task: 'chat', input: chat })
    expect(result.model).toBe('good')
    expect(result.attempts[0]).toMatchObject({
      model: 'down',
      outcome: 'failure',
      code: 'E_UNAVAILABLE',
    })
    expect(result.attempts[0]!.message).toContain('ECONNREFUSED')
  })

  it('accept then stall: the per-attempt timeout fires and the request fails over', async () => {
    const orchestrator = makeOrchestrator([
      remote('stalled', 'stall', { attemptTimeoutMs: 300, retry: { retries: 0 } }),
      remote('good', 'ok'),
    ])
    const result = await orchestrator.run({ task: 'chat', input: chat, timeoutMs: 20_000 })
    expect(result.model).toBe('good')
    expect(result.attempts[0]).toMatchObject({ model: 'stalled', code: 'E_TIMEOUT' })
  })

  it('accept then stall on the only model: the request deadline rejects with E_TIMEOUT', async () => {
    const orchestrator = makeOrchestrator([remote('stalled', 'stall', { retry: { retries: 0 } })])
    const error = await capture(orchestrator.run({ task: 'chat', input: chat, timeoutMs: 300 }))
    expect(error.code).toBe('E_TIMEOUT')
  })

  it('slow first token: the stream fails over before any text, with no restart', async () => {
    const orchestrator = makeOrchestrator(
      [remote('slow', 'slow-first-token', { retry: { retries: 0 } }), remote('good', 'ok')],
      {
        firstTokenTimeoutMs: 300,
      },
    )
    const parts = await drain(orchestrator.stream({ task: 'chat', input: chat }))
    expect(parts.some((p) => p.type === 'restart')).toBe(false)
    expect(
      parts
        .filter((p) => p.type === 'delta')
        .every((p) => p.type === 'delta' && p.model === 'good'),
    ).toBe(true)
    const done = parts.at(-1)!
    expect(done.type === 'done' && done.result.attempts[0]!.code).toBe('E_TIMEOUT')
  })

  for (const scenario of ['cut', 'cut-clean', 'stream-error-event'] as const) {
    it(`stream ${scenario} after tokens: rejects with E_MODEL carrying the partial text (reject mode)`, async () => {
      const orchestrator = makeOrchestrator([remote('cutter', scenario), remote('good', 'ok')])
      const seen: string[] = []
      const error = await capture(
        (async () => {
          for await (const part of orchestrator.stream({ task: 'chat', input: chat }))
            if (part.type === 'delta') seen.push(part.text)
        })(),
      )
      expect(error.code).toBe('E_MODEL')
      expect(error.details.partialText).toBe(seen.join(''))
      expect(seen.join('').length).toBeGreaterThan(0)
      expect(provider.answer.startsWith(seen.join(''))).toBe(true)
    })
  }

  it('stream cut after tokens: restart mode emits a restart event and completes on the fallback', async () => {
    const { events, sink } = collect()
    const orchestrator = makeOrchestrator([remote('cutter', 'cut'), remote('good', 'ok')], {
      onPartialFailure: 'restart',
      events: sink,
    })
    const parts = await drain(orchestrator.stream({ task: 'chat', input: chat }))
    const restartAt = parts.findIndex((p) => p.type === 'restart')
    expect(restartAt).toBeGreaterThan(0)
    const restart = parts[restartAt]!
    const before = parts
      .slice(0, restartAt)
      .map((p) => (p.type === 'delta' ? p.text : ''))
      .join('')
    expect(restart).toMatchObject({
      type: 'restart',
      from: 'cutter',
      to: 'good',
      discardedText: before,
    })
    const after = parts
      .slice(restartAt + 1)
      .map((p) => (p.type === 'delta' ? p.text : ''))
      .join('')
    expect(after).toBe(provider.answer)
    const done = parts.at(-1)!
    expect(done.type === 'done' && done.result.model).toBe('good')
    expect(events.some((e) => e.type === 'stream-restart')).toBe(true)
  })

  it('malformed JSON body is E_PROTOCOL and fails over', async () => {
    const orchestrator = makeOrchestrator([
      remote('garbled', 'malformed-json'),
      remote('good', 'ok'),
    ])
    const result = await orchestrator.run({ task: 'chat', input: chat })
    expect(result.model).toBe('good')
    expect(result.attempts[0]).toMatchObject({ model: 'garbled', code: 'E_PROTOCOL' })
    expect(result.attempts.filter((a) => a.model === 'garbled')).toHaveLength(1)
  })

  it('malformed SSE is E_PROTOCOL and fails over transparently before any text', async () => {
    const orchestrator = makeOrchestrator([
      remote('garbled', 'malformed-sse'),
      remote('good', 'ok'),
    ])
    const parts = await drain(orchestrator.stream({ task: 'chat', input: chat }))
    expect(parts.some((p) => p.type === 'restart')).toBe(false)
    const done = parts.at(-1)!
    expect(done.type === 'done' && done.result.model).toBe('good')
    expect(done.type === 'done' && done.result.attempts[0]!.code).toBe('E_PROTOCOL')
  })

  it('oversized body is refused with E_PROTOCOL (plain and streamed)', async () => {
    const orchestrator = makeOrchestrator([
      remote('huge', 'oversized', {}, 64 * 1024),
      remote('good', 'ok'),
    ])
    const result = await orchestrator.run({ task: 'chat', input: chat })
    expect(result.model).toBe('good')
    expect(result.attempts[0]).toMatchObject({ model: 'huge', code: 'E_PROTOCOL' })
    const single = makeOrchestrator([remote('huge', 'oversized', {}, 64 * 1024)])
    const error = await capture(drain(single.stream({ task: 'chat', input: chat })))
    expect(error.code).toBe('E_MODEL')
    expect((error.cause as AideError).code).toBe('E_PROTOCOL')
    expect(String(error.details.partialText).length).toBeGreaterThan(0)
  })

  it('context length exceeded falls back to a model with a larger window, skipping smaller ones', async () => {
    const { events, sink } = collect()
    const orchestrator = makeOrchestrator(
      [
        remote('short', 'context-length', { contextWindow: 8_000 }),
        remote('shorter', 'ok', { contextWindow: 4_000 }),
        remote('long', 'ok', { contextWindow: 128_000 }),
      ],
      { events: sink },
    )
    const result = await orchestrator.run({ task: 'chat', input: chat })
    expect(result.model).toBe('long')
    expect(events.find((e) => e.type === 'model-fallback')?.payload).toMatchObject({
      from: 'short',
      to: 'long',
      code: 'E_INVALID_INPUT',
    })
    expect(result.attempts.map((a) => [a.model, a.code])).toEqual([
      ['short', 'E_INVALID_INPUT'],
      ['long', undefined],
    ])
    // Without declared windows the orchestrator cannot tell, so it tries the next model.
    const undeclared = makeOrchestrator([remote('short', 'context-length'), remote('other', 'ok')])
    expect((await undeclared.run({ task: 'chat', input: chat })).model).toBe('other')
    const single = makeOrchestrator([remote('short', 'context-length')])
    const error = await capture(single.run({ task: 'chat', input: chat }))
    expect(error.code).toBe('E_INVALID_INPUT')
    expect(error.details.reason ?? (error.cause as AideError).details.reason).toBe('context-length')
  })

  it('slow drip: a steady stream under the idle timeout completes in full', async () => {
    const orchestrator = makeOrchestrator([remote('drip', 'slow-drip')], { idleTimeoutMs: 5_000 })
    const parts = await drain(orchestrator.stream({ task: 'chat', input: chat }))
    const done = parts.at(-1)!
    expect(done.type === 'done' && done.result.text).toBe(provider.answer)
  })

  it('slow drip past the request deadline rejects with E_TIMEOUT and the partial text, never a short success', async () => {
    const orchestrator = makeOrchestrator([remote('drip', 'slow-drip')], { idleTimeoutMs: 5_000 })
    const seen: string[] = []
    const error = await capture(
      (async () => {
        for await (const part of orchestrator.stream({
          task: 'chat',
          input: chat,
          timeoutMs: 200,
        })) {
          if (part.type === 'delta') seen.push(part.text)
          if (part.type === 'done') throw new Error('a cut answer was reported as complete')
        }
      })(),
    )
    expect(error.code).toBe('E_TIMEOUT')
    // Whatever arrived before the deadline (on a loaded machine possibly nothing) is kept.
    expect(error.details.partialText ?? '').toBe(seen.join(''))
  })

  it('slow drip with a short idle timeout fails the stream with E_MODEL and the partial text', async () => {
    const orchestrator = makeOrchestrator(
      [remote('drip', 'slow-drip', { retry: { retries: 0 } })],
      { idleTimeoutMs: 20 },
    )
    const error = await capture(drain(orchestrator.stream({ task: 'chat', input: chat })))
    expect(error.code).toBe('E_MODEL')
    expect((error.cause as AideError).code).toBe('E_TIMEOUT')
  })
})

describe('openAICompatible', () => {
  it('rejects bad options naming the field', () => {
    expect(() => openAICompatible({ baseUrl: 'not a url' })).toThrow(/options\.baseUrl/)
    expect(() => openAICompatible({ baseUrl: 'ftp://x/v1' })).toThrow(/options\.baseUrl/)
    expect(() => openAICompatible({ baseUrl: 'http://x/v1', apiKey: '' })).toThrow(
      /options\.apiKey/,
    )
    expect(() => openAICompatible({ baseUrl: 'http://x/v1', maxResponseBytes: 0 })).toThrow(
      /options\.maxResponseBytes/,
    )
  })

  it('stats never show credentials from the URL', () => {
    const backend = openAICompatible({
      baseUrl: 'http://user:hunter2@127.0.0.1:9/v1?key=abc',
      apiKey: KEY,
    })
    const shown = JSON.stringify(backend.stats?.())
    expect(shown).toContain('http://127.0.0.1:9/v1/chat/completions')
    expect(shown).not.toContain('hunter2')
    expect(shown).not.toContain('key=abc')
    expect(shown).not.toContain(KEY)
  })

  it('a password in the base URL never reaches an error', async () => {
    const backend = openAICompatible({ baseUrl: 'http://user:hunter2@127.0.0.1:9/v1', apiKey: KEY })
    const orchestrator = createOrchestrator({
      models: [{ id: 'x', tasks: ['chat'], backend, retry: { retries: 0 } }],
    })
    const error = await capture(orchestrator.run({ task: 'chat', input: chat }))
    const everything = [
      error.message,
      JSON.stringify(error),
      String((error.cause as Error)?.message),
    ].join('\n')
    expect(everything).not.toContain('hunter2')
  })

  it('parses Retry-After in ms, seconds and HTTP dates', () => {
    expect(parseRetryAfter(new Headers({ 'retry-after-ms': '250' }))).toBe(250)
    expect(parseRetryAfter(new Headers({ 'retry-after': '2' }))).toBe(2000)
    const now = Date.parse('2026-01-01T00:00:00Z')
    expect(
      parseRetryAfter(new Headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:03 GMT' }), now),
    ).toBe(3000)
    expect(parseRetryAfter(new Headers({ 'retry-after': 'soon' }))).toBeUndefined()
    expect(parseRetryAfter(new Headers())).toBeUndefined()
  })

  it('cancels an in-flight call when the caller aborts', async () => {
    const orchestrator = makeOrchestrator([
      remote('stalled', 'stall', { retry: { retries: 0 }, attemptTimeoutMs: 60_000 }),
    ])
    const controller = new AbortController()
    const pending = orchestrator.run({ task: 'chat', input: chat, signal: controller.signal })
    setTimeout(() => controller.abort(), 100)
    const error = await capture(pending)
    expect(error.code).toBe('E_CANCELLED')
    expect(orchestrator.stats().models[0]!.failures).toBe(0)
  })
})
