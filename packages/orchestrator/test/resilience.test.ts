import { type AideError, isAideError, ManualClock } from '@aide/core'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  Budget,
  createOrchestrator,
  type ModelBackend,
  type OrchestratorEvents,
  TokenBucket,
} from '../src/index.js'
import { mockBackend, unavailableError } from '../src/testing.js'
import { model, POLL } from './models.js'

const input = { prompt: 'hello' }

function recorder() {
  const events: Array<{ type: keyof OrchestratorEvents; payload: Record<string, unknown> }> = []
  return {
    events,
    types: () => events.map((e) => e.type),
    sink: {
      emit: (type: keyof OrchestratorEvents, payload: unknown) =>
        void events.push({ type, payload: payload as Record<string, unknown> }),
    },
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

afterEach(() => {
  vi.useRealTimers()
})

describe('circuit breaker', () => {
  it('opens after consecutive failures, skips the model, half-opens with exactly one probe among 100 callers, then closes', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    let failing = true
    let release!: () => void
    let gate: Promise<void> | undefined
    const flaky = model('flaky', {
      breaker: { consecutiveFailures: 2, halfOpenAfterMs: 1_000 },
      backend: mockBackend({
        reply: async () => {
          if (failing) return unavailableError()
          await gate
          return 'recovered'
        },
      }),
    })
    const backup = model('backup', { maxConcurrency: 128 })
    const { events, sink, types } = recorder()
    const orchestrator = createOrchestrator({ models: [flaky, backup], events: sink })
    for (let i = 0; i < 2; i++)
      expect((await orchestrator.run({ task: 'chat', input: { prompt: `f${i}` } })).model).toBe(
        'backup',
      )
    expect(types()).toContain('breaker-open')
    expect(orchestrator.stats().models[0]!.breaker).toBe('open')
    // While open, the model is not even tried.
    const skipped = await orchestrator.run({ task: 'chat', input: { prompt: 'while-open' } })
    expect(skipped.attempts.map((a) => a.model)).toEqual(['backup'])
    expect(flaky.backend.calls).toHaveLength(2)

    failing = false
    gate = new Promise<void>((resolve) => (release = resolve))
    vi.setSystemTime(Date.now() + 1_001)
    const runs = Array.from({ length: 100 }, (_, i) =>
      orchestrator.run({ task: 'chat', input: { prompt: `c${i}` } }),
    )
    await expect.poll(() => backup.backend.calls.length, POLL).toBe(1 + 2 + 99)
    expect(flaky.backend.calls).toHaveLength(3)
    expect(types()).toContain('breaker-half-open')
    release()
    const results = await Promise.all(runs)
    expect(results.filter((r) => r.model === 'flaky')).toHaveLength(1)
    expect(results.filter((r) => r.model === 'backup')).toHaveLength(99)
    expect(types().at(-1)).toBe('breaker-close')
    expect(events.find((e) => e.type === 'breaker-open')?.payload).toEqual({
      model: 'flaky',
      isolated: false,
    })
    expect(orchestrator.stats().models[0]!.breaker).toBe('closed')
  })

  it('opens on failure rate even without consecutive failures', async () => {
    let call = 0
    const shaky = model('shaky', {
      breaker: { consecutiveFailures: 100, failureRate: { threshold: 0.4, window: 4 } },
      backend: mockBackend({ reply: () => (call++ % 2 === 0 ? unavailableError() : 'ok') }),
    })
    const { sink, types } = recorder()
    const orchestrator = createOrchestrator({ models: [shaky, model('backup')], events: sink })
    for (let i = 0; i < 4; i++) await orchestrator.run({ task: 'chat', input: { prompt: `r${i}` } })
    expect(types()).not.toContain('breaker-open')
    await orchestrator.run({ task: 'chat', input: { prompt: 'r4' } })
    expect(types()).toContain('breaker-open')
    expect(orchestrator.stats().models[0]).toMatchObject({ breaker: 'open', errorRate: 0.6 })
  })

  it('a failed half-open probe reopens the breaker', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const down = model('down', {
      breaker: { consecutiveFailures: 1, halfOpenAfterMs: 500 },
      backend: mockBackend({ reply: unavailableError() }),
    })
    const { sink, types } = recorder()
    const orchestrator = createOrchestrator({ models: [down, model('backup')], events: sink })
    await orchestrator.run({ task: 'chat', input: { prompt: 'a' } })
    vi.setSystemTime(Date.now() + 501)
    await orchestrator.run({ task: 'chat', input: { prompt: 'b' } })
    expect(types().filter((t) => t.startsWith('breaker'))).toEqual([
      'breaker-open',
      'breaker-half-open',
      'breaker-open',
    ])
    expect(orchestrator.stats().models[0]!.breaker).toBe('open')
  })

  it('caller cancellations and bad input do not count against the breaker', async () => {
    const slow = model('slow', {
      breaker: { consecutiveFailures: 1 },
      backend: mockBackend({ reply: 'late', delayMs: 200 }),
    })
    const orchestrator = createOrchestrator({ models: [slow] })
    for (let i = 0; i < 3; i++) {
      const controller = new AbortController()
      const pending = orchestrator.run({
        task: 'chat',
        input: { prompt: `x${i}` },
        signal: controller.signal,
      })
      setTimeout(() => controller.abort(), 10)
      expect((await rejection(pending)).code).toBe('E_CANCELLED')
    }
    expect(orchestrator.stats().models[0]).toMatchObject({ breaker: 'closed', failures: 0 })
  })

  it('isolate holds a model out of rotation until restore', async () => {
    const a = model('a')
    const { events, sink } = recorder()
    const orchestrator = createOrchestrator({ models: [a, model('b')], events: sink })
    orchestrator.isolate('a')
    expect((await orchestrator.run({ task: 'chat', input })).model).toBe('b')
    expect(orchestrator.stats().models[0]!.breaker).toBe('isolated')
    expect(events.find((e) => e.type === 'breaker-open')?.payload).toEqual({
      model: 'a',
      isolated: true,
    })
    orchestrator.restore('a')
    expect((await orchestrator.run({ task: 'chat', input: { prompt: 'again' } })).model).toBe('a')
    expect(() => orchestrator.isolate('nope')).toThrow(/no model "nope"/)
    expect(() => orchestrator.isolate(42 as never)).toThrow(/modelId/)
  })
})

describe('retry', () => {
  it('retries a retryable failure on the same model with backoff, up to the limit', async () => {
    let calls = 0
    const flaky = model('flaky', {
      retry: { retries: 2, initialDelayMs: 5, maxDelayMs: 20 },
      backend: mockBackend({ reply: () => (++calls < 3 ? unavailableError() : 'third time') }),
    })
    const orchestrator = createOrchestrator({ models: [flaky] })
    const result = await orchestrator.run({ task: 'chat', input })
    expect(result.text).toBe('third time')
    expect(result.attempts.map((a) => a.outcome)).toEqual(['failure', 'failure', 'success'])
  })

  it('does not retry a non-retryable failure', async () => {
    const denied = model('denied', {
      retry: { retries: 3, initialDelayMs: 1 },
      backend: mockBackend({ reply: () => new (class extends Error {})('boom') }),
    })
    const orchestrator = createOrchestrator({ models: [denied] })
    const error = await rejection(orchestrator.run({ task: 'chat', input }))
    expect(error.code).toBe('E_MODEL')
    expect(denied.backend.calls).toHaveLength(1)
  })
})

describe('bulkhead', () => {
  it('limits concurrency, queues, and sends the overflow to the next model', async () => {
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    let active = 0
    let peak = 0
    const narrow = model('narrow', {
      maxConcurrency: 2,
      maxQueue: 1,
      backend: mockBackend({
        reply: async () => {
          active++
          peak = Math.max(peak, active)
          await gate
          active--
          return 'narrow'
        },
      }),
    })
    const orchestrator = createOrchestrator({ models: [narrow, model('wide')] })
    const runs = Array.from({ length: 5 }, (_, i) =>
      orchestrator.run({ task: 'chat', input: { prompt: `b${i}` } }),
    )
    await expect.poll(() => orchestrator.stats().models[1]!.calls, POLL).toBe(2)
    release()
    const results = await Promise.all(runs)
    expect(results.filter((r) => r.model === 'narrow')).toHaveLength(3)
    expect(results.filter((r) => r.model === 'wide')).toHaveLength(2)
    expect(peak).toBe(2)
    const overflow = results.find((r) => r.model === 'wide')!
    expect(overflow.attempts[0]).toMatchObject({
      model: 'narrow',
      outcome: 'skipped',
      code: 'E_LIMIT',
    })
  })
})

describe('rate limits and budgets', () => {
  it('TokenBucket refills on the clock', () => {
    const clock = new ManualClock()
    const bucket = new TokenBucket({ requestsPerSecond: 2, burst: 2 }, clock)
    expect([bucket.tryTake(), bucket.tryTake(), bucket.tryTake()]).toEqual([true, true, false])
    clock.advance(500)
    expect(bucket.tryTake()).toBe(true)
    expect(bucket.tryTake()).toBe(false)
  })

  it('Budget resets each period', () => {
    const clock = new ManualClock(0)
    const budget = new Budget(1, 1_000, clock)
    budget.charge(0.75)
    expect(budget.remaining).toBeCloseTo(0.25)
    clock.advance(1_000)
    expect(budget.spent).toBe(0)
  })

  it('a model out of rate-limit tokens is skipped in favour of the next', async () => {
    const clock = new ManualClock()
    const limited = model('limited', { rateLimit: { requestsPerSecond: 1, burst: 1 } })
    const orchestrator = createOrchestrator({ models: [limited, model('spare')], clock })
    expect((await orchestrator.run({ task: 'chat', input: { prompt: '1' } })).model).toBe('limited')
    const second = await orchestrator.run({ task: 'chat', input: { prompt: '2' } })
    expect(second.model).toBe('spare')
    expect(second.attempts[0]).toMatchObject({
      model: 'limited',
      outcome: 'skipped',
      code: 'E_LIMIT',
    })
    clock.advance(1_000)
    expect((await orchestrator.run({ task: 'chat', input: { prompt: '3' } })).model).toBe('limited')
    expect(orchestrator.stats().models[0]!.rateLimited).toBe(1)
  })

  it('a tenant over its request rate is refused with E_LIMIT', async () => {
    const clock = new ManualClock()
    const orchestrator = createOrchestrator({
      models: [model('a')],
      clock,
      tenants: { acme: { rateLimit: { requestsPerSecond: 1, burst: 2 } } },
    })
    await orchestrator.run({ task: 'chat', input: { prompt: '1' }, tenant: 'acme' })
    await orchestrator.run({ task: 'chat', input: { prompt: '2' }, tenant: 'acme' })
    const error = await rejection(
      orchestrator.run({ task: 'chat', input: { prompt: '3' }, tenant: 'acme' }),
    )
    expect(error).toMatchObject({ code: 'E_LIMIT' })
    expect(error.details.reason).toBe('rate-limit')
    await orchestrator.run({ task: 'chat', input: { prompt: '4' }, tenant: 'other' })
  })

  it('a tenant budget is checked before the call and resets next period', async () => {
    const clock = new ManualClock(0)
    const paid = model('paid', { cost: { inputPer1k: 1000, outputPer1k: 1000 } })
    const { events, sink } = recorder()
    const orchestrator = createOrchestrator({
      models: [paid],
      clock,
      events: sink,
      assumedOutputTokens: 1,
      tenants: { acme: { budget: { limit: 10, periodMs: 60_000 } } },
    })
    const first = await orchestrator.run({
      task: 'chat',
      input: { prompt: 'spend' },
      tenant: 'acme',
    })
    expect(first.cost).toBeGreaterThan(0)
    while (orchestrator.stats().tenants[0]!.spent < 10) {
      await orchestrator.run({
        task: 'chat',
        input: { prompt: `spend ${orchestrator.stats().requests}` },
        tenant: 'acme',
      })
    }
    const callsBefore = paid.backend.calls.length
    const error = await rejection(
      orchestrator.run({ task: 'chat', input: { prompt: 'more' }, tenant: 'acme' }),
    )
    expect(error.code).toBe('E_LIMIT')
    expect(error.details.reason).toBe('budget')
    expect(paid.backend.calls.length).toBe(callsBefore)
    expect(events.find((e) => e.type === 'budget-exceeded')?.payload).toMatchObject({
      tenant: 'acme',
      limit: 10,
    })
    expect(orchestrator.stats().budgetRejections).toBe(1)
    clock.advance(60_000)
    expect(
      (await orchestrator.run({ task: 'chat', input: { prompt: 'new period' }, tenant: 'acme' }))
        .model,
    ).toBe('paid')
  })
})

describe('health probes', () => {
  it('probes on the clock, takes an unhealthy model out of rotation, and brings it back', async () => {
    const clock = new ManualClock()
    let healthy = true
    const probed = model('probed', {
      probe: { intervalMs: 1_000 },
      backend: mockBackend({
        probe: () => {
          if (!healthy) throw unavailableError('probe failed')
        },
      }),
    })
    const { events, sink } = recorder()
    const orchestrator = createOrchestrator({
      models: [probed, model('backup')],
      clock,
      events: sink,
    })
    expect(clock.pendingTimers).toBe(1)
    healthy = false
    await clock.advanceAsync(1_000)
    expect(orchestrator.stats().models[0]!.healthy).toBe(false)
    expect(events.at(-1)).toEqual({
      type: 'model-health',
      payload: { model: 'probed', healthy: false, code: 'E_UNAVAILABLE' },
    })
    expect((await orchestrator.run({ task: 'chat', input })).model).toBe('backup')
    healthy = true
    await clock.advanceAsync(1_000)
    expect(orchestrator.stats().models[0]!.healthy).toBe(true)
    expect((await orchestrator.run({ task: 'chat', input: { prompt: 'back' } })).model).toBe(
      'probed',
    )
    await orchestrator.dispose()
    expect(clock.pendingTimers).toBe(0)
  })

  it('a probe that hangs times out', async () => {
    const hanging = model('hanging', {
      backend: mockBackend({ probe: () => new Promise<void>(() => undefined) }),
    })
    const orchestrator = createOrchestrator({ models: [hanging] })
    expect(await orchestrator.checkHealth('hanging', { timeoutMs: 20 })).toBe(false)
    const controller = new AbortController()
    const pending = orchestrator.checkHealth('hanging', { signal: controller.signal })
    controller.abort()
    expect((await rejection(pending)).code).toBe('E_CANCELLED')
  })
})

describe('deadlines', () => {
  it('the per-attempt timeout sits inside the request deadline', async () => {
    const slow = model('slow', {
      attemptTimeoutMs: 30,
      backend: mockBackend({ reply: 'late', delayMs: 5_000 }),
    })
    const orchestrator = createOrchestrator({ models: [slow, model('quick')] })
    const result = await orchestrator.run({ task: 'chat', input, timeoutMs: 10_000 })
    expect(result.model).toBe('quick')
    expect(result.attempts[0]).toMatchObject({ model: 'slow', code: 'E_TIMEOUT' })
    const single = createOrchestrator({
      models: [model('slow', { backend: mockBackend({ reply: 'late', delayMs: 5_000 }) })],
    })
    const error = await rejection(single.run({ task: 'chat', input, timeoutMs: 30 }))
    expect(error.code).toBe('E_TIMEOUT')
  })

  it('defaultTimeoutMs applies when a request gives none', async () => {
    const orchestrator = createOrchestrator({
      models: [model('slow', { backend: mockBackend({ reply: 'late', delayMs: 5_000 }) })],
      defaultTimeoutMs: 30,
    })
    expect((await rejection(orchestrator.run({ task: 'chat', input }))).code).toBe('E_TIMEOUT')
  })

  it('a stream cancelled by the caller rejects with E_CANCELLED', async () => {
    const orchestrator = createOrchestrator({
      models: [model('slow', { backend: mockBackend({ reply: 'a b c', delayMs: 5_000 }) })],
    })
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 20)
    const error = await rejection(
      (async () => {
        for await (const _ of orchestrator.stream({
          task: 'chat',
          input,
          signal: controller.signal,
        })) {
          // consume
        }
      })(),
    )
    expect(error.code).toBe('E_CANCELLED')
  })

  it('a long stream that keeps flowing is not cut by the attempt timeout', async () => {
    const orchestrator = createOrchestrator({
      models: [
        model('talker', {
          attemptTimeoutMs: 30,
          backend: mockBackend({ reply: 'one two three four five', delayMs: 15 }),
        }),
      ],
      idleTimeoutMs: 5_000,
    })
    let text = ''
    for await (const part of orchestrator.stream({ task: 'chat', input }))
      if (part.type === 'delta') text += part.text
    expect(text).toBe('one two three four five')
  })

  it('dispose ends open streams with E_DISPOSED', async () => {
    const orchestrator = createOrchestrator({
      models: [model('slow', { backend: mockBackend({ reply: 'a b c', delayMs: 5_000 }) })],
    })
    const iterator = orchestrator.stream({ task: 'chat', input })[Symbol.asyncIterator]()
    const next = iterator.next()
    await orchestrator.dispose()
    expect((await rejection(next)).code).toBe('E_DISPOSED')
  })
})

describe('attempt deadlines on the clock', () => {
  it('expires attempts in order from one shared timer, skipping finished ones', async () => {
    const clock = new ManualClock()
    const calls: Array<{ signal: AbortSignal; resolve: (text: string) => void }> = []
    const backend: ModelBackend = {
      kind: 'manual',
      invoke: (_request, { signal }) =>
        new Promise((resolve) => {
          calls.push({ signal, resolve: (text) => resolve({ output: { text } }) })
        }),
    }
    const orchestrator = createOrchestrator({
      models: [{ id: 'm', tasks: ['chat'], backend, attemptTimeoutMs: 100, retry: { retries: 0 } }],
      clock,
    })
    const a = rejection(orchestrator.run({ task: 'chat', input: { prompt: 'a' } }))
    await clock.advanceAsync(50)
    const b = orchestrator.run({ task: 'chat', input: { prompt: 'b' } })
    await clock.advanceAsync(10)
    const c = rejection(orchestrator.run({ task: 'chat', input: { prompt: 'c' } }))
    await expect.poll(() => calls.length, POLL).toBe(3)
    calls[1]!.resolve('b done')
    expect((await b).text).toBe('b done')
    await clock.advanceAsync(40)
    expect((await a).code).toBe('E_TIMEOUT')
    expect(calls[0]!.signal.aborted).toBe(true)
    expect(calls[2]!.signal.aborted).toBe(false)
    await clock.advanceAsync(60)
    expect((await c).code).toBe('E_TIMEOUT')
    expect(calls[2]!.signal.aborted).toBe(true)
    expect(calls[1]!.signal.aborted).toBe(false)
    expect(clock.pendingTimers).toBe(0)
  })
})

describe('budget and probe edge cases', () => {
  it('a budget too small for any model is refused with E_LIMIT before the call', async () => {
    const clock = new ManualClock(0)
    const paid = model('paid', { cost: { inputPer1k: 1000, outputPer1k: 1000 } })
    const { types, sink } = recorder()
    const orchestrator = createOrchestrator({
      models: [paid],
      clock,
      events: sink,
      tenants: { tiny: { budget: { limit: 0.001, periodMs: 60_000 } } },
    })
    const error = await rejection(orchestrator.run({ task: 'chat', input, tenant: 'tiny' }))
    expect(error.code).toBe('E_LIMIT')
    expect(error.details.reason).toBe('budget')
    expect(types()).toContain('budget-exceeded')
    expect(paid.backend.calls).toHaveLength(0)
  })

  it('a slow probe is not stacked with the next one', async () => {
    const clock = new ManualClock()
    let probes = 0
    const slow = model('slow', {
      probe: { intervalMs: 1_000, timeoutMs: 10_000 },
      backend: mockBackend({
        probe: () => {
          probes++
          return new Promise<void>(() => undefined)
        },
      }),
    })
    const orchestrator = createOrchestrator({ models: [slow], clock })
    await clock.advanceAsync(1_000)
    await clock.advanceAsync(1_000)
    await clock.advanceAsync(1_000)
    expect(probes).toBe(1)
    await clock.advanceAsync(8_000)
    expect(orchestrator.stats().models[0]!.healthy).toBe(false)
    await orchestrator.dispose()
  })
})
