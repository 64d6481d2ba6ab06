/**
 * Orchestrator benchmarks.
 *
 * 1. Routing overhead of `run()` on an in-process backend, against calling the
 *    backend directly and against a bare cockatiel policy (retry + breaker +
 *    bulkhead + timeout, the policies a model runs under) wrapping the same
 *    call: p50 and p99 per call.
 * 2. Failover time per fault type, on a real loopback HTTP provider: a failing
 *    model first, a healthy one second, default settings unless noted; against
 *    a direct call to the healthy model.
 *
 * Usage: pnpm --filter @aide/orchestrator bench [-- --quick] [-- --json out.jsonl]
 */
import {
  bulkhead,
  ConsecutiveBreaker,
  circuitBreaker,
  ExponentialBackoff,
  handleAll,
  retry,
  TimeoutStrategy,
  timeout,
  wrap,
} from 'cockatiel'
import { BenchReport, parseBenchArgs, percentile, time } from '../../../bench/harness.ts'
import {
  createOrchestrator,
  type ModelBackend,
  type ModelConfig,
  openAICompatible,
} from '../src/index.ts'
import { refusedUrl, type Scenario, startFakeProvider } from '../test/fake-provider.ts'

const options = parseBenchArgs()
const report = new BenchReport('orchestrator', options)
const input = { messages: [{ role: 'user' as const, content: 'hello' }] }

async function overhead(): Promise<void> {
  const answer = {
    output: { text: 'hi' },
    usage: { inputTokens: 1, outputTokens: 1 },
    finishReason: 'stop' as const,
  }
  const backend: ModelBackend = { kind: 'in-process', invoke: () => Promise.resolve(answer) }
  const orchestrator = createOrchestrator({ models: [{ id: 'local', tasks: ['chat'], backend }] })
  const request = { task: 'chat', input }
  const backendRequest = { task: 'chat', input, model: 'local' }
  const signal = new AbortController().signal
  const policy = wrap(
    retry(handleAll, { maxAttempts: 1, backoff: new ExponentialBackoff() }),
    circuitBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) }),
    bulkhead(16, 64),
    timeout(30_000, TimeoutStrategy.Aggressive),
  )
  const policyNoTimeout = wrap(
    retry(handleAll, { maxAttempts: 1, backoff: new ExponentialBackoff() }),
    circuitBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) }),
    bulkhead(16, 64),
  )
  const subject = await time(() => orchestrator.run(request), { quick: options.quick })
  const direct = await time(() => backend.invoke(backendRequest, { signal }), {
    quick: options.quick,
  })
  const bare = await time(() => policy.execute(() => backend.invoke(backendRequest, { signal })), {
    quick: options.quick,
  })
  const bareNoTimeout = await time(
    () => policyNoTimeout.execute(() => backend.invoke(backendRequest, { signal })),
    { quick: options.quick },
  )
  const us = (ns: number) => ns / 1000
  for (const [name, peer, peerName] of [
    ['run-vs-direct', direct, 'direct backend.invoke'],
    ['run-vs-bare-cockatiel', bare, 'cockatiel wrap(retry,breaker,bulkhead,timeout)'],
    ['run-vs-cockatiel-no-timeout', bareNoTimeout, 'cockatiel wrap(retry,breaker,bulkhead)'],
  ] as const) {
    if (!report.wants(name)) continue
    for (const [metric, s, p] of [
      ['p50 µs', subject.p50Ns, peer.p50Ns],
      ['p99 µs', subject.p99Ns, peer.p99Ns],
    ] as const) {
      report.add({
        case: `${name} ${metric.split(' ')[0]}`,
        subject: '@aide/orchestrator run()',
        peer: peerName,
        metric,
        subjectValue: us(s),
        peerValue: us(p),
        higherIsBetter: false,
        note: `overhead ${(us(s) - us(p)).toFixed(2)} µs`,
      })
    }
  }
  await orchestrator.dispose()
}

async function failover(): Promise<void> {
  const provider = await startFakeProvider()
  const refused = await refusedUrl()
  const rounds = options.quick ? 3 : 7
  const good: ModelConfig = {
    id: 'good',
    tasks: ['chat'],
    backend: openAICompatible({ baseUrl: provider.url('ok'), apiKey: 'sk-bench' }),
  }
  // Warm the connection pool first, so the peer figure is a warm call like the subject's last hop.
  await good.backend.invoke(
    { task: 'chat', input, model: 'good' },
    { signal: new AbortController().signal },
  )
  const directTimes: number[] = []
  for (let i = 0; i < rounds; i++) {
    const started = performance.now()
    await good.backend.invoke(
      { task: 'chat', input, model: 'good' },
      { signal: new AbortController().signal },
    )
    directTimes.push(performance.now() - started)
  }
  const direct = percentile(directTimes, 50)
  const cases: Array<{
    fault: Scenario | 'refused'
    stream?: boolean
    note?: string
    extra?: Partial<ModelConfig>
    orchestrator?: Record<string, unknown>
  }> = [
    { fault: 'status-500' },
    { fault: 'status-502' },
    { fault: 'status-503', note: 'persistent 503, target <= 2500 ms' },
    { fault: 'status-429', note: 'Retry-After 30 s > maxRetryAfterMs: fail over at once' },
    { fault: 'status-401' },
    { fault: 'refused' },
    { fault: 'context-length', extra: { contextWindow: 8_000 } },
    { fault: 'malformed-json' },
    { fault: 'oversized', note: 'maxResponseBytes 64 KiB' },
    {
      fault: 'stall',
      note: 'attemptTimeoutMs 1000 (default 30000)',
      extra: { attemptTimeoutMs: 1_000 },
    },
    {
      fault: 'slow-first-token',
      stream: true,
      note: 'firstTokenTimeoutMs 1000 (default 15000)',
      orchestrator: { firstTokenTimeoutMs: 1_000 },
    },
    { fault: 'malformed-sse', stream: true },
  ]
  for (const c of cases) {
    const name = `failover ${c.fault}${c.stream ? ' (stream)' : ''}`
    if (!report.wants(name)) continue
    const times: number[] = []
    let handled = true
    for (let i = 0; i < (c.fault === 'stall' || c.fault === 'slow-first-token' ? 2 : rounds); i++) {
      const bad: ModelConfig = {
        id: 'bad',
        tasks: ['chat'],
        backend: openAICompatible({
          baseUrl: c.fault === 'refused' ? refused : provider.url(c.fault),
          apiKey: 'sk-bench',
          ...(c.fault === 'oversized' ? { maxResponseBytes: 64 * 1024 } : {}),
        }),
        ...(c.extra ?? {}),
      }
      const orchestrator = createOrchestrator({
        models: [bad, { ...good, contextWindow: 128_000 }],
        ...(c.orchestrator ?? {}),
      })
      const started = performance.now()
      let model = ''
      if (c.stream) {
        for await (const part of orchestrator.stream({ task: 'chat', input }))
          if (part.type === 'done') model = part.result.model
      } else {
        model = (await orchestrator.run({ task: 'chat', input })).model
      }
      times.push(performance.now() - started)
      handled &&= model === 'good'
      await orchestrator.dispose()
    }
    report.add({
      case: name,
      subject: 'failover to healthy model',
      peer: 'direct call to healthy model',
      metric: 'ms (p50)',
      subjectValue: percentile(times, 50),
      peerValue: direct,
      higherIsBetter: false,
      note: `${handled ? 'handled' : 'NOT HANDLED'}${c.note ? `; ${c.note}` : ''}`,
    })
  }
  await provider.close()
}

await overhead()
await failover()
report.summary()
