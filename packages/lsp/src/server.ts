/**
 * The toolkit's language server: wires a `vscode-languageserver` connection
 * to a document store, completion (standard and LSP 3.18 inline) with
 * debounce, supersession and cancellation down to the provider, a completion
 * cache with prefix reuse, debounced diagnostics with quick fixes, code
 * actions, progress and validated settings.
 */
import {
  AideError,
  assertFunction,
  assertObject,
  assertString,
  type Clock,
  type Disposable,
  DisposableStore,
  type EventSink,
  type Logger,
  type Meter,
  noopEventSink,
  noopLogger,
  noopMeter,
  systemClock,
  withDeadline,
} from '@aide/core'
import {
  type CancellationToken,
  type CodeAction,
  CodeActionKind,
  type CompletionItem,
  CompletionItemKind,
  type CompletionList,
  type Connection,
  type Diagnostic,
  DiagnosticSeverity,
  ErrorCodes,
  type InitializeParams,
  type InitializeResult,
  type InlineCompletionItem,
  LSPErrorCodes,
  MessageType,
  type Position,
  type Range,
  ResponseError,
  ShowMessageNotification,
  TextDocumentSyncKind,
} from 'vscode-languageserver'
import { CompletionCache, type CompletionCacheStats } from './completion-cache.js'
import { gatherContext } from './context.js'
import { type DocumentSnapshot, DocumentStore, type DocumentStoreStats } from './document-store.js'
import { isSuperseded, LatestRequestScheduler, type LatestRequestStats } from './latest-request.js'
import type {
  CodeActionProvider,
  CompletionProvider,
  CompletionSuggestion,
  DiagnosticsProvider,
  DiagnosticWithFixes,
  QuickFix,
} from './providers.js'
import {
  type LanguageServerSettings,
  type LanguageServerSettingsInput,
  parseSettings,
} from './settings.js'

/** Events a {@link LanguageServer} emits through its `events` sink. */
export interface LanguageServerEvents {
  'completion-end': {
    uri: string
    version: number
    trigger: 'completion' | 'inline'
    items: number
    cached: boolean
    durationMs: number
  }
  'completion-error': { uri: string; trigger: 'completion' | 'inline'; error: AideError }
  'diagnostics-publish': { uri: string; version: number; count: number; durationMs: number }
  'settings-change': { settings: LanguageServerSettings }
  'settings-error': { error: AideError }
}

/** Options of {@link createLanguageServer}. */
export interface LanguageServerOptions {
  /** A connection from `vscode-languageserver/node` (stdio, socket or in-memory streams). */
  connection: Connection
  /** Reported to the client in `serverInfo`. Default `aide-lsp`. */
  name?: string
  /** Reported to the client in `serverInfo`. Default `0.0.0`. */
  version?: string
  /** Answers completion and inline completion requests. Without one, completion is not advertised. */
  completion?: CompletionProvider
  /** Diagnostics providers, run together and merged. */
  diagnostics?: DiagnosticsProvider | readonly DiagnosticsProvider[]
  /** Extra code actions (quick fixes from diagnostics are always offered). */
  codeActions?: CodeActionProvider
  /**
   * More documents for context gathering besides the open ones (e.g. unopened
   * workspace files from a `WorkspaceIndex`). An open document with the same
   * URI wins.
   */
  contextDocuments?: () => readonly DocumentSnapshot[]
  /** Settings before the client's `initializationOptions` and configuration apply. */
  settings?: LanguageServerSettingsInput
  /** Section of `workspace/didChangeConfiguration` settings read (`{ aide: {...} }`). Default `aide`. */
  configurationSection?: string
  /**
   * Aborts when the transport is gone (the client disappeared): the server
   * disposes itself and answers nothing more. `createInMemoryLspPair` provides one.
   */
  closed?: AbortSignal
  /** Runs after `initialized` (e.g. to warm a model under {@link LanguageServer.withProgress}). Errors are logged and shown. */
  onInitialized?: (server: LanguageServer) => void | Promise<void>
  /** Clock for debounces, deadlines and cache expiry. */
  clock?: Clock
  logger?: Logger
  meter?: Meter
  events?: EventSink<LanguageServerEvents>
}

/** Plain figures from {@link LanguageServer.stats}. */
export interface LanguageServerStats {
  documents: DocumentStoreStats
  completion: {
    requests: number
    answered: number
    fromCache: number
    superseded: number
    cancelled: number
    stale: number
    timedOut: number
    failed: number
    scheduler: LatestRequestStats
  }
  cache: CompletionCacheStats
  diagnostics: { runs: number; published: number; stale: number; failed: number }
  codeActions: { requests: number; returned: number }
  protocolErrors: number
  initialized: boolean
  disposed: boolean
}

/** The server built by {@link createLanguageServer}. */
export interface LanguageServer extends Disposable {
  /** The open documents. */
  readonly documents: DocumentStore
  /** The settings in force. */
  settings(): LanguageServerSettings
  /** Applies a partial settings object (validated; on error nothing changes and `E_INVALID_INPUT` is thrown). */
  updateSettings(input: unknown): LanguageServerSettings
  /**
   * Runs `task` under a `window/workDoneProgress` indicator when the client
   * supports it (model loading, indexing); otherwise just runs it.
   */
  withProgress<T>(
    title: string,
    task: (report: (message: string, percentage?: number) => void) => Promise<T>,
  ): Promise<T>
  /** The client's workspace folders as file-system paths (from `initialize`), empty before it. */
  workspaceFolders(): string[]
  /** Forgets every cached suggestion (e.g. after a better model became ready). */
  clearCompletionCache(): void
  /** Starts listening on the connection. Call once. */
  listen(): void
  /** Plain figures. */
  stats(): LanguageServerStats
}

/** How long `withProgress` waits for the client to create a progress token (ms). */
const PROGRESS_CREATE_TIMEOUT_MS = 2_000

const SEVERITY = {
  error: DiagnosticSeverity.Error,
  warning: DiagnosticSeverity.Warning,
  information: DiagnosticSeverity.Information,
  hint: DiagnosticSeverity.Hint,
} as const

interface PublishedFixes {
  version: number
  entries: Array<{ diagnostic: Diagnostic; fixes: QuickFix[] }>
}

function toSignal(
  token: CancellationToken | undefined,
  store: DisposableStore,
): AbortSignal | undefined {
  if (!token) return undefined
  const controller = new AbortController()
  if (token.isCancellationRequested) controller.abort()
  else {
    const listener = token.onCancellationRequested(() => controller.abort())
    store.add(() => listener.dispose())
  }
  return controller.signal
}

/** A promise that never settles: a disposed server sends no more replies into a dead transport. */
function silence<T>(): Promise<T> {
  return new Promise<T>(() => undefined)
}

function invalidParams(message: string): ResponseError<void> {
  return new ResponseError(ErrorCodes.InvalidParams, message)
}

function readPosition(params: unknown, method: string): { uri: string; position: Position } {
  if (typeof params !== 'object' || params === null)
    throw invalidParams(`${method}: params must be an object`)
  const { textDocument, position } = params as {
    textDocument?: { uri?: unknown }
    position?: { line?: unknown; character?: unknown }
  }
  if (typeof textDocument?.uri !== 'string' || textDocument.uri.length === 0)
    throw invalidParams(`${method}: params.textDocument.uri must be a non-empty string`)
  if (!Number.isInteger(position?.line) || (position?.line as number) < 0)
    throw invalidParams(`${method}: params.position.line must be an integer >= 0`)
  if (!Number.isInteger(position?.character) || (position?.character as number) < 0)
    throw invalidParams(`${method}: params.position.character must be an integer >= 0`)
  return {
    uri: textDocument.uri,
    position: { line: position!.line as number, character: position!.character as number },
  }
}

function readWorkspaceFolders(params: InitializeParams | undefined): string[] {
  const uris: unknown[] = []
  if (Array.isArray(params?.workspaceFolders))
    for (const folder of params.workspaceFolders) uris.push(folder?.uri)
  if (uris.length === 0) uris.push(params?.rootUri)
  const paths: string[] = []
  for (const uri of uris) {
    if (typeof uri !== 'string' || !uri.startsWith('file://')) continue
    try {
      paths.push(decodeURIComponent(new URL(uri).pathname))
    } catch {
      // A malformed URI names no folder.
    }
  }
  return paths
}

function rangesOverlap(a: Range, b: Range): boolean {
  const before = (p: Position, q: Position) =>
    p.line < q.line || (p.line === q.line && p.character < q.character)
  return !before(a.end, b.start) && !before(b.end, a.start)
}

/**
 * Creates a language server on `options.connection`. Call `listen()` to start
 * it. Protocol handlers validate their params (a malformed request gets an
 * `InvalidParams` error, never a crash) and never answer for a document
 * version that changed while they worked.
 */
export function createLanguageServer(options: LanguageServerOptions): LanguageServer {
  assertObject(options, 'options')
  assertObject(options.connection, 'options.connection')
  if (options.completion !== undefined) {
    assertObject(options.completion, 'options.completion')
    assertFunction(options.completion.provideCompletions, 'options.completion.provideCompletions')
  }
  const diagnosticsProviders: readonly DiagnosticsProvider[] =
    options.diagnostics === undefined
      ? []
      : Array.isArray(options.diagnostics)
        ? options.diagnostics
        : [options.diagnostics as DiagnosticsProvider]
  diagnosticsProviders.forEach((provider, index) => {
    assertObject(provider, `options.diagnostics[${index}]`)
    assertFunction(provider.provideDiagnostics, `options.diagnostics[${index}].provideDiagnostics`)
  })
  if (options.codeActions !== undefined) {
    assertObject(options.codeActions, 'options.codeActions')
    assertFunction(options.codeActions.provideCodeActions, 'options.codeActions.provideCodeActions')
  }
  if (options.onInitialized !== undefined)
    assertFunction(options.onInitialized, 'options.onInitialized')
  if (
    options.closed !== undefined &&
    (typeof options.closed !== 'object' || typeof options.closed.aborted !== 'boolean')
  ) {
    throw new AideError('E_INVALID_INPUT', 'options.closed must be an AbortSignal', {
      details: { field: 'options.closed' },
    })
  }
  const section = options.configurationSection ?? 'aide'
  assertString(section, 'options.configurationSection')

  const connection = options.connection
  const clock = options.clock ?? systemClock
  const logger = options.logger ?? noopLogger
  const meter = options.meter ?? noopMeter
  const events = (options.events ?? noopEventSink) as EventSink<LanguageServerEvents>
  const name = options.name ?? 'aide-lsp'
  const serverVersion = options.version ?? '0.0.0'
  let settings = parseSettings(options.settings ?? {}, undefined, 'options.settings')

  const documents = new DocumentStore()
  const scheduler = new LatestRequestScheduler({ clock })
  let cache = new CompletionCache({
    maxEntries: settings.cache.maxEntries,
    ttlMs: settings.cache.ttlMs,
    clock,
  })
  const disposables = new DisposableStore()
  const published = new Map<string, PublishedFixes>()
  const latency = meter.histogram?.('aide_lsp_completion_ms', { help: 'Completion latency (ms)' })
  let clientSupportsProgress = false
  let folders: string[] = []
  let initialized = false
  let listening = false
  let disposed = false
  let protocolErrors = 0
  const completionStats = {
    requests: 0,
    answered: 0,
    fromCache: 0,
    superseded: 0,
    cancelled: 0,
    stale: 0,
    timedOut: 0,
    failed: 0,
  }
  const diagnosticStats = { runs: 0, published: 0, stale: 0, failed: 0 }
  const codeActionStats = { requests: 0, returned: 0 }

  const showError = (message: string) => {
    try {
      Promise.resolve(
        connection.sendNotification(ShowMessageNotification.type, {
          type: MessageType.Error,
          message,
        }),
      ).catch(() => undefined)
    } catch {
      // The client may be gone; the message is also logged.
    }
  }

  const commitSettings = (next: LanguageServerSettings) => {
    if (
      next.cache.maxEntries !== settings.cache.maxEntries ||
      next.cache.ttlMs !== settings.cache.ttlMs
    ) {
      cache.dispose()
      cache = new CompletionCache({
        maxEntries: next.cache.maxEntries,
        ttlMs: next.cache.ttlMs,
        clock,
      })
    }
    settings = next
    events.emit('settings-change', { settings })
  }

  const applySettings = (input: unknown, field: string): boolean => {
    try {
      commitSettings(parseSettings(input, settings, field))
      return true
    } catch (error) {
      const aideError = AideError.isInstance(error)
        ? error
        : new AideError('E_INVALID_INPUT', String(error))
      events.emit('settings-error', { error: aideError })
      logger.warn({ err: aideError }, 'lsp: settings rejected')
      showError(`${name}: settings rejected, keeping the previous ones: ${aideError.message}`)
      return false
    }
  }

  // ---- completion ---------------------------------------------------------

  function contextSources(): DocumentSnapshot[] {
    const open = documents.all()
    if (!options.contextDocuments) return open
    let extra: readonly DocumentSnapshot[] = []
    try {
      extra = options.contextDocuments()
    } catch (error) {
      logger.warn({ err: error }, 'lsp: contextDocuments failed')
    }
    if (!Array.isArray(extra) || extra.length === 0) return open
    const openUris = new Set(open.map((d) => d.uri))
    return [...open, ...extra.filter((d) => d && typeof d.uri === 'string' && !openUris.has(d.uri))]
  }

  async function complete(
    uri: string,
    position: Position,
    trigger: 'completion' | 'inline',
    token: CancellationToken | undefined,
  ): Promise<CompletionSuggestion[] | 'stale' | 'superseded'> {
    completionStats.requests++
    const provider = options.completion
    const snapshot = documents.get(uri)
    if (!provider || !settings.completion.enabled || !snapshot) return []
    const started = clock.now()
    const requestStore = new DisposableStore()
    const signal = toSignal(token, requestStore)
    const current = settings
    try {
      const suggestions = await scheduler.run(
        `${trigger}:${uri}`,
        async (inner) => {
          const context = gatherContext(snapshot, position, contextSources(), current.context)
          const key = {
            uri,
            offset: context.offset,
            prefix: context.prefix,
            suffix: context.suffix,
          }
          if (current.cache.enabled) {
            const hit = cache.lookup(key)
            if (hit) {
              completionStats.fromCache++
              return {
                suggestions: hit.suggestions
                  .slice(0, current.completion.maxItems)
                  .map((text) => ({ text, detail: `${name}: reused` })),
                cached: true,
              }
            }
          }
          const result = await provider.provideCompletions({
            document: snapshot,
            position,
            context,
            trigger,
            maxItems: current.completion.maxItems,
            signal: inner,
          })
          if (!Array.isArray(result))
            throw new AideError(
              'E_PROTOCOL',
              `lsp: completion provider ${provider.name} returned ${typeof result}, expected an array`,
            )
          const valid = result.filter(
            (s): s is CompletionSuggestion => typeof s?.text === 'string' && s.text.length > 0,
          )
          if (current.cache.enabled)
            cache.set(
              key,
              valid.map((s) => s.text),
            )
          return {
            suggestions: valid.slice(0, current.completion.maxItems).map((s) => ({
              text: s.text,
              detail: typeof s.detail === 'string' ? s.detail : name,
            })),
            cached: false,
          }
        },
        {
          debounceMs:
            trigger === 'inline'
              ? current.completion.inlineDebounceMs
              : current.completion.debounceMs,
          timeoutMs: current.completion.timeoutMs,
          ...(signal ? { signal } : {}),
        },
      )
      if (documents.version(uri) !== snapshot.version) {
        completionStats.stale++
        return 'stale'
      }
      completionStats.answered++
      const durationMs = clock.now() - started
      latency?.observe(durationMs, { trigger })
      events.emit('completion-end', {
        uri,
        version: snapshot.version,
        trigger,
        items: suggestions.suggestions.length,
        cached: suggestions.cached,
        durationMs,
      })
      return suggestions.suggestions
    } catch (error) {
      if (disposed) return silence()
      if (isSuperseded(error)) {
        completionStats.superseded++
        return 'superseded'
      }
      const aideError = AideError.isInstance(error)
        ? error
        : new AideError('E_INTERNAL', `lsp: completion failed: ${String(error)}`, { cause: error })
      if (aideError.code === 'E_CANCELLED') {
        completionStats.cancelled++
        throw new ResponseError(LSPErrorCodes.RequestCancelled, 'request cancelled')
      }
      if (aideError.code === 'E_TIMEOUT') completionStats.timedOut++
      else completionStats.failed++
      events.emit('completion-error', { uri, trigger, error: aideError })
      logger.warn({ err: aideError, uri, trigger }, 'lsp: completion failed')
      return []
    } finally {
      await requestStore.dispose()
    }
  }

  function toCompletionList(
    uri: string,
    position: Position,
    result: CompletionSuggestion[] | 'stale' | 'superseded',
  ): CompletionList {
    if (typeof result === 'string') return { isIncomplete: true, items: [] }
    const snapshot = documents.get(uri)
    if (!snapshot) return { isIncomplete: true, items: [] }
    const context = gatherContext(snapshot, position, [], {
      maxPrefixChars: 256,
      maxSuffixChars: 0,
      maxSnippets: 0,
    })
    const word = /[A-Za-z0-9_$]*$/.exec(context.linePrefix)?.[0] ?? ''
    const cursor = snapshot.document.positionAt(context.offset)
    const start = { line: cursor.line, character: cursor.character - word.length }
    const items: CompletionItem[] = result.map(({ text, detail }, index) => {
      const firstLine = text.split(/\r?\n/)[0] ?? text
      const label = `${word}${firstLine}`.trim() || text.trim()
      return {
        label,
        kind: CompletionItemKind.Text,
        detail: detail ?? name,
        sortText: String(index).padStart(4, '0'),
        filterText: `${word}${text}`,
        textEdit: { range: { start, end: cursor }, newText: `${word}${text}` },
        ...(text.includes('\n')
          ? {
              documentation: { kind: 'markdown' as const, value: `\`\`\`\n${word}${text}\n\`\`\`` },
            }
          : {}),
      }
    })
    return { isIncomplete: true, items }
  }

  // ---- diagnostics --------------------------------------------------------

  async function runDiagnostics(uri: string): Promise<void> {
    if (diagnosticsProviders.length === 0 || !settings.diagnostics.enabled) return
    const current = settings
    try {
      await scheduler.run(
        `diagnostics:${uri}`,
        async (signal) => {
          const snapshot = documents.get(uri)
          if (!snapshot) return
          diagnosticStats.runs++
          const started = clock.now()
          const results = await Promise.allSettled(
            diagnosticsProviders.map((provider) =>
              provider.provideDiagnostics(snapshot, { signal }),
            ),
          )
          if (signal.aborted) return
          if (documents.version(uri) !== snapshot.version) {
            diagnosticStats.stale++
            return
          }
          const entries: PublishedFixes['entries'] = []
          results.forEach((result, index) => {
            if (result.status === 'rejected') {
              diagnosticStats.failed++
              logger.warn(
                { err: result.reason, provider: diagnosticsProviders[index]!.name },
                'lsp: diagnostics provider failed',
              )
              return
            }
            if (!Array.isArray(result.value)) return
            for (const item of result.value as DiagnosticWithFixes[]) {
              if (!item || typeof item.message !== 'string' || typeof item.range !== 'object')
                continue
              const diagnostic: Diagnostic = {
                range: item.range,
                message: item.message,
                severity: SEVERITY[item.severity ?? 'warning'] ?? DiagnosticSeverity.Warning,
                source: item.source ?? diagnosticsProviders[index]!.name,
                ...(item.code !== undefined ? { code: item.code } : {}),
                data: { aideFix: entries.length, version: snapshot.version },
              }
              entries.push({ diagnostic, fixes: Array.isArray(item.fixes) ? item.fixes : [] })
            }
          })
          if (disposed) return
          published.set(uri, { version: snapshot.version, entries })
          diagnosticStats.published++
          await connection.sendDiagnostics({
            uri,
            version: snapshot.version,
            diagnostics: entries.map((e) => e.diagnostic),
          })
          events.emit('diagnostics-publish', {
            uri,
            version: snapshot.version,
            count: entries.length,
            durationMs: clock.now() - started,
          })
        },
        {
          debounceMs: current.diagnostics.debounceMs,
          timeoutMs: current.diagnostics.debounceMs + current.diagnostics.timeoutMs,
        },
      )
    } catch (error) {
      if (AideError.isInstance(error) && error.code === 'E_CANCELLED') return
      diagnosticStats.failed++
      logger.warn({ err: error, uri }, 'lsp: diagnostics failed')
    }
  }

  // ---- code actions -------------------------------------------------------

  async function codeActions(params: unknown, token: CancellationToken): Promise<CodeAction[]> {
    if (typeof params !== 'object' || params === null)
      throw invalidParams('textDocument/codeAction: params must be an object')
    const { textDocument, range, context } = params as {
      textDocument?: { uri?: unknown }
      range?: Range
      context?: { diagnostics?: Diagnostic[] }
    }
    if (typeof textDocument?.uri !== 'string')
      throw invalidParams('textDocument/codeAction: params.textDocument.uri must be a string')
    if (
      typeof range !== 'object' ||
      range === null ||
      typeof range.start !== 'object' ||
      typeof range.end !== 'object'
    ) {
      throw invalidParams('textDocument/codeAction: params.range must be a range')
    }
    codeActionStats.requests++
    const uri = textDocument.uri
    const snapshot = documents.get(uri)
    if (!snapshot) return []
    const actions: CodeAction[] = []
    const fixes = published.get(uri)
    if (fixes && fixes.version === snapshot.version) {
      const asked = Array.isArray(context?.diagnostics) ? context.diagnostics : []
      const chosen = new Set<number>()
      for (const diagnostic of asked) {
        const id = (diagnostic?.data as { aideFix?: unknown; version?: unknown } | undefined)
          ?.aideFix
        const version = (diagnostic?.data as { version?: unknown } | undefined)?.version
        if (typeof id === 'number' && version === snapshot.version && fixes.entries[id])
          chosen.add(id)
        else {
          fixes.entries.forEach((entry, index) => {
            if (
              entry.diagnostic.message === diagnostic?.message &&
              diagnostic?.range &&
              rangesOverlap(entry.diagnostic.range, diagnostic.range)
            )
              chosen.add(index)
          })
        }
      }
      if (asked.length === 0) {
        fixes.entries.forEach((entry, index) => {
          if (rangesOverlap(entry.diagnostic.range, range)) chosen.add(index)
        })
      }
      for (const index of [...chosen].sort((a, b) => a - b)) {
        const entry = fixes.entries[index]!
        for (const fix of entry.fixes) {
          actions.push({
            title: fix.title,
            kind: CodeActionKind.QuickFix,
            diagnostics: [entry.diagnostic],
            ...(fix.isPreferred ? { isPreferred: true } : {}),
            edit: {
              documentChanges: [
                { textDocument: { uri, version: snapshot.version }, edits: fix.edits },
              ],
            },
          })
        }
      }
    }
    if (options.codeActions) {
      const store = new DisposableStore()
      try {
        const signal = toSignal(token, store) ?? new AbortController().signal
        const extra = await options.codeActions.provideCodeActions(
          snapshot,
          range,
          context?.diagnostics ?? [],
          { signal },
        )
        if (Array.isArray(extra)) actions.push(...extra)
      } catch (error) {
        logger.warn({ err: error, uri }, 'lsp: code action provider failed')
      } finally {
        await store.dispose()
      }
    }
    if (documents.version(uri) !== snapshot.version) return []
    codeActionStats.returned += actions.length
    return actions
  }

  // ---- wiring -------------------------------------------------------------

  const guard =
    <A extends unknown[]>(method: string, handler: (...args: A) => void) =>
    (...args: A) => {
      try {
        handler(...args)
      } catch (error) {
        protocolErrors++
        logger.warn({ err: error, method }, 'lsp: rejected a malformed notification')
      }
    }

  const server: LanguageServer = {
    documents,
    settings: () => settings,
    updateSettings(input) {
      const next = parseSettings(input, settings)
      commitSettings(next)
      return next
    },
    async withProgress(title, task) {
      assertString(title, 'title')
      assertFunction(task, 'task')
      if (!clientSupportsProgress || disposed) return task(() => undefined)
      let progress: Awaited<ReturnType<Connection['window']['createWorkDoneProgress']>> | undefined
      const creating = connection.window.createWorkDoneProgress()
      try {
        // A client that never answers must not hold the task up: run it without progress.
        progress = await withDeadline(() => creating, {
          timeoutMs: PROGRESS_CREATE_TIMEOUT_MS,
          clock,
          label: 'lsp: window/workDoneProgress/create',
        })
        progress.begin(title, 0, undefined, false)
      } catch {
        progress = undefined
        // Should the answer come late, end the progress it made, so nothing shows as stuck.
        creating.then(
          (late) => late.done(),
          () => undefined,
        )
      }
      try {
        return await task((message, percentage) => progress?.report(percentage ?? 0, message))
      } finally {
        progress?.done()
      }
    },
    listen() {
      if (listening) throw new AideError('E_INVALID_STATE', 'lsp: listen() was already called')
      if (disposed) throw new AideError('E_DISPOSED', 'lsp: the server is disposed')
      listening = true
      if (options.closed) {
        if (options.closed.aborted)
          throw new AideError('E_INVALID_STATE', 'lsp: the transport is already closed')
        const onClosed = () => void server.dispose()
        options.closed.addEventListener('abort', onClosed, { once: true })
        disposables.add(() => options.closed?.removeEventListener('abort', onClosed))
      }
      disposables.add(
        connection.onInitialize((params: InitializeParams): InitializeResult => {
          clientSupportsProgress = params?.capabilities?.window?.workDoneProgress === true
          folders = readWorkspaceFolders(params)
          if (
            params?.initializationOptions !== undefined &&
            params.initializationOptions !== null
          ) {
            applySettings(params.initializationOptions, 'initializationOptions')
          }
          return {
            capabilities: {
              textDocumentSync: { openClose: true, change: TextDocumentSyncKind.Incremental },
              ...(options.completion
                ? {
                    completionProvider: {
                      resolveProvider: false,
                      triggerCharacters: ['.', '(', ' '],
                    },
                    inlineCompletionProvider: true,
                  }
                : {}),
              codeActionProvider: { codeActionKinds: [CodeActionKind.QuickFix] },
            },
            serverInfo: { name, version: serverVersion },
          }
        }),
      )
      disposables.add(
        connection.onInitialized(() => {
          initialized = true
          if (options.onInitialized) {
            Promise.resolve()
              .then(() => options.onInitialized!(server))
              .catch((error: unknown) => {
                logger.error({ err: error }, 'lsp: onInitialized failed')
                showError(
                  `${name}: start-up task failed: ${error instanceof Error ? error.message : String(error)}`,
                )
              })
          }
        }),
      )
      disposables.add(
        connection.onDidOpenTextDocument(
          guard('textDocument/didOpen', (params) => {
            const item = params?.textDocument
            documents.open(item?.uri, item?.languageId ?? '', item?.version, item?.text)
            void runDiagnostics(item.uri)
          }),
        ),
      )
      disposables.add(
        connection.onDidChangeTextDocument(
          guard('textDocument/didChange', (params) => {
            const changed = documents.change(
              params?.textDocument?.uri,
              params?.textDocument?.version ?? Number.NaN,
              params?.contentChanges,
            )
            if (changed) void runDiagnostics(changed.uri)
          }),
        ),
      )
      disposables.add(
        connection.onDidCloseTextDocument(
          guard('textDocument/didClose', (params) => {
            const uri = params?.textDocument?.uri
            if (!documents.close(uri)) return
            scheduler.cancel(`diagnostics:${uri}`)
            scheduler.cancel(`completion:${uri}`)
            scheduler.cancel(`inline:${uri}`)
            cache.invalidate(uri)
            published.delete(uri)
            void connection.sendDiagnostics({ uri, diagnostics: [] })?.catch?.(() => undefined)
          }),
        ),
      )
      disposables.add(
        connection.onDidChangeConfiguration(
          guard('workspace/didChangeConfiguration', (params) => {
            const raw = (params as { settings?: unknown } | undefined)?.settings
            if (raw === undefined || raw === null) return
            const scoped =
              typeof raw === 'object' && !Array.isArray(raw) && section in raw
                ? (raw as Record<string, unknown>)[section]
                : raw
            applySettings(scoped, section)
          }),
        ),
      )
      disposables.add(
        connection.onCompletion(async (params, token) => {
          const { uri, position } = readPosition(params, 'textDocument/completion')
          const result = await complete(uri, position, 'completion', token)
          return disposed ? silence() : toCompletionList(uri, position, result)
        }),
      )
      disposables.add(
        connection.languages.inlineCompletion.on(async (params, token) => {
          const { uri, position } = readPosition(params, 'textDocument/inlineCompletion')
          const result = await complete(uri, position, 'inline', token)
          if (disposed) return silence()
          if (typeof result === 'string') return { items: [] }
          const items: InlineCompletionItem[] = result.map(({ text }) => ({
            insertText: text,
            range: { start: position, end: position },
          }))
          return { items }
        }),
      )
      disposables.add(
        connection.onCodeAction(async (params, token) => {
          const actions = await codeActions(params, token)
          return disposed ? silence() : actions
        }),
      )
      disposables.add(
        connection.onShutdown(() => {
          scheduler.dispose()
        }),
      )
      connection.listen()
    },
    workspaceFolders: () => [...folders],
    clearCompletionCache() {
      cache.clear()
    },
    stats() {
      return {
        documents: documents.stats(),
        completion: { ...completionStats, scheduler: scheduler.stats() },
        cache: cache.stats(),
        diagnostics: { ...diagnosticStats },
        codeActions: { ...codeActionStats },
        protocolErrors,
        initialized,
        disposed,
      }
    },
    async dispose() {
      if (disposed) return
      disposed = true
      scheduler.dispose()
      cache.dispose()
      await disposables.dispose()
      documents.dispose()
      published.clear()
    },
  }
  return server
}
