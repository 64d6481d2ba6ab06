import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import {
  InitializedNotification,
  InitializeRequest,
  WorkDoneProgressCreateRequest,
} from 'vscode-languageserver-protocol'
import { createOrchestratorCompletionProvider } from '../src/adapters.ts'
import { type AiLanguageServer, createAiLanguageServer } from '../src/ai-server.ts'
import type { CompletionProvider } from '../src/index.ts'
import { createInMemoryLspPair, type InMemoryLspPair } from '../src/node.ts'
import { eventually } from './helpers.ts'

const uri = 'file:///w/a.ts'
const running: Array<{ pair: InMemoryLspPair; server: AiLanguageServer }> = []
afterEach(async () => {
  for (const { pair, server } of running.splice(0)) {
    await server.dispose()
    pair.dispose()
  }
})

async function start(options: Partial<Parameters<typeof createAiLanguageServer>[0]> = {}) {
  const pair = createInMemoryLspPair()
  const server = createAiLanguageServer({
    connection: pair.server,
    closed: pair.closed,
    settings: {
      completion: { debounceMs: 0, inlineDebounceMs: 0 },
      diagnostics: { debounceMs: 0 },
    },
    cache: false,
    plugins: false,
    ...options,
  })
  running.push({ pair, server })
  server.listen()
  const progress: unknown[] = []
  pair.client.onRequest(WorkDoneProgressCreateRequest.type, () => undefined)
  pair.client.onNotification('$/progress', (params: { value: unknown }) => {
    progress.push(params.value)
  })
  pair.client.listen()
  await pair.client.sendRequest(InitializeRequest.type, {
    processId: null,
    rootUri: null,
    capabilities: { window: { workDoneProgress: true } },
  })
  await pair.client.sendNotification(InitializedNotification.type, {})
  await pair.client.sendNotification('textDocument/didOpen', {
    textDocument: {
      uri,
      languageId: 'typescript',
      version: 1,
      text: 'const total = 1\nconst t = tot',
    },
  })
  await eventually(() => server.documents.version(uri) === 1)
  const complete = async () =>
    (await pair.client.sendRequest('textDocument/completion', {
      textDocument: { uri },
      position: { line: 1, character: 13 },
    })) as {
      items: Array<{ label: string }>
    }
  return { pair, server, progress, complete }
}

const modelProvider: CompletionProvider = {
  name: 'model',
  async provideCompletions() {
    return [{ text: 'al_from_model' }]
  },
}

describe('createAiLanguageServer', () => {
  it('answers from context while the model loads, then from the model, reporting load progress', async () => {
    let release!: () => void
    const loaded = new Promise<void>((resolve) => {
      release = resolve
    })
    let loads = 0
    const { server, progress, complete } = await start({
      loadModel: async () => {
        loads++
        await loaded
        return modelProvider
      },
    })
    await eventually(() => server.stats().model.state === 'loading')
    expect((await complete()).items.map((i) => i.label)).toContain('total')
    release()
    await eventually(() => server.stats().model.state === 'ready')
    expect((await complete()).items.map((i) => i.label)[0]).toBe('total_from_model')
    expect(loads).toBe(1)
    expect(server.stats().model).toMatchObject({
      provider: 'model',
      answered: 1,
      fallbackAnswers: 1,
    })
    await eventually(() => progress.some((p) => (p as { kind: string }).kind === 'end'))
    expect(progress).toEqual([
      {
        kind: 'begin',
        title: 'aide: loading the completion model',
        cancellable: false,
        percentage: 0,
      },
      { kind: 'end' },
    ])
    expect(server.stats().services.services.find((s) => s.name === 'completion-model')?.state).toBe(
      'ready',
    )
  })

  it('merges the model’s suggestions with the context provider’s by confidence', async () => {
    // The provider the assembled server wraps around its orchestrator (and so the shipped
    // model): its suggestions carry no confidence of their own.
    const model = createOrchestratorCompletionProvider({
      orchestrator: {
        run: async () => ({ text: 'ubtotal()', model: 'local', cached: false }) as never,
      },
    })
    const { pair, server } = await start({ loadModel: async () => model })
    await eventually(() => server.stats().model.state === 'ready')
    const line = 'const subtotal = computeS'
    await pair.client.sendNotification('textDocument/didChange', {
      textDocument: { uri, version: 2 },
      contentChanges: [
        { text: `const subtotal = computeSubtotal(order.items, order.taxRate)\n${line}` },
      ],
    })
    await eventually(() => server.documents.version(uri) === 2)
    const result = (await pair.client.sendRequest('textDocument/completion', {
      textDocument: { uri },
      position: { line: 1, character: line.length },
    })) as { items: Array<{ label: string; detail: string }> }
    expect(result.items.map((i) => [i.label, i.detail])).toEqual([
      // The long repeated continuation outranks the model...
      ['computeSubtotal(order.items, order.taxRate)', 'aide: from context'],
      ['computeSubtotal()', 'aide: local'],
      // ...which outranks a one-off identifier completion.
      ['computeSubtotal', 'aide: from context'],
    ])
    expect(server.stats().model).toMatchObject({ answered: 1 })
  })

  it('loads the model lazily on first completion when preloading is off', async () => {
    let loads = 0
    const { server, complete } = await start({
      preloadModel: false,
      loadModel: async () => {
        loads++
        return modelProvider
      },
    })
    expect(server.stats().model.state).toBe('idle')
    expect(loads).toBe(0)
    await complete()
    await eventually(() => server.stats().model.state === 'ready')
    expect(loads).toBe(1)
  })

  it('keeps answering from context when the model fails to load', async () => {
    const { server, complete } = await start({
      loadModel: async () => {
        throw new Error('weights missing')
      },
    })
    await eventually(() => server.stats().model.state === 'failed')
    expect((await complete()).items.map((i) => i.label)).toContain('total')
    await expect(server.loadModel()).rejects.toMatchObject({ code: 'E_INIT' })
  })

  it('works with no model at all and publishes the shipped audit diagnostics', async () => {
    const { pair, server, complete } = await start({ localModel: false })
    const diagnostics: Array<{ uri: string; diagnostics: Array<{ code: string }> }> = []
    pair.client.onNotification('textDocument/publishDiagnostics', (params: unknown) => {
      diagnostics.push(params as (typeof diagnostics)[number])
    })
    await pair.client.sendNotification('textDocument/didChange', {
      textDocument: { uri, version: 2 },
      contentChanges: [{ text: 'eval(code)\n' }],
    })
    await eventually(() => diagnostics.find((d) => d.diagnostics.length > 0))
    expect(diagnostics.at(-1)!.diagnostics.map((d) => d.code)).toEqual(['no-eval'])
    await eventually(() => server.stats().model.state === 'failed')
    await expect(server.loadModel()).rejects.toThrow(/no completion model/)
    await complete()
  })

  it('uses unopened workspace files, indexed under a progress indicator, as completion context', async () => {
    const root = mkdtempSync(join(tmpdir(), 'aide-lsp-ai-'))
    try {
      writeFileSync(
        join(root, 'helpers.ts'),
        'export function area(shape) {\n  return computeArea(shape.width, shape.height, shape.unit)\n}\n',
      )
      const pair = createInMemoryLspPair()
      const server = createAiLanguageServer({
        connection: pair.server,
        closed: pair.closed,
        settings: { completion: { debounceMs: 0 } },
        cache: false,
        plugins: false,
        localModel: false,
      })
      running.push({ pair, server })
      server.listen()
      const progress: Array<{ kind: string; title?: string }> = []
      pair.client.onRequest(WorkDoneProgressCreateRequest.type, () => undefined)
      pair.client.onNotification(
        '$/progress',
        (params: { value: { kind: string; title?: string } }) => {
          progress.push(params.value)
        },
      )
      pair.client.listen()
      await pair.client.sendRequest(InitializeRequest.type, {
        processId: null,
        rootUri: pathToFileURL(root).href,
        capabilities: { window: { workDoneProgress: true } },
      })
      await pair.client.sendNotification(InitializedNotification.type, {})
      await eventually(() => server.stats().workspace?.built)
      const uri = pathToFileURL(join(root, 'main.ts')).href
      const text = 'const total = computeArea(shape.wi'
      await pair.client.sendNotification('textDocument/didOpen', {
        textDocument: { uri, languageId: 'typescript', version: 1, text },
      })
      await eventually(() => server.documents.version(uri) === 1)
      const list = (await pair.client.sendRequest('textDocument/completion', {
        textDocument: { uri },
        position: { line: 0, character: text.length },
      })) as { items: Array<{ label: string }> }
      expect(list.items.map((i) => i.label)).toContain('width, shape.height, shape.unit)')
      expect(progress.find((p) => p.kind === 'begin')?.title).toBe('aide: indexing the workspace')
      expect(server.stats().workspace).toMatchObject({ files: 1 })
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })

  it('rejects bad options naming the field', () => {
    const pair = createInMemoryLspPair()
    expect(() =>
      createAiLanguageServer({ connection: pair.server, loadModel: 'x' as never }),
    ).toThrow(/options.loadModel/)
    expect(() =>
      createAiLanguageServer({ connection: pair.server, fallbackCompletion: {} as never }),
    ).toThrow(/options.fallbackCompletion/)
    pair.dispose()
  })
})
