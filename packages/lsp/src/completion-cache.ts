/**
 * A completion cache with prefix reuse: when the user types along a
 * suggestion that was shown, the rest of that suggestion is served from the
 * cache instead of asking the model again.
 */
import {
  assertNumber,
  assertObject,
  assertString,
  type Clock,
  type Disposable,
  invalidInput,
  systemClock,
} from '@aide/core'

/** Options of {@link CompletionCache}. */
export interface CompletionCacheOptions {
  /** Entries kept at most (least recently used go first). Default 500. */
  maxEntries?: number
  /** Entries expire this many ms after they were stored. Default 300000 (5 min). */
  ttlMs?: number
  /** Characters of prefix compared to recognise the same spot. Default 256. */
  anchorChars?: number
  /** Clock for expiry (tests pass a `ManualClock`). */
  clock?: Clock
}

/** Where a completion was asked for. */
export interface CompletionCacheKey {
  /** Document URI. */
  uri: string
  /** Cursor offset in the document (UTF-16). */
  offset: number
  /** Text before the cursor (any length; its tail is compared). */
  prefix: string
  /** Text after the cursor (its head is compared). */
  suffix: string
}

/** A cache answer. */
export interface CompletionCacheHit {
  /** Suggestions to insert at the cursor now. */
  suggestions: string[]
  /** True when the answer came from typing along an earlier suggestion. */
  reused: boolean
}

/** Plain figures from {@link CompletionCache.stats}. */
export interface CompletionCacheStats {
  entries: number
  hits: number
  /** Hits served by typing along a suggestion (a subset of `hits`). */
  reuses: number
  misses: number
  evictions: number
  expirations: number
}

interface Entry {
  uri: string
  offset: number
  anchor: string
  suffixHead: string
  suggestions: string[]
  expiresAt: number
}

const SUFFIX_HEAD = 128

/** See the module comment. Bounded by entries; entries expire by the given clock. */
export class CompletionCache implements Disposable {
  readonly #entries = new Map<number, Entry>()
  readonly #maxEntries: number
  readonly #ttlMs: number
  readonly #anchorChars: number
  readonly #clock: Clock
  #nextId = 0
  #hits = 0
  #reuses = 0
  #misses = 0
  #evictions = 0
  #expirations = 0

  constructor(options: CompletionCacheOptions = {}) {
    assertObject(options, 'options')
    if (options.maxEntries !== undefined)
      assertNumber(options.maxEntries, 'options.maxEntries', { min: 1, integer: true })
    if (options.ttlMs !== undefined)
      assertNumber(options.ttlMs, 'options.ttlMs', { min: 0, allowInfinity: true })
    if (options.anchorChars !== undefined)
      assertNumber(options.anchorChars, 'options.anchorChars', { min: 1, integer: true })
    this.#maxEntries = options.maxEntries ?? 500
    this.#ttlMs = options.ttlMs ?? 300_000
    this.#anchorChars = options.anchorChars ?? 256
    this.#clock = options.clock ?? systemClock
  }

  /** Stores the suggestions shown at `key`. Empty suggestions are not stored. */
  set(key: CompletionCacheKey, suggestions: readonly string[]): void {
    validateKey(key)
    if (!Array.isArray(suggestions))
      throw invalidInput('suggestions', 'must be an array of strings')
    const kept = suggestions.filter((s) => typeof s === 'string' && s.length > 0)
    if (kept.length === 0) return
    this.#entries.set(this.#nextId++, {
      uri: key.uri,
      offset: key.offset,
      anchor: key.prefix.slice(-this.#anchorChars),
      suffixHead: key.suffix.slice(0, SUFFIX_HEAD),
      suggestions: kept,
      expiresAt: this.#clock.now() + this.#ttlMs,
    })
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value as number
      this.#entries.delete(oldest)
      this.#evictions++
    }
  }

  /**
   * Suggestions for `key`: an exact earlier request at the same spot, or an
   * earlier one whose suggestion the user has been typing along (the typed
   * characters are removed from the answer).
   */
  lookup(key: CompletionCacheKey): CompletionCacheHit | undefined {
    validateKey(key)
    const now = this.#clock.now()
    let found: { id: number; entry: Entry; hit: CompletionCacheHit } | undefined
    for (const [id, entry] of this.#entries) {
      if (entry.expiresAt <= now) {
        this.#entries.delete(id)
        this.#expirations++
        continue
      }
      if (entry.uri !== key.uri) continue
      const typedLength = key.offset - entry.offset
      if (typedLength < 0 || typedLength > key.prefix.length) continue
      if (key.suffix.slice(0, SUFFIX_HEAD) !== entry.suffixHead) continue
      const before = key.prefix.slice(0, key.prefix.length - typedLength)
      if (!before.endsWith(entry.anchor)) continue
      const typed = key.prefix.slice(key.prefix.length - typedLength)
      const suggestions = entry.suggestions
        .filter((s) => s.startsWith(typed) && s.length > typed.length)
        .map((s) => s.slice(typed.length))
      // Newer entries win: keep scanning so the last match (most recent) is used.
      if (suggestions.length > 0)
        found = { id, entry, hit: { suggestions, reused: typedLength > 0 } }
    }
    if (!found) {
      this.#misses++
      return undefined
    }
    // Refresh recency.
    this.#entries.delete(found.id)
    this.#entries.set(found.id, found.entry)
    this.#hits++
    if (found.hit.reused) this.#reuses++
    return found.hit
  }

  /** Drops every entry of a document (e.g. when it closes). */
  invalidate(uri: string): void {
    for (const [id, entry] of this.#entries) if (entry.uri === uri) this.#entries.delete(id)
  }

  /** Drops everything. */
  clear(): void {
    this.#entries.clear()
  }

  /** Plain figures. */
  stats(): CompletionCacheStats {
    return {
      entries: this.#entries.size,
      hits: this.#hits,
      reuses: this.#reuses,
      misses: this.#misses,
      evictions: this.#evictions,
      expirations: this.#expirations,
    }
  }

  /** Drops everything. Idempotent. */
  dispose(): void {
    this.#entries.clear()
  }
}

function validateKey(key: CompletionCacheKey): void {
  assertObject(key, 'key')
  assertString(key.uri, 'key.uri')
  assertNumber(key.offset, 'key.offset', { min: 0, integer: true })
  assertString(key.prefix, 'key.prefix', { allowEmpty: true })
  assertString(key.suffix, 'key.suffix', { allowEmpty: true })
}
