/**
 * Local inference benchmark (the shipped code-completion model):
 * - backend overhead against a raw onnxruntime-node `session.run`,
 * - throughput and p95 at concurrency 1, 8 and 32 with dynamic batching against batch-1,
 * - event-loop lag p99 during inference (worker sessions against in-thread `session.run`),
 * - int8 against fp32: size, speed, held-out top-5 accuracy.
 *
 * Run: pnpm --filter @aide/orchestrator bench:onnx [-- --quick] [--json FILE]
 */
import { setMaxListeners } from 'node:events'
import { readFileSync } from 'node:fs'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { BenchReport, parseBenchArgs, percentile, time } from '../../../bench/harness.ts'
import { defaultCompletionModelFiles } from '../src/local/index.ts'
import type { LocalOnnxBackend } from '../src/onnx/backend.ts'
import { loadOnnxRuntimeNode } from '../src/onnx/load-node.ts'
import { createOnnxBackend } from '../src/onnx.ts'

process.env.ORT_DISABLE_TELEMETRY ??= '1'
const options = parseBenchArgs()
const report = new BenchReport('orchestrator-onnx', options)
const files = defaultCompletionModelFiles()
const metadata = JSON.parse(readFileSync(files.metadata, 'utf8')) as {
  shape: { contextLength: number; vocabularySize: number }
  variants: Record<'fp32' | 'int8', { top5: number; bytes: number }>
}
const N = metadata.shape.contextLength
const fp32 = new Uint8Array(readFileSync(files.fp32))
const int8 = new Uint8Array(readFileSync(files.int8))
const signal = new AbortController().signal
// One caller signal shared by every concurrent request of the load test.
setMaxListeners(0, signal)

function ids(seed: number): BigInt64Array {
  return BigInt64Array.from({ length: N }, (_, i) =>
    BigInt(2 + ((seed * 31 + i * 7) % (metadata.shape.vocabularySize - 2))),
  )
}
const request = (seed: number, model = 'code') => ({
  task: 'next-token',
  model,
  input: { tensors: { input_ids: { type: 'int64', data: ids(seed), dims: [1, N] } } },
})

async function load(
  run: 'inline' | 'worker',
  batching: boolean,
  source: Uint8Array = fp32,
): Promise<LocalOnnxBackend> {
  return createOnnxBackend({
    model: source,
    execution: run,
    batching: batching ? { maxBatch: 32, maxDelayMs: 1 } : false,
  })
}

/** Closed-loop load: `concurrency` callers each issuing requests back to back until `total` are done. */
async function load_test(backend: LocalOnnxBackend, concurrency: number, total: number) {
  const latencies: number[] = []
  let issued = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (issued < total) {
        const seed = issued++
        const t0 = performance.now()
        await backend.invoke(request(seed + worker), { signal })
        latencies.push(performance.now() - t0)
      }
    }),
  )
  const seconds = (performance.now() - started) / 1000
  return { throughput: total / seconds, p95: percentile(latencies, 95) }
}

// 1. Overhead against raw session.run (both on the calling thread, no batching).
if (report.wants('overhead')) {
  const ort = await loadOnnxRuntimeNode()
  const session = await ort.InferenceSession.create(fp32, {
    executionProviders: ['cpu'],
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  })
  const backend = await load('inline', false)
  const input = ids(1)
  const subject = () => backend.invoke(request(1), { signal })
  const peer = () => session.run({ input_ids: new ort.Tensor('int64', input, [1, N]) })
  // Warm both paths (JIT, allocator) so neither pays for it inside the measurement.
  for (let i = 0; i < 2000; i++) {
    await subject()
    await peer()
  }
  await report.compareOps(
    'overhead: invoke vs session.run',
    { name: '@aide/orchestrator/onnx', fn: () => backend.invoke(request(1), { signal }) },
    {
      name: 'raw session.run',
      fn: () => session.run({ input_ids: new ort.Tensor('int64', input, [1, N]) }),
    },
    'inline, batch 1, fp32',
  )
  await backend.dispose()
  await session.release()
}

// 2. Throughput with dynamic batching against batch-1 (both in a worker thread).
if (report.wants('throughput') || report.wants('p95')) {
  const batched = await load('worker', true)
  const single = await load('worker', false)
  const total = options.quick ? 600 : 3000
  for (const concurrency of [1, 8, 32]) {
    await load_test(batched, concurrency, 100)
    await load_test(single, concurrency, 100)
    const b = await load_test(batched, concurrency, total)
    const s = await load_test(single, concurrency, total)
    report.add({
      case: `throughput c=${concurrency}`,
      subject: 'batching (maxBatch 32, 1 ms)',
      peer: 'batch-1',
      metric: 'req/s',
      subjectValue: b.throughput,
      peerValue: s.throughput,
      higherIsBetter: true,
    })
    report.add({
      case: `p95 latency c=${concurrency}`,
      subject: 'batching (maxBatch 32, 1 ms)',
      peer: 'batch-1',
      metric: 'ms',
      subjectValue: b.p95,
      peerValue: s.p95,
      higherIsBetter: false,
    })
  }
  await batched.dispose()
  await single.dispose()
}

// 3. Event-loop lag p99 under load: worker sessions against in-thread session.run.
if (report.wants('event-loop lag')) {
  const lag = async (run: 'inline' | 'worker') => {
    const backend = await load(run, true)
    await load_test(backend, 8, 100)
    const histogram = monitorEventLoopDelay({ resolution: 1 })
    histogram.enable()
    await load_test(backend, 8, options.quick ? 1000 : 4000)
    histogram.disable()
    await backend.dispose()
    return histogram.percentile(99) / 1e6
  }
  const worker = await lag('worker')
  const inline = await lag('inline')
  report.add({
    case: 'event-loop lag p99 (c=8)',
    subject: 'worker sessions',
    peer: 'in-thread session.run',
    metric: 'ms',
    subjectValue: worker,
    peerValue: inline,
    higherIsBetter: false,
  })
}

// 4. int8 against fp32.
if (report.wants('int8')) {
  const a = await load('inline', false, int8)
  const b = await load('inline', false, fp32)
  report.add({
    case: 'int8 vs fp32: size',
    subject: 'int8',
    peer: 'fp32',
    metric: 'bytes',
    subjectValue: int8.byteLength,
    peerValue: fp32.byteLength,
    higherIsBetter: false,
  })
  const sa = await time(() => a.invoke(request(3), { signal }), { quick: options.quick })
  const sb = await time(() => b.invoke(request(3), { signal }), { quick: options.quick })
  report.add({
    case: 'int8 vs fp32: speed',
    subject: 'int8',
    peer: 'fp32',
    metric: 'ops/s',
    subjectValue: sa.opsPerSec,
    peerValue: sb.opsPerSec,
    higherIsBetter: true,
    note: 'batch 1, inline',
  })
  report.add({
    case: 'int8 vs fp32: held-out top-5',
    subject: 'int8',
    peer: 'fp32',
    metric: 'top-5 %',
    subjectValue: 100 * metadata.variants.int8.top5,
    peerValue: 100 * metadata.variants.fp32.top5,
    higherIsBetter: true,
    note: 'from scripts/build-model.ts',
  })
  await a.dispose()
  await b.dispose()
}

report.summary()
