// A consumer process for the multi-process tests. Records each handled event
// in the hash `<stream>:handled` (seq -> times handled), then prints it.
import { Redis } from 'ioredis'
import { createRedisTransport } from '../../src/redis.ts'

const env = process.env
const url = env.REDIS_URL!
const stream = env.STREAM!
const delayMs = Number(env.DELAY_MS ?? '0')
const recorder = new Redis(url, { maxRetriesPerRequest: null })
const transport = await createRedisTransport<{ 'job.created': { seq: number } }>({ url, stream })
await transport.consume({
  group: env.GROUP!,
  consumer: env.CONSUMER!,
  batchSize: Number(env.BATCH_SIZE ?? '10'),
  claimIdleMs: Number(env.CLAIM_IDLE_MS ?? '30000'),
  handler: async (event) => {
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs))
    await recorder.hincrby(`${stream}:handled`, String(event.payload.seq), 1)
    process.stdout.write(`handled ${event.payload.seq}\n`)
  },
})
process.stdout.write('ready\n')
process.on('SIGTERM', () => {
  void transport.dispose().finally(() => {
    recorder.disconnect()
    process.exit(0)
  })
})
