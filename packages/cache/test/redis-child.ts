// A second process with its own cache on the same Redis, driven by JSON lines
// on stdin; it answers each command with one JSON line on stdout.
import { createInterface } from 'node:readline'
import { createCache } from '../src/cache.ts'
import { redisTier } from '../src/redis.ts'

const [url, prefix, lockTtl] = process.argv.slice(2) as [string, string, string]
const l2 = await redisTier({ url, prefix })
await l2.subscribed()
const cache = createCache<unknown>({ l2, lock: { ttlMs: Number(lockTtl), pollMs: 20 } })

interface Command {
  id: number
  op: 'get' | 'peek' | 'set' | 'load' | 'stats' | 'exit'
  key?: string
  value?: unknown
  /** For `load`: a Redis counter incremented by the loader, and a key to wait on before returning. */
  counter?: string
  gate?: string
}

const reply = (id: number, result: unknown) =>
  process.stdout.write(`${JSON.stringify({ id, result })}\n`)

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line) as Command
  const run = async () => {
    switch (command.op) {
      case 'get':
        return cache.get(command.key!)
      case 'peek':
        return cache.getIfPresent(command.key!) ?? null
      case 'set':
        await cache.set(command.key!, command.value)
        return true
      case 'load':
        return cache.getOrSet(command.key!, async () => {
          await l2.client.incr(command.counter!)
          await l2.client.set(`${command.counter!}:started`, '1')
          if (command.gate) {
            // Hold the load until the test opens the gate (so others must wait on the lock).
            while ((await l2.client.get(command.gate)) === null)
              await new Promise((r) => setTimeout(r, 20))
          }
          return command.value
        })
      case 'stats':
        return cache.stats()
      case 'exit':
        await cache.dispose()
        reply(command.id, true)
        process.exit(0)
    }
  }
  // Commands run concurrently; replies carry the command id.
  run().then(
    (result) => reply(command.id, result ?? null),
    (error: Error) => reply(command.id, { error: error.message }),
  )
}
