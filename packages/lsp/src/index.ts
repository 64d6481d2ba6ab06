/**
 * `@aide/lsp`: a toolkit for AI-backed language servers on
 * `vscode-languageserver`.
 *
 * @packageDocumentation
 */
export {
  type AuditProviderOptions,
  type AuditRule,
  createAuditDiagnosticsProvider,
  defaultAuditRules,
} from './audit-rules.js'
export {
  CompletionCache,
  type CompletionCacheHit,
  type CompletionCacheKey,
  type CompletionCacheOptions,
  type CompletionCacheStats,
} from './completion-cache.js'
export {
  type CompletionContextData,
  type ContextOptions,
  type ContextSnippet,
  gatherContext,
  resolveContextOptions,
} from './context.js'
export {
  type ContextCompletionOptions,
  createContextCompletionProvider,
} from './context-completion.js'
export {
  type DocumentChangeEvent,
  type DocumentSnapshot,
  DocumentStore,
  type DocumentStoreOptions,
  type DocumentStoreStats,
} from './document-store.js'
export {
  isSuperseded,
  LatestRequestScheduler,
  type LatestRequestStats,
  type ScheduleOptions,
  supersededError,
} from './latest-request.js'
export type {
  CodeActionProvider,
  CompletionProvider,
  CompletionRequest,
  CompletionSuggestion,
  DiagnosticsProvider,
  DiagnosticWithFixes,
  QuickFix,
} from './providers.js'
export {
  createLanguageServer,
  type LanguageServer,
  type LanguageServerEvents,
  type LanguageServerOptions,
  type LanguageServerStats,
} from './server.js'
export {
  type CacheSettings,
  type CompletionSettings,
  type DiagnosticsSettings,
  defaultSettings,
  type LanguageServerSettings,
  type LanguageServerSettingsInput,
  parseSettings,
} from './settings.js'
export { safeOffsetAt } from './text.js'
