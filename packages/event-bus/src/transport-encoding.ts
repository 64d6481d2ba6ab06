/**
 * Checking and serialising events on their way into a transport, shared by
 * the Redis Streams transport and the in-memory one, so both refuse the same
 * input with the same typed errors.
 */
import { AideError, assertObject, assertString, validateDeadlineOptions } from '@aide/core'
import type { Serializer } from './serializer.js'

/** An event checked and serialised for a transport. */
export interface EncodedEvent {
  id: string
  type: string
  /** The serialised payload. */
  data: string
  origin: string | undefined
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * Checks one event (`type`, optional `id` and `origin`) and serialises its
 * payload. `prefix` starts every field name in errors (e.g. `"publish: "`).
 *
 * @throws `E_INVALID_INPUT` naming the field that is wrong or cannot be serialised.
 */
export function encodeEvent(
  serializer: Serializer,
  type: unknown,
  payload: unknown,
  id: unknown,
  origin: unknown,
  prefix: string,
): EncodedEvent {
  assertString(type, `${prefix}type`)
  if (id !== undefined) assertString(id, `${prefix}id`, { maxLength: 200 })
  if (origin !== undefined) assertString(origin, `${prefix}origin`, { maxLength: 200 })
  let data: unknown
  try {
    data = serializer.serialize(payload)
  } catch (error) {
    const inner = AideError.isInstance(error) ? error.details.field : undefined
    const field = `${prefix}${typeof inner === 'string' ? inner : 'payload'}`
    const problem =
      AideError.isInstance(error) && typeof inner === 'string'
        ? error.message.slice(inner.length + 1)
        : `cannot be serialised: ${message(error)}`
    throw new AideError('E_INVALID_INPUT', `${field} ${problem}`, {
      cause: error,
      details: { field },
    })
  }
  if (typeof data !== 'string') {
    throw new AideError(
      'E_INVALID_INPUT',
      `${prefix}payload: the serializer did not return a string`,
      { details: { field: `${prefix}payload` } },
    )
  }
  return {
    id: (id as string | undefined) ?? globalThis.crypto.randomUUID(),
    type,
    data,
    origin: origin as string | undefined,
  }
}

/**
 * Checks the arguments of `publishBatch` and encodes every event, so a bad
 * event anywhere in the batch rejects it before anything is written.
 */
export function encodeBatch(
  serializer: Serializer,
  events: ReadonlyArray<{ type: unknown; payload: unknown; id?: unknown; origin?: unknown }>,
  options: object,
): EncodedEvent[] {
  if (!Array.isArray(events))
    throw new AideError('E_INVALID_INPUT', 'publishBatch: events must be an array', {
      details: { field: 'publishBatch: events' },
    })
  assertObject(options, 'publishBatch: options')
  validateDeadlineOptions(options, 'publishBatch: options')
  return events.map((event, index) => {
    assertObject(event, `publishBatch: events[${index}]`)
    return encodeEvent(
      serializer,
      event.type,
      event.payload,
      event.id,
      event.origin,
      `publishBatch: events[${index}].`,
    )
  })
}
