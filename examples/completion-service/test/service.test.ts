/**
 * The real service on an ephemeral loopback port, with a real redis-server
 * as its L2 cache and the shipped audit plugins in the plugin host.
 */
import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import { type RedisServer, startRedis } from '../../../scripts/redis.mjs'
import { type CompletionService, type HealthBody, startCompletionService } from '../src/service.js'
import { LogSink, parsePrometheus, testConfig } from './helpers.js'

const KEY = 'sk-tenant-a-0123456789'
const LIMITED_KEY = 'sk-limited-tenant-987654'

let redis: RedisServer
let service: CompletionService
const logs = new LogSink()

beforeAll(async () => {
  redis = await startRedis()
  service = await startCompletionService({
    config: testConfig({
      redisUrl: redis.url,
      apiKeys: [
        { key: KEY, tenant: 'tenant-a' },
        { key: LIMITED_KEY, tenant: 'limited' },
      ],
      tenantRateLimits: { limited: { requestsPerSecond: 0.001, burst: 2 } },
    }),
    logDestination: logs,
  })
})

afterAll(async () => {
  await service?.close()
  await redis?.stop()
})

async function post(
  path: string,
  body: unknown,
  key: string | null = KEY,
): Promise<{ status: number; headers: Headers; body: any }> {
  const response = await fetch(`${service.url}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(key === null ? {} : { authorization: `Bearer ${key}` }),
    },
    body: JSON.stringify(body),
  })
  return { status: response.status, headers: response.headers, body: await response.json() }
}

describe('completion service', () => {
  it('refuses requests without a valid API key with 401 and a JSON body', async () => {
    const missing = await post('/v1/completions', { prompt: 'export ' }, null)
    expect(missing.status).toBe(401)
    expect(missing.headers.get('www-authenticate')).toBe('Bearer')
    expect(missing.body.error.code).toBe('E_UNAUTHENTICATED')
    expect(missing.body.error.message).toMatch(/Authorization: Bearer/)
    expect(missing.body.requestId).toBe(missing.headers.get('x-request-id'))

    const wrong = await post('/v1/audit', { text: 'x' }, 'sk-not-a-key')
    expect(wrong.status).toBe(401)
    expect(wrong.body.error.message).toBe('unknown API key')
  })

  it('limits each tenant and answers 429 with Retry-After once its burst is spent', async () => {
    const statuses: number[] = []
    for (let i = 0; i < 3; i++) {
      const response = await post('/v1/completions', { prompt: `import { ${i}` }, LIMITED_KEY)
      statuses.push(response.status)
      if (response.status === 429) {
        expect(response.body.error.code).toBe('E_LIMIT')
        expect(response.body.error.message).toMatch(/tenant "limited" is over its rate limit/)
        expect(response.body.error.details.tenant).toBe('limited')
        expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
      }
    }
    expect(statuses).toEqual([200, 200, 429])
    // Another tenant is not affected.
    expect((await post('/v1/completions', { prompt: 'import { ' })).status).toBe(200)
  })

  it('completes code with the local model, then serves the repeat from the cache', async () => {
    const first = await post('/v1/completions', { prompt: 'export function ', maxTokens: 6 })
    expect(first.status).toBe(200)
    expect(first.body.model).toBe('local-ngram')
    expect(first.body.text.length).toBeGreaterThan(0)
    expect(first.body.cached).toBe(false)
    expect(first.body.attempts.at(-1)).toMatchObject({ model: 'local-ngram', outcome: 'success' })

    const second = await post('/v1/completions', { prompt: 'export function ', maxTokens: 6 })
    expect(second.status).toBe(200)
    expect(second.body.cached).toBe(true)
    expect(second.body.text).toBe(first.body.text)
  })

  it('shares cached completions with a second instance through Redis', async () => {
    const first = await post('/v1/completions', { prompt: 'export interface ', maxTokens: 4 })
    expect(first.body.cached).toBe(false)
    const second = await startCompletionService({
      config: testConfig({ redisUrl: redis.url }),
      logDestination: new LogSink(),
    })
    try {
      const response = await fetch(`${second.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
        body: JSON.stringify({ prompt: 'export interface ', maxTokens: 4 }),
      })
      const body = (await response.json()) as { cached: boolean; text: string }
      expect(body).toMatchObject({ cached: true, text: first.body.text })
    } finally {
      await second.close()
    }
  })

  it('rejects a malformed body with 400 naming the problem', async () => {
    const response = await post('/v1/completions', { prompt: 'x', maxTokens: 100_000 })
    expect(response.status).toBe(400)
    expect(response.body.error.code).toBe('E_INVALID_INPUT')
    expect(response.body.error.message).toMatch(/maxTokens/)
  })

  it('audits code with the shipped plugins and finds a hard-coded secret and an AWS key', async () => {
    const text = [
      'const password = "hunter2-correct-horse"',
      'const awsKey = "AKIAIOSFODNN7EXAMPLE"',
      '',
    ].join('\n')
    const response = await post('/v1/audit', { text, languageId: 'typescript' })
    expect(response.status).toBe(200)
    const rules = response.body.diagnostics.map((d: { ruleId: string }) => d.ruleId)
    expect(rules).toContain('hardcoded-secret')
    expect(rules).toContain('aws-access-key')
    const secret = response.body.diagnostics.find(
      (d: { ruleId: string }) => d.ruleId === 'hardcoded-secret',
    )
    expect(secret.source).toBe('aide.security-audit')
    expect(secret.range.start.line).toBe(0)

    const clean = await post('/v1/audit', { text: 'export const answer = 42\n' })
    expect(clean.body.diagnostics).toEqual([])
  })

  it('serves Prometheus metrics that parse and count the requests made', async () => {
    const response = await fetch(`${service.url}/metrics`)
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    const { types, samples } = parsePrometheus(await response.text())
    expect(types.get('aide_http_requests_total')).toBe('counter')
    expect(types.get('aide_http_request_duration_seconds')).toBe('histogram')
    const count = (name: string, labels: Record<string, string>) =>
      samples
        .filter((s) => s.name === name)
        .filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))
        .reduce((sum, s) => sum + s.value, 0)
    expect(
      count('aide_http_requests_total', { route: '/v1/completions', status: '401' }),
    ).toBeGreaterThanOrEqual(1)
    expect(count('aide_http_requests_total', { route: '/v1/completions', status: '429' })).toBe(1)
    expect(count('aide_service_cache_total', { endpoint: 'completions', result: 'hit' })).toBe(1)
    expect(count('aide_redis_up', {})).toBe(1)
    expect(count('aide_model_breaker_open', { model: 'local-ngram' })).toBe(0)
    expect(count('aide_plugin_calls_total', { outcome: 'ok' })).toBeGreaterThanOrEqual(2)
    expect(
      count('aide_http_request_duration_seconds_count', { route: '/v1/completions' }),
    ).toBeGreaterThanOrEqual(5)
  })

  it('ships alert rules for error rate, p95 latency, breaker open and Redis down on exported metrics', async () => {
    const rules = parseYaml(
      await readFile(new URL('../alerts/completion-service.rules.yml', import.meta.url), 'utf8'),
    ) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }
    const alerts = rules.groups.flatMap((group) => group.rules)
    expect(alerts.map((rule) => rule.alert)).toEqual(
      expect.arrayContaining([
        'AideCompletionHighErrorRate',
        'AideCompletionHighLatencyP95',
        'AideModelBreakerOpen',
        'AideRedisDown',
      ]),
    )
    const exported = new Set(
      parsePrometheus(await (await fetch(`${service.url}/metrics`)).text()).samples.map(
        (sample) => sample.name,
      ),
    )
    for (const rule of alerts) {
      for (const [name] of rule.expr.matchAll(/aide_[a-z_]+/g)) {
        expect(exported, `${rule.alert} uses ${name}`).toContain(name)
      }
    }
  })

  it('keeps secrets out of the JSON logs and tags every line of a request with its id', async () => {
    const response = await fetch(`${service.url}/v1/completions`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-api-key': KEY,
        'x-request-id': 'trace-me-42',
      },
      body: JSON.stringify({ prompt: 'const x = ' }),
    })
    expect(response.status).toBe(200)
    expect(response.headers.get('x-request-id')).toBe('trace-me-42')
    const text = logs.text()
    expect(text).not.toContain(KEY)
    expect(text).not.toContain(LIMITED_KEY)
    const lines = logs.parsed().filter((line) => line.requestId === 'trace-me-42')
    expect(lines.map((line) => line.msg)).toEqual(['request start', 'request end'])
    const request = lines[0]!.request as { headers: Record<string, string> }
    expect(request.headers['x-api-key']).toBe('[redacted]')
    expect(lines[1]).toMatchObject({ tenant: 'tenant-a', response: { statusCode: 200 } })
    // Earlier requests sent the key as a bearer token.
    const bearer = logs
      .parsed()
      .find(
        (line) =>
          (line.request as { headers?: Record<string, string> } | undefined)?.headers
            ?.authorization !== undefined,
      )
    expect((bearer!.request as { headers: Record<string, string> }).headers.authorization).toBe(
      '[redacted]',
    )
  })

  it('reports per-component health, and Redis down as degraded while completions go on', async () => {
    const up = await fetch(`${service.url}/health`)
    expect(up.status).toBe(200)
    const healthy = (await up.json()) as HealthBody
    expect(healthy.status).toBe('ok')
    expect(healthy.components.redis.status).toBe('up')
    expect(healthy.components.models).toMatchObject({
      status: 'up',
      models: [{ id: 'local-ngram', breaker: 'closed' }],
    })
    expect(healthy.components.plugins).toMatchObject({
      status: 'up',
      plugins: [
        { id: 'aide.security-audit', enabled: true },
        { id: 'aide.aws-key-scan', enabled: true },
      ],
    })

    await redis.kill('SIGKILL')
    const down = await fetch(`${service.url}/health`)
    expect(down.status).toBe(200)
    const degraded = (await down.json()) as HealthBody
    expect(degraded.status).toBe('degraded')
    expect(degraded.components.redis.status).toBe('down')
    expect(degraded.components.models.status).toBe('up')

    const metrics = parsePrometheus(await (await fetch(`${service.url}/metrics`)).text())
    expect(metrics.samples.find((s) => s.name === 'aide_redis_up')?.value).toBe(0)

    // The cache degrades to L1: a new completion still works.
    const response = await post('/v1/completions', { prompt: 'async function ' })
    expect(response.status).toBe(200)
    expect(response.body.model).toBe('local-ngram')
  })
})
