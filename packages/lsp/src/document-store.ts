/**
 * The open documents of a language server, kept in sync with the client
 * through full and incremental `didChange` events.
 */
import {
  AideError,
  assertNumber,
  assertObject,
  assertString,
  type Disposable,
  invalidInput,
  toDisposable,
} from '@aide/core'
import type { TextDocumentContentChangeEvent } from 'vscode-languageserver-protocol'
import { TextDocument } from 'vscode-languageserver-textdocument'

/** An immutable view of one document version, handed to providers. */
export interface DocumentSnapshot {
  /** The document URI (`file:///…` or `untitled:…`). */
  readonly uri: string
  /** The client's language id (`typescript`, `python`, …). */
  readonly languageId: string
  /** The version the client gave this content. */
  readonly version: number
  /** The full text of this version. */
  readonly text: string
  /** The underlying text document (positions, offsets, line count). */
  readonly document: TextDocument
}

/** What happened to a document, as seen by {@link DocumentStore.onDidChange} listeners. */
export interface DocumentChangeEvent {
  /** `open`, `change` or `close`. */
  readonly kind: 'open' | 'change' | 'close'
  /** The document after the event (the last version for `close`). */
  readonly snapshot: DocumentSnapshot
}

/** Options of {@link DocumentStore}. */
export interface DocumentStoreOptions {
  /** Documents larger than this many UTF-16 code units are rejected on open/change. Default 16 MiB. */
  maxDocumentLength?: number
}

/** Plain figures from {@link DocumentStore.stats}. */
export interface DocumentStoreStats {
  /** Documents open now. */
  open: number
  /** Total UTF-16 code units held. */
  totalLength: number
  /** Opens, changes and closes applied. */
  opens: number
  changes: number
  closes: number
  /** Change events ignored because their version was not newer than the stored one. */
  staleChanges: number
}

const DEFAULT_MAX_LENGTH = 16 * 1024 * 1024

/**
 * Open documents by URI. Applies full and incremental changes (UTF-16
 * positions, any line ending), ignores out-of-order versions, and tells
 * listeners what changed.
 */
export class DocumentStore implements Disposable {
  readonly #documents = new Map<string, TextDocument>()
  readonly #listeners = new Set<(event: DocumentChangeEvent) => void>()
  readonly #maxLength: number
  #opens = 0
  #changes = 0
  #closes = 0
  #stale = 0

  constructor(options: DocumentStoreOptions = {}) {
    assertObject(options, 'options')
    if (options.maxDocumentLength !== undefined) {
      assertNumber(options.maxDocumentLength, 'options.maxDocumentLength', {
        min: 0,
        integer: true,
      })
    }
    this.#maxLength = options.maxDocumentLength ?? DEFAULT_MAX_LENGTH
  }

  /**
   * Opens (or re-opens, replacing) a document.
   * @throws `E_INVALID_INPUT` for a malformed argument, `E_LIMIT` for a document over the size limit.
   */
  open(uri: string, languageId: string, version: number, text: string): DocumentSnapshot {
    assertString(uri, 'uri')
    assertString(languageId, 'languageId', { allowEmpty: true })
    assertNumber(version, 'version', { integer: true })
    assertString(text, 'text', { allowEmpty: true })
    this.#checkLength(uri, text.length)
    const document = TextDocument.create(uri, languageId, version, text)
    this.#documents.set(uri, document)
    this.#opens++
    const snapshot = toSnapshot(document)
    this.#notify({ kind: 'open', snapshot })
    return snapshot
  }

  /**
   * Applies `changes` (full or incremental) as version `version`. A version not
   * newer than the stored one is ignored (returns `undefined`), so a late
   * message never rolls a document back.
   * @throws `E_NOT_FOUND` for a document that is not open, `E_INVALID_INPUT`
   *   for malformed changes, `E_LIMIT` when the result is over the size limit.
   */
  change(
    uri: string,
    version: number,
    changes: readonly TextDocumentContentChangeEvent[],
  ): DocumentSnapshot | undefined {
    assertString(uri, 'uri')
    assertNumber(version, 'version', { integer: true })
    if (!Array.isArray(changes)) throw invalidInput('changes', 'must be an array')
    for (const [index, change] of changes.entries()) validateChange(change, `changes[${index}]`)
    const current = this.#documents.get(uri)
    if (!current)
      throw new AideError('E_NOT_FOUND', `lsp: document ${uri} is not open; send didOpen first`, {
        details: { uri },
      })
    if (version <= current.version) {
      this.#stale++
      return undefined
    }
    // Apply on a copy so a change that breaks the size limit leaves the stored version intact.
    const next = TextDocument.update(
      TextDocument.create(uri, current.languageId, current.version, current.getText()),
      [...changes],
      version,
    )
    this.#checkLength(uri, next.getText().length)
    this.#documents.set(uri, next)
    this.#changes++
    const snapshot = toSnapshot(next)
    this.#notify({ kind: 'change', snapshot })
    return snapshot
  }

  /** Closes a document. Returns whether it was open. */
  close(uri: string): boolean {
    assertString(uri, 'uri')
    const document = this.#documents.get(uri)
    if (!document) return false
    this.#documents.delete(uri)
    this.#closes++
    this.#notify({ kind: 'close', snapshot: toSnapshot(document) })
    return true
  }

  /** The current snapshot of an open document, or `undefined`. */
  get(uri: string): DocumentSnapshot | undefined {
    const document = this.#documents.get(uri)
    return document ? toSnapshot(document) : undefined
  }

  /** The current version of an open document, or `undefined`. */
  version(uri: string): number | undefined {
    return this.#documents.get(uri)?.version
  }

  /** Snapshots of every open document. */
  all(): DocumentSnapshot[] {
    return [...this.#documents.values()].map(toSnapshot)
  }

  /** Number of open documents. */
  get size(): number {
    return this.#documents.size
  }

  /** Calls `listener` after every open, change and close. Returns a disposable that removes it. */
  onDidChange(listener: (event: DocumentChangeEvent) => void): Disposable {
    this.#listeners.add(listener)
    return toDisposable(() => {
      this.#listeners.delete(listener)
    })
  }

  /** Plain figures. */
  stats(): DocumentStoreStats {
    let totalLength = 0
    for (const document of this.#documents.values()) totalLength += document.getText().length
    return {
      open: this.#documents.size,
      totalLength,
      opens: this.#opens,
      changes: this.#changes,
      closes: this.#closes,
      staleChanges: this.#stale,
    }
  }

  /** Forgets every document and listener. Idempotent. */
  dispose(): void {
    this.#documents.clear()
    this.#listeners.clear()
  }

  #checkLength(uri: string, length: number): void {
    if (length > this.#maxLength) {
      throw new AideError(
        'E_LIMIT',
        `lsp: document ${uri} has ${length} characters, over the limit of ${this.#maxLength}; raise maxDocumentLength to accept it`,
        {
          details: { uri, length, limit: this.#maxLength },
        },
      )
    }
  }

  #notify(event: DocumentChangeEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event)
      } catch {
        // A failing listener must not stop document sync or the other listeners.
      }
    }
  }
}

function toSnapshot(document: TextDocument): DocumentSnapshot {
  return {
    uri: document.uri,
    languageId: document.languageId,
    version: document.version,
    text: document.getText(),
    document,
  }
}

function validatePosition(value: unknown, field: string): void {
  assertObject(value, field)
  const position = value as Record<string, unknown>
  assertNumber(position.line, `${field}.line`, { min: 0, integer: true })
  assertNumber(position.character, `${field}.character`, { min: 0, integer: true })
}

function validateChange(change: unknown, field: string): void {
  assertObject(change, field)
  const value = change as Record<string, unknown>
  assertString(value.text, `${field}.text`, { allowEmpty: true })
  if (value.range !== undefined) {
    assertObject(value.range, `${field}.range`)
    const range = value.range as Record<string, unknown>
    validatePosition(range.start, `${field}.range.start`)
    validatePosition(range.end, `${field}.range.end`)
  }
}
