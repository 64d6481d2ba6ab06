// Child process for the embedded-default test: a cache from `@aide/cache/node`
// built with no options. `write` stores a value; `read` prints what a fresh
// instance (empty L1) finds, and from which tier.
import { createCache } from '../src/node.ts'

const [mode, key] = process.argv.slice(2) as ['write' | 'read', string]
const cache = createCache<{ note: string; at: Date }>()
if (mode === 'write') {
  await cache.set(key, { note: 'written by another process', at: new Date(0) })
  process.stdout.write('ok\n')
} else {
  const value = await cache.get(key)
  const tiers = cache.stats().tiers.map((tier) => ({ name: tier.name, hits: tier.hits }))
  process.stdout.write(`${JSON.stringify({ value, isDate: value?.at instanceof Date, tiers })}\n`)
}
await cache.dispose()
