/**
 * The completion service: fastify routes over the aide orchestrator, the
 * multi-level cache and the plugin host, with API-key auth, per-tenant rate
 * limits, health, Prometheus metrics, JSON logs and graceful shutdown.
 */
import { createHash, randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { type CacheTier, createCache, type MultiLevelCache } from '@aide/cache'
import type { RedisTier } from '@aide/cache/redis'
import {
  AideError,
  DisposableStore,
  InMemoryMeter,
  isAideError,
  type Logger,
  PROMETHEUS_CONTENT_TYPE,
  renderPrometheus,
  systemClock,
  withDeadline,
} from '@aide/core'
import {
  createOrchestrator,
  type ModelConfig,
  type Orchestrator,
  type OrchestratorEvents,
  openAICompatible,
  TokenBucket,
} from '@aide/orchestrator'
import {
  createPluginHost,
  type PluginDiagnostic,
  type PluginHost,
  shippedPluginsDir,
} from '@aide/plugins'
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify'
import pino from 'pino'
import type { ServiceConfig } from './config.js'
import { readCorpus, trainNgramModel } from './ngram-model.js'

/** Options of {@link startCompletionService}. */
export interface CompletionServiceOptions {
  /** Configuration (see `configFromEnv`). */
  config: ServiceConfig
  /** Where JSON log lines go. Default stdout. */
  logDestination?: pino.DestinationStream
}

/** A running service. */
export interface CompletionService {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string
  /** The fastify instance (routes, `inject` for unit use). */
  readonly app: FastifyInstance<any, any, any, any>
  /** The meter behind `/metrics`. */
  readonly meter: InMemoryMeter
  /** The pino logger. */
  readonly logger: pino.Logger
  /**
   * Graceful shutdown: stops accepting connections, lets in-flight requests
   * finish, then disposes the orchestrator, plugin host and cache.
   * Idempotent.
   */
  close(): Promise<void>
}

/** Body of every error response. */
export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> }
  requestId: string
}

/** One component in `/health`. */
export interface ComponentHealth {
  status: 'up' | 'down' | 'degraded' | 'disabled'
  [key: string]: unknown
}

/** The `/health` body. */
export interface HealthBody {
  status: 'ok' | 'degraded' | 'down'
  components: {
    redis: ComponentHealth
    models: ComponentHealth
    plugins: ComponentHealth
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    tenant?: string
    startedAt: bigint
  }
}

/** Paths of secrets pino replaces with `[redacted]` wherever they appear in a log line. */
export const REDACT_PATHS = [
  'request.headers.authorization',
  'request.headers["x-api-key"]',
  'request.headers.cookie',
  'apiKey',
  '*.apiKey',
  '*.*.apiKey',
  'apiKeys',
  '*.apiKeys',
]

const SHIPPED_PLUGINS = ['security-audit', 'aws-key-scan'] as const
const REQUEST_ID = /^[\w.:-]{1,128}$/

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

function statusOf(error: unknown): number {
  if (!isAideError(error)) return 500
  switch (error.code) {
    case 'E_INVALID_INPUT':
      return 400
    case 'E_PERMISSION':
      return 403
    case 'E_NOT_FOUND':
      return 404
    case 'E_LIMIT':
      return 429
    case 'E_TIMEOUT':
      return 504
    case 'E_CANCELLED':
      return 499
    case 'E_UNAVAILABLE':
    case 'E_CIRCUIT_OPEN':
      return 503
    case 'E_MODEL':
    case 'E_PROTOCOL':
    case 'E_PLUGIN':
      return 502
    default:
      return 500
  }
}

function errorBody(
  request: FastifyRequest,
  code: string,
  message: string,
  details?: Record<string, unknown>,
): ErrorBody {
  return { error: { code, message, ...(details ? { details } : {}) }, requestId: request.id }
}

/** Starts the service: loads models and plugins, connects Redis, and listens. */
export async function startCompletionService(
  options: CompletionServiceOptions,
): Promise<CompletionService> {
  const { config } = options
  const logger = pino(
    {
      level: config.logLevel,
      base: { service: 'aide-completion-service' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.logDestination ?? pino.destination(1),
  )
  const aideLogger = logger as unknown as Logger
  const meter = new InMemoryMeter()
  const store = new DisposableStore()
  try {
    return await assemble(config, logger, aideLogger, meter, store)
  } catch (error) {
    await store.dispose()
    throw error
  }
}

async function assemble(
  config: ServiceConfig,
  logger: pino.Logger,
  aideLogger: Logger,
  meter: InMemoryMeter,
  store: DisposableStore,
): Promise<CompletionService> {
  const httpRequests = meter.counter('aide_http_requests_total', {
    help: 'HTTP requests by route, method and status',
  })
  const httpDuration = meter.histogram('aide_http_request_duration_seconds', {
    help: 'HTTP request duration by route',
    unit: 'seconds',
  })
  const rateLimited = meter.counter('aide_rate_limited_total', {
    help: 'Requests refused with 429 by tenant',
  })
  const cacheResults = meter.counter('aide_service_cache_total', {
    help: 'Completion and audit cache lookups by endpoint and result (hit or miss)',
  })
  const breakerOpen = meter.gauge('aide_model_breaker_open', {
    help: '1 while a model circuit breaker is open (or isolated), else 0',
  })
  const redisUp = meter.gauge('aide_redis_up', {
    help: '1 when the Redis cache tier answers PING, 0 when it does not',
  })
  const pluginsLoaded = meter.gauge('aide_plugins_loaded', { help: 'Plugins loaded in the host' })

  // Cache: L1 in process, plus Redis as a shared L2 when configured.
  let redis: RedisTier | undefined
  if (config.redisUrl) {
    const { redisTier } = await import('@aide/cache/redis')
    redis = await redisTier({ url: config.redisUrl, prefix: 'aide:completion-service:' })
  }
  const cache: MultiLevelCache<unknown> = createCache({
    l1: { maxEntries: 10_000 },
    ...(redis ? { l2: redis as CacheTier } : {}),
    ttl: config.cacheTtlMs,
    namespace: 'v1',
    logger: aideLogger,
  })
  store.add({ dispose: () => cache.dispose() })

  // Models: configured OpenAI-compatible providers first, the local model last.
  const texts = await readCorpus(config.corpusDir)
  const local = trainNgramModel({ texts })
  logger.info({ model: 'local-ngram', ...local.stats() }, 'local model trained')
  const models: ModelConfig[] = [
    ...config.providers.map(
      (provider): ModelConfig => ({
        id: provider.id,
        backend: openAICompatible({
          baseUrl: provider.baseUrl,
          ...(provider.apiKey ? { apiKey: provider.apiKey } : {}),
          ...(provider.model ? { model: provider.model } : {}),
          name: provider.id,
        }),
        tasks: ['completion'],
        priority: provider.priority ?? 10,
        attemptTimeoutMs: config.requestTimeoutMs,
        breaker: { consecutiveFailures: 5, halfOpenAfterMs: 10_000 },
      }),
    ),
    { id: 'local-ngram', backend: local, tasks: ['completion'], priority: 0 },
  ]
  const orchestratorEvents = {
    emit<K extends keyof OrchestratorEvents & string>(type: K, payload: OrchestratorEvents[K]) {
      const fields: Record<string, unknown> = { event: type, ...payload }
      if (type === 'breaker-open' || type === 'model-fallback' || type === 'budget-exceeded')
        logger.warn(fields, 'orchestrator event')
      else logger.debug(fields, 'orchestrator event')
    },
  }
  const orchestrator: Orchestrator = createOrchestrator({
    models,
    strategy: 'priority',
    meter,
    logger: aideLogger,
    events: orchestratorEvents,
  })
  store.add({ dispose: () => orchestrator.dispose() })

  // Plugins: the security-audit plugins shipped with @aide/plugins, each in its own worker.
  const plugins: PluginHost = createPluginHost({
    hostApiVersion: '1.0.0',
    limits: { timeoutMs: 5_000, memoryBytes: 64 * 1024 * 1024, maxInputBytes: 1024 * 1024 },
    meter,
    logger: aideLogger,
  })
  store.add({ dispose: () => plugins.dispose() })
  for (const name of SHIPPED_PLUGINS) {
    const info = await plugins.load(shippedPluginsDir(name))
    logger.info({ plugin: info.manifest.id, version: info.manifest.version }, 'audit plugin loaded')
  }

  // Per-tenant rate limits.
  const tenantsByKeyHash = new Map(config.apiKeys.map((k) => [sha256(k.key), k.tenant]))
  const buckets = new Map<string, TokenBucket>()
  const bucketOf = (tenant: string): TokenBucket => {
    let bucket = buckets.get(tenant)
    if (!bucket) {
      const limit = config.tenantRateLimits?.[tenant] ?? config.rateLimit
      buckets.set(tenant, (bucket = new TokenBucket(limit, systemClock)))
    }
    return bucket
  }

  const app = Fastify({
    loggerInstance: logger,
    // Request logging is done by the hooks below (with redacted headers and tenant).
    logController: new LogController({
      disableRequestLogging: true,
      requestIdLogLabel: 'requestId',
    }),
    genReqId: (request) => {
      const given = request.headers['x-request-id']
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
    },
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
  })

  app.addHook('onRequest', async (request, reply) => {
    request.startedAt = process.hrtime.bigint()
    reply.header('x-request-id', request.id)
    request.log.info(
      {
        request: {
          method: request.method,
          url: request.url,
          headers: request.headers,
          remoteAddress: request.ip,
        },
      },
      'request start',
    )
  })

  // While shutting down, close each keep-alive connection after its in-flight
  // response, so the server does not wait for idle sockets to time out.
  let shuttingDown = false
  app.addHook('onSend', async (_request, reply) => {
    if (shuttingDown) reply.header('connection', 'close')
  })

  app.addHook('onResponse', async (request, reply) => {
    const seconds = Number(process.hrtime.bigint() - request.startedAt) / 1e9
    const route = request.routeOptions.url ?? 'unmatched'
    httpRequests.inc(1, { route, method: request.method, status: reply.statusCode })
    httpDuration.observe(seconds, { route })
    request.log.info(
      {
        response: { statusCode: reply.statusCode },
        tenant: request.tenant,
        durationMs: Math.round(seconds * 1e5) / 100,
      },
      'request end',
    )
  })

  app.setErrorHandler((error, request, reply) => {
    if ((error as { validation?: unknown }).validation) {
      return reply
        .code(400)
        .send(errorBody(request, 'E_INVALID_INPUT', `request body: ${(error as Error).message}`))
    }
    const statusCode = (error as { statusCode?: number }).statusCode
    if (!isAideError(error) && statusCode && statusCode >= 400 && statusCode < 500) {
      return reply
        .code(statusCode)
        .send(errorBody(request, 'E_INVALID_INPUT', (error as Error).message))
    }
    const status = statusOf(error)
    const code = isAideError(error) ? error.code : 'E_INTERNAL'
    if (status >= 500) request.log.error({ err: error }, 'request failed')
    else request.log.warn({ code, message: (error as Error).message }, 'request refused')
    return reply
      .code(status)
      .send(
        errorBody(
          request,
          code,
          status === 500
            ? 'internal error; see the service log for this request id'
            : (error as Error).message,
        ),
      )
  })

  /** Auth and rate limit, for every `/v1/*` route. */
  const guard = async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers.authorization
    const key =
      typeof header === 'string' && header.startsWith('Bearer ')
        ? header.slice(7).trim()
        : request.headers['x-api-key']
    const tenant = typeof key === 'string' ? tenantsByKeyHash.get(sha256(key)) : undefined
    if (!tenant) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send(
          errorBody(
            request,
            'E_UNAUTHENTICATED',
            typeof key === 'string'
              ? 'unknown API key'
              : 'missing API key: send "Authorization: Bearer <key>" or "x-api-key: <key>"',
          ),
        )
    }
    request.tenant = tenant
    const bucket = bucketOf(tenant)
    if (!bucket.tryTake()) {
      const limit = config.tenantRateLimits?.[tenant] ?? config.rateLimit
      const retryAfterSeconds = Math.max(
        1,
        Math.ceil((1 - bucket.available) / limit.requestsPerSecond),
      )
      rateLimited.inc(1, { tenant })
      return reply
        .code(429)
        .header('retry-after', String(retryAfterSeconds))
        .send(
          errorBody(
            request,
            'E_LIMIT',
            `tenant "${tenant}" is over its rate limit of ${limit.requestsPerSecond} requests/s (burst ${limit.burst}); retry after ${retryAfterSeconds} s`,
            { tenant, retryAfterSeconds, limit },
          ),
        )
    }
  }

  /** Aborts work when the client goes away before the answer. */
  const clientSignal = (reply: FastifyReply): AbortSignal => {
    const controller = new AbortController()
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) controller.abort(new Error('client disconnected'))
    })
    return controller.signal
  }

  app.post<{ Body: { prompt: string; suffix?: string; maxTokens?: number } }>(
    '/v1/completions',
    {
      onRequest: guard,
      schema: {
        body: {
          type: 'object',
          required: ['prompt'],
          additionalProperties: false,
          properties: {
            prompt: { type: 'string', minLength: 1, maxLength: 32_768 },
            suffix: { type: 'string', maxLength: 32_768 },
            maxTokens: { type: 'integer', minimum: 1, maximum: 256 },
          },
        },
      },
    },
    async (request, reply) => {
      const { prompt, suffix, maxTokens } = request.body
      const input = {
        prompt,
        ...(suffix === undefined ? {} : { suffix }),
        maxTokens: maxTokens ?? 16,
      }
      const signal = clientSignal(reply)
      let loaded = false
      const result = await cache.getOrSet(
        `completion:${sha256(JSON.stringify(input))}`,
        async (loaderSignal) => {
          loaded = true
          const run = await orchestrator.run({
            task: 'completion',
            input,
            tenant: request.tenant!,
            cache: false,
            timeoutMs: config.requestTimeoutMs,
            signal: loaderSignal,
          })
          return {
            model: run.model,
            text: run.text,
            finishReason: run.finishReason,
            usage: run.usage,
            attempts: run.attempts,
          }
        },
        { timeoutMs: config.requestTimeoutMs, signal },
      )
      cacheResults.inc(1, { endpoint: 'completions', result: loaded ? 'miss' : 'hit' })
      return { requestId: request.id, ...(result as object), cached: !loaded }
    },
  )

  app.post<{ Body: { text: string; languageId?: string; uri?: string } }>(
    '/v1/audit',
    {
      onRequest: guard,
      schema: {
        body: {
          type: 'object',
          required: ['text'],
          additionalProperties: false,
          properties: {
            text: { type: 'string', maxLength: 512 * 1024 },
            languageId: { type: 'string', maxLength: 64 },
            uri: { type: 'string', maxLength: 2048 },
          },
        },
      },
    },
    async (request, reply) => {
      const document = {
        uri: request.body.uri ?? 'file:///input.ts',
        languageId: request.body.languageId ?? 'typescript',
        text: request.body.text,
      }
      const signal = clientSignal(reply)
      let loaded = false
      const result = (await cache.getOrSet(
        `audit:${sha256(JSON.stringify([document.languageId, document.text]))}`,
        async (loaderSignal) => {
          loaded = true
          const found = await plugins.runDiagnostics(document, {
            timeoutMs: config.requestTimeoutMs,
            signal: loaderSignal,
          })
          if (found.failures.length > 0) {
            // Do not cache a partial audit; report which plugins failed.
            throw new AideError(
              'E_PLUGIN',
              `audit: ${found.failures.length} plugin(s) failed: ${found.failures.map((f) => `${f.pluginId} (${f.error.code})`).join(', ')}`,
            )
          }
          return { diagnostics: found.diagnostics }
        },
        { timeoutMs: config.requestTimeoutMs, signal },
      )) as { diagnostics: PluginDiagnostic[] }
      cacheResults.inc(1, { endpoint: 'audit', result: loaded ? 'miss' : 'hit' })
      return {
        requestId: request.id,
        uri: document.uri,
        diagnostics: result.diagnostics,
        cached: !loaded,
      }
    },
  )

  const checkRedis = async (): Promise<ComponentHealth> => {
    if (!redis) return { status: 'disabled' }
    try {
      await withDeadline(() => redis.client.ping(), { timeoutMs: 500, label: 'health: redis' })
      redisUp.set(1)
      return { status: 'up', connection: redis.client.status }
    } catch (error) {
      redisUp.set(0)
      return {
        status: 'down',
        connection: redis.client.status,
        error: (error as Error).message,
        impact: 'cache runs on L1 only; instances no longer share results',
      }
    }
  }

  const modelHealth = (): ComponentHealth => {
    const list = orchestrator.stats().models.map((m) => {
      const open = m.breaker === 'open' || m.breaker === 'isolated'
      breakerOpen.set(open ? 1 : 0, { model: m.id })
      return {
        id: m.id,
        backend: m.backend,
        breaker: m.breaker,
        healthy: m.healthy,
        errorRate: m.errorRate,
        p95LatencyMs: m.latencyMs.p95,
      }
    })
    const available = list.filter((m) => m.breaker !== 'open' && m.breaker !== 'isolated')
    return {
      status: available.length === 0 ? 'down' : available.length < list.length ? 'degraded' : 'up',
      models: list,
    }
  }

  const pluginHealth = (): ComponentHealth => {
    const list = plugins.list().map((p) => ({
      id: p.manifest.id,
      version: p.manifest.version,
      enabled: p.enabled,
    }))
    pluginsLoaded.set(list.length)
    return { status: list.some((p) => p.enabled) ? 'up' : 'down', plugins: list }
  }

  app.get('/health', async (_request, reply) => {
    const components = {
      redis: await checkRedis(),
      models: modelHealth(),
      plugins: pluginHealth(),
    }
    const status: HealthBody['status'] =
      components.models.status === 'down'
        ? 'down'
        : Object.values(components).some((c) => c.status === 'down' || c.status === 'degraded')
          ? 'degraded'
          : 'ok'
    const body: HealthBody = { status, components }
    return reply.code(status === 'down' ? 503 : 200).send(body)
  })

  app.get('/metrics', async (_request, reply) => {
    await checkRedis()
    modelHealth()
    pluginHealth()
    return reply.header('content-type', PROMETHEUS_CONTENT_TYPE).send(renderPrometheus(meter))
  })

  await app.listen({ host: config.host, port: config.port })
  const address = app.server.address() as AddressInfo
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${address.port}`
  logger.info(
    {
      url,
      models: models.map((m) => m.id),
      redis: config.redisUrl ? 'configured' : 'disabled',
      tenants: [...new Set(config.apiKeys.map((k) => k.tenant))],
    },
    'listening',
  )

  let closing: Promise<void> | undefined
  const close = (): Promise<void> => {
    closing ??= (async () => {
      shuttingDown = true
      // http.Server#close stops listening at once and calls back when every
      // connection has ended; fastify's own close runs it later, after its hooks.
      const drained = new Promise<void>((resolve) => app.server.close(() => resolve()))
      logger.info('shutdown: no longer accepting connections; finishing in-flight requests')
      await drained
      await app.close()
      logger.info('shutdown: in-flight requests finished; disposing components')
      await store.dispose()
      logger.info('shutdown: complete')
      await new Promise<void>((resolve) => logger.flush(() => resolve()))
    })()
    return closing
  }

  return { url, app, meter, logger, close }
}
