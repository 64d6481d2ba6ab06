import { describe } from 'vitest'
import { MemoryTier } from '../src/memory-tier.ts'
import { testTier } from './conformance.ts'

describe('cache tier: memory', () => {
  testTier(async () => new MemoryTier(), { serializes: false })
})
