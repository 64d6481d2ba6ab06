import { getEventListeners } from 'node:events'
import { isAideError, ManualClock } from '@aide/core'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { LocalOnnxBackend } from '../src/onnx/backend.js'
import {
  choosePrecision,
  createOnnxBackend,
  listExecutionProviders,
  supportedPrecisions,
} from '../src/onnx.js'
import { expectAllClose, linearModel, linearReference } from './onnx-fixtures.js'

const INPUTS = 4
const OUTPUTS = 3

function request(rows: number[][], model = 'linear') {
  return {
    task: 'tensor',
    model,
    input: {
      tensors: {
        x: { type: 'float32', data: Float32Array.from(rows.flat()), dims: [rows.length, INPUTS] },
      },
    },
  }
}

function outputOf(result: {
  output: { tensors?: Record<string, { data: unknown; dims: readonly number[] }> }
}) {
  const y = result.output.tensors!.y!
  return { data: Array.from(y.data as Float32Array), dims: [...y.dims] }
}

const call = { signal: new AbortController().signal }

/** What the linear model computes for `input` (one or more rows), in plain JS. */
function expectedOutput(
  model: Awaited<ReturnType<typeof linearModel>>,
  input: ArrayLike<number>,
): Float32Array {
  return linearReference(Float32Array.from(input), model.weights, model.bias, INPUTS, OUTPUTS)
}

describe('onnx backend (onnxruntime-node)', () => {
  let model: Awaited<ReturnType<typeof linearModel>>
  beforeAll(async () => {
    model = await linearModel(INPUTS, OUTPUTS)
  })

  it('lists execution providers and reports the chosen one', async () => {
    const providers = await listExecutionProviders()
    expect(providers).toContain('cpu')
    const backend = await createOnnxBackend({
      model: model.bytes,
      execution: 'inline',
      executionProviders: ['not-a-provider', 'cpu'],
    })
    try {
      expect(backend.stats().executionProvider).toBe('cpu')
      expect(backend.signature()).toEqual({ inputNames: ['x'], outputNames: ['y'] })
    } finally {
      await backend.dispose()
    }
  })

  for (const execution of ['inline', 'worker'] as const) {
    it(`runs a model with a dynamic batch axis (${execution})`, async () => {
      const backend = await createOnnxBackend({ model: model.bytes, execution, batching: false })
      try {
        const rows = [
          [1, 2, 3, 4],
          [0.5, -1, 0, 2],
        ]
        const result = await backend.invoke(request(rows), { signal: new AbortController().signal })
        const expected = expectedOutput(model, rows.flat())
        const y = outputOf(result)
        expect(y.dims).toEqual([2, OUTPUTS])
        expectAllClose(y.data, expected)
        expect(backend.stats().executor.mode).toBe(execution)
      } finally {
        await backend.dispose()
        await backend.dispose()
      }
    })
  }

  it('rejects malformed requests with E_INVALID_INPUT naming the field', async () => {
    const backend = await createOnnxBackend({ model: model.bytes, execution: 'inline' })
    const options = { signal: new AbortController().signal }
    try {
      const cases: Array<[unknown, string]> = [
        [{ task: 't', model: 'm', input: {} }, 'request.input.tensors'],
        [
          {
            task: 't',
            model: 'm',
            input: { tensors: { z: { type: 'float32', data: [1], dims: [1] } } },
          },
          'request.input.tensors.z',
        ],
        [
          {
            task: 't',
            model: 'm',
            input: { tensors: { x: { type: 'complex', data: [1], dims: [1] } } },
          },
          'request.input.tensors.x.type',
        ],
        [
          {
            task: 't',
            model: 'm',
            input: { tensors: { x: { type: 'float32', data: [1, 2], dims: [1, 4] } } },
          },
          'request.input.tensors.x.data',
        ],
        [
          {
            task: 't',
            model: 'm#int8',
            input: { tensors: { x: { type: 'float32', data: [1, 2, 3, 4], dims: [1, 4] } } },
          },
          'request.model',
        ],
      ]
      for (const [bad, field] of cases) {
        const error = await backend.invoke(bad as never, options).catch((e: unknown) => e)
        expect(isAideError(error, 'E_INVALID_INPUT'), String(error)).toBe(true)
        expect((error as { details: { field: string } }).details.field).toBe(field)
      }
      // A shape the model rejects is a model error, not a crash.
      const wrongShape = {
        task: 't',
        model: 'm',
        input: { tensors: { x: { type: 'float32', data: [1, 2, 3], dims: [1, 3] } } },
      }
      const error = await backend.invoke(wrongShape, options).catch((e: unknown) => e)
      expect(isAideError(error, 'E_MODEL')).toBe(true)
    } finally {
      await backend.dispose()
    }
  })

  it("execution 'auto' (default): a fast model stays on the calling thread", async () => {
    const backend = await createOnnxBackend({ model: model.bytes })
    try {
      for (let i = 0; i < 40; i++) {
        const result = await backend.invoke(request([[i, 1, 2, 3]]), call)
        expectAllClose(outputOf(result).data, expectedOutput(model, [i, 1, 2, 3]))
      }
      const executor = backend.stats().executor
      expect(executor).toMatchObject({
        mode: 'auto',
        running: 'inline',
        maxBlockingMs: 2,
        inlineRuns: 40,
      })
      expect(executor.switch).toBeUndefined()
      expect(executor.worker).toBeUndefined()
    } finally {
      await backend.dispose()
    }
  })

  it('in-thread batching: callers that come straight back after their answer share the next batch', async () => {
    const backend = await createOnnxBackend({ model: model.bytes, execution: 'inline' })
    try {
      // 8 closed-loop callers, 6 requests each: after the first wave (1 alone, then 7),
      // every batch carries all 8 callers.
      await Promise.all(
        Array.from({ length: 8 }, async (_, caller) => {
          for (let i = 0; i < 6; i++) {
            const row = [caller, i, 1, 2]
            const result = await backend.invoke(request([row]), call)
            expectAllClose(outputOf(result).data, expectedOutput(model, row))
          }
        }),
      )
      const stats = backend.stats().batching as { batches: number; largestBatch: number }
      expect(stats.largestBatch).toBe(8)
      expect(stats.batches).toBeLessThanOrEqual(8)
    } finally {
      await backend.dispose()
    }
  })

  it('in-thread batching: a shared signal keeps one listener while busy, none once idle; abort still cancels', async () => {
    const backend = await createOnnxBackend({ model: model.bytes, execution: 'inline' })
    try {
      const shared = new AbortController()
      let most = 0
      await Promise.all(
        Array.from({ length: 8 }, async (_, caller) => {
          for (let i = 0; i < 5; i++) {
            await backend.invoke(request([[caller, i, 0, 1]]), { signal: shared.signal })
            most = Math.max(most, getEventListeners(shared.signal, 'abort').length)
          }
        }),
      )
      expect(most).toBe(1)
      // In-thread, the batcher is idle one immediate after the last answer (its slot hold).
      const idle = () => new Promise((resolve) => setImmediate(resolve))
      await idle()
      expect(getEventListeners(shared.signal, 'abort')).toHaveLength(0)
      // Callers that each bring their own signal: listeners are bounded while busy, gone when idle.
      const signals = Array.from({ length: 8 * 5 }, () => new AbortController().signal)
      await Promise.all(
        Array.from({ length: 8 }, async (_, caller) => {
          for (let i = 0; i < 5; i++) {
            await backend.invoke(request([[caller, i, 0, 1]]), { signal: signals[caller * 5 + i]! })
            const listening = signals.filter((s) => getEventListeners(s, 'abort').length > 0)
            // At most 16 idle ones, plus those of requests in flight.
            expect(listening.length).toBeLessThanOrEqual(16 + 8)
          }
        }),
      )
      await idle()
      for (const signal of signals) expect(getEventListeners(signal, 'abort')).toHaveLength(0)
      // A batch in flight with a shared signal: aborting it cancels those callers only.
      const controller = new AbortController()
      const first = backend.invoke(request([[1, 0, 0, 0]]), call)
      const queued = [2, 3, 4].map((i) =>
        backend.invoke(request([[i, 0, 0, 0]]), { signal: controller.signal }),
      )
      const other = backend.invoke(request([[5, 0, 0, 0]]), call)
      controller.abort()
      for (const p of queued) await expect(p).rejects.toMatchObject({ code: 'E_CANCELLED' })
      expectAllClose(outputOf(await first).data, expectedOutput(model, [1, 0, 0, 0]))
      expectAllClose(outputOf(await other).data, expectedOutput(model, [5, 0, 0, 0]))
      await idle()
      expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0)
      expect(getEventListeners(call.signal, 'abort')).toHaveLength(0)
      expect(backend.stats()).toMatchObject({ inFlight: 0, cancelled: 3, errors: 0 })
    } finally {
      await backend.dispose()
    }
  })

  it('in-thread: a request whose signal aborts before its run is done rejects E_CANCELLED (result dropped)', async () => {
    for (const batching of [undefined, false] as const) {
      const backend = await createOnnxBackend({ model: model.bytes, execution: 'inline', batching })
      try {
        const controller = new AbortController()
        // The run is deferred to an immediate: the abort lands before it.
        const pending = backend.invoke(request([[1, 2, 3, 4]]), { signal: controller.signal })
        controller.abort()
        await expect(pending).rejects.toMatchObject({ code: 'E_CANCELLED' })
        expect(backend.stats()).toMatchObject({ requests: 1, cancelled: 1, errors: 0, inFlight: 0 })
        // The backend is unharmed.
        const result = await backend.invoke(request([[1, 2, 3, 4]]), call)
        expectAllClose(outputOf(result).data, expectedOutput(model, [1, 2, 3, 4]))
      } finally {
        await backend.dispose()
      }
    }
  })

  it("execution 'auto': many runs in flight at once (no batching) are all timed and answered", async () => {
    // More runs than the executor's initial ring of start times (16).
    const backend = await createOnnxBackend({ model: model.bytes, batching: false })
    try {
      const rows = Array.from({ length: 40 }, (_, i) => [i, 1, -1, 0.5])
      const results = await Promise.all(rows.map((row) => backend.invoke(request([row]), call)))
      results.forEach((result, i) => {
        expectAllClose(outputOf(result).data, expectedOutput(model, rows[i]!))
      })
      expect(backend.stats()).toMatchObject({ requests: 40, errors: 0, inFlight: 0 })
      expect(backend.stats().executor).toMatchObject({ running: 'inline', inlineRuns: 40 })
    } finally {
      await backend.dispose()
    }
  })

  it("execution 'auto': runs that block longer than maxBlockingMs move the backend to worker threads", async () => {
    // maxBlockingMs 0 makes every in-thread run a slow one.
    const backend = await createOnnxBackend({
      model: model.bytes,
      maxBlockingMs: 0,
      workerThreads: 2,
    })
    try {
      const rows = Array.from({ length: 12 }, (_, i) => [i, -1, 0.5, 2])
      const check = (results: Array<Parameters<typeof outputOf>[0]>) =>
        results.forEach((result, i) => {
          expectAllClose(outputOf(result).data, expectedOutput(model, rows[i]!))
        })
      // Sequential runs: the first looks slow (call to result) and turns on precise timing;
      // the fifth precisely timed slow run starts the workers. Requests keep running in-thread meanwhile.
      for (let i = 0; i < 6; i++) check([await backend.invoke(request([rows[0]!]), call)])
      const decided = backend.stats().executor
      expect(decided.switch).toMatchObject({
        reason: expect.stringContaining('maxBlockingMs (0 ms)'),
      })
      await vi.waitFor(
        async () => {
          await backend.invoke(request([rows[0]!]), call)
          expect(backend.stats().executor.running).toBe('worker')
        },
        { timeout: 10_000, interval: 20 },
      )
      const inlineRuns = backend.stats().executor.inlineRuns
      // Later requests, concurrent ones included (batched, two batches in flight), run in the workers.
      check(await Promise.all(rows.map((row) => backend.invoke(request([row]), call))))
      const after = backend.stats()
      expect(after.executor).toMatchObject({
        mode: 'auto',
        running: 'worker',
        inlineRuns,
        switch: { switchedAt: expect.any(Number) },
        worker: { mode: 'worker', threads: 2, failures: 0 },
      })
      expect((after.executor.worker as { runs: number }).runs).toBeGreaterThan(0)
      expect(after.errors).toBe(0)
    } finally {
      await backend.dispose()
    }
  })

  it('refuses bad options and unreadable or corrupted models', async () => {
    await expect(createOnnxBackend({ model: 42 as never })).rejects.toMatchObject({
      code: 'E_INVALID_INPUT',
      details: { field: 'options.model' },
    })
    await expect(createOnnxBackend({ model: model.bytes, workerThreads: 0 })).rejects.toMatchObject(
      { code: 'E_INVALID_INPUT' },
    )
    await expect(
      createOnnxBackend({ model: model.bytes, maxBlockingMs: -1 }),
    ).rejects.toMatchObject({
      code: 'E_INVALID_INPUT',
      details: { field: 'options.maxBlockingMs' },
    })
    await expect(
      createOnnxBackend({ model: model.bytes, execution: 'elsewhere' as never }),
    ).rejects.toMatchObject({ code: 'E_INVALID_INPUT', details: { field: 'options.execution' } })
    await expect(createOnnxBackend({ model: '/nonexistent/model.onnx' })).rejects.toMatchObject({
      code: 'E_NOT_FOUND',
    })
    await expect(
      createOnnxBackend({ model: new Uint8Array([1, 2, 3]), execution: 'inline' }),
    ).rejects.toMatchObject({ code: 'E_MODEL' })
    await expect(
      createOnnxBackend({ model: model.bytes, executionProviders: ['cuda-only'] }),
    ).rejects.toMatchObject({ code: 'E_UNAVAILABLE' })
    await expect(
      createOnnxBackend({ model: model.bytes, signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({ code: 'E_CANCELLED' })
  })

  it('times out a slow load (E_TIMEOUT) and releases what it started', async () => {
    const clock = new ManualClock()
    const pending = createOnnxBackend({
      model: model.bytes,
      execution: 'worker',
      clock,
      timeoutMs: 50,
    })
    clock.advance(50)
    await expect(pending).rejects.toMatchObject({ code: 'E_TIMEOUT' })
  })

  it('runs concurrent requests on two worker threads', async () => {
    const backend = await createOnnxBackend({
      model: model.bytes,
      execution: 'worker',
      workerThreads: 2,
      batching: false,
    })
    try {
      const rows = Array.from({ length: 16 }, (_, i) => [i, 1, 2, 3])
      const results = await Promise.all(
        rows.map((row) => backend.invoke(request([row]), { signal: new AbortController().signal })),
      )
      results.forEach((result, i) => {
        expectAllClose(outputOf(result).data, expectedOutput(model, rows[i]!))
      })
      expect(backend.stats().executor).toMatchObject({
        mode: 'worker',
        threads: 2,
        runs: 16,
        failures: 0,
      })
    } finally {
      await backend.dispose()
    }
  })

  it('chooses the cheapest precision that meets a quality floor among supported ones', () => {
    const variants = { fp32: { quality: 0.9 }, fp16: { quality: 0.895 }, int8: { quality: 0.88 } }
    expect(choosePrecision(variants, 0.85)).toBe('int8')
    expect(choosePrecision(variants, 0.89)).toBe('fp16')
    expect(choosePrecision(variants, 0.899)).toBe('fp32')
    expect(choosePrecision(variants, 0.99)).toBe('fp32')
    expect(choosePrecision(variants, 0.85, ['fp32', 'fp16'])).toBe('fp16')
    expect(choosePrecision({ fp32: {}, int8: {} }, 0.5)).toBe('fp32')
    expect(supportedPrecisions('cpu')).toContain('int8')
    expect(() => choosePrecision({ int8: {} }, 0, ['fp32'])).toThrow(/variants/)
  })

  it('rejects calls after dispose and an aborted call before it runs', async () => {
    const backend = await createOnnxBackend({ model: model.bytes, execution: 'inline' })
    await expect(
      backend.invoke(request([[1, 2, 3, 4]]), { signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({ code: 'E_CANCELLED' })
    await backend.dispose()
    await expect(
      backend.invoke(request([[1, 2, 3, 4]]), { signal: new AbortController().signal }),
    ).rejects.toMatchObject({ code: 'E_DISPOSED' })
  })
})

describe('dynamic batching', () => {
  let model: Awaited<ReturnType<typeof linearModel>>
  let backend: LocalOnnxBackend
  let clock: ManualClock
  beforeAll(async () => {
    model = await linearModel(INPUTS, OUTPUTS)
    clock = new ManualClock()
    backend = await createOnnxBackend({
      model: model.bytes,
      execution: 'worker',
      clock,
      batching: { maxBatch: 8, maxDelayMs: 2, dispatchWhenIdle: false },
    })
  })
  afterAll(async () => {
    await backend.dispose()
  })

  it('stacks requests that arrive within maxDelayMs, runs once and splits the outputs', async () => {
    const before = backend.stats().batching as { batches: number; batchedRows: number }
    const inputs = [
      [[1, 0, 0, 0]],
      [
        [0, 1, 0, 0],
        [0, 0, 1, 0],
      ],
      [[0, 0, 0, 1]],
    ]
    const pending = inputs.map((rows) =>
      backend.invoke(request(rows), { signal: new AbortController().signal }),
    )
    expect((backend.stats().batching as { queued: number }).queued).toBe(3)
    clock.advance(2)
    const results = await Promise.all(pending)
    const after = backend.stats().batching as {
      batches: number
      batchedRows: number
      largestBatch: number
    }
    expect(after.batches - before.batches).toBe(1)
    expect(after.batchedRows - before.batchedRows).toBe(4)
    // The stacked batch buffers came from the memory pool and went back to it.
    expect(backend.stats().allocator).toMatchObject({ inUseBytes: 0 })
    results.forEach((result, i) => {
      const rows = inputs[i]!
      const expected = expectedOutput(model, rows.flat())
      const y = outputOf(result)
      expect(y.dims).toEqual([rows.length, OUTPUTS])
      expectAllClose(y.data, expected)
    })
  })

  it('with dispatchWhenIdle, a lone request goes at once and requests arriving meanwhile share the next batch', async () => {
    const eager = await createOnnxBackend({
      model: model.bytes,
      execution: 'worker',
      clock,
      batching: { maxBatch: 8, maxDelayMs: 2 },
    })
    try {
      const signal = new AbortController().signal
      // The clock never advances here: nothing may wait for the delay.
      const first = eager.invoke(request([[1, 0, 0, 0]]), { signal })
      const rest = [2, 3, 4].map((i) => eager.invoke(request([[i, 0, 0, 0]]), { signal }))
      await Promise.all([first, ...rest])
      const stats = eager.stats().batching as {
        batches: number
        batchedRows: number
        largestBatch: number
      }
      expect(stats).toMatchObject({ batches: 2, batchedRows: 4, largestBatch: 3 })
    } finally {
      await eager.dispose()
    }
  })

  it('flushes at maxBatch rows without waiting for the delay', async () => {
    const before = (backend.stats().batching as { batches: number }).batches
    const pending = Array.from({ length: 8 }, (_, i) =>
      backend.invoke(request([[i, 0, 0, 0]]), { signal: new AbortController().signal }),
    )
    const results = await Promise.all(pending)
    expect((backend.stats().batching as { batches: number }).batches - before).toBe(1)
    expect(results).toHaveLength(8)
  })

  it('lets a cancelled request leave the batch without harming the others', async () => {
    const controller = new AbortController()
    const kept = backend.invoke(request([[1, 1, 1, 1]]), { signal: new AbortController().signal })
    const cancelled = backend.invoke(request([[2, 2, 2, 2]]), { signal: controller.signal })
    const alsoKept = backend.invoke(request([[3, 3, 3, 3]]), {
      signal: new AbortController().signal,
    })
    controller.abort()
    await expect(cancelled).rejects.toMatchObject({ code: 'E_CANCELLED' })
    expect((backend.stats().batching as { queued: number }).queued).toBe(2)
    const rowsBefore = (backend.stats().batching as { batchedRows: number }).batchedRows
    clock.advance(2)
    const [a, b] = await Promise.all([kept, alsoKept])
    expect((backend.stats().batching as { batchedRows: number }).batchedRows - rowsBefore).toBe(2)
    const expectA = expectedOutput(model, [1, 1, 1, 1])
    const expectB = expectedOutput(model, [3, 3, 3, 3])
    expectAllClose(outputOf(a).data, expectA)
    expectAllClose(outputOf(b).data, expectB)
    expect(backend.stats().cancelled).toBeGreaterThanOrEqual(1)
  })

  it('requests sharing a signal: one abort cancels them all, the others run; no listener is left behind', async () => {
    const shared = new AbortController()
    const other = new AbortController().signal
    const gone = [1, 2, 3].map((i) =>
      backend.invoke(request([[i, 0, 0, 0]]), { signal: shared.signal }),
    )
    const kept = backend.invoke(request([[4, 4, 4, 4]]), { signal: other })
    // One listener per distinct signal while its requests are queued.
    expect(getEventListeners(shared.signal, 'abort')).toHaveLength(1)
    shared.abort()
    for (const p of gone) await expect(p).rejects.toMatchObject({ code: 'E_CANCELLED' })
    expect(getEventListeners(shared.signal, 'abort')).toHaveLength(0)
    clock.advance(2)
    expectAllClose(outputOf(await kept).data, expectedOutput(model, [4, 4, 4, 4]))
    expect(getEventListeners(other, 'abort')).toHaveLength(0)
  })

  it('a request cancelled while its batch runs stops waiting; the others get their rows', async () => {
    const controller = new AbortController()
    const pending = [
      backend.invoke(request([[1, 0, 0, 0]]), { signal: controller.signal }),
      backend.invoke(request([[0, 1, 0, 0]]), { signal: new AbortController().signal }),
    ]
    clock.advance(2)
    controller.abort()
    const [first, second] = await Promise.allSettled(pending)
    expect(first?.status).toBe('rejected')
    expect(second?.status).toBe('fulfilled')
  })

  it('keeps requests with different shapes in separate batches', async () => {
    const before = (backend.stats().batching as { batches: number }).batches
    const pending = [
      backend.invoke(request([[1, 0, 0, 0]]), { signal: new AbortController().signal }),
      backend.invoke(
        {
          task: 't',
          model: 'linear',
          input: { tensors: { x: { type: 'float32', data: new Float32Array(5), dims: [1, 5] } } },
        },
        { signal: new AbortController().signal },
      ),
    ]
    clock.advance(2)
    const [good, bad] = await Promise.allSettled(pending)
    expect(good?.status).toBe('fulfilled')
    expect(bad?.status).toBe('rejected')
    expect((backend.stats().batching as { batches: number }).batches - before).toBe(2)
  })
})
