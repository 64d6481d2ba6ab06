/**
 * Code blocks that use Redis read `REDIS_URL`. `npm test` sets it; when the docs
 * project runs on its own, start a redis-server for the run.
 */
import { startRedis } from '../../scripts/redis.mjs'

export default async function setup(): Promise<(() => Promise<void>) | undefined> {
  if (process.env.REDIS_URL) return undefined
  const redis = await startRedis()
  process.env.REDIS_URL = redis.url
  return async () => {
    await redis.stop()
  }
}
