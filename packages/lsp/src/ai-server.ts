/**
 * `@aide/lsp/ai`: the assembled AI language server. Services are wired with
 * core's lazy `ServiceManager`, so nothing heavy (a model) loads before it is
 * needed, and the server answers from context while it loads.
 */
import {
  AideError,
  assertFunction,
  assertObject,
  defineService,
  type EventSink,
  type Logger,
  type Meter,
  noopLogger,
  ServiceManager,
  type ServiceManagerStats,
} from '@aide/core'
import { createAuditDiagnosticsProvider } from './audit-rules.js'
import { createContextCompletionProvider } from './context-completion.js'
import type {
  CompletionProvider,
  CompletionRequest,
  CompletionSuggestion,
  DiagnosticsProvider,
} from './providers.js'
import {
  createLanguageServer,
  type LanguageServer,
  type LanguageServerEvents,
  type LanguageServerOptions,
  type LanguageServerStats,
} from './server.js'
import {
  WorkspaceIndex,
  type WorkspaceIndexOptions,
  type WorkspaceIndexStats,
} from './workspace-index.js'

/** Options of {@link createAiLanguageServer}. */
export interface AiLanguageServerOptions
  extends Pick<
    LanguageServerOptions,
    'connection' | 'closed' | 'name' | 'version' | 'settings' | 'clock' | 'configurationSection'
  > {
  /**
   * Loads the model-backed completion provider. Called once, lazily: right
   * after `initialized` when `preloadModel` is true (the default), otherwise
   * on the first completion. Until it resolves, and if it fails, completions
   * come from `fallbackCompletion`.
   */
  loadModel?: (context: { signal: AbortSignal }) => Promise<CompletionProvider>
  /** Start loading the model right after `initialized`. Default true. */
  preloadModel?: boolean
  /** Answers while the model loads, when it fails, and when it has nothing to say. Default: the context provider. */
  fallbackCompletion?: CompletionProvider
  /** Diagnostics providers. Default: the shipped audit rules. */
  diagnostics?: readonly DiagnosticsProvider[]
  /**
   * Index the unopened files of the client's first workspace folder (read
   * through `WorkspaceMemory`) for context gathering, under an "indexing"
   * progress indicator. `false` turns it off. Default: on, with the defaults
   * of {@link WorkspaceIndexOptions}.
   */
  workspace?: false | Omit<WorkspaceIndexOptions, 'root'>
  /** Extra services to tear down with the server (e.g. a cache, a bus), in reverse order. */
  resources?: ReadonlyArray<{ name: string; dispose(): void | Promise<void> }>
  logger?: Logger
  meter?: Meter
  events?: EventSink<LanguageServerEvents & AiLanguageServerEvents>
}

/** Events of the assembled server, on top of {@link LanguageServerEvents}. */
export interface AiLanguageServerEvents {
  'model-load-start': Record<string, never>
  'model-load-end': { durationMs: number; provider: string }
  'model-load-error': { error: AideError }
}

/** Plain figures from {@link AiLanguageServer.stats}. */
export interface AiLanguageServerStats extends LanguageServerStats {
  model: {
    state: 'absent' | 'idle' | 'loading' | 'ready' | 'failed'
    provider: string | undefined
    answered: number
    fallbackAnswers: number
  }
  services: ServiceManagerStats
  workspace: WorkspaceIndexStats | undefined
}

/** The assembled server. */
export interface AiLanguageServer extends Omit<LanguageServer, 'stats'> {
  /** The service manager holding the lazily created parts. */
  readonly services: ServiceManager
  /** Loads the model now (idempotent); resolves when it is ready. */
  loadModel(): Promise<CompletionProvider>
  /** Plain figures. */
  stats(): AiLanguageServerStats
}

const ModelService = defineService<CompletionProvider>('completion-model')
const WorkspaceService = defineService<WorkspaceIndex>('workspace-index')

/**
 * Creates the assembled AI language server on `options.connection`. Call
 * `listen()` to start it.
 */
export function createAiLanguageServer(options: AiLanguageServerOptions): AiLanguageServer {
  assertObject(options, 'options')
  if (options.loadModel !== undefined) assertFunction(options.loadModel, 'options.loadModel')
  if (options.fallbackCompletion !== undefined) {
    assertObject(options.fallbackCompletion, 'options.fallbackCompletion')
    assertFunction(
      options.fallbackCompletion.provideCompletions,
      'options.fallbackCompletion.provideCompletions',
    )
  }
  const logger = options.logger ?? noopLogger
  const events = options.events
  const fallback = options.fallbackCompletion ?? createContextCompletionProvider()
  const services = new ServiceManager({
    logger,
    ...(options.clock ? { clock: options.clock } : {}),
  })
  const loadModel = options.loadModel
  let modelState: AiLanguageServerStats['model']['state'] = loadModel ? 'idle' : 'absent'
  let modelName: string | undefined
  let modelAnswers = 0
  let fallbackAnswers = 0
  let server: LanguageServer | undefined
  let workspaceIndex: WorkspaceIndex | undefined
  if (options.workspace !== undefined && options.workspace !== false)
    assertObject(options.workspace, 'options.workspace')

  for (const resource of options.resources ?? []) {
    assertObject(resource, 'options.resources[]')
    services.registerValue(defineService<unknown>(`resource:${resource.name}`), resource, {
      dispose: () => resource.dispose(),
    })
  }
  if (loadModel) {
    services.register(ModelService, {
      factory: async (_deps, context) => {
        const started = Date.now()
        modelState = 'loading'
        events?.emit('model-load-start', {})
        try {
          const load = () => loadModel({ signal: context.signal })
          const provider = server
            ? await server.withProgress('aide: loading the completion model', load)
            : await load()
          assertObject(provider, 'loadModel() result')
          assertFunction(provider.provideCompletions, 'loadModel() result.provideCompletions')
          modelState = 'ready'
          modelName = provider.name
          // Suggestions cached while answering from context must not hide the model's.
          server?.clearCompletionCache()
          events?.emit('model-load-end', {
            durationMs: Date.now() - started,
            provider: provider.name,
          })
          return provider
        } catch (error) {
          modelState = 'failed'
          const aideError = AideError.isInstance(error)
            ? error
            : new AideError(
                'E_MODEL',
                `lsp: loading the completion model failed: ${String(error)}`,
                { cause: error },
              )
          events?.emit('model-load-error', { error: aideError })
          logger.error({ err: aideError }, 'lsp: model load failed; answering from context')
          throw aideError
        }
      },
    })
  }

  const ensureModel = (): Promise<CompletionProvider> => {
    if (!loadModel)
      return Promise.reject(
        new AideError('E_UNAVAILABLE', 'lsp: no completion model is configured; pass loadModel'),
      )
    return services.get(ModelService)
  }

  const completion: CompletionProvider = {
    name: 'ai',
    async provideCompletions(request: CompletionRequest): Promise<readonly CompletionSuggestion[]> {
      if (modelState === 'ready') {
        const model = services.getSync(ModelService)
        const suggestions = await model.provideCompletions(request)
        if (suggestions.length > 0) {
          modelAnswers++
          return suggestions
        }
      } else if (modelState === 'idle') {
        ensureModel().catch(() => undefined)
      }
      fallbackAnswers++
      return fallback.provideCompletions(request)
    },
  }

  server = createLanguageServer({
    connection: options.connection,
    ...(options.closed ? { closed: options.closed } : {}),
    name: options.name ?? 'aide-lsp',
    ...(options.version ? { version: options.version } : {}),
    ...(options.settings ? { settings: options.settings } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.configurationSection ? { configurationSection: options.configurationSection } : {}),
    completion,
    diagnostics: options.diagnostics ?? [createAuditDiagnosticsProvider()],
    logger,
    ...(options.meter ? { meter: options.meter } : {}),
    ...(events ? { events } : {}),
    contextDocuments: () => workspaceIndex?.snapshots() ?? [],
    onInitialized: async (started) => {
      const root = started.workspaceFolders()[0]
      const indexing =
        root && options.workspace !== false
          ? (() => {
              services.register(WorkspaceService, {
                factory: async (_deps, context) => {
                  const index = new WorkspaceIndex({ ...(options.workspace || {}), root, logger })
                  try {
                    await started.withProgress('aide: indexing the workspace', (report) =>
                      index.build({
                        signal: context.signal,
                        onProgress: (done, total) =>
                          report(
                            `${done}/${total} files`,
                            Math.round((done / Math.max(1, total)) * 100),
                          ),
                      }),
                    )
                  } catch (error) {
                    index.dispose()
                    throw error
                  }
                  return index
                },
              })
              return services.get(WorkspaceService).then(
                (index) => {
                  workspaceIndex = index
                },
                (error: unknown) =>
                  logger.warn(
                    { err: error },
                    'lsp: workspace indexing failed; using open documents only',
                  ),
              )
            })()
          : Promise.resolve()
      const preloading =
        loadModel && options.preloadModel !== false
          ? ensureModel().catch(() => undefined)
          : Promise.resolve()
      await Promise.all([indexing, preloading])
    },
  })
  const base = server
  options.closed?.addEventListener('abort', () => void services.dispose().catch(() => undefined), {
    once: true,
  })

  return {
    documents: base.documents,
    services,
    settings: () => base.settings(),
    updateSettings: (input) => base.updateSettings(input),
    clearCompletionCache: () => base.clearCompletionCache(),
    workspaceFolders: () => base.workspaceFolders(),
    withProgress: (title, task) => base.withProgress(title, task),
    listen: () => base.listen(),
    loadModel: ensureModel,
    stats: () => ({
      ...base.stats(),
      model: { state: modelState, provider: modelName, answered: modelAnswers, fallbackAnswers },
      services: services.stats(),
      workspace: workspaceIndex?.stats(),
    }),
    async dispose() {
      await base.dispose()
      await services.dispose()
    },
  }
}
