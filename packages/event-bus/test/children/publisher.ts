// A publisher process for the multi-process tests. Publishes `job.created`
// events with seq 1..COUNT and ids `job-<seq>`, retrying a publish that fails
// (e.g. while Redis restarts) with the same id so consumers can de-duplicate.
import { createRedisTransport } from '../../src/redis.ts'

const env = process.env
const count = Number(env.COUNT ?? '100')
const intervalMs = Number(env.INTERVAL_MS ?? '0')
const transport = await createRedisTransport<{ 'job.created': { seq: number } }>({
  url: env.REDIS_URL!,
  stream: env.STREAM!,
})
let retries = 0
for (let seq = 1; seq <= count; seq++) {
  for (;;) {
    try {
      await transport.publish('job.created', { seq }, { id: `job-${seq}`, timeoutMs: 1_000 })
      break
    } catch (error) {
      retries++
      process.stdout.write(`retry ${seq} ${(error as { code?: string }).code}\n`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  if (seq % 50 === 0) process.stdout.write(`published ${seq}\n`)
  if (intervalMs > 0) await new Promise((resolve) => setTimeout(resolve, intervalMs))
}
process.stdout.write(`done ${retries}\n`)
await transport.dispose()
process.exit(0)
