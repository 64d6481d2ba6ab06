/**
 * The service as an operator runs it: `src/main.ts` in its own process, an
 * OpenAI-compatible provider configured through `AIDE_PROVIDERS`, SIGTERM for
 * shutdown, and the load-test script against it.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { runLoadTest } from '../src/load-test.js'
import { type SpawnedService, spawnService } from '../src/spawn.js'
import { type FakeProvider, startFakeProvider } from './helpers.js'

const KEY = 'sk-process-tenant-5555'
const PROVIDER_KEY = 'sk-provider-secret-777777'

const cleanups: Array<() => Promise<unknown>> = []
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})

async function start(provider: FakeProvider): Promise<SpawnedService> {
  const service = await spawnService({
    AIDE_API_KEYS: `${KEY}:ops`,
    AIDE_RATE_LIMIT_RPS: '100000',
    AIDE_RATE_LIMIT_BURST: '100000',
    AIDE_PROVIDERS: JSON.stringify([
      { id: 'remote-chat', baseUrl: provider.url, apiKey: PROVIDER_KEY, model: 'tiny' },
    ]),
  })
  cleanups.push(async () => {
    if (service.child.exitCode === null) service.child.kill('SIGKILL')
    await service.exited
  })
  return service
}

function complete(url: string, prompt: string) {
  return fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ prompt }),
  })
}

describe('completion service process', () => {
  it('routes to a configured OpenAI-compatible provider, and SIGTERM finishes the in-flight request', {
    timeout: 50_000,
  }, async () => {
    const provider = await startFakeProvider({ hold: true })
    cleanups.push(() => provider.close())
    const service = await start(provider)

    const inFlight = complete(service.url, 'function add(a, b) {')
    await provider.requestArrived(1)
    expect(provider.received[0]!.authorization).toBe(`Bearer ${PROVIDER_KEY}`)
    expect(provider.received[0]!.body.model).toBe('tiny')

    service.child.kill('SIGTERM')
    await service.waitForLog(
      'shutdown: no longer accepting connections; finishing in-flight requests',
    )
    // Shutdown waits for the request that is still with the provider...
    expect(service.logs.some((line) => line.msg === 'shutdown: complete')).toBe(false)
    // ...while new connections are refused.
    const late = await fetch(`${service.url}/health`).then(
      (response) => response.status,
      (error: Error & { cause?: { code?: string } }) => error.cause?.code,
    )
    expect(late).toBe('ECONNREFUSED')

    provider.release()
    const response = await inFlight
    expect(response.status).toBe(200)
    const body = (await response.json()) as { model: string; text: string }
    expect(body).toMatchObject({ model: 'remote-chat', text: provider.answer })

    expect(await service.exited).toBe(0)
    const messages = service.logs.map((line) => line.msg)
    expect(messages.indexOf('request end')).toBeLessThan(messages.indexOf('shutdown: complete'))
    expect(messages).toContain('shutdown: in-flight requests finished; disposing components')
    // Neither the client's nor the provider's key reached the log.
    expect(service.output()).not.toContain(KEY)
    expect(service.output()).not.toContain(PROVIDER_KEY)
  })

  it('the load-test script reports throughput and p99 against the running service', {
    timeout: 50_000,
  }, async () => {
    const provider = await startFakeProvider()
    cleanups.push(() => provider.close())
    const service = await start(provider)
    const report = await runLoadTest({
      url: service.url,
      apiKey: KEY,
      requests: 100,
      seconds: 30,
      connections: 4,
      prompts: 8,
    })
    expect(report.requests).toBe(100)
    expect(report.non2xx).toBe(0)
    expect(report.errors).toBe(0)
    expect(report.throughputPerSecond).toBeGreaterThan(0)
    expect(report.latencyMs.p99).toBeGreaterThanOrEqual(report.latencyMs.p50)
    // 8 distinct prompts: the provider saw each once, the cache answered the rest.
    expect(provider.received.length).toBe(8)
  })
})
