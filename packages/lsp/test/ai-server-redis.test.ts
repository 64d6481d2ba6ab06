import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { InitializedNotification, InitializeRequest } from 'vscode-languageserver-protocol'
import { startRedis } from '../../../scripts/redis.mjs'
import { type AiLanguageServer, createAiLanguageServer } from '../src/ai-server.ts'
import { createInMemoryLspPair, type InMemoryLspPair } from '../src/node.ts'
import { eventually } from './helpers.ts'

type RedisServer = Awaited<ReturnType<typeof startRedis>>

async function startServer(redisUrl: string, cacheDir: string) {
  const pair = createInMemoryLspPair()
  const server = createAiLanguageServer({
    connection: pair.server,
    closed: pair.closed,
    plugins: false,
    cache: { dir: cacheDir, redis: { url: redisUrl, prefix: 'lsp-test:' } },
    settings: { completion: { debounceMs: 0, timeoutMs: 20_000 } },
  })
  server.listen()
  pair.client.listen()
  await pair.client.sendRequest(InitializeRequest.type, {
    processId: null,
    rootUri: null,
    capabilities: {},
  })
  await pair.client.sendNotification(InitializedNotification.type, {})
  await eventually(() => !['idle', 'loading'].includes(server.stats().model.state), 50_000)
  return { pair, server }
}

async function complete(pair: InMemoryLspPair, server: AiLanguageServer, uri: string) {
  const text = 'interface Options {\n    readonly name: string;\n    readonly'
  await pair.client.sendNotification('textDocument/didOpen', {
    textDocument: { uri, languageId: 'typescript', version: 1, text },
  })
  await eventually(() => server.documents.version(uri) === 1)
  return (await pair.client.sendRequest('textDocument/inlineCompletion', {
    textDocument: { uri },
    position: { line: 2, character: 12 },
    context: { triggerKind: 1 },
  })) as { items: Array<{ insertText: string }> }
}

describe('createAiLanguageServer with Redis as the second cache level', () => {
  let redis: RedisServer
  let admin: Redis
  const dirs: string[] = []
  const servers: Array<{ pair: InMemoryLspPair; server: AiLanguageServer }> = []

  beforeAll(async () => {
    redis = await startRedis()
    admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 })
    await admin.connect()
  }, 60_000)

  afterAll(async () => {
    for (const { pair, server } of servers) {
      await server.dispose()
      pair.dispose()
    }
    admin?.disconnect()
    await redis?.stop()
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  })

  it('writes model answers to Redis, and keeps answering when Redis dies', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'aide-lsp-redis-'))
    dirs.push(cacheDir)
    const first = await startServer(redis.url, cacheDir)
    servers.push(first)
    expect(first.server.stats().model.state).toBe('ready')
    const answer = await complete(first.pair, first.server, 'file:///w/a.ts')
    expect(answer.items.length).toBeGreaterThan(0)
    let keys: string[] = []
    for (const deadline = Date.now() + 20_000; keys.length === 0 && Date.now() < deadline; ) {
      keys = await admin.keys('lsp-test:*')
      if (keys.length === 0) await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(keys.some((key) => key.includes('orchestrator:'))).toBe(true)

    await redis.kill()
    const again = await complete(first.pair, first.server, 'file:///w/b.ts')
    expect(again.items.length).toBeGreaterThan(0)
  }, 90_000)

  it('rejects a malformed redis setting naming the field', () => {
    const pair = createInMemoryLspPair()
    try {
      expect(() =>
        createAiLanguageServer({
          connection: pair.server,
          closed: pair.closed,
          cache: { redis: 42 as never },
        }),
      ).toThrow(
        expect.objectContaining({
          code: 'E_INVALID_INPUT',
          details: expect.objectContaining({ field: 'options.cache.redis' }),
        }),
      )
    } finally {
      pair.dispose()
    }
  })
})
