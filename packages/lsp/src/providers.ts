/**
 * The small interfaces through which a language server built with this
 * toolkit asks for completions, diagnostics and code actions. A model
 * orchestrator, a plugin host or plain code can stand behind each.
 */
import type {
  CodeAction,
  Diagnostic,
  Position,
  Range,
  TextEdit,
} from 'vscode-languageserver-protocol'
import type { CompletionContextData } from './context.js'
import type { DocumentSnapshot } from './document-store.js'

/** One suggestion: text to insert at the cursor. */
export interface CompletionSuggestion {
  /** Text inserted at the cursor (may span lines). */
  text: string
  /** Shown next to the item (e.g. the model that produced it). */
  detail?: string
  /**
   * Confidence in [0, 1], when the provider can tell. Used to order
   * suggestions merged from several providers (higher first; none counts as 0.5).
   */
  score?: number
}

/** What a {@link CompletionProvider} is asked. */
export interface CompletionRequest {
  /** The document version the request is for. */
  document: DocumentSnapshot
  /** The cursor, as the client sent it. */
  position: Position
  /** Prefix, suffix and similar snippets, under the configured budget. */
  context: CompletionContextData
  /** `completion` for `textDocument/completion`, `inline` for `textDocument/inlineCompletion`. */
  trigger: 'completion' | 'inline'
  /** Suggestions wanted at most. */
  maxItems: number
  /** Aborts when the client cancels, a newer request supersedes this one, or the deadline passes. */
  signal: AbortSignal
}

/** Produces completions. Must stop work when `request.signal` aborts. */
export interface CompletionProvider {
  /** Names the provider in logs and stats. */
  readonly name: string
  /** Suggestions for `request`, best first (empty when there is nothing to say). */
  provideCompletions(request: CompletionRequest): Promise<readonly CompletionSuggestion[]>
}

/** A quick fix attached to a diagnostic. */
export interface QuickFix {
  /** Shown in the client's code action menu. */
  title: string
  /** Edits to the diagnostic's document. */
  edits: TextEdit[]
  /** Marks the fix the client may apply without asking. */
  isPreferred?: boolean
}

/** A diagnostic with the quick fixes that resolve it. */
export interface DiagnosticWithFixes {
  /** Where the problem is. */
  range: Range
  /** What is wrong and, ideally, what to do. */
  message: string
  /** `error`, `warning`, `information` or `hint`. Default `warning`. */
  severity?: 'error' | 'warning' | 'information' | 'hint'
  /** A stable rule id (`no-eval`). */
  code?: string
  /** Who reported it (`aide-audit`). */
  source?: string
  /** Fixes offered as `quickfix` code actions. */
  fixes?: QuickFix[]
}

/** Produces diagnostics for one document version. Must stop work when `signal` aborts. */
export interface DiagnosticsProvider {
  /** Names the provider in logs and stats. */
  readonly name: string
  /** Diagnostics for `document`. */
  provideDiagnostics(
    document: DocumentSnapshot,
    options: { signal: AbortSignal },
  ): Promise<readonly DiagnosticWithFixes[]>
}

/** Produces code actions beyond the quick fixes carried by diagnostics. */
export interface CodeActionProvider {
  /** Names the provider in logs and stats. */
  readonly name: string
  /** Code actions for `range` in `document`; `diagnostics` are the client's diagnostics in that range. */
  provideCodeActions(
    document: DocumentSnapshot,
    range: Range,
    diagnostics: readonly Diagnostic[],
    options: { signal: AbortSignal },
  ): Promise<readonly CodeAction[]>
}
