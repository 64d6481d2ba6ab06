import { describe, expect, it, vi } from 'vitest'

vi.mock('ioredis', () => {
  throw new Error("Cannot find package 'ioredis'")
})

describe('redis tier without ioredis installed', () => {
  it('rejects with E_UNAVAILABLE saying what to install', async () => {
    const { redisTier } = await import('../src/redis.ts')
    await expect(redisTier({ url: 'redis://127.0.0.1:1' })).rejects.toMatchObject({
      code: 'E_UNAVAILABLE',
      message: expect.stringContaining('Install it to use `@aide/cache/redis`'),
    })
  })
})
