import type { Clock } from '@aide/core'
import {
  CodeActionRequest,
  CompletionRequest,
  DidChangeTextDocumentNotification,
  DidOpenTextDocumentNotification,
  InitializedNotification,
  InitializeRequest,
  type InitializeResult,
  type Position,
  PublishDiagnosticsNotification,
  type PublishDiagnosticsParams,
} from 'vscode-languageserver-protocol'
import {
  createLanguageServer,
  type LanguageServer,
  type LanguageServerOptions,
} from '../src/index.ts'
import { createInMemoryLspPair, type InMemoryLspPair } from '../src/node.ts'

/** Position of the end of the first occurrence of `needle` in `text` (UTF-16). */
export function positionAfter(text: string, needle: string): Position {
  const index = text.indexOf(needle)
  if (index < 0) throw new Error(`"${needle}" not in text`)
  return positionAtOffset(text, index + needle.length)
}

export function positionAtOffset(text: string, offset: number): Position {
  const before = text.slice(0, offset)
  const line = before.split('\n').length - 1
  return { line, character: offset - (before.lastIndexOf('\n') + 1) }
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually<T>(
  check: () => T | undefined | false,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = check()
    if (value) return value
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

export interface Session {
  pair: InMemoryLspPair
  server: LanguageServer
  initializeResult: InitializeResult
  diagnostics: PublishDiagnosticsParams[]
  notifications: Array<{ method: string; params: unknown }>
  open(uri: string, text: string, version?: number): Promise<void>
  change(
    uri: string,
    version: number,
    changes: Array<{ text: string; range?: { start: Position; end: Position } }>,
  ): Promise<void>
  complete(
    uri: string,
    position: Position,
  ): Promise<{
    isIncomplete: boolean
    items: Array<{ label: string; textEdit?: { newText: string } }>
  }>
  codeActions(
    uri: string,
    range: { start: Position; end: Position },
    diagnostics: unknown[],
  ): Promise<unknown[]>
  dispose(): Promise<void>
}

export async function startSession(
  options: Omit<LanguageServerOptions, 'connection'> = {},
  init: {
    initializationOptions?: unknown
    capabilities?: Record<string, unknown>
    clock?: Clock
  } = {},
): Promise<Session> {
  const pair = createInMemoryLspPair()
  const server = createLanguageServer({ ...options, connection: pair.server, closed: pair.closed })
  server.listen()
  const diagnostics: PublishDiagnosticsParams[] = []
  const notifications: Array<{ method: string; params: unknown }> = []
  pair.client.onNotification(PublishDiagnosticsNotification.type, (params) => {
    diagnostics.push(params)
  })
  pair.client.onNotification('window/showMessage', (params: unknown) => {
    notifications.push({ method: 'window/showMessage', params })
  })
  pair.client.listen()
  const initializeResult = await pair.client.sendRequest(InitializeRequest.type, {
    processId: null,
    rootUri: null,
    capabilities: init.capabilities ?? {},
    ...(init.initializationOptions !== undefined
      ? { initializationOptions: init.initializationOptions }
      : {}),
  })
  await pair.client.sendNotification(InitializedNotification.type, {})
  return {
    pair,
    server,
    initializeResult,
    diagnostics,
    notifications,
    async open(uri, text, version = 1) {
      await pair.client.sendNotification(DidOpenTextDocumentNotification.type, {
        textDocument: { uri, languageId: 'typescript', version, text },
      })
      await eventually(() => server.documents.version(uri) === version)
    },
    async change(uri, version, changes) {
      await pair.client.sendNotification(DidChangeTextDocumentNotification.type, {
        textDocument: { uri, version },
        contentChanges: changes as never,
      })
      await eventually(() => (server.documents.version(uri) ?? -1) >= version)
    },
    async complete(uri, position) {
      return (await pair.client.sendRequest(CompletionRequest.type, {
        textDocument: { uri },
        position,
      })) as never
    },
    async codeActions(uri, range, diagnostics) {
      return (await pair.client.sendRequest(CodeActionRequest.type, {
        textDocument: { uri },
        range,
        context: { diagnostics: diagnostics as never },
      })) as unknown[]
    },
    async dispose() {
      await server.dispose()
      pair.dispose()
    },
  }
}
