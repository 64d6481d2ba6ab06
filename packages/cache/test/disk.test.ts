import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createCache } from '../src/cache.ts'
import { diskTier } from '../src/disk.ts'
import { richValue, testTier } from './conformance.ts'

const dirs: string[] = []
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'aide-cache-disk-'))
  dirs.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

function entryFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.length === 2)
    .flatMap((shard) => readdirSync(join(dir, shard)).map((name) => join(dir, shard, name)))
}

const forever = Number.POSITIVE_INFINITY
const entry = (value: unknown) => ({
  value,
  createdAt: 0,
  expiresAt: forever,
  staleUntil: forever,
  tags: [],
})

describe('cache tier: disk', () => {
  testTier(async () => diskTier({ dir: tempDir() }), { serializes: true })
})

describe('disk tier', () => {
  it('treats damaged files as misses, deletes them and counts them', async () => {
    const dir = tempDir()
    const tier = diskTier({ dir })
    await tier.set('a', entry('x'.repeat(1000)))
    await tier.set('b', entry('y'.repeat(1000)))
    await tier.set('c', entry('z'.repeat(1000)))
    const files = entryFiles(dir)
    expect(files).toHaveLength(3)
    // Flip one payload byte, truncate another, and replace the third with garbage.
    const flipped = readFileSync(files[0]!)
    flipped[flipped.length - 5] = flipped[flipped.length - 5]! ^ 0xff
    writeFileSync(files[0]!, flipped)
    writeFileSync(files[1]!, readFileSync(files[1]!).subarray(0, 100))
    writeFileSync(files[2]!, Buffer.from('not a cache file at all'))
    for (const key of ['a', 'b', 'c']) expect(await tier.get(key)).toBeUndefined()
    expect(tier.stats().corrupt).toBe(3)
    expect(entryFiles(dir)).toHaveLength(0)
  })

  it('fsync mode writes and reads back', async () => {
    const tier = diskTier({ dir: tempDir(), fsync: true })
    await tier.set('k', entry(richValue()))
    expect((await tier.get('k'))?.value).toEqual(richValue())
  })

  it('prune removes expired entries and old temporary files', async () => {
    const dir = tempDir()
    const tier = diskTier({ dir })
    await tier.set('old', { value: 1, createdAt: 0, expiresAt: 1, staleUntil: 2, tags: [] })
    await tier.set('live', entry(2))
    writeFileSync(join(dir, 'tmp', 'left-over.tmp'), 'partial')
    expect(await tier.prune({ staleTemporaryMs: 0 })).toBe(2)
    expect((await tier.get('live'))?.value).toBe(2)
  })

  it('rejects bad options and use after dispose', async () => {
    expect(() => diskTier({ dir: '' })).toThrow(/options.dir/)
    expect(() => diskTier({ dir: tempDir(), serializer: {} as never })).toThrow(
      /options.serializer/,
    )
    const tier = diskTier({ dir: tempDir() })
    tier.dispose()
    await expect(tier.get('a')).rejects.toMatchObject({ code: 'E_DISPOSED' })
  })

  it('never returns a corrupted value after writers are killed with SIGKILL mid-write', async () => {
    const dir = tempDir()
    for (let run = 0; run < 3; run++) {
      const child = spawn(
        process.execPath,
        ['--conditions=@aide/source', '--import', 'tsx', join(__dirname, 'disk-writer.ts'), dir],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      )
      const exited = new Promise((resolve) => child.once('exit', resolve))
      // Kill it after a random-ish number of completed writes, i.e. in the middle of later ones.
      const target = 30 + run * 17
      await new Promise<void>((resolve, reject) => {
        let lines = 0
        const timer = setTimeout(() => reject(new Error('writer made no progress in 40 s')), 40_000)
        child.stdout!.on('data', (chunk: Buffer) => {
          lines += chunk.toString().split('\n').length - 1
          if (lines >= target) {
            clearTimeout(timer)
            resolve()
          }
        })
      })
      child.kill('SIGKILL')
      await exited
    }
    const tier = diskTier({ dir })
    let found = 0
    for (let i = 0; i < 20; i++) {
      const stored = await tier.get(`k${i}`)
      if (!stored) continue
      found++
      const value = stored.value as { fill: number; size: number; data: Buffer }
      expect(value.data.length).toBe(value.size)
      expect(value.data.every((byte) => byte === value.fill)).toBe(true)
    }
    expect(found).toBeGreaterThan(0)
    expect(tier.stats().corrupt).toBe(0)
    // Leftover temporary files from the killed writers are cleaned by prune.
    await tier.prune({ staleTemporaryMs: 0 })
    expect(readdirSync(join(dir, 'tmp'))).toHaveLength(0)
  }, 120_000)

  it('works as L3 under a cache: write-through and back-fill to a fresh L1', async () => {
    const dir = tempDir()
    const first = createCache({ l3: diskTier({ dir }) })
    await first.set('user:1', richValue(), { ttl: 60_000 })
    await first.dispose()
    const second = createCache({ l3: diskTier({ dir }) })
    expect(await second.get('user:1')).toEqual(richValue())
    expect(second.stats().tiers[1]!.hits).toBe(1)
    expect(second.getIfPresent('user:1')).toEqual(richValue())
    await second.dispose()
  })
})
