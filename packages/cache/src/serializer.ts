/**
 * The default serializer of the Node tiers: V8's structured-clone format
 * (`node:v8`). It round-trips Date, Map, Set, BigInt, RegExp, typed arrays,
 * Buffers, nested objects and cycles, with no third-party code.
 */
import { deserialize, serialize } from 'node:v8'
import { AideError } from '@aide/core'
import type { Serializer } from './serializer-types.js'

/** V8 structured-clone serializer (the default of the Redis and disk tiers). */
export const v8Serializer: Serializer = {
  serialize(value) {
    try {
      return serialize(value)
    } catch (cause) {
      throw new AideError(
        'E_SERIALIZE',
        'cache: value cannot be serialised (functions and symbols cannot be cached in L2/L3)',
        {
          cause,
        },
      )
    }
  },
  deserialize(bytes) {
    try {
      return deserialize(bytes)
    } catch (cause) {
      throw new AideError('E_SERIALIZE', 'cache: stored bytes could not be decoded', { cause })
    }
  },
}
