/**
 * Adapters from the aide AI services to the toolkit's provider interfaces:
 * an orchestrator answers completions, a plugin host reports diagnostics
 * with quick fixes.
 */
import { assertFunction, assertNumber, assertObject, assertString, invalidInput } from '@aide/core'
import type { Orchestrator } from '@aide/orchestrator'
import type { PluginHost } from '@aide/plugins'
import type {
  CompletionProvider,
  CompletionRequest,
  CompletionSuggestion,
  DiagnosticsProvider,
  DiagnosticWithFixes,
} from './providers.js'

/** Options of {@link createOrchestratorCompletionProvider}. */
export interface OrchestratorCompletionOptions {
  /** Routes the requests (any models that serve `task`). */
  orchestrator: Pick<Orchestrator, 'run'>
  /** Orchestrator task. Default `completion`. */
  task?: string
  /** Tokens generated at most per suggestion. Default 16. */
  maxTokens?: number
  /** Generation stops at these. Default `["\n"]` (one line, for inline completion). */
  stop?: readonly string[]
  /** Include similar snippets in the prompt as comments. Default true. */
  includeSnippets?: boolean
  /** Per-request deadline handed to the orchestrator, in ms. Default none (the server's completion timeout applies). */
  timeoutMs?: number
}

/** Builds the prompt: similar snippets as line comments, then the text before the cursor. */
export function buildCompletionPrompt(
  request: Pick<CompletionRequest, 'context'>,
  includeSnippets = true,
): string {
  const parts: string[] = []
  if (includeSnippets) {
    for (const snippet of request.context.snippets) {
      parts.push(`// Related code from ${snippet.uri}:\n${snippet.text.replace(/^/gm, '// ')}\n`)
    }
  }
  parts.push(request.context.prefix)
  return parts.join('\n')
}

/** A completion provider that asks an orchestrator (local model, OpenAI-compatible servers…). */
export function createOrchestratorCompletionProvider(
  options: OrchestratorCompletionOptions,
): CompletionProvider {
  assertObject(options, 'options')
  assertObject(options.orchestrator, 'options.orchestrator')
  assertFunction(options.orchestrator.run, 'options.orchestrator.run')
  const task = options.task ?? 'completion'
  assertString(task, 'options.task')
  const maxTokens = options.maxTokens ?? 16
  assertNumber(maxTokens, 'options.maxTokens', { min: 1, integer: true })
  const stop = options.stop ?? ['\n']
  if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string'))
    throw invalidInput('options.stop', 'must be an array of strings')
  if (options.timeoutMs !== undefined)
    assertNumber(options.timeoutMs, 'options.timeoutMs', { min: 0 })
  return {
    name: 'orchestrator',
    async provideCompletions(request): Promise<CompletionSuggestion[]> {
      const result = await options.orchestrator.run({
        task,
        input: {
          prompt: buildCompletionPrompt(request, options.includeSnippets ?? true),
          maxTokens,
          stop: [...stop],
        },
        signal: request.signal,
        ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      })
      // A completion item shows one line; inline completion may insert several.
      const text =
        request.trigger === 'inline' ? result.text : (result.text.split(/\r?\n/)[0] ?? '')
      return text.trim().length > 0
        ? [{ text, detail: `aide: ${result.model}${result.cached ? ' (cached)' : ''}` }]
        : []
    },
  }
}

/** A diagnostics provider backed by a plugin host (e.g. the shipped security-audit plugins). */
export function createPluginDiagnosticsProvider(
  host: Pick<PluginHost, 'runDiagnostics'> | (() => Promise<Pick<PluginHost, 'runDiagnostics'>>),
  options: { timeoutMs?: number } = {},
): DiagnosticsProvider {
  if (typeof host !== 'function') {
    assertObject(host, 'host')
    assertFunction(host.runDiagnostics, 'host.runDiagnostics')
  }
  assertObject(options, 'options')
  if (options.timeoutMs !== undefined)
    assertNumber(options.timeoutMs, 'options.timeoutMs', { min: 0 })
  return {
    name: 'plugins',
    async provideDiagnostics(document, { signal }): Promise<DiagnosticWithFixes[]> {
      const resolved = typeof host === 'function' ? await host() : host
      const { diagnostics } = await resolved.runDiagnostics(
        {
          uri: document.uri,
          languageId: document.languageId,
          version: document.version,
          text: document.text,
        },
        { signal, ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) },
      )
      return diagnostics.map((d) => ({
        range: d.range,
        message: d.remediation ? `${d.message} ${d.remediation}` : d.message,
        severity: d.severity,
        code: d.ruleId,
        source: d.source,
        fixes: d.fixes.map((fix) => ({ title: fix.title, edits: fix.edits })),
      }))
    },
  }
}
