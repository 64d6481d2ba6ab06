// Child process for the crash test: writes entries to a disk tier as fast as
// it can, printing each completed key, until it is killed.
import { diskTier } from '../src/disk.ts'

const dir = process.argv[2]!
const tier = diskTier({ dir })
const forever = Number.POSITIVE_INFINITY
let round = 0
for (;;) {
  for (let i = 0; i < 20; i++) {
    const fill = (round * 20 + i) % 251
    const size = 50_000 + ((round * 7 + i) % 13) * 10_000
    const value = { fill, size, data: Buffer.alloc(size, fill), round }
    await tier.set(`k${i}`, {
      value,
      createdAt: Date.now(),
      expiresAt: forever,
      staleUntil: forever,
      tags: ['t'],
    })
    process.stdout.write(`k${i}\n`)
  }
  round++
}
