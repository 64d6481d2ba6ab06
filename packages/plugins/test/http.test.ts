import { createServer } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createPluginHost, type PluginHost, type PluginHostOptions } from '../src/index.js'
import { fixture, manifestFor } from './helpers.js'
import { startHttpServer, type TestHttpServer } from './http-server.js'

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

let httpWasm: Uint8Array
let server: TestHttpServer
const hosts: PluginHost[] = []

beforeAll(async () => {
  httpWasm = await fixture('http')
  server = await startHttpServer()
})

afterEach(async () => {
  await Promise.all(hosts.splice(0).map((host) => host.dispose()))
})

afterAll(async () => {
  await server.close()
})

const source = (http: string[] | undefined, id = 'test.http') => ({
  manifest: manifestFor(httpWasm, {
    id,
    entries: ['fetch', 'post'].map((name) => ({ kind: 'command', export: name, command: name })),
    capabilities: http ? { http } : {},
  }),
  wasm: httpWasm,
})

const request = (url: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ url, ...extra })

describe.each(['worker', 'in-thread'] as const)('http capability (%s)', (isolation) => {
  const newHost = (options: Partial<PluginHostOptions> = {}) => {
    const host = createPluginHost({
      hostApiVersion: '1.0.0',
      isolation,
      capabilities: { http: ['127.0.0.1'] },
      ...options,
      limits: { timeoutMs: 10_000, ...options.limits },
    })
    hosts.push(host)
    return host
  }
  const base = () => `http://127.0.0.1:${server.port}`

  it('lets a plugin reach a granted host and see status and body', async () => {
    const host = newHost()
    const info = await host.load(source(['127.0.0.1']))
    expect(info.granted.http).toEqual(['127.0.0.1'])
    expect(text(await host.call('test.http', 'fetch', request(`${base()}/hello`)))).toBe(
      '200 hello from the server',
    )
    expect(text(await host.call('test.http', 'fetch', request(`${base()}/missing`)))).toBe(
      '404 no such thing',
    )
    const posted = await host.call(
      'test.http',
      'post',
      request(`${base()}/echo`, { method: 'POST', headers: { 'x-test': 'yes' } }),
    )
    expect(text(posted)).toBe('200 POST yes ping from the plugin')
    // Redirects are followed when every hop is granted.
    const redirected = await host.call(
      'test.http',
      'fetch',
      request(`${base()}/redirect?to=${encodeURIComponent(`${base()}/hello`)}`),
    )
    expect(text(redirected)).toBe('200 hello from the server')
    expect(host.stats().plugins['test.http']).toMatchObject({
      calls: 4,
      errors: 0,
      httpRequests: 4,
      httpDenied: 0,
      httpFailures: 0,
      httpBytesReceived:
        'hello from the server'.length * 2 +
        'no such thing'.length +
        'POST yes ping from the plugin'.length,
    })
  })

  it('refuses a host outside the grant without connecting, redirects included', async () => {
    const host = newHost({ capabilities: { http: ['127.0.0.1', 'localhost'] } })
    await host.load(source(['127.0.0.1']))
    const before = await server.stats()
    // localhost reaches the same server, so a connection would show in its stats.
    await expect(
      host.call('test.http', 'fetch', request(`http://localhost:${server.port}/hello`)),
    ).rejects.toMatchObject({
      code: 'E_PERMISSION',
      message: expect.stringContaining('"localhost" is not among the hosts granted'),
      details: { pluginId: 'test.http', host: 'localhost', capability: 'http' },
    })
    await expect(
      host.call(
        'test.http',
        'fetch',
        request(
          `${base()}/redirect?to=${encodeURIComponent(`http://localhost:${server.port}/hello`)}`,
        ),
      ),
    ).rejects.toMatchObject({ code: 'E_PERMISSION' })
    await expect(
      host.call('test.http', 'fetch', request('file:///etc/passwd')),
    ).rejects.toMatchObject({ code: 'E_PERMISSION' })
    const after = await server.stats()
    expect(after.paths.slice(before.paths.length)).toEqual(['GET /redirect'])
    expect(after.connections - before.connections).toBe(1)
    expect(host.stats().plugins['test.http']).toMatchObject({ httpRequests: 3, httpDenied: 3 })
    // The plugin keeps working after a refusal.
    expect(text(await host.call('test.http', 'fetch', request(`${base()}/hello`)))).toBe(
      '200 hello from the server',
    )
  })

  it('grants only requested hosts the policy allows', async () => {
    const host = newHost({ capabilities: { http: ['*'] } })
    const info = await host.load(source(['api.example.com']))
    expect(info.granted.http).toEqual(['api.example.com'])
    const before = await server.stats()
    await expect(host.call('test.http', 'fetch', request(`${base()}/hello`))).rejects.toMatchObject(
      { code: 'E_PERMISSION' },
    )
    expect((await server.stats()).connections).toBe(before.connections)
  })

  it('refuses at load a module that imports http_request without the grant', async () => {
    const undeclared = newHost()
    await expect(undeclared.load(source(undefined))).rejects.toMatchObject({
      code: 'E_PERMISSION',
      details: { pluginId: 'test.http', import: 'http_request', capability: 'http' },
    })
    const notAllowed = newHost({ capabilities: {} })
    await expect(notAllowed.load(source(['127.0.0.1']))).rejects.toMatchObject({
      code: 'E_PERMISSION',
      details: { capability: 'http' },
    })
    expect(notAllowed.list()).toEqual([])
  })

  it('stops a request that hangs at the call time limit, and the plugin recovers', async () => {
    const host = newHost({ limits: { timeoutMs: 1_000 } })
    await host.load(source(['127.0.0.1']))
    await expect(host.call('test.http', 'fetch', request(`${base()}/hang`))).rejects.toMatchObject({
      code: 'E_TIMEOUT',
    })
    expect(host.stats().plugins['test.http']).toMatchObject({ timeouts: 1, httpRequests: 1 })
    expect(text(await host.call('test.http', 'fetch', request(`${base()}/hello`)))).toBe(
      '200 hello from the server',
    )
  })

  it('fails a response larger than maxHttpResponseBytes', async () => {
    const host = newHost({ limits: { maxHttpResponseBytes: 128 * 1024 } })
    await host.load(source(['127.0.0.1']))
    for (const path of ['/big', '/big-chunked']) {
      await expect(
        host.call('test.http', 'fetch', request(`${base()}${path}`)),
      ).rejects.toMatchObject({
        code: 'E_LIMIT',
        details: { limit: 'maxHttpResponseBytes', maxHttpResponseBytes: 128 * 1024 },
      })
    }
    expect(host.stats().plugins['test.http']).toMatchObject({ httpRequests: 2, httpFailures: 2 })
    const roomy = newHost({ limits: { maxHttpResponseBytes: 256 * 1024 } })
    await roomy.load(source(['127.0.0.1'], 'test.http-roomy'))
    const output = await roomy.call('test.http-roomy', 'fetch', request(`${base()}/big`))
    expect(output.byteLength).toBe(4 + 256 * 1024)
  })

  it('reports a refused connection as E_UNAVAILABLE and bad requests as E_PLUGIN', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as { port: number }).port
    await new Promise((resolve) => closed.close(resolve))
    const host = newHost()
    await host.load(source(['127.0.0.1']))
    await expect(
      host.call('test.http', 'fetch', request(`http://127.0.0.1:${port}/`)),
    ).rejects.toMatchObject({ code: 'E_UNAVAILABLE' })
    await expect(host.call('test.http', 'fetch', 'not json')).rejects.toMatchObject({
      code: 'E_PLUGIN',
      message: expect.stringContaining('the request is not JSON'),
    })
    await expect(
      host.call('test.http', 'fetch', request(`${base()}/hello`, { headers: { n: 1 } })),
    ).rejects.toMatchObject({ code: 'E_PLUGIN', message: expect.stringContaining('header "n"') })
  })
})
