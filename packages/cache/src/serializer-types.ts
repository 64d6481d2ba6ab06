/** Turns values into bytes and back for the L2 and L3 tiers. */
export interface Serializer {
  /** Encodes a value. Must round-trip everything the application caches. */
  serialize(value: unknown): Uint8Array
  /** Decodes bytes produced by `serialize`. */
  deserialize(bytes: Uint8Array): unknown
}
