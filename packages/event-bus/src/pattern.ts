/**
 * Routing-key patterns. An event type is a dot-separated routing key
 * (`document.opened`); a pattern may use `*` for exactly one segment and `**`
 * for zero or more segments (`document.*`, `plugin.**`, `**`).
 */
import { invalidInput } from '@aide/core'

/** A compiled pattern: a predicate over event types. */
export interface CompiledPattern {
  /** The pattern as written. */
  readonly source: string
  /** Whether the pattern contains `*` or `**` (otherwise it matches only itself). */
  readonly wildcard: boolean
  /** True when `type` matches. */
  matches(type: string): boolean
}

/** True when `pattern` contains a wildcard segment. */
export function isWildcard(pattern: string): boolean {
  return pattern.includes('*')
}

/**
 * Compiles a pattern. A `*` may only stand alone as a whole segment
 * (`doc*` is rejected): partial-segment globs would make routing ambiguous.
 */
export function compilePattern(pattern: string, field = 'pattern'): CompiledPattern {
  if (typeof pattern !== 'string' || pattern.length === 0) {
    throw invalidInput(field, `must be a non-empty string, got ${JSON.stringify(pattern)}`)
  }
  if (!isWildcard(pattern)) {
    return { source: pattern, wildcard: false, matches: (type) => type === pattern }
  }
  const segments = pattern.split('.')
  for (const segment of segments) {
    if (segment.length === 0) throw invalidInput(field, `has an empty segment: "${pattern}"`)
    if (segment.includes('*') && segment !== '*' && segment !== '**') {
      throw invalidInput(
        field,
        `uses "*" inside a segment ("${segment}"); use "*" for one whole segment or "**" for any number`,
      )
    }
  }
  return {
    source: pattern,
    wildcard: true,
    matches: (type) => matchSegments(segments, 0, type.split('.'), 0),
  }
}

function matchSegments(pattern: string[], p: number, type: string[], t: number): boolean {
  while (p < pattern.length) {
    const segment = pattern[p]!
    if (segment === '**') {
      // Collapse consecutive `**`, then try every possible split.
      while (p + 1 < pattern.length && pattern[p + 1] === '**') p++
      if (p === pattern.length - 1) return true
      for (let skip = t; skip <= type.length; skip++) {
        if (matchSegments(pattern, p + 1, type, skip)) return true
      }
      return false
    }
    if (t >= type.length) return false
    if (segment !== '*' && segment !== type[t]) return false
    p++
    t++
  }
  return t === type.length
}
