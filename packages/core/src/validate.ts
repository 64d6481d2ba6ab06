/**
 * Small validators for public API boundaries. Each throws `E_INVALID_INPUT`
 * naming the field, so no TypeError escapes from deep inside a component.
 */
import { invalidInput } from './errors.js'

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'number' && Number.isNaN(value)) return 'NaN'
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`
}

/** Asserts a plain object (not null, not an array). */
export function assertObject<T>(value: T, field: string): asserts value is T & Record<string, any> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidInput(field, `must be an object, got ${describe(value)}`)
  }
}

/** Asserts a string, by default non-empty. */
export function assertString(
  value: unknown,
  field: string,
  options: { allowEmpty?: boolean; maxLength?: number } = {},
): asserts value is string {
  if (typeof value !== 'string')
    throw invalidInput(field, `must be a string, got ${describe(value)}`)
  if (!options.allowEmpty && value.length === 0) throw invalidInput(field, 'must not be empty')
  if (options.maxLength !== undefined && value.length > options.maxLength) {
    throw invalidInput(
      field,
      `must be at most ${options.maxLength} characters, got ${value.length}`,
    )
  }
}

/** Options for {@link assertNumber}. */
export interface NumberRule {
  /** Inclusive lower bound. */
  min?: number
  /** Inclusive upper bound. */
  max?: number
  /** Require an integer. */
  integer?: boolean
  /** Allow `Infinity` (only meaningful with no `max`). */
  allowInfinity?: boolean
}

/** Asserts a number within the given bounds (finite unless `allowInfinity`). */
export function assertNumber(
  value: unknown,
  field: string,
  rule: NumberRule = {},
): asserts value is number {
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw invalidInput(field, `must be a number, got ${describe(value)}`)
  }
  if (!Number.isFinite(value) && !(rule.allowInfinity && value === Number.POSITIVE_INFINITY)) {
    throw invalidInput(field, `must be a finite number, got ${value}`)
  }
  if (rule.integer && Number.isFinite(value) && !Number.isInteger(value)) {
    throw invalidInput(field, `must be an integer, got ${value}`)
  }
  if (rule.min !== undefined && value < rule.min)
    throw invalidInput(field, `must be >= ${rule.min}, got ${value}`)
  if (rule.max !== undefined && value > rule.max)
    throw invalidInput(field, `must be <= ${rule.max}, got ${value}`)
}

/** Asserts a function. */
export function assertFunction(
  value: unknown,
  field: string,
): asserts value is (...args: never[]) => unknown {
  if (typeof value !== 'function')
    throw invalidInput(field, `must be a function, got ${describe(value)}`)
}

/** Asserts one of a fixed set of values. */
export function assertOneOf<T extends string | number | boolean>(
  value: unknown,
  field: string,
  allowed: readonly T[],
): asserts value is T {
  if (!allowed.includes(value as T)) {
    throw invalidInput(
      field,
      `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${describe(value)}`,
    )
  }
}

/** Asserts an `AbortSignal` (or undefined). */
export function assertOptionalSignal(
  value: unknown,
  field: string,
): asserts value is AbortSignal | undefined {
  if (value === undefined) return
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof (value as AbortSignal).aborted !== 'boolean' ||
    typeof (value as AbortSignal).addEventListener !== 'function'
  ) {
    throw invalidInput(field, `must be an AbortSignal, got ${describe(value)}`)
  }
}
