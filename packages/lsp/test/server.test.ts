import { ManualClock } from '@aide/core'
import { afterEach, describe, expect, it } from 'vitest'
import {
  CancellationTokenSource,
  CompletionRequest,
  DidChangeConfigurationNotification,
  DidChangeTextDocumentNotification,
  ErrorCodes,
  InlineCompletionRequest,
  LSPErrorCodes,
  WorkDoneProgressCreateRequest,
} from 'vscode-languageserver-protocol'
import {
  type CompletionProvider,
  createAuditDiagnosticsProvider,
  createContextCompletionProvider,
  createLanguageServer,
  type DiagnosticsProvider,
  isSuperseded,
  type CompletionRequest as ProviderRequest,
} from '../src/index.ts'
import { createInMemoryLspPair } from '../src/node.ts'
import { eventually, type Session, startSession } from './helpers.ts'

const sessions: Session[] = []
async function session(...args: Parameters<typeof startSession>): Promise<Session> {
  const created = await startSession(...args)
  sessions.push(created)
  return created
}
afterEach(async () => {
  for (const s of sessions.splice(0)) await s.dispose()
})

/** A provider the test controls: records calls, answers with `answer`, optionally waits on a gate. */
function controlledProvider(answer: (request: ProviderRequest) => string[] = () => ['ms.length']) {
  const calls: ProviderRequest[] = []
  let gate: Promise<void> | undefined
  let open: (() => void) | undefined
  const provider: CompletionProvider = {
    name: 'controlled',
    async provideCompletions(request) {
      calls.push(request)
      if (gate) {
        await Promise.race([
          gate,
          new Promise<void>((_, reject) =>
            request.signal.addEventListener('abort', () => reject(request.signal.reason), {
              once: true,
            }),
          ),
        ])
      }
      return answer(request).map((text) => ({ text }))
    },
  }
  return {
    provider,
    calls,
    hold() {
      gate = new Promise<void>((resolve) => {
        open = resolve
      })
    },
    release() {
      gate = undefined
      open?.()
    },
  }
}

const noDebounce = {
  completion: { debounceMs: 0, inlineDebounceMs: 0 },
  diagnostics: { debounceMs: 0 },
}
const uri = 'file:///work/sample.ts'

describe('language server over an in-memory connection', () => {
  it('advertises its capabilities and answers completion from the context provider', async () => {
    const s = await session({
      completion: createContextCompletionProvider(),
      settings: noDebounce,
      name: 'test-lsp',
      version: '1.2.3',
    })
    expect(s.initializeResult.serverInfo).toEqual({ name: 'test-lsp', version: '1.2.3' })
    expect(s.initializeResult.capabilities).toMatchObject({
      inlineCompletionProvider: true,
      completionProvider: {},
      textDocumentSync: { change: 2 },
    })
    const text =
      'const total = items.reduce((sum, item) => sum + item.price, 0)\nconst count = items.red'
    await s.open(uri, text)
    const list = await s.complete(uri, { line: 1, character: 'const count = items.red'.length })
    expect(list.items[0]!.textEdit!.newText).toBe('reduce((sum, item) => sum + item.price, 0)')
    expect(list.items[0]!.label.startsWith('reduce(')).toBe(true)
  })

  it('answers LSP 3.18 inline completion with insert text at the cursor', async () => {
    const control = controlledProvider(() => ['(a, b) => a + b'])
    const s = await session({ completion: control.provider, settings: noDebounce })
    const text = 'export const add = '
    await s.open(uri, text)
    const result = (await s.pair.client.sendRequest(InlineCompletionRequest.type, {
      textDocument: { uri },
      position: { line: 0, character: text.length },
      context: { triggerKind: 2 },
    })) as { items: Array<{ insertText: string; range: unknown }> }
    expect(result.items).toEqual([
      {
        insertText: '(a, b) => a + b',
        range: { start: { line: 0, character: 19 }, end: { line: 0, character: 19 } },
      },
    ])
    expect(control.calls[0]!.trigger).toBe('inline')
    expect(control.calls[0]!.context.prefix).toBe(text)
  })

  it('honours $/cancelRequest down to the provider signal', async () => {
    const control = controlledProvider()
    control.hold()
    const s = await session({ completion: control.provider, settings: noDebounce })
    await s.open(uri, 'return ite')
    const source = new CancellationTokenSource()
    const pending = s.pair.client.sendRequest(
      CompletionRequest.type,
      { textDocument: { uri }, position: { line: 0, character: 10 } },
      source.token,
    )
    await eventually(() => control.calls.length === 1)
    source.cancel()
    await expect(pending).rejects.toMatchObject({ code: LSPErrorCodes.RequestCancelled })
    await eventually(() => control.calls[0]!.signal.aborted)
    expect(s.server.stats().completion.cancelled).toBe(1)
  })

  it('lets a newer request supersede the older one for the same document', async () => {
    const control = controlledProvider((request) => [
      request.context.linePrefix.endsWith('b') ? 'second' : 'first',
    ])
    control.hold()
    const s = await session({ completion: control.provider, settings: noDebounce })
    await s.open(uri, 'ab')
    const older = s.pair.client.sendRequest(InlineCompletionRequest.type, {
      textDocument: { uri },
      position: { line: 0, character: 1 },
      context: { triggerKind: 2 },
    })
    await eventually(() => control.calls.length === 1)
    control.release()
    const newer = s.pair.client.sendRequest(InlineCompletionRequest.type, {
      textDocument: { uri },
      position: { line: 0, character: 2 },
      context: { triggerKind: 2 },
    })
    const [olderResult, newerResult] = await Promise.all([older, newer])
    // Either the older one was superseded while waiting (empty), or it finished first; the newer always answers.
    expect((newerResult as { items: Array<{ insertText: string }> }).items[0]!.insertText).toBe(
      'second',
    )
    if (control.calls[0]!.signal.aborted)
      expect((olderResult as { items: unknown[] }).items).toEqual([])
  })

  it('supersedes a request held by a slow provider and aborts its signal', async () => {
    const control = controlledProvider()
    control.hold()
    const s = await session({ completion: control.provider, settings: noDebounce })
    await s.open(uri, 'abc')
    const older = s.complete(uri, { line: 0, character: 2 })
    await eventually(() => control.calls.length === 1)
    const newer = s.complete(uri, { line: 0, character: 3 })
    await eventually(() => control.calls.length === 2)
    expect(control.calls[0]!.signal.aborted).toBe(true)
    control.release()
    expect((await older).items).toEqual([])
    expect((await newer).items).toHaveLength(1)
    expect(s.server.stats().completion.superseded).toBe(1)
  })

  it('never answers for a stale document version', async () => {
    const control = controlledProvider()
    control.hold()
    const s = await session({ completion: control.provider, settings: noDebounce })
    await s.open(uri, 'return ite')
    const pending = s.complete(uri, { line: 0, character: 10 })
    await eventually(() => control.calls.length === 1)
    await s.change(uri, 2, [{ text: 'something else' }])
    control.release()
    expect(await pending).toEqual({ isIncomplete: true, items: [] })
    expect(s.server.stats().completion.stale).toBe(1)
  })

  it('reuses a shown suggestion while the user types along it', async () => {
    const control = controlledProvider(() => ['ms.length'])
    const s = await session({ completion: control.provider, settings: noDebounce })
    await s.open(uri, 'return ite\n')
    const first = await s.complete(uri, { line: 0, character: 10 })
    expect(first.items[0]!.textEdit!.newText).toBe('items.length')
    await s.change(uri, 2, [
      {
        range: { start: { line: 0, character: 10 }, end: { line: 0, character: 10 } },
        text: 'ms.',
      },
    ])
    const second = await s.complete(uri, { line: 0, character: 13 })
    expect(second.items[0]!.textEdit!.newText).toBe('length')
    expect(control.calls).toHaveLength(1)
    expect(s.server.stats().cache).toMatchObject({ hits: 1, reuses: 1 })
  })

  it('publishes audit diagnostics for the current version and offers their quick fixes', async () => {
    const s = await session({ diagnostics: createAuditDiagnosticsProvider(), settings: noDebounce })
    const text = 'function f() {\r\n  debugger\r\n  return eval(input)\r\n}\r\n'
    await s.open(uri, text)
    const published = await eventually(() =>
      s.diagnostics.find((d) => d.uri === uri && d.version === 1),
    )
    expect(published.diagnostics.map((d) => d.code).sort()).toEqual(['no-debugger', 'no-eval'])
    const debuggerDiagnostic = published.diagnostics.find((d) => d.code === 'no-debugger')!
    const actions = (await s.codeActions(uri, debuggerDiagnostic.range, [
      debuggerDiagnostic,
    ])) as Array<{
      title: string
      kind: string
      edit: {
        documentChanges: Array<{
          textDocument: { version: number }
          edits: Array<{ range: unknown; newText: string }>
        }>
      }
    }>
    expect(actions).toHaveLength(1)
    expect(actions[0]).toMatchObject({ title: 'Remove the debugger statement', kind: 'quickfix' })
    expect(actions[0]!.edit.documentChanges[0]!.textDocument.version).toBe(1)
    expect(actions[0]!.edit.documentChanges[0]!.edits[0]).toEqual({
      range: { start: { line: 1, character: 0 }, end: { line: 2, character: 0 } },
      newText: '',
    })
    // A client that does not echo `data` still gets the fix by range.
    const { data: _data, ...withoutData } = debuggerDiagnostic
    expect(await s.codeActions(uri, debuggerDiagnostic.range, [withoutData])).toHaveLength(1)
    // After an edit, fixes for the old version are not offered.
    await s.change(uri, 2, [
      {
        range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } },
        text: '// x\r\n',
      },
    ])
    expect(await s.codeActions(uri, debuggerDiagnostic.range, [debuggerDiagnostic])).toEqual([])
  })

  it('debounces diagnostics per document version and never publishes a stale version', async () => {
    const runs: number[] = []
    const slow: DiagnosticsProvider = {
      name: 'slow',
      async provideDiagnostics(document, { signal }) {
        runs.push(document.version)
        if (document.version < 5)
          await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
        return [
          {
            range: { start: { line: 0, character: 0 }, end: { line: 0, character: 1 } },
            message: `v${document.version}`,
          },
        ]
      },
    }
    const s = await session({ diagnostics: slow, settings: noDebounce })
    await s.open(uri, 'a')
    for (let version = 2; version <= 5; version++)
      await s.change(uri, version, [{ text: `text ${version}` }])
    const published = await eventually(() => s.diagnostics.find((d) => d.version === 5))
    expect(published.diagnostics[0]!.message).toBe('v5')
    expect(s.diagnostics.every((d) => d.version === 5)).toBe(true)
  })

  it('a newer edit aborts the signal of the diagnostics run in flight for the older version', async () => {
    const signals = new Map<number, AbortSignal>()
    const held: DiagnosticsProvider = {
      name: 'held',
      async provideDiagnostics(document, { signal }) {
        signals.set(document.version, signal)
        // Version 1 runs until it is cancelled; later versions answer at once.
        if (document.version === 1)
          await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
        return [
          {
            range: { start: { line: 0, character: 0 }, end: { line: 0, character: 1 } },
            message: `v${document.version}`,
          },
        ]
      },
    }
    const s = await session({ diagnostics: held, settings: noDebounce })
    await s.open(uri, 'a')
    const older = await eventually(() => signals.get(1))
    expect(older.aborted).toBe(false)
    await s.change(uri, 2, [{ text: 'b' }])
    const published = await eventually(() => s.diagnostics.find((d) => d.version === 2))
    expect(published.diagnostics.map((d) => d.message)).toEqual(['v2'])
    expect(older.aborted).toBe(true)
    expect(isSuperseded(older.reason)).toBe(true)
    expect(signals.get(2)!.aborted).toBe(false)
    expect(s.diagnostics.map((d) => d.version)).toEqual([2])
  })

  it('coalesces rapid edits inside the diagnostics debounce into one run (manual clock)', async () => {
    const clock = new ManualClock()
    const runs: number[] = []
    const counting: DiagnosticsProvider = {
      name: 'counting',
      async provideDiagnostics(document) {
        runs.push(document.version)
        return []
      },
    }
    const s = await session({
      diagnostics: counting,
      clock,
      settings: { diagnostics: { debounceMs: 200 } },
    })
    await s.open(uri, '')
    for (let version = 2; version <= 20; version++) {
      await s.change(uri, version, [
        {
          range: { start: { line: 0, character: version }, end: { line: 0, character: version } },
          text: 'x',
        },
      ])
      await clock.advanceAsync(50)
    }
    expect(runs).toEqual([])
    await clock.advanceAsync(200)
    await eventually(() => s.diagnostics.length === 1)
    expect(runs).toEqual([20])
    expect(s.server.documents.get(uri)?.text).toBe('x'.repeat(19))
  })

  it('applies initializationOptions and rejects bad configuration with a clear message, keeping the old settings', async () => {
    const s = await session(
      { completion: createContextCompletionProvider() },
      { initializationOptions: { completion: { maxItems: 2 } } },
    )
    expect(s.server.settings().completion.maxItems).toBe(2)
    await s.pair.client.sendNotification(DidChangeConfigurationNotification.type, {
      settings: { aide: { completion: { debounceMs: 'soon' } } },
    })
    const message = await eventually(() =>
      s.notifications.find((n) => n.method === 'window/showMessage'),
    )
    expect((message.params as { message: string }).message).toMatch(
      /aide.completion.debounceMs must be a number/,
    )
    expect(s.server.settings().completion.debounceMs).toBe(0)
    await s.pair.client.sendNotification(DidChangeConfigurationNotification.type, {
      settings: { aide: { completion: { maxItems: 7 } } },
    })
    await eventually(() => s.server.settings().completion.maxItems === 7)
    expect(() => s.server.updateSettings({ cache: { ttlMs: -1 } })).toThrow(/settings.cache.ttlMs/)
  })

  it('reports bad initializationOptions without failing to start', async () => {
    const s = await session(
      { completion: createContextCompletionProvider() },
      { initializationOptions: { unknown: true } },
    )
    const message = await eventually(() =>
      s.notifications.find((n) => n.method === 'window/showMessage'),
    )
    expect((message.params as { message: string }).message).toMatch(
      /initializationOptions.unknown is not a known setting/,
    )
    expect(s.server.settings().completion.enabled).toBe(true)
  })

  it('survives malformed requests and notifications and keeps serving', async () => {
    const s = await session({ completion: createContextCompletionProvider(), settings: noDebounce })
    await expect(
      s.pair.client.sendRequest(CompletionRequest.type, {
        textDocument: {},
        position: { line: 0, character: 0 },
      } as never),
    ).rejects.toMatchObject({
      code: ErrorCodes.InvalidParams,
      message: expect.stringMatching(/params.textDocument.uri/),
    })
    await expect(
      s.pair.client.sendRequest(CompletionRequest.type, {
        textDocument: { uri },
        position: { line: -1, character: 0 },
      }),
    ).rejects.toMatchObject({
      code: ErrorCodes.InvalidParams,
    })
    await expect(s.pair.client.sendRequest('textDocument/codeAction', null)).rejects.toMatchObject({
      code: ErrorCodes.InvalidParams,
    })
    await s.pair.client.sendNotification(DidChangeTextDocumentNotification.type, {
      textDocument: { uri: 'file:///never-opened.ts', version: 2 },
      contentChanges: [{ text: 'x' }],
    })
    await s.pair.client.sendNotification('textDocument/didOpen', { textDocument: { uri: 42 } })
    await eventually(() => s.server.stats().protocolErrors === 2)
    expect(await s.complete('file:///unknown.ts', { line: 0, character: 0 })).toEqual({
      isIncomplete: true,
      items: [],
    })
    await s.open(uri, 'value = 1\nval')
    expect((await s.complete(uri, { line: 1, character: 3 })).items[0]!.textEdit!.newText).toMatch(
      /^value/,
    )
  })

  it('handles huge files, surrogate pairs and a cursor at the end of the file', async () => {
    const control = controlledProvider((request) => [`/*${request.context.prefix.length}*/`])
    const s = await session({
      completion: control.provider,
      settings: { ...noDebounce, context: { maxPrefixChars: 1000, maxSuffixChars: 100 } },
    })
    const huge = `${'const x = "😀"\n'.repeat(200_000)}x`
    await s.open(uri, huge)
    const lastLine = huge.split('\n').length - 1
    const list = await s.complete(uri, { line: lastLine + 5, character: 80 })
    expect(list.items).toHaveLength(1)
    expect(control.calls[0]!.context.prefix.length).toBeLessThanOrEqual(1000)
    expect(control.calls[0]!.context.suffix).toBe('')
    // The cursor inside a surrogate pair is moved before it.
    await s.open('untitled:emoji', 'a😀b')
    await s.complete('untitled:emoji', { line: 0, character: 2 })
    expect(control.calls[1]!.context.prefix).toBe('a')
  })

  it('keeps up with rapid incremental edits sent without waiting', async () => {
    const s = await session({ completion: createContextCompletionProvider(), settings: noDebounce })
    await s.open(uri, '')
    const word = 'const answer = 42;\n'
    let text = ''
    const sends: Array<Promise<void>> = []
    for (let i = 0; i < 300; i++) {
      const character = word[i % word.length]!
      const lines = text.split('\n')
      const position = { line: lines.length - 1, character: lines[lines.length - 1]!.length }
      sends.push(
        s.pair.client.sendNotification(DidChangeTextDocumentNotification.type, {
          textDocument: { uri, version: i + 2 },
          contentChanges: [{ range: { start: position, end: position }, text: character }],
        }),
      )
      text += character
    }
    await Promise.all(sends)
    await eventually(() => s.server.documents.version(uri) === 301)
    expect(s.server.documents.get(uri)?.text).toBe(text)
  })

  it('reports progress when the client supports it', async () => {
    const s = await session({}, { capabilities: { window: { workDoneProgress: true } } })
    const progress: unknown[] = []
    s.pair.client.onRequest(WorkDoneProgressCreateRequest.type, () => undefined)
    s.pair.client.onNotification('$/progress', (params: { value: unknown }) => {
      progress.push(params.value)
    })
    const result = await s.server.withProgress('Loading model', async (report) => {
      report('reading weights', 50)
      return 'loaded'
    })
    expect(result).toBe('loaded')
    await eventually(() => progress.length === 3)
    expect(progress).toEqual([
      { kind: 'begin', title: 'Loading model', cancellable: false, percentage: 0 },
      { kind: 'report', message: 'reading weights', percentage: 50 },
      { kind: 'end' },
    ])
  })

  it('runs the task without progress when the client never answers the create request', async () => {
    const clock = new ManualClock()
    const s = await session({ clock }, { capabilities: { window: { workDoneProgress: true } } })
    const progress: unknown[] = []
    let asked = 0
    s.pair.client.onRequest(WorkDoneProgressCreateRequest.type, () => {
      asked++
      return new Promise<void>(() => undefined)
    })
    s.pair.client.onNotification('$/progress', (params: { value: unknown }) => {
      progress.push(params.value)
    })
    let reported = 0
    const running = s.server.withProgress('Loading model', async (report) => {
      report('reading weights', 50)
      reported++
      return 'loaded'
    })
    await eventually(() => asked === 1)
    expect(reported).toBe(0)
    await clock.advanceAsync(2_000)
    expect(await running).toBe('loaded')
    expect(reported).toBe(1)
    expect(progress).toEqual([])
  })

  it('answers empty, not an error, when the provider fails or times out', async () => {
    let mode: 'throw' | 'hang' = 'throw'
    const provider: CompletionProvider = {
      name: 'flaky',
      async provideCompletions(request) {
        if (mode === 'throw') throw new Error('model crashed')
        return new Promise((_, reject) =>
          request.signal.addEventListener('abort', () => reject(request.signal.reason), {
            once: true,
          }),
        )
      },
    }
    const s = await session({
      completion: provider,
      settings: { ...noDebounce, completion: { ...noDebounce.completion, timeoutMs: 50 } },
    })
    await s.open(uri, 'x')
    expect((await s.complete(uri, { line: 0, character: 1 })).items).toEqual([])
    mode = 'hang'
    expect((await s.complete(uri, { line: 0, character: 1 })).items).toEqual([])
    expect(s.server.stats().completion).toMatchObject({ failed: 1, timedOut: 1 })
  })

  it('survives a client that disappears mid-request, and disposes idempotently', async () => {
    const control = controlledProvider()
    control.hold()
    const pair = createInMemoryLspPair()
    const server = createLanguageServer({
      connection: pair.server,
      closed: pair.closed,
      completion: control.provider,
      diagnostics: createAuditDiagnosticsProvider(),
      settings: noDebounce,
    })
    server.listen()
    pair.client.listen()
    await pair.client.sendRequest('initialize', {
      processId: null,
      rootUri: null,
      capabilities: {},
    })
    await pair.client.sendNotification('textDocument/didOpen', {
      textDocument: { uri, languageId: 'ts', version: 1, text: 'debugger\nabc' },
    })
    void pair.client
      .sendRequest(CompletionRequest.type, {
        textDocument: { uri },
        position: { line: 1, character: 3 },
      })
      .catch(() => undefined)
    await eventually(() => control.calls.length === 1)
    pair.dispose()
    await eventually(() => server.stats().disposed)
    control.release()
    await server.dispose()
    expect(() => server.listen()).toThrow(/already called|disposed/)
  })

  it('rejects bad options naming the field', () => {
    const pair = createInMemoryLspPair()
    expect(() =>
      createLanguageServer({ connection: pair.server, completion: {} as never }),
    ).toThrow(/options.completion.provideCompletions/)
    expect(() =>
      createLanguageServer({ connection: pair.server, settings: { completion: { maxItems: 0 } } }),
    ).toThrow(/options.settings.completion.maxItems/)
    expect(() => createLanguageServer({} as never)).toThrow(/options.connection/)
    pair.dispose()
  })
})
