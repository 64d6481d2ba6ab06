/**
 * The one error type of aide. Every package throws `AideError` (or a subclass)
 * with a stable string `code`, so callers branch on `error.code`, never on
 * message text.
 */

/** Stable error codes. Add new codes here; never change the meaning of one. */
export type AideErrorCode =
  | 'E_TIMEOUT'
  | 'E_CANCELLED'
  | 'E_INVALID_INPUT'
  | 'E_INVALID_STATE'
  | 'E_NOT_FOUND'
  | 'E_ALREADY_EXISTS'
  | 'E_UNAVAILABLE'
  | 'E_CIRCUIT_OPEN'
  | 'E_CYCLE'
  | 'E_LIMIT'
  | 'E_PLUGIN'
  | 'E_MODEL'
  | 'E_INIT'
  | 'E_DISPOSED'
  | 'E_DISPOSE'
  | 'E_INTEGRITY'
  | 'E_INCOMPATIBLE'
  | 'E_PERMISSION'
  | 'E_SERIALIZE'
  | 'E_PROTOCOL'
  | 'E_INTERNAL'

/** Every known code, for validation and documentation. */
export const AIDE_ERROR_CODES: readonly AideErrorCode[] = [
  'E_TIMEOUT',
  'E_CANCELLED',
  'E_INVALID_INPUT',
  'E_INVALID_STATE',
  'E_NOT_FOUND',
  'E_ALREADY_EXISTS',
  'E_UNAVAILABLE',
  'E_CIRCUIT_OPEN',
  'E_CYCLE',
  'E_LIMIT',
  'E_PLUGIN',
  'E_MODEL',
  'E_INIT',
  'E_DISPOSED',
  'E_DISPOSE',
  'E_INTEGRITY',
  'E_INCOMPATIBLE',
  'E_PERMISSION',
  'E_SERIALIZE',
  'E_PROTOCOL',
  'E_INTERNAL',
]

/** Codes that describe a condition which may pass if the operation is tried again. */
const RETRYABLE_BY_DEFAULT: ReadonlySet<AideErrorCode> = new Set([
  'E_TIMEOUT',
  'E_UNAVAILABLE',
  'E_LIMIT',
])

const MARKER = Symbol.for('@aide/core/AideError')

/** Options accepted by the `AideError` constructor. */
export interface AideErrorOptions {
  /** The underlying error, kept for diagnosis. */
  cause?: unknown
  /** Structured, JSON-friendly context: the field that was wrong, the service, the limit… */
  details?: Record<string, unknown>
  /**
   * Whether trying again may succeed. Defaults by code: `E_TIMEOUT`, `E_UNAVAILABLE`
   * and `E_LIMIT` are retryable, everything else is not.
   */
  isRetryable?: boolean
}

/**
 * Base error of every aide package.
 *
 * - `code` is stable and machine-readable.
 * - `message` says what happened and what to do, prefixed by the component (`cache: …`).
 * - `cause` keeps the underlying error; `details` holds structured context.
 * - `isRetryable` drives retry and failover decisions.
 *
 * Use {@link AideError.isInstance} (or {@link isAideError}) rather than `instanceof`:
 * it works across duplicate installs of `@aide/core`.
 */
export class AideError extends Error {
  readonly code: AideErrorCode
  readonly details: Readonly<Record<string, unknown>>
  readonly isRetryable: boolean
  declare readonly cause: unknown
  readonly [MARKER] = true

  constructor(code: AideErrorCode, message: string, options: AideErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'AideError'
    this.code = code
    this.details = Object.freeze({ ...(options.details ?? {}) })
    this.isRetryable = options.isRetryable ?? RETRYABLE_BY_DEFAULT.has(code)
  }

  /** True for any `AideError`, including ones created by another copy of `@aide/core`. */
  static isInstance(value: unknown): value is AideError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[MARKER] === true
    )
  }

  /** A JSON-friendly view (used by loggers and event payloads). */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      details: this.details,
      isRetryable: this.isRetryable,
      cause:
        this.cause instanceof Error
          ? { name: this.cause.name, message: this.cause.message }
          : this.cause,
    }
  }
}

/** True when `value` is an `AideError`, optionally with the given code. */
export function isAideError(value: unknown, code?: AideErrorCode): value is AideError {
  return AideError.isInstance(value) && (code === undefined || value.code === code)
}

/**
 * Bad input at a public boundary. `field` names what was wrong, using the
 * caller's vocabulary (`options.ttl`, `request.input.messages[2].role`).
 */
export function invalidInput(
  field: string,
  problem: string,
  details: Record<string, unknown> = {},
): AideError {
  return new AideError('E_INVALID_INPUT', `${field} ${problem}`, {
    details: { field, ...details },
  })
}

/** Wraps any thrown value as an `AideError` (returning it unchanged if it already is one). */
export function toAideError(
  value: unknown,
  code: AideErrorCode = 'E_INTERNAL',
  message?: string,
): AideError {
  if (AideError.isInstance(value)) return value
  const text = message ?? (value instanceof Error ? value.message : String(value))
  return new AideError(code, text, { cause: value })
}
