/**
 * Internals of the Redis transport that need no Redis: loading the optional
 * `ioredis` peer and stream entry parsing (strict serialisation is in
 * `serializer.ts`, shared with the in-memory transport).
 * Not part of the public API.
 */
import { AideError } from '@aide/core'

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

export { assertJsonSafe, jsonSerializer, type Serializer } from './serializer.js'

/** The fields of one stream entry as written by the transport. */
export interface EntryFields {
  id: string
  type: string
  data: string
  ts: number
  /** The publishing node, when the publisher set one (bridges do). */
  origin: string | undefined
}

/** Reads the flat `[field, value, ...]` array of an entry; undefined when malformed. */
export function parseFields(flat: unknown): EntryFields | undefined {
  if (!Array.isArray(flat)) return undefined
  const fields: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) fields[String(flat[i])] = String(flat[i + 1])
  const { id, type, data, ts, origin } = fields
  if (!id || !type || data === undefined) return undefined
  return { id, type, data, ts: ts === undefined ? 0 : Number(ts), origin: origin || undefined }
}
