/**
 * Service configuration: built in code by tests, or read from the environment
 * by `main.ts`.
 */
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { AideError } from '@aide/core'

/** One API key and the tenant it belongs to. */
export interface ApiKeyConfig {
  /** The secret sent by clients (`Authorization: Bearer <key>` or `x-api-key`). */
  key: string
  /** Tenant the key belongs to; rate limits apply per tenant. */
  tenant: string
}

/** Per-tenant request rate (token bucket). */
export interface TenantRateLimit {
  /** Sustained requests per second. */
  requestsPerSecond: number
  /** Requests allowed at once after a quiet period. */
  burst: number
}

/** An OpenAI-compatible provider (OpenAI, llama.cpp server, Ollama, vLLM…). */
export interface ProviderConfig {
  /** Model id in results, stats and metrics. */
  id: string
  /** Base URL including the version, e.g. `http://127.0.0.1:8080/v1`. */
  baseUrl: string
  /** Bearer token for the provider. Never logged. */
  apiKey?: string
  /** Model name sent to the provider; defaults to `id`. */
  model?: string
  /** Higher is tried first; the local model has priority 0. Default 10. */
  priority?: number
}

/** Everything the service needs. */
export interface ServiceConfig {
  /** Interface to listen on. Default `127.0.0.1`. */
  host: string
  /** Port; 0 picks a free one. */
  port: number
  /** Accepted API keys. */
  apiKeys: readonly ApiKeyConfig[]
  /** Rate limit applied to each tenant. */
  rateLimit: TenantRateLimit
  /** Per-tenant overrides of `rateLimit`. */
  tenantRateLimits?: Readonly<Record<string, TenantRateLimit>>
  /** Redis URL for the shared L2 cache; absent means L1 only. */
  redisUrl?: string
  /** Remote providers, tried before the local model. */
  providers: readonly ProviderConfig[]
  /** Folder of TypeScript sources the local model learns from. */
  corpusDir: string
  /** TTL of cached completions and audits in ms. */
  cacheTtlMs: number
  /** Deadline of one completion or audit request in ms. */
  requestTimeoutMs: number
  /** Pino log level. */
  logLevel: string
}

const here = dirname(fileURLToPath(import.meta.url))

/** The local model's default training corpus: the sources of `@aide/core`. */
export const DEFAULT_CORPUS_DIR = join(here, '..', '..', '..', 'packages', 'core', 'src')

function badConfig(name: string, message: string): AideError {
  return new AideError('E_INVALID_INPUT', `config: ${name} ${message}`, {
    details: { field: name },
  })
}

function number(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < 0) throw badConfig(name, `must be a number >= 0`)
  return value
}

/**
 * Reads the configuration from environment variables:
 * `HOST`, `PORT`, `AIDE_API_KEYS` (`key:tenant,key:tenant`), `AIDE_RATE_LIMIT_RPS`,
 * `AIDE_RATE_LIMIT_BURST`, `REDIS_URL`, `AIDE_PROVIDERS` (JSON array of
 * {@link ProviderConfig}), `AIDE_CORPUS_DIR`, `AIDE_CACHE_TTL_MS`,
 * `AIDE_REQUEST_TIMEOUT_MS`, `LOG_LEVEL`.
 */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): ServiceConfig {
  const keys = (env.AIDE_API_KEYS ?? '')
    .split(',')
    .map((pair) => pair.trim())
    .filter(Boolean)
    .map((pair) => {
      const at = pair.lastIndexOf(':')
      if (at <= 0 || at === pair.length - 1)
        throw badConfig('AIDE_API_KEYS', 'must be a comma-separated list of key:tenant')
      return { key: pair.slice(0, at), tenant: pair.slice(at + 1) }
    })
  if (keys.length === 0) throw badConfig('AIDE_API_KEYS', 'must name at least one key:tenant')
  let providers: ProviderConfig[] = []
  if (env.AIDE_PROVIDERS) {
    try {
      providers = JSON.parse(env.AIDE_PROVIDERS) as ProviderConfig[]
    } catch (cause) {
      throw new AideError('E_INVALID_INPUT', 'config: AIDE_PROVIDERS must be a JSON array', {
        cause,
        details: { field: 'AIDE_PROVIDERS' },
      })
    }
    if (!Array.isArray(providers)) throw badConfig('AIDE_PROVIDERS', 'must be a JSON array')
  }
  return {
    host: env.HOST ?? '127.0.0.1',
    port: number(env, 'PORT', 8787),
    apiKeys: keys,
    rateLimit: {
      requestsPerSecond: number(env, 'AIDE_RATE_LIMIT_RPS', 50),
      burst: number(env, 'AIDE_RATE_LIMIT_BURST', 100),
    },
    ...(env.REDIS_URL ? { redisUrl: env.REDIS_URL } : {}),
    providers,
    corpusDir: env.AIDE_CORPUS_DIR ?? DEFAULT_CORPUS_DIR,
    cacheTtlMs: number(env, 'AIDE_CACHE_TTL_MS', 300_000),
    requestTimeoutMs: number(env, 'AIDE_REQUEST_TIMEOUT_MS', 10_000),
    logLevel: env.LOG_LEVEL ?? 'info',
  }
}
