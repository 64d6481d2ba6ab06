/**
 * Load test on loopback: starts the service in a child process (or targets
 * `--url`), drives `POST /v1/completions` with autocannon for a bounded
 * number of requests and time, and reports throughput and latency
 * percentiles.
 *
 *   pnpm load-test [--requests 5000] [--seconds 20] [--connections 8] [--prompts 16]
 *                  [--url http://127.0.0.1:8787 --key <api key>] [--json]
 */
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { type SpawnedService, spawnService } from './spawn.js'

/** What one run measured. */
export interface LoadTestReport {
  requests: number
  non2xx: number
  errors: number
  timeouts: number
  seconds: number
  throughputPerSecond: number
  latencyMs: { p50: number; p90: number; p99: number; max: number }
  connections: number
  distinctPrompts: number
}

/** Options of {@link runLoadTest}. */
export interface LoadTestOptions {
  url: string
  apiKey: string
  /** Total requests to send (bound). */
  requests: number
  /** Wall-time bound in seconds; the run stops at whichever bound comes first. */
  seconds: number
  connections: number
  /** Distinct prompts cycled through (the rest are cache hits). */
  prompts: number
}

const STEMS = [
  'export function ',
  'import { ',
  'const signal = ',
  'throw new AideError(',
  'if (options.',
  'return new ',
  'export interface ',
  'async dispose',
]

/** Runs autocannon against a running service. */
export async function runLoadTest(options: LoadTestOptions): Promise<LoadTestReport> {
  const bodies = Array.from({ length: options.prompts }, (_, i) =>
    JSON.stringify({ prompt: `${STEMS[i % STEMS.length]}`, maxTokens: 8 + (i % 8) }),
  )
  let next = 0
  const instance = autocannon({
    url: `${options.url}/v1/completions`,
    method: 'POST',
    connections: options.connections,
    amount: options.requests,
    duration: options.seconds,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${options.apiKey}` },
    requests: [
      {
        setupRequest: (request) => {
          request.body = bodies[next++ % bodies.length]!
          return request
        },
      },
    ],
  })
  // A hard stop in case the server stalls: the run is bounded in time whatever happens.
  const guard = setTimeout(
    () => (instance as unknown as { stop(): void }).stop(),
    (options.seconds + 5) * 1000,
  )
  const result = await instance
  clearTimeout(guard)
  const seconds = result.duration
  const total = result.requests.total
  return {
    requests: total,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    seconds,
    throughputPerSecond: seconds > 0 ? Math.round((total / seconds) * 10) / 10 : 0,
    latencyMs: {
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      max: result.latency.max,
    },
    connections: options.connections,
    distinctPrompts: options.prompts,
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      key: { type: 'string' },
      requests: { type: 'string', default: '5000' },
      seconds: { type: 'string', default: '20' },
      connections: { type: 'string', default: '8' },
      prompts: { type: 'string', default: '16' },
      json: { type: 'boolean', default: false },
    },
  })
  const apiKey = values.key ?? 'load-test-key'
  let spawned: SpawnedService | undefined
  if (!values.url) {
    spawned = await spawnService({
      AIDE_API_KEYS: `${apiKey}:load-test`,
      AIDE_RATE_LIMIT_RPS: '1000000',
      AIDE_RATE_LIMIT_BURST: '1000000',
    })
  }
  try {
    const report = await runLoadTest({
      url: values.url ?? spawned!.url,
      apiKey,
      requests: Number(values.requests),
      seconds: Number(values.seconds),
      connections: Number(values.connections),
      prompts: Number(values.prompts),
    })
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`)
    } else {
      process.stdout.write(
        [
          `requests     ${report.requests} in ${report.seconds.toFixed(1)} s (${report.connections} connections, ${report.distinctPrompts} distinct prompts)`,
          `throughput   ${report.throughputPerSecond} req/s`,
          `latency      p50 ${report.latencyMs.p50} ms, p90 ${report.latencyMs.p90} ms, p99 ${report.latencyMs.p99} ms, max ${report.latencyMs.max} ms`,
          `failures     ${report.non2xx} non-2xx, ${report.errors} errors, ${report.timeouts} timeouts`,
          '',
        ].join('\n'),
      )
    }
  } finally {
    if (spawned) {
      spawned.child.kill('SIGTERM')
      await spawned.exited
    }
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  await main()
}
