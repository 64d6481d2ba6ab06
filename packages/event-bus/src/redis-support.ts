/**
 * Internals of the Redis transport that need no Redis: loading the optional
 * `ioredis` peer, strict payload serialisation and stream entry parsing.
 * Not part of the public API.
 */
import { AideError, invalidInput } from '@aide/core'

/** The constructor of an ioredis client, as the transport uses it. */
export type RedisConstructor = typeof import('ioredis').Redis

/**
 * Imports `ioredis` lazily. A missing peer becomes `E_UNAVAILABLE` saying what
 * to install; `importer` exists so tests can simulate the missing package.
 */
export async function loadRedis(
  importer: () => Promise<unknown> = () => import('ioredis'),
): Promise<RedisConstructor> {
  let module: unknown
  try {
    module = await importer()
  } catch (cause) {
    throw new AideError(
      'E_UNAVAILABLE',
      'event-bus/redis: cannot import `ioredis`. Install it to use `@aide/event-bus/redis` (pnpm add ioredis).',
      { cause, details: { peer: 'ioredis' } },
    )
  }
  const candidate =
    (module as { Redis?: unknown }).Redis ?? (module as { default?: unknown }).default
  if (typeof candidate !== 'function') {
    throw new AideError(
      'E_UNAVAILABLE',
      'event-bus/redis: the installed `ioredis` has no Redis export. Install ioredis 5 or 6.',
      { details: { peer: 'ioredis' } },
    )
  }
  return candidate as RedisConstructor
}

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

/** The fields of one stream entry as written by the transport. */
export interface EntryFields {
  id: string
  type: string
  data: string
  ts: number
}

/** Reads the flat `[field, value, ...]` array of an entry; undefined when malformed. */
export function parseFields(flat: unknown): EntryFields | undefined {
  if (!Array.isArray(flat)) return undefined
  const fields: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) fields[String(flat[i])] = String(flat[i + 1])
  const { id, type, data, ts } = fields
  if (!id || !type || data === undefined) return undefined
  return { id, type, data, ts: ts === undefined ? 0 : Number(ts) }
}
