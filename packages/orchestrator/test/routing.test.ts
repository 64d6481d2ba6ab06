import { AideError, type CacheLike, InMemoryMeter, isAideError, ManualClock } from '@aide/core'
import { describe, expect, it } from 'vitest'
import {
  type Candidate,
  createOrchestrator,
  latencyStrategy,
  type OrchestratorEvents,
  type RunResult,
  weightedStrategy,
} from '../src/index.js'
import { mockBackend, unavailableError } from '../src/testing.js'
import { model, POLL } from './models.js'

const input = { messages: [{ role: 'user' as const, content: 'hello there' }] }

function sink() {
  const events: Array<{ type: keyof OrchestratorEvents; payload: unknown }> = []
  return {
    events,
    emit: (type: keyof OrchestratorEvents, payload: unknown) => void events.push({ type, payload }),
  }
}

async function rejection(promise: Promise<unknown>): Promise<AideError> {
  try {
    await promise
  } catch (error) {
    if (isAideError(error)) return error
    throw error
  }
  throw new Error('expected a rejection')
}

describe('createOrchestrator: validation', () => {
  it('rejects bad options naming the field', () => {
    expect(() => createOrchestrator({ models: [] })).toThrow(/options\.models/)
    expect(() =>
      createOrchestrator({ models: [{ id: '', tasks: ['chat'], backend: mockBackend() }] }),
    ).toThrow(/options\.models\[0\]\.id/)
    expect(() =>
      createOrchestrator({ models: [{ id: 'a', tasks: [], backend: mockBackend() }] }),
    ).toThrow(/options\.models\[0\]\.tasks/)
    expect(() => createOrchestrator({ models: [model('a', { contextWindow: -1 })] })).toThrow(
      /contextWindow/,
    )
    expect(() => createOrchestrator({ models: [model('a', { quality: { chat: 2 } })] })).toThrow(
      /quality\.chat/,
    )
    expect(() => createOrchestrator({ models: [model('a'), model('a')] })).toThrow(/twice/)
    expect(() =>
      createOrchestrator({ models: [model('a')], strategy: 'fastest' as never }),
    ).toThrow(/options\.strategy/)
    expect(() =>
      createOrchestrator({ models: [model('a')], fallbacks: { chat: ['nope'] } }),
    ).toThrow(/options\.fallbacks\.chat\[0\]/)
    expect(() =>
      createOrchestrator({
        models: [model('a', { breaker: { failureRate: { threshold: 2, window: 10 } } })],
      }),
    ).toThrow(/failureRate\.threshold/)
    expect(() =>
      createOrchestrator({
        models: [model('a')],
        tenants: { t: { budget: { limit: 1, periodMs: 0 } } },
      }),
    ).toThrow(/options\.tenants\.t\.budget\.periodMs/)
    try {
      createOrchestrator({ models: [model('a', { maxConcurrency: 0 })] })
    } catch (error) {
      expect((error as AideError).code).toBe('E_INVALID_INPUT')
      expect((error as AideError).details.field).toBe('options.models[0].maxConcurrency')
    }
  })

  it('rejects bad requests with E_INVALID_INPUT naming the field, without calling a model', async () => {
    const a = model('a')
    const orchestrator = createOrchestrator({ models: [a] })
    const cases: Array<[unknown, string]> = [
      [null, 'request'],
      [{ input }, 'request.task'],
      [{ task: 'chat' }, 'request.input'],
      [{ task: 'chat', input: {} }, 'request.input'],
      [
        { task: 'chat', input: { messages: [{ role: 'robot', content: 'x' }] } },
        'request.input.messages[0].role',
      ],
      [{ task: 'chat', input: { prompt: 'x', maxTokens: 0 } }, 'request.input.maxTokens'],
      [{ task: 'chat', input, timeoutMs: -1 }, 'request.timeoutMs'],
      [{ task: 'chat', input, signal: 'abort' }, 'request.signal'],
      [{ task: 'chat', input, qualityFloor: 3 }, 'request.qualityFloor'],
      [{ task: 'chat', input, tags: 'x' }, 'request.tags'],
    ]
    for (const [request, field] of cases) {
      const error = await rejection(orchestrator.run(request as never))
      expect(error.code).toBe('E_INVALID_INPUT')
      expect(error.details.field).toBe(field)
    }
    expect(a.backend.calls).toHaveLength(0)
  })
})

describe('candidate filtering', () => {
  it('filters by task, context window, quality, cost, tags and latency', async () => {
    const orchestrator = createOrchestrator({
      models: [
        model('other-task', { tasks: ['embedding'] }),
        model('tiny', { contextWindow: 10 }),
        model('weak', { quality: { chat: 0.2 } }),
        model('pricey', { quality: { chat: 0.9 }, cost: { inputPer1k: 100, outputPer1k: 100 } }),
        model('untagged', { quality: { chat: 0.9 } }),
        model('fit', {
          quality: { chat: 0.9 },
          tags: ['eu'],
          contextWindow: 4000,
          cost: { inputPer1k: 0.001, outputPer1k: 0.002 },
        }),
      ],
    })
    const result = await orchestrator.run({
      task: 'chat',
      input: { ...input, maxTokens: 50 },
      qualityFloor: 0.5,
      costCeiling: 0.01,
      tags: ['eu'],
    })
    expect(result.model).toBe('fit')
    const error = await rejection(orchestrator.run({ task: 'translate', input }))
    expect(error.code).toBe('E_UNAVAILABLE')
    expect(error.details.rejected).toMatchObject({ 'other-task': 'task', fit: 'task' })
  })

  it('skips a model whose observed p95 latency exceeds the latency ceiling', async () => {
    const slow = model('slow', { backend: mockBackend({ reply: 'slow', delayMs: 30 }) })
    const fast = model('fast', { priority: -1 })
    const orchestrator = createOrchestrator({ models: [slow, fast] })
    expect((await orchestrator.run({ task: 'chat', input })).model).toBe('slow')
    const result = await orchestrator.run({
      task: 'chat',
      input: { prompt: 'other' },
      latencyCeilingMs: 5,
    })
    expect(result.model).toBe('fast')
  })
})

describe('strategies', () => {
  const candidates = (list: Array<Partial<Candidate> & { id: string }>): Candidate[] =>
    list.map((c, index) => ({
      model: { id: c.id, tasks: ['chat'], backend: mockBackend(), ...(c.model ?? {}) },
      index,
      inFlight: 0,
      latencyEwmaMs: undefined,
      estimatedCost: 0,
      quality: 0,
      ...c,
    }))
  const context = (value: number) => ({ request: { task: 'chat', input }, random: () => value })

  it('priority: highest priority first, then declaration order', async () => {
    const orchestrator = createOrchestrator({
      models: [model('a'), model('b', { priority: 5 }), model('c', { priority: 5 })],
    })
    const result = await orchestrator.run({ task: 'chat', input })
    expect(result.model).toBe('b')
  })

  it('least-busy: the model with the fewest calls in flight', async () => {
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const busy = model('busy', {
      backend: mockBackend({
        reply: async () => {
          await gate
          return 'busy'
        },
      }),
    })
    const orchestrator = createOrchestrator({
      models: [busy, model('idle')],
      strategy: 'least-busy',
    })
    const first = orchestrator.run({ task: 'chat', input: { prompt: 'one' } })
    const second = await orchestrator.run({ task: 'chat', input: { prompt: 'two' } })
    expect(second.model).toBe('idle')
    release()
    expect((await first).model).toBe('busy')
  })

  it('cost: cheapest estimated cost first', async () => {
    const orchestrator = createOrchestrator({
      models: [
        model('dear', { cost: { inputPer1k: 10, outputPer1k: 10 } }),
        model('cheap', { cost: { inputPer1k: 1, outputPer1k: 1 } }),
      ],
      strategy: 'cost',
    })
    expect((await orchestrator.run({ task: 'chat', input })).model).toBe('cheap')
  })

  it('latency: unmeasured first, then random within the tolerance band, then by average', () => {
    const strategy = latencyStrategy({ tolerance: 0.2 })
    const list = candidates([
      { id: 'a', latencyEwmaMs: 100 },
      { id: 'b', latencyEwmaMs: 115 },
      { id: 'c', latencyEwmaMs: 300 },
    ])
    expect(strategy(list, context(0)).map((c) => c.id)).toEqual(['a', 'b', 'c'])
    expect(strategy(list, context(0.99)).map((c) => c.id)).toEqual(['b', 'a', 'c'])
    const withNew = candidates([{ id: 'a', latencyEwmaMs: 100 }, { id: 'new' }])
    expect(strategy(withNew, context(0)).map((c) => c.id)).toEqual(['new', 'a'])
  })

  it('latency: routes to the faster model once both are measured', async () => {
    const slow = model('slow', { backend: mockBackend({ reply: 's', delayMs: 40 }) })
    const fast = model('fast')
    const orchestrator = createOrchestrator({
      models: [slow, fast],
      strategy: 'latency',
      random: () => 0,
    })
    await orchestrator.run({ task: 'chat', input: { prompt: '1' } })
    await orchestrator.run({ task: 'chat', input: { prompt: '2' } })
    const result = await orchestrator.run({ task: 'chat', input: { prompt: '3' } })
    expect(result.model).toBe('fast')
  })

  it('weighted: draws in proportion to weight', () => {
    const strategy = weightedStrategy()
    const list = candidates([
      { id: 'a', model: { id: 'a', tasks: ['chat'], backend: mockBackend(), weight: 1 } },
      { id: 'b', model: { id: 'b', tasks: ['chat'], backend: mockBackend(), weight: 3 } },
    ])
    expect(strategy(list, context(0.1))[0]!.id).toBe('a')
    expect(strategy(list, context(0.5))[0]!.id).toBe('b')
    expect(
      strategy(list, context(0.5))
        .map((c) => c.id)
        .sort(),
    ).toEqual(['a', 'b'])
  })

  it('custom function and explicit fallback chains per task', async () => {
    const { events, emit } = sink()
    const broken = model('broken', { backend: mockBackend({ reply: unavailableError() }) })
    const orchestrator = createOrchestrator({
      models: [broken, model('next-best'), model('chained')],
      strategy: (list) =>
        [...list].sort((x, y) =>
          x.id === 'broken' ? -1 : y.id === 'broken' ? 1 : x.index - y.index,
        ),
      fallbacks: { chat: ['chained'] },
      events: { emit },
    })
    const result = await orchestrator.run({ task: 'chat', input })
    expect(result.model).toBe('chained')
    expect(events.find((e) => e.type === 'model-selected')?.payload).toMatchObject({
      model: 'broken',
      candidates: ['broken', 'chained', 'next-best'],
    })
    expect(events.find((e) => e.type === 'model-fallback')?.payload).toMatchObject({
      from: 'broken',
      to: 'chained',
    })
  })
})

describe('results, cache and shared requests', () => {
  it('names the model, every attempt, usage, cost and latency', async () => {
    const orchestrator = createOrchestrator({
      models: [
        model('a', { backend: mockBackend({ reply: unavailableError() }) }),
        model('b', { cost: { inputPer1k: 1, outputPer1k: 1 } }),
      ],
    })
    const result = await orchestrator.run({ task: 'chat', input })
    expect(result).toMatchObject({
      model: 'b',
      text: 'from b',
      finishReason: 'stop',
      cached: false,
    })
    expect(result.attempts.map((a) => [a.model, a.outcome])).toEqual([
      ['a', 'failure'],
      ['b', 'success'],
    ])
    expect(result.cost).toBeCloseTo((result.usage.inputTokens + result.usage.outputTokens) / 1000)
    expect(result.latencyMs).toBeGreaterThanOrEqual(0)
  })

  it('shares identical in-flight requests and serves repeats from the cache', async () => {
    const store = new Map<string, RunResult>()
    const cache: CacheLike<RunResult> = {
      get: async (key) => store.get(key),
      set: async (key, value) => void store.set(key, value),
      getOrSet: async (key, loader) => store.get(key) ?? loader(new AbortController().signal),
      delete: async (key) => store.delete(key),
    }
    const a = model('a', { backend: mockBackend({ reply: 'shared', delayMs: 20 }) })
    const orchestrator = createOrchestrator({ models: [a], cache })
    const results = await Promise.all(
      Array.from({ length: 5 }, () => orchestrator.run({ task: 'chat', input })),
    )
    expect(a.backend.calls).toHaveLength(1)
    expect(results.every((r) => r.text === 'shared')).toBe(true)
    await expect.poll(() => store.size, POLL).toBe(1)
    const again = await orchestrator.run({ task: 'chat', input })
    expect(again.cached).toBe(true)
    expect(a.backend.calls).toHaveLength(1)
    const fresh = await orchestrator.run({ task: 'chat', input, cache: false })
    expect(fresh.cached).toBe(false)
    expect(a.backend.calls).toHaveLength(2)
    expect(orchestrator.stats()).toMatchObject({ cacheHits: 1, sharedInFlight: 4 })
  })

  it('a repeat that arrives while the cache write is still under way joins the finished call', async () => {
    const store = new Map<string, RunResult>()
    let finishWrite!: () => void
    const writing = new Promise<void>((resolve) => (finishWrite = resolve))
    const cache: CacheLike<RunResult> = {
      get: async (key) => store.get(key),
      set: async (key, value) => {
        await writing
        store.set(key, value)
      },
      getOrSet: async (key, loader) => store.get(key) ?? loader(new AbortController().signal),
      delete: async (key) => store.delete(key),
    }
    const a = model('a', { backend: mockBackend({ reply: 'once' }) })
    const orchestrator = createOrchestrator({ models: [a], cache })
    const first = await orchestrator.run({ task: 'chat', input })
    const repeat = await orchestrator.run({ task: 'chat', input })
    expect(repeat.text).toBe('once')
    expect(a.backend.calls).toHaveLength(1)
    expect(first.cached).toBe(false)
    finishWrite()
    await expect.poll(() => store.size, POLL).toBe(1)
    const later = await orchestrator.run({ task: 'chat', input })
    expect(later.cached).toBe(true)
    expect(a.backend.calls).toHaveLength(1)
  })

  it('a cache that fails is bypassed, not fatal', async () => {
    const cache: CacheLike<RunResult> = {
      get: async () => {
        throw new AideError('E_UNAVAILABLE', 'cache down')
      },
      set: async () => {
        throw new AideError('E_UNAVAILABLE', 'cache down')
      },
      getOrSet: async (_key, loader) => loader(new AbortController().signal),
      delete: async () => false,
    }
    const orchestrator = createOrchestrator({ models: [model('a')], cache })
    expect((await orchestrator.run({ task: 'chat', input })).text).toBe('from a')
  })

  it('one caller leaving does not cancel the shared call for the others; the last one leaving does', async () => {
    const a = model('a', { backend: mockBackend({ reply: 'slow', delayMs: 100 }) })
    const orchestrator = createOrchestrator({ models: [a] })
    const leaving = new AbortController()
    const first = orchestrator.run({ task: 'chat', input, signal: leaving.signal })
    const second = orchestrator.run({ task: 'chat', input })
    leaving.abort()
    expect((await rejection(first)).code).toBe('E_CANCELLED')
    expect((await second).text).toBe('slow')
    const only = new AbortController()
    const alone = orchestrator.run({ task: 'chat', input: { prompt: 'solo' }, signal: only.signal })
    await expect.poll(() => a.backend.calls.length, POLL).toBe(2)
    only.abort()
    expect((await rejection(alone)).code).toBe('E_CANCELLED')
  })

  it('an already-aborted signal rejects with E_CANCELLED without calling a model', async () => {
    const a = model('a')
    const orchestrator = createOrchestrator({ models: [a] })
    const error = await rejection(
      orchestrator.run({ task: 'chat', input, signal: AbortSignal.abort() }),
    )
    expect(error.code).toBe('E_CANCELLED')
    expect(a.backend.calls).toHaveLength(0)
  })

  it('reports through a Meter and exposes per-model stats', async () => {
    const meter = new InMemoryMeter()
    const orchestrator = createOrchestrator({ models: [model('a')], meter })
    for (let i = 0; i < 5; i++) await orchestrator.run({ task: 'chat', input: { prompt: `p${i}` } })
    expect(
      meter.value('aide_orchestrator_attempts_total', { model: 'a', outcome: 'success' }),
    ).toBe(5)
    const stats = orchestrator.stats()
    expect(stats).toMatchObject({ requests: 5, successes: 5, failures: 0 })
    expect(stats.models[0]).toMatchObject({
      id: 'a',
      calls: 5,
      successes: 5,
      errorRate: 0,
      inFlight: 0,
      breaker: 'closed',
      healthy: true,
    })
    expect(stats.models[0]!.latencyMs.samples).toBe(5)
    expect(stats.models[0]!.latencyMs.p99).toBeGreaterThanOrEqual(stats.models[0]!.latencyMs.p50)
    expect(JSON.parse(JSON.stringify(stats))).toEqual(stats)
  })

  it('records aide_orchestrator_request_seconds for successful requests, labelled by model', async () => {
    const meter = new InMemoryMeter()
    const clock = new ManualClock()
    const failing = model('a', { backend: mockBackend({ reply: unavailableError('a is down') }) })
    // Each successful call takes 300 ms on the orchestrator's clock.
    const slow = model('b', {
      backend: mockBackend({
        reply: () => {
          clock.set(clock.now() + 300)
          return 'from b'
        },
      }),
    })
    const orchestrator = createOrchestrator({
      models: [failing, slow],
      fallbacks: { chat: ['a', 'b'] },
      meter,
      clock,
    })
    const histogram = () =>
      meter.snapshot().find((family) => family.name === 'aide_orchestrator_request_seconds')
    expect(histogram()).toMatchObject({ type: 'histogram', series: [] })
    for (let i = 0; i < 3; i++) {
      const result = await orchestrator.run({ task: 'chat', input: { prompt: `p${i}` } })
      expect(result.model).toBe('b')
      const family = histogram()!
      // Failed attempts on `a` are counted in attempts_total, not timed here.
      expect(family.series).toHaveLength(1)
      expect(family.series[0]).toMatchObject({ labels: { model: 'b' }, count: i + 1 })
    }
    const series = histogram()!.series[0] as {
      sum: number
      buckets: Array<{ le: number; count: number }>
    }
    expect(series.sum).toBeCloseTo(0.9)
    expect(series.buckets.find((b) => b.le === 0.25)!.count).toBe(0)
    expect(series.buckets.find((b) => b.le === 0.5)!.count).toBe(3)
    expect(
      meter.value('aide_orchestrator_attempts_total', { model: 'a', outcome: 'failure' }),
    ).toBeGreaterThanOrEqual(1)
    await orchestrator.dispose()
  })

  it('dispose is idempotent, disposes each backend once, and refuses new work', async () => {
    const shared = mockBackend()
    const orchestrator = createOrchestrator({
      models: [
        { id: 'a', tasks: ['chat'], backend: shared },
        { id: 'b', tasks: ['chat'], backend: shared },
      ],
    })
    await orchestrator.dispose()
    await orchestrator.dispose()
    expect(shared.disposed).toBe(1)
    expect((await rejection(orchestrator.run({ task: 'chat', input }))).code).toBe('E_DISPOSED')
  })

  it('a backend without streaming still streams (one delta), and MockBackend streams words', async () => {
    const orchestrator = createOrchestrator({
      models: [
        model('plain', { backend: mockBackend({ reply: 'one two three', noStream: true }) }),
      ],
    })
    const parts = []
    for await (const part of orchestrator.stream({ task: 'chat', input })) parts.push(part)
    expect(parts.map((p) => p.type)).toEqual(['delta', 'done'])
    const words = createOrchestrator({
      models: [model('m', { backend: mockBackend({ reply: 'one two three' }) })],
    })
    const texts: string[] = []
    for await (const part of words.stream({ task: 'chat', input }))
      if (part.type === 'delta') texts.push(part.text)
    expect(texts).toEqual(['one ', 'two ', 'three'])
  })

  it('leaving a stream early cancels the model call', async () => {
    let seenSignal: AbortSignal | undefined
    const backend = mockBackend({ reply: 'a b c d e f', delayMs: 20 })
    const original = backend.stream!.bind(backend)
    backend.stream = (request, options) => {
      seenSignal = options.signal
      return original(request, options)
    }
    const orchestrator = createOrchestrator({ models: [model('m', { backend })] })
    for await (const part of orchestrator.stream({ task: 'chat', input })) {
      if (part.type === 'delta') break
    }
    await expect.poll(() => seenSignal?.aborted, POLL).toBe(true)
  })

  it('stream rejects bad requests with E_INVALID_INPUT on first iteration', async () => {
    const orchestrator = createOrchestrator({ models: [model('a')] })
    const error = await rejection(
      (async () => {
        for await (const _ of orchestrator.stream({ task: '', input })) {
          // never reached
        }
      })(),
    )
    expect(error.code).toBe('E_INVALID_INPUT')
    expect(error.details.field).toBe('request.task')
  })

  it('restart mode with no model left rejects with E_MODEL and the partial text', async () => {
    const backend = mockBackend({ reply: 'unused' })
    backend.stream = async function* () {
      yield { type: 'delta' as const, text: 'half an ' }
      throw unavailableError('connection reset')
    }
    const orchestrator = createOrchestrator({
      models: [model('only', { backend })],
      onPartialFailure: 'restart',
    })
    const error = await rejection(
      (async () => {
        for await (const _ of orchestrator.stream({ task: 'chat', input })) {
          // consume
        }
      })(),
    )
    expect(error.code).toBe('E_MODEL')
    expect(error.details.partialText).toBe('half an ')
  })

  it('a custom backend stream that ends without done is a failure, not a short answer', async () => {
    const backend = mockBackend({ reply: 'unused' })
    backend.stream = async function* () {
      yield { type: 'delta' as const, text: 'cut' }
    }
    const orchestrator = createOrchestrator({ models: [model('only', { backend })] })
    const error = await rejection(
      (async () => {
        for await (const part of orchestrator.stream({ task: 'chat', input })) {
          if (part.type === 'done') throw new Error('reported a cut answer as complete')
        }
      })(),
    )
    expect(error.code).toBe('E_MODEL')
    expect(error.details.partialText).toBe('cut')
  })

  it('a strategy that chooses nothing gives E_UNAVAILABLE; one that throws gives an AideError', async () => {
    const empty = createOrchestrator({ models: [model('a')], strategy: () => [] })
    expect((await rejection(empty.run({ task: 'chat', input }))).code).toBe('E_UNAVAILABLE')
    const throwing = createOrchestrator({
      models: [model('a')],
      strategy: () => {
        throw new Error('strategy bug')
      },
    })
    const error = await rejection(throwing.run({ task: 'chat', input }))
    expect(error.code).toBe('E_INTERNAL')
    expect(error.message).toContain('strategy bug')
  })
})
