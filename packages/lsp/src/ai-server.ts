/**
 * `@aide/lsp/ai`: the assembled AI language server. Every part is a service
 * of core's lazy `ServiceManager`: the event bus, the cache (memory + disk),
 * the orchestrator with the shipped local ONNX completion model, the plugin
 * host with the shipped audit plugins, and the workspace index. Nothing heavy
 * loads before it is needed; until the model is ready (or if it cannot load)
 * completions come from the context provider.
 */
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createCache, type MultiLevelCache } from '@aide/cache'
import { diskTier } from '@aide/cache/disk'
import type { RedisTierOptions } from '@aide/cache/redis'
import {
  AideError,
  assertFunction,
  assertObject,
  assertString,
  type CacheLike,
  defineService,
  type EventSink,
  type Logger,
  type Meter,
  noopLogger,
  ServiceManager,
  type ServiceManagerStats,
} from '@aide/core'
import { createEventBus, type EventBus } from '@aide/event-bus'
import {
  createOrchestrator,
  type ModelConfig,
  type Orchestrator,
  type RunResult,
} from '@aide/orchestrator'
import { createPluginHost, type PluginHost, shippedPluginsDir } from '@aide/plugins'
import {
  createOrchestratorCompletionProvider,
  createPluginDiagnosticsProvider,
} from './adapters.js'
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

/** Options of {@link createAiLanguageServer}. Everything but `connection` is optional. */
export interface AiLanguageServerOptions
  extends Pick<
    LanguageServerOptions,
    'connection' | 'closed' | 'name' | 'version' | 'settings' | 'clock' | 'configurationSection'
  > {
  /**
   * Loads the model-backed completion provider, replacing the default (an
   * orchestrator over the shipped local ONNX model plus `models`). Called
   * once, lazily: right after `initialized` when `preloadModel` is true (the
   * default), otherwise on the first completion.
   */
  loadModel?: (context: { signal: AbortSignal }) => Promise<CompletionProvider>
  /** Serve the shipped local ONNX completion model (needs `onnxruntime-node`). Default true. */
  localModel?: boolean
  /**
   * Where the shipped model's ONNX sessions run: `inline` on the server's
   * thread (the default: the model is tiny, a run takes microseconds, and it
   * saves a worker thread's memory) or `worker` (a worker thread, for larger
   * models whose runs would block the event loop).
   */
  localModelExecution?: 'inline' | 'worker'
  /** More models for the orchestrator (e.g. `openAICompatible(...)` backends), tried after the local one. */
  models?: readonly ModelConfig[]
  /** Start loading the model right after `initialized`. Default true. */
  preloadModel?: boolean
  /** Answers while the model loads, when it fails, and alongside it. Default: the context provider. */
  fallbackCompletion?: CompletionProvider
  /**
   * The orchestrator's response cache: memory plus a disk tier in `dir`
   * (default `$XDG_CACHE_HOME/aide-lsp` or `~/.cache/aide-lsp`), or `false`.
   * With `redis` (a URL, or `@aide/cache/redis` tier options) Redis is the
   * second level, shared by every server using it (needs `ioredis`); while
   * Redis is down the cache falls through to memory and disk.
   */
  cache?:
    | false
    | { dir?: string; maxEntries?: number; ttlMs?: number; redis?: string | RedisTierOptions }
  /** Audit plugins: the shipped ones by default (needs `@extism/extism`), other plugin folders, or `false`. */
  plugins?: false | { directories?: readonly string[]; timeoutMs?: number }
  /** Diagnostics providers replacing the defaults (the line rules and the plugins). */
  diagnostics?: readonly DiagnosticsProvider[]
  /** Index the unopened files of the first workspace folder for context; `false` turns it off. */
  workspace?: false | Omit<WorkspaceIndexOptions, 'root'>
  /** The bus every component reports to. Default: a new one (see {@link AiLanguageServer.bus}). */
  bus?: EventBus<Record<string, unknown>>
  logger?: Logger
  meter?: Meter
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
    state: 'idle' | 'loading' | 'ready' | 'failed'
    provider: string | undefined
    answered: number
    fallbackAnswers: number
  }
  plugins: { state: 'off' | 'idle' | 'loading' | 'ready' | 'failed'; loaded: string[] }
  services: ServiceManagerStats
  workspace: WorkspaceIndexStats | undefined
}

/** The assembled server. */
export interface AiLanguageServer extends Omit<LanguageServer, 'stats'> {
  /** The service manager holding the lazily created parts. */
  readonly services: ServiceManager
  /** The bus the server, the orchestrator, the cache and the plugin host report to. */
  readonly bus: EventBus<Record<string, unknown>>
  /** Loads the model now (idempotent); resolves when it is ready. */
  loadModel(): Promise<CompletionProvider>
  /** Plain figures. */
  stats(): AiLanguageServerStats
}

/** The default folder of the disk cache. */
export function defaultCacheDirectory(): string {
  const base = process.env.XDG_CACHE_HOME || (homedir() ? join(homedir(), '.cache') : tmpdir())
  return join(base, 'aide-lsp')
}

const BusService = defineService<EventBus<Record<string, unknown>>>('event-bus')
const CacheService = defineService<MultiLevelCache<RunResult> | undefined>('cache')
const ModelService = defineService<CompletionProvider>('completion-model')
const PluginService = defineService<PluginHost>('plugin-host')
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
  if (options.cache !== undefined && options.cache !== false) {
    assertObject(options.cache, 'options.cache')
    const redis = options.cache.redis
    if (typeof redis === 'string') assertString(redis, 'options.cache.redis')
    else if (redis !== undefined) assertObject(redis, 'options.cache.redis')
  }
  if (options.plugins !== undefined && options.plugins !== false)
    assertObject(options.plugins, 'options.plugins')
  if (options.workspace !== undefined && options.workspace !== false)
    assertObject(options.workspace, 'options.workspace')
  if (options.models !== undefined && !Array.isArray(options.models)) {
    throw new AideError(
      'E_INVALID_INPUT',
      'options.models must be an array of orchestrator model configs',
      { details: { field: 'options.models' } },
    )
  }
  const logger = options.logger ?? noopLogger
  const fallback = options.fallbackCompletion ?? createContextCompletionProvider()
  const services = new ServiceManager({
    logger,
    ...(options.clock ? { clock: options.clock } : {}),
  })
  const bus = options.bus ?? createEventBus<Record<string, unknown>>({ name: 'aide-lsp', logger })
  const events = bus as unknown as EventSink<LanguageServerEvents & AiLanguageServerEvents>
  let modelState: AiLanguageServerStats['model']['state'] = 'idle'
  let modelName: string | undefined
  let modelAnswers = 0
  let fallbackAnswers = 0
  let pluginState: AiLanguageServerStats['plugins']['state'] =
    options.plugins === false ? 'off' : 'idle'
  let pluginsLoaded: string[] = []
  let server: LanguageServer | undefined
  let workspaceIndex: WorkspaceIndex | undefined
  let disposed = false

  services.registerValue(BusService, bus, {
    dispose: options.bus ? () => undefined : (instance) => instance.dispose(),
  })
  services.register(CacheService, {
    factory: async () => {
      if (options.cache === false) return undefined
      const settings = options.cache ?? {}
      // Loaded only when configured, so ioredis stays an optional peer.
      const l2 =
        settings.redis === undefined
          ? undefined
          : await (await import('@aide/cache/redis')).redisTier(
              typeof settings.redis === 'string' ? { url: settings.redis } : settings.redis,
            )
      return createCache<RunResult>({
        l1: { maxEntries: settings.maxEntries ?? 2_000 },
        ...(l2 ? { l2 } : {}),
        l3: diskTier({ dir: settings.dir ?? defaultCacheDirectory() }),
        ttl: settings.ttlMs ?? 24 * 60 * 60 * 1000,
        namespace: 'aide-lsp',
        logger,
        events: bus as never,
      })
    },
    dispose: (cache) => cache?.dispose(),
  })

  let orchestrator: Orchestrator | undefined
  const loadDefaultModel = async (
    signal: AbortSignal,
    cache: CacheLike<RunResult> | undefined,
  ): Promise<CompletionProvider> => {
    const models: ModelConfig[] = []
    if (options.localModel !== false) {
      const onnx = await import('@aide/orchestrator/onnx')
      const local = await onnx.loadDefaultCompletionModel({
        signal,
        execution: options.localModelExecution ?? 'inline',
      })
      models.push({
        id: 'aide-code-completion',
        backend: local,
        tasks: ['completion'],
        priority: 1,
      })
    }
    models.push(...(options.models ?? []))
    if (models.length === 0)
      throw new AideError(
        'E_UNAVAILABLE',
        'lsp: no completion model: the local model is off and options.models is empty',
      )
    orchestrator = createOrchestrator({
      models,
      strategy: 'priority',
      ...(cache ? { cache } : {}),
      events: bus as never,
      logger,
      ...(options.meter ? { meter: options.meter } : {}),
    })
    return createOrchestratorCompletionProvider({ orchestrator })
  }

  services.register(ModelService, {
    deps: [CacheService],
    factory: async ([cache], context) => {
      const started = Date.now()
      modelState = 'loading'
      events.emit('model-load-start', {})
      try {
        const load = () =>
          options.loadModel
            ? options.loadModel({ signal: context.signal })
            : loadDefaultModel(context.signal, cache)
        const provider = server
          ? await server.withProgress('aide: loading the completion model', load)
          : await load()
        assertObject(provider, 'loadModel() result')
        assertFunction(provider.provideCompletions, 'loadModel() result.provideCompletions')
        modelState = 'ready'
        modelName = provider.name
        // Suggestions cached while answering from context must not hide the model's.
        server?.clearCompletionCache()
        events.emit('model-load-end', { durationMs: Date.now() - started, provider: provider.name })
        return provider
      } catch (error) {
        modelState = 'failed'
        const aideError = AideError.isInstance(error)
          ? error
          : new AideError('E_MODEL', `lsp: loading the completion model failed: ${String(error)}`, {
              cause: error,
            })
        events.emit('model-load-error', { error: aideError })
        logger.warn({ err: aideError }, 'lsp: completion model unavailable; answering from context')
        throw aideError
      }
    },
    dispose: async () => {
      await orchestrator?.dispose()
    },
  })

  services.register(PluginService, {
    deps: [BusService],
    factory: async ([eventBus], context) => {
      pluginState = 'loading'
      const settings = options.plugins || {}
      const host = createPluginHost({
        hostApiVersion: '1.0.0',
        limits: { timeoutMs: settings.timeoutMs ?? 2_000 },
        capabilities: {},
        events: eventBus as never,
        logger,
        ...(options.meter ? { meter: options.meter } : {}),
      })
      const directories = settings.directories ?? [
        shippedPluginsDir('security-audit'),
        shippedPluginsDir('aws-key-scan'),
      ]
      const load = async () => {
        for (const directory of directories) {
          try {
            const info = await host.load(directory, { signal: context.signal })
            pluginsLoaded.push(info.manifest.id)
          } catch (error) {
            logger.warn({ err: error, directory }, 'lsp: an audit plugin did not load')
            if (AideError.isInstance(error) && error.code === 'E_UNAVAILABLE') throw error
          }
        }
      }
      try {
        await (server ? server.withProgress('aide: loading audit plugins', load) : load())
        if (pluginsLoaded.length === 0 && directories.length > 0) {
          throw new AideError(
            'E_UNAVAILABLE',
            'lsp: no audit plugin could be loaded (see the log); diagnostics come from the line rules only',
          )
        }
      } catch (error) {
        pluginState = 'failed'
        pluginsLoaded = []
        await host.dispose()
        throw error
      }
      pluginState = 'ready'
      return host
    },
  })

  // Memoised so a failed load is not retried on every keystroke.
  let pluginHost: Promise<PluginHost> | undefined
  const getPluginHost = () => {
    pluginHost ??= services.get(PluginService)
    return pluginHost
  }
  let modelLoad: Promise<CompletionProvider> | undefined
  const ensureModel = () => {
    modelLoad ??= services.get(ModelService)
    return modelLoad
  }

  const completion: CompletionProvider = {
    name: 'ai',
    async provideCompletions(request: CompletionRequest): Promise<readonly CompletionSuggestion[]> {
      const fromContext = fallback.provideCompletions(request)
      if (modelState === 'idle') ensureModel().catch(() => undefined)
      if (modelState !== 'ready') {
        fallbackAnswers++
        return fromContext
      }
      const [model, context] = await Promise.allSettled([
        services.getSync(ModelService).provideCompletions(request),
        fromContext,
      ])
      const merged: CompletionSuggestion[] = []
      if (model.status === 'fulfilled') merged.push(...model.value)
      else if (!(AideError.isInstance(model.reason) && model.reason.code === 'E_CANCELLED'))
        logger.warn({ err: model.reason }, 'lsp: model completion failed')
      if (merged.length > 0) modelAnswers++
      else fallbackAnswers++
      if (context.status === 'fulfilled') {
        for (const suggestion of context.value)
          if (!merged.some((m) => m.text === suggestion.text)) merged.push(suggestion)
      }
      if (merged.length === 0 && model.status === 'rejected') throw model.reason
      // Stable sort: at equal confidence the model's suggestion stays first.
      return merged.sort((a, b) => (b.score ?? 0.5) - (a.score ?? 0.5)).slice(0, request.maxItems)
    },
  }

  const diagnostics =
    options.diagnostics ??
    (options.plugins === false
      ? [createAuditDiagnosticsProvider()]
      : [
          createAuditDiagnosticsProvider(),
          createPluginDiagnosticsProvider(getPluginHost, {
            timeoutMs: options.plugins?.timeoutMs ?? 2_000,
          }),
        ])

  server = createLanguageServer({
    connection: options.connection,
    ...(options.closed ? { closed: options.closed } : {}),
    name: options.name ?? 'aide-lsp',
    ...(options.version ? { version: options.version } : {}),
    ...(options.settings ? { settings: options.settings } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.configurationSection ? { configurationSection: options.configurationSection } : {}),
    completion,
    diagnostics,
    logger,
    ...(options.meter ? { meter: options.meter } : {}),
    events,
    contextDocuments: () => workspaceIndex?.snapshots() ?? [],
    onInitialized: async (started) => {
      const root = started.workspaceFolders()[0]
      const tasks: Array<Promise<unknown>> = []
      if (root && options.workspace !== false) {
        services.register(WorkspaceService, {
          factory: async (_deps, context) => {
            const index = new WorkspaceIndex({ ...(options.workspace || {}), root, logger })
            try {
              await started.withProgress('aide: indexing the workspace', (report) =>
                index.build({
                  signal: context.signal,
                  onProgress: (done, total) =>
                    report(`${done}/${total} files`, Math.round((done / Math.max(1, total)) * 100)),
                }),
              )
            } catch (error) {
              index.dispose()
              throw error
            }
            return index
          },
        })
        tasks.push(
          services.get(WorkspaceService).then(
            (index) => {
              workspaceIndex = index
            },
            (error: unknown) =>
              logger.warn(
                { err: error },
                'lsp: workspace indexing failed; using open documents only',
              ),
          ),
        )
      }
      if (options.plugins !== false && !options.diagnostics)
        tasks.push(getPluginHost().catch(() => undefined))
      if (options.preloadModel !== false) tasks.push(ensureModel().catch(() => undefined))
      await Promise.all(tasks)
    },
  })
  const base = server
  const dispose = async () => {
    if (disposed) return
    disposed = true
    await base.dispose()
    await services.dispose()
  }
  options.closed?.addEventListener('abort', () => void dispose().catch(() => undefined), {
    once: true,
  })

  return {
    documents: base.documents,
    services,
    bus,
    settings: () => base.settings(),
    updateSettings: (input) => base.updateSettings(input),
    withProgress: (title, task) => base.withProgress(title, task),
    listen: () => base.listen(),
    clearCompletionCache: () => base.clearCompletionCache(),
    workspaceFolders: () => base.workspaceFolders(),
    loadModel: ensureModel,
    stats: () => ({
      ...base.stats(),
      model: { state: modelState, provider: modelName, answered: modelAnswers, fallbackAnswers },
      plugins: { state: pluginState, loaded: [...pluginsLoaded] },
      services: services.stats(),
      workspace: workspaceIndex?.stats(),
    }),
    dispose,
  }
}
