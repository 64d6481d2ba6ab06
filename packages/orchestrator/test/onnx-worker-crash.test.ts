/**
 * Worker threads that die while running a session (real onnxruntime-node,
 * real worker_threads): the requests they held fail with a retryable
 * E_UNAVAILABLE, the worker is replaced, and the pool keeps serving.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Worker } from 'node:worker_threads'
import { AideError } from '@aide/core'
import { beforeAll, describe, expect, it, vi } from 'vitest'
import type { LocalOnnxBackend } from '../src/onnx/backend.js'
import { WorkerExecutor } from '../src/onnx/worker-executor.js'
import { createOnnxBackend } from '../src/onnx.js'
import { expectAllClose, linearModel, linearReference } from './onnx-fixtures.js'

const signal = () => new AbortController().signal

type Linear = Awaited<ReturnType<typeof linearModel>>

function rowsRequest(rows: number, width: number, fill: (i: number) => number) {
  return {
    task: 'tensor',
    model: 'linear',
    input: {
      tensors: {
        x: {
          type: 'float32',
          data: Float32Array.from({ length: rows * width }, (_, i) => fill(i)),
          dims: [rows, width],
        },
      },
    },
  }
}

/** The pool behind a worker-mode backend (internal: only tests reach for it). */
function poolOf(backend: LocalOnnxBackend): WorkerExecutor {
  const executor = (backend as unknown as { executor: unknown }).executor
  if (!(executor instanceof WorkerExecutor)) throw new Error('not a worker backend')
  return executor
}

async function expectServes(
  backend: LocalOnnxBackend,
  model: Linear,
  width: number,
  outputs: number,
) {
  const inputs = Array.from({ length: 6 }, (_, r) =>
    Array.from({ length: width }, (_, i) => (r + 1) * 0.01 * (i % 7)),
  )
  const results = await Promise.all(
    inputs.map((row) =>
      backend.invoke(
        rowsRequest(1, width, (i) => row[i]!),
        { signal: signal() },
      ),
    ),
  )
  results.forEach((result, r) => {
    const y = result.output.tensors!.y!
    expectAllClose(
      Array.from(y.data as Float32Array),
      linearReference(Float32Array.from(inputs[r]!), model.weights, model.bias, width, outputs),
      3,
    )
  })
}

function expectWorkerExit(error: unknown): void {
  expect(AideError.isInstance(error), String(error)).toBe(true)
  const e = error as AideError
  expect(e.code).toBe('E_UNAVAILABLE')
  expect(e.isRetryable).toBe(true)
  expect(e.details).toMatchObject({ reason: 'worker-exit' })
  expect(e.message).toMatch(/worker thread running the session exited/)
}

describe('onnx worker crash', () => {
  let small: Linear
  beforeAll(async () => {
    small = await linearModel(4, 3, 5)
  })

  it('a worker terminated while holding a request: that request fails, queued ones run on the replacement', async () => {
    const backend = await createOnnxBackend({
      model: small.bytes,
      execution: 'worker',
      batching: { maxBatch: 64 },
    })
    try {
      const pool = poolOf(backend)
      const [victim] = pool.workers() as [Worker]
      // Terminated while idle: terminating a worker inside onnxruntime-node's native
      // session.run aborts the whole process (see session-worker.mjs). The pool learns
      // of the exit from the 'exit' event, so the next request is sent to the dying worker.
      const exited = victim.terminate()
      const doomed = backend.invoke(
        rowsRequest(1, 4, (i) => i),
        { signal: signal() },
      )
      // These arrive while it is in flight: stacked into the next batch, which waits for a worker.
      const rows = [1, 2, 3].map((r) => Array.from({ length: 4 }, (_, i) => r * 0.5 - i))
      const queued = rows.map((row) =>
        backend.invoke(
          rowsRequest(1, 4, (i) => row[i]!),
          { signal: signal() },
        ),
      )
      expect(backend.stats().batching).toMatchObject({ queued: 3, running: 1 })
      await exited

      expectWorkerExit(await doomed.catch((e: unknown) => e))
      const served = await Promise.all(queued)
      served.forEach((result, r) => {
        expectAllClose(
          Array.from(result.output.tensors!.y!.data as Float32Array),
          linearReference(Float32Array.from(rows[r]!), small.weights, small.bias, 4, 3),
        )
      })
      expect(pool.workers()).toHaveLength(1)
      expect(pool.workers()[0]).not.toBe(victim)
      expect(backend.stats()).toMatchObject({
        errors: 1,
        inFlight: 0,
        batching: { queued: 0, largestBatch: 3 },
        executor: { crashes: 1, restarts: 1, live: 1, busy: 0, queued: 0, broken: undefined },
      })
      await expectServes(backend, small, 4, 3)
    } finally {
      await backend.dispose()
    }
  })

  it('an uncaught error inside the worker: the in-flight request is rejected, the pool recovers', async () => {
    const backend = await createOnnxBackend({
      model: small.bytes,
      execution: 'worker',
      workerThreads: 2,
      batching: false,
    })
    try {
      const pool = poolOf(backend)
      const before = pool.workers()
      // A message the worker does not expect makes its handler throw outside any catch:
      // the same path as a bug in the worker script. It dies with the next request in its queue.
      const [victim] = before as [Worker]
      const exited = new Promise((resolve) => victim.once('exit', resolve))
      victim.postMessage(null)
      const doomed = backend.invoke(
        rowsRequest(1, 4, (i) => i),
        { signal: signal() },
      )
      const outcome = await doomed.then(
        () => 'served',
        (e: unknown) => e,
      )
      await exited
      // The request went to the victim (both workers were idle, the first is picked first).
      expectWorkerExit(outcome)
      expect((outcome as AideError).message).toMatch(/Cannot read properties of null/)
      await vi.waitFor(() => expect(pool.stats().live).toBe(2), { timeout: 10_000, interval: 5 })
      expect(pool.workers()).not.toContain(victim)
      expect(pool.stats()).toMatchObject({ crashes: 1, restarts: 1, broken: undefined })
      await expectServes(backend, small, 4, 3)
    } finally {
      await backend.dispose()
    }
  })

  it('dispose while a worker is inside a long native run: the run is abandoned, the process survives', async () => {
    // Worker.terminate() at this moment aborts the whole process (onnxruntime-node 1.30):
    // dispose must let the worker finish the run and exit on its own.
    const width = 512
    const wide = await linearModel(width, width, 3)
    const backend = await createOnnxBackend({
      model: wide.bytes,
      execution: 'worker',
      batching: false,
    })
    const [worker] = poolOf(backend).workers() as [Worker]
    const rows = 8192
    const long = backend
      .invoke(
        rowsRequest(rows, width, (i) => (i % 11) * 0.01),
        { signal: signal() },
      )
      .catch((e: unknown) => e)
    // Wait until the worker has been busy for a while without a break: it is inside session.run.
    const start = worker.performance.eventLoopUtilization()
    await vi.waitFor(
      () => {
        const since = worker.performance.eventLoopUtilization(start)
        if (since.active < 20) throw new Error(`worker active ${since.active} ms`)
      },
      { timeout: 30_000, interval: 2 },
    )
    const exited = new Promise((resolve) => worker.once('exit', resolve))
    await backend.dispose()
    expect(await long).toMatchObject({ code: 'E_DISPOSED' })
    expect(await exited).toBe(0)
    expect(poolOf(backend).stats()).toMatchObject({ live: 0, busy: 0, crashes: 0 })
  })

  it('replacements that cannot start mark the pool broken: queued and later calls fail with E_UNAVAILABLE', async () => {
    const pool = new WorkerExecutor(
      { fp32: small.bytes },
      { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1 },
      1,
    )
    try {
      await pool.load()
      const feeds = { x: { type: 'float32', data: new Float32Array(4), dims: [1, 4] } }
      await expect(pool.run('fp32', feeds)).resolves.toHaveProperty('y')
      // Corrupt the model bytes the workers share, so every replacement fails to create its session.
      const models = (pool as unknown as { models: Record<string, SharedArrayBuffer> }).models
      new Uint8Array(models.fp32!).fill(0xff)
      const [victim] = pool.workers() as [Worker]
      await victim.terminate()
      const waiting = pool.run('fp32', feeds)
      const error = await waiting.catch((e: unknown) => e)
      expect(AideError.isInstance(error)).toBe(true)
      expect(error).toMatchObject({ code: 'E_UNAVAILABLE', details: { reason: 'worker-start' } })
      expect((error as AideError).message).toMatch(
        /keep exiting before they can run the model \(3 in a row\)/,
      )
      await expect(pool.run('fp32', feeds)).rejects.toMatchObject({ code: 'E_UNAVAILABLE' })
      expect(pool.stats()).toMatchObject({ crashes: 1, restarts: 3, live: 0, queued: 0 })
      expect(pool.stats().broken).toMatch(/keep exiting/)
    } finally {
      await pool.dispose()
    }
    await expect(pool.run('fp32', {})).rejects.toMatchObject({ code: 'E_DISPOSED' })
  })
})

describe('onnx worker lifetime', () => {
  // A script awaiting a worker-backed model must not exit before the answer
  // (exit code 13, "unsettled top-level await"), and an idle pool it forgot to
  // dispose must not keep it running.
  it('a script exits on its own, with or without dispose, never before its results, whatever its Node flags', async () => {
    const script = `
      import { createOnnxBackend } from '@aide/orchestrator/onnx'
      import { linearModel } from ${JSON.stringify(new URL('./onnx-fixtures.ts', import.meta.url).href)}
      const { bytes } = await linearModel(4, 3)
      const request = { task: 't', model: 'm', input: { tensors: { x: { type: 'float32', data: [1, 2, 3, 4], dims: [1, 4] } } } }
      for (const workerThreads of [1, 2]) {
        const backend = await createOnnxBackend({ model: bytes, execution: 'worker', workerThreads })
        const { output } = await backend.invoke(request, {})
        console.log('answer', workerThreads, output.tensors.y.dims.join('x'))
        await backend.dispose()
        console.log('disposed', workerThreads)
      }
      const forgotten = await createOnnxBackend({ model: bytes, execution: 'worker' })
      await forgotten.invoke(request, {})
      // 'auto' moved to workers (every run counts as slow at maxBlockingMs 0), then forgotten.
      const moved = await createOnnxBackend({ model: bytes, maxBlockingMs: 0 })
      while (moved.stats().executor.running !== 'worker') {
        await moved.invoke(request, {})
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      await moved.invoke(request, {})
      console.log('moved')
      console.log('end')
    `
    const { stdout, stderr, code } = await new Promise<{
      stdout: string
      stderr: string
      code: number | null
    }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [
          // Flags a worker would refuse if it inherited them or was given them.
          '--trace-gc',
          '--conditions=@aide/source',
          '--import',
          'tsx',
          '--input-type=module',
          '-e',
          script,
        ],
        {
          cwd: fileURLToPath(new URL('..', import.meta.url)),
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      )
      let out = ''
      let err = ''
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString()
      })
      child.stderr.on('data', (chunk: Buffer) => {
        err += chunk.toString()
      })
      child.on('error', reject)
      child.on('close', (exitCode) => resolve({ stdout: out, stderr: err, code: exitCode }))
    })
    const lines = stdout
      .trim()
      .split('\n')
      .filter((line) => !line.startsWith('[')) // --trace-gc output
    expect(lines, stderr).toEqual([
      'answer 1 1x3',
      'disposed 1',
      'answer 2 1x3',
      'disposed 2',
      'moved',
      'end',
    ])
    expect(code).toBe(0)
  })
})
