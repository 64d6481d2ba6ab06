/**
 * Server settings: defaults that work with zero configuration, overridden by
 * `initializationOptions` and `workspace/didChangeConfiguration`, validated
 * with messages that name the offending key.
 */
import { assertNumber, invalidInput } from '@aide/core'
import { type ContextOptions, resolveContextOptions } from './context.js'

/** Completion settings. */
export interface CompletionSettings {
  /** Answer `textDocument/completion` and `textDocument/inlineCompletion`. Default true. */
  enabled: boolean
  /** Debounce of `textDocument/completion` in ms. Default 0 (explicit requests are answered at once). */
  debounceMs: number
  /** Debounce of `textDocument/inlineCompletion` in ms (sent as the user types). Default 30. */
  inlineDebounceMs: number
  /** Give up on the provider after this many ms. Default 2000. */
  timeoutMs: number
  /** Suggestions returned at most. Default 5. */
  maxItems: number
}

/** Diagnostics settings. */
export interface DiagnosticsSettings {
  /** Publish diagnostics. Default true. */
  enabled: boolean
  /** Wait this long after the last edit before running providers. Default 200. */
  debounceMs: number
  /** Give up on the providers after this many ms. Default 5000. */
  timeoutMs: number
}

/** Completion cache settings. */
export interface CacheSettings {
  /** Reuse earlier suggestions (exact spot, or typing along one). Default true. */
  enabled: boolean
  /** Entries kept. Default 500. */
  maxEntries: number
  /** Entry lifetime in ms. Default 300000. */
  ttlMs: number
}

/** Every setting of the toolkit's server. */
export interface LanguageServerSettings {
  completion: CompletionSettings
  diagnostics: DiagnosticsSettings
  cache: CacheSettings
  /** Context budgets (see {@link ContextOptions}). */
  context: Required<ContextOptions>
}

/** A partial {@link LanguageServerSettings}, as a client or caller sends it. */
export interface LanguageServerSettingsInput {
  completion?: Partial<CompletionSettings>
  diagnostics?: Partial<DiagnosticsSettings>
  cache?: Partial<CacheSettings>
  context?: ContextOptions
}

/** The zero-configuration defaults. */
export function defaultSettings(): LanguageServerSettings {
  return {
    completion: {
      enabled: true,
      debounceMs: 0,
      inlineDebounceMs: 30,
      timeoutMs: 2000,
      maxItems: 5,
    },
    diagnostics: { enabled: true, debounceMs: 200, timeoutMs: 5000 },
    cache: { enabled: true, maxEntries: 500, ttlMs: 300_000 },
    context: resolveContextOptions({}),
  }
}

type Kind = 'boolean' | 'ms' | 'count'
const SCHEMA: Record<'completion' | 'diagnostics' | 'cache', Record<string, Kind>> = {
  completion: {
    enabled: 'boolean',
    debounceMs: 'ms',
    inlineDebounceMs: 'ms',
    timeoutMs: 'ms',
    maxItems: 'count',
  },
  diagnostics: { enabled: 'boolean', debounceMs: 'ms', timeoutMs: 'ms' },
  cache: { enabled: 'boolean', maxEntries: 'count', ttlMs: 'ms' },
}
const SECTIONS = ['completion', 'diagnostics', 'cache', 'context'] as const

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * Applies `input` over `base` and returns the result; `base` is not changed.
 * `null`/`undefined` input returns `base`. Unknown keys and wrong types throw
 * `E_INVALID_INPUT` naming the key (e.g. `settings.completion.debounceMs`).
 */
export function parseSettings(
  input: unknown,
  base: LanguageServerSettings = defaultSettings(),
  field = 'settings',
): LanguageServerSettings {
  const result: LanguageServerSettings = {
    completion: { ...base.completion },
    diagnostics: { ...base.diagnostics },
    cache: { ...base.cache },
    context: { ...base.context },
  }
  if (input === undefined || input === null) return result
  if (!isPlainObject(input)) throw invalidInput(field, 'must be an object')
  for (const [section, value] of Object.entries(input)) {
    if (!(SECTIONS as readonly string[]).includes(section)) {
      throw invalidInput(
        `${field}.${section}`,
        `is not a known setting; known sections: ${SECTIONS.join(', ')}`,
      )
    }
    if (value === undefined || value === null) continue
    if (!isPlainObject(value)) throw invalidInput(`${field}.${section}`, 'must be an object')
    if (section === 'context') {
      const known = Object.keys(result.context)
      for (const key of Object.keys(value)) {
        if (!known.includes(key))
          throw invalidInput(
            `${field}.context.${key}`,
            `is not a known setting; known: ${known.join(', ')}`,
          )
      }
      result.context = resolveContextOptions(
        { ...result.context, ...(value as ContextOptions) },
        `${field}.context`,
      )
      continue
    }
    const schema = SCHEMA[section as keyof typeof SCHEMA]
    const target = result[section as keyof typeof SCHEMA] as unknown as Record<string, unknown>
    for (const [key, setting] of Object.entries(value)) {
      const kind = schema[key]
      const name = `${field}.${section}.${key}`
      if (!kind)
        throw invalidInput(name, `is not a known setting; known: ${Object.keys(schema).join(', ')}`)
      if (kind === 'boolean') {
        if (typeof setting !== 'boolean')
          throw invalidInput(name, `must be true or false, got ${JSON.stringify(setting)}`)
      } else {
        assertNumber(setting, name, {
          min: kind === 'count' ? 1 : 0,
          integer: kind === 'count',
          ...(kind === 'ms' ? { max: 3_600_000 } : {}),
        })
      }
      target[key] = setting
    }
  }
  return result
}
