import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { InitializedNotification, InitializeRequest } from 'vscode-languageserver-protocol'
import { type AiLanguageServer, createAiLanguageServer } from '../src/ai-server.ts'
import { createInMemoryLspPair, type InMemoryLspPair } from '../src/node.ts'
import { eventually } from './helpers.ts'

// The default assembly with real parts: the shipped local ONNX model on
// onnxruntime-node behind the orchestrator, the disk cache, and the shipped
// WebAssembly audit plugins on Extism.
describe('createAiLanguageServer with its default parts', () => {
  let pair: InMemoryLspPair
  let server: AiLanguageServer
  let cacheDir: string
  const published: Array<{
    uri: string
    version: number
    diagnostics: Array<{ code: string; source: string; message: string }>
  }> = []
  const busEvents: string[] = []

  beforeAll(async () => {
    cacheDir = mkdtempSync(join(tmpdir(), 'aide-lsp-cache-'))
    pair = createInMemoryLspPair()
    server = createAiLanguageServer({
      connection: pair.server,
      closed: pair.closed,
      cache: { dir: cacheDir },
      settings: {
        completion: { debounceMs: 0, timeoutMs: 20_000 },
        diagnostics: { debounceMs: 0, timeoutMs: 20_000 },
      },
    })
    server.bus.on('*', (_payload, type) => {
      busEvents.push(type)
    })
    server.listen()
    pair.client.onNotification('textDocument/publishDiagnostics', (params: unknown) => {
      published.push(params as (typeof published)[number])
    })
    pair.client.listen()
    await pair.client.sendRequest(InitializeRequest.type, {
      processId: null,
      rootUri: null,
      capabilities: {},
    })
    await pair.client.sendNotification(InitializedNotification.type, {})
    await eventually(
      () =>
        server.stats().model.state !== 'loading' &&
        server.stats().model.state !== 'idle' &&
        server.stats().plugins.state !== 'loading',
      50_000,
    )
  }, 60_000)

  afterAll(async () => {
    await server?.dispose()
    pair?.dispose()
    rmSync(cacheDir, { recursive: true, force: true })
  })

  it('loads the local model and the audit plugins as services', () => {
    const stats = server.stats()
    expect(stats.model).toMatchObject({ state: 'ready', provider: 'orchestrator' })
    expect(stats.plugins).toEqual({
      state: 'ready',
      loaded: ['aide.security-audit', 'aide.aws-key-scan'],
    })
    const states = Object.fromEntries(stats.services.services.map((s) => [s.name, s.state]))
    expect(states).toMatchObject({
      cache: 'ready',
      'completion-model': 'ready',
      'plugin-host': 'ready',
    })
  })

  it('completes with the model through the orchestrator and caches the answer on disk', async () => {
    const uri = 'file:///w/options.ts'
    const text = 'interface Options {\n    readonly name: string;\n    readonly'
    await pair.client.sendNotification('textDocument/didOpen', {
      textDocument: { uri, languageId: 'typescript', version: 1, text },
    })
    await eventually(() => server.documents.version(uri) === 1)
    const result = (await pair.client.sendRequest('textDocument/inlineCompletion', {
      textDocument: { uri },
      position: { line: 2, character: 12 },
      context: { triggerKind: 1 },
    })) as { items: Array<{ insertText: string }> }
    expect(result.items.length).toBeGreaterThan(0)
    expect(server.stats().model.answered).toBe(1)
    await eventually(() => readdirSync(cacheDir, { recursive: true }).length > 0)
  })

  it('publishes the plugins diagnostics with their quick fixes next to the line rules', async () => {
    const uri = 'file:///w/db.ts'
    const text = 'const dbPassword = "hunter2-but-longer"\ndebugger\n'
    await pair.client.sendNotification('textDocument/didOpen', {
      textDocument: { uri, languageId: 'typescript', version: 1, text },
    })
    const found = await eventually(
      () =>
        published.find(
          (p) => p.uri === uri && p.diagnostics.some((d) => d.source === 'aide.security-audit'),
        ),
      30_000,
    )
    expect(found.diagnostics.some((d) => d.code === 'no-debugger')).toBe(true)
    const secret = found.diagnostics.find((d) => d.source === 'aide.security-audit')!
    const actions = (await pair.client.sendRequest('textDocument/codeAction', {
      textDocument: { uri },
      range: (secret as unknown as { range: unknown }).range,
      context: { diagnostics: [secret] },
    })) as Array<{ title: string; kind: string }>
    expect(actions.length).toBeGreaterThan(0)
    expect(actions[0]!.kind).toBe('quickfix')
    expect(busEvents).toContain('plugin-load')
  })
})
