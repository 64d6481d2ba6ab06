/**
 * Payload serialisation shared by the transports: strict JSON by default,
 * rejecting what JSON would silently change or drop. Not an entry of its own;
 * `Serializer` is exported from `@aide/event-bus`.
 */
import { invalidInput } from '@aide/core'

/** Turns a payload into text, or tells why it cannot be carried. */
export interface Serializer {
  /** Text for the stream entry. Throws for values it cannot represent. */
  serialize(value: unknown): string
  /** The value back from the text. */
  deserialize(text: string): unknown
}

/**
 * Rejects what JSON would silently change or drop: `undefined`, functions,
 * symbols, bigints, non-finite numbers, cycles and non-plain objects (Map,
 * Set, Date, class instances). `path` names the offending field.
 */
export function assertJsonSafe(
  value: unknown,
  path: string,
  ancestors: Set<object> = new Set(),
): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return
    case 'number':
      if (!Number.isFinite(value)) throw invalidInput(path, `is ${value}, which JSON cannot carry`)
      return
    case 'object': {
      if (value === null) return
      if (ancestors.has(value)) throw invalidInput(path, 'is a circular reference')
      ancestors.add(value)
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) assertJsonSafe(value[i], `${path}[${i}]`, ancestors)
      } else {
        const proto = Object.getPrototypeOf(value)
        if (proto !== Object.prototype && proto !== null) {
          const name = (value as { constructor?: { name?: string } }).constructor?.name ?? 'object'
          throw invalidInput(
            path,
            `is a ${name}; only plain objects, arrays and primitives can be carried`,
          )
        }
        for (const key of Object.keys(value)) {
          assertJsonSafe((value as Record<string, unknown>)[key], `${path}.${key}`, ancestors)
        }
      }
      ancestors.delete(value)
      return
    }
    default:
      throw invalidInput(
        path,
        `is ${typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`}, which JSON cannot carry`,
      )
  }
}

/** The default serializer: strict JSON. */
export const jsonSerializer: Serializer = {
  serialize(value) {
    assertJsonSafe(value, 'payload')
    return JSON.stringify(value)
  },
  deserialize: (text) => JSON.parse(text),
}
