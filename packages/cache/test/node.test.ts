import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { isAideError } from '@aide/core'
import { afterEach, describe, expect, it } from 'vitest'
import { createCache, defaultCacheDir, diskTier } from '../src/node.ts'

const run = promisify(execFile)
const temporary: string[] = []
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'aide-cache-node-'))
  temporary.push(dir)
  return dir
}
afterEach(() => {
  for (const dir of temporary.splice(0)) rmSync(dir, { recursive: true, force: true })
})

describe('defaultCacheDir', () => {
  const home = '/home/ada'
  it('follows each platform’s user cache directory, one folder per namespace', () => {
    expect(defaultCacheDir(undefined, { env: {}, platform: 'linux', home })).toBe(
      '/home/ada/.cache/aide-cache/default',
    )
    expect(
      defaultCacheDir('billing', {
        env: { XDG_CACHE_HOME: '/var/cache/ada' },
        platform: 'linux',
        home,
      }),
    ).toBe('/var/cache/ada/aide-cache/billing')
    expect(defaultCacheDir('app', { env: {}, platform: 'darwin', home })).toBe(
      '/home/ada/Library/Caches/aide-cache/app',
    )
    expect(
      defaultCacheDir('app', {
        env: { LOCALAPPDATA: 'C:/Users/ada/AppData/Local' },
        platform: 'win32',
        home,
      }),
    ).toBe(join('C:/Users/ada/AppData/Local', 'aide-cache', 'app'))
    expect(defaultCacheDir('a/b', { env: {}, platform: 'linux', home })).toBe(
      '/home/ada/.cache/aide-cache/a%2Fb',
    )
  })

  it('AIDE_CACHE_DIR overrides the platform default', () => {
    expect(
      defaultCacheDir('app', {
        env: { AIDE_CACHE_DIR: '/srv/cache', XDG_CACHE_HOME: '/x' },
        platform: 'linux',
        home,
      }),
    ).toBe('/srv/cache/app')
  })

  it('rejects a namespace that is not a string', () => {
    expect(() => defaultCacheDir(42 as never)).toThrow(/namespace/)
  })
})

describe('createCache from @aide/cache/node', () => {
  it('defaults to memory + disk; l3: false is memory only; dir picks the folder', async () => {
    const dir = tempDir()
    const cache = createCache<number>({ dir })
    expect(cache.stats().tiers.map((tier) => tier.name)).toEqual(['memory', 'disk'])
    await cache.set('k', 1)
    expect(readdirSync(dir).filter((name) => name !== 'tmp').length).toBe(1)
    await cache.dispose()
    const memoryOnly = createCache({ l3: false })
    expect(memoryOnly.stats().tiers.map((tier) => tier.name)).toEqual(['memory'])
    await memoryOnly.dispose()
    const own = createCache({ l3: diskTier({ dir: tempDir() }) })
    expect(own.stats().tiers.map((tier) => tier.name)).toEqual(['memory', 'disk'])
    await own.dispose()
  })

  it('rejects dir together with l3, and reports a directory it cannot create', () => {
    const dir = tempDir()
    let error: unknown
    try {
      createCache({ dir, l3: diskTier({ dir }) })
    } catch (caught) {
      error = caught
    }
    expect(isAideError(error) && error.code).toBe('E_INVALID_INPUT')
    expect(String(error)).toMatch(/options\.dir/)
    const file = join(tempDir(), 'a-file')
    writeFileSync(file, 'not a directory')
    expect(() => createCache({ dir: join(file, 'cache') })).toThrow(
      /cannot create the disk tier directory/,
    )
  })

  it('with no options, a value written by one process is read by a new process (empty L1) from the default directory', async () => {
    const home = tempDir()
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, USERPROFILE: home }
    delete env.AIDE_CACHE_DIR
    delete env.XDG_CACHE_HOME
    const child = (...args: string[]) =>
      run(
        process.execPath,
        [
          '--conditions=@aide/source',
          '--import',
          'tsx',
          join(__dirname, 'node-default-child.ts'),
          ...args,
        ],
        { env, timeout: 60_000 },
      )
    expect((await child('write', 'greeting')).stdout.trim()).toBe('ok')
    const expectedDir = join(home, '.cache', 'aide-cache', 'default')
    if (process.platform === 'linux') expect(existsSync(expectedDir)).toBe(true)
    const read = JSON.parse((await child('read', 'greeting')).stdout.trim())
    expect(read).toEqual({
      value: { note: 'written by another process', at: new Date(0).toISOString() },
      isDate: true,
      tiers: [
        { name: 'memory', hits: 0 },
        { name: 'disk', hits: 1 },
      ],
    })
    const missing = JSON.parse((await child('read', 'never-written')).stdout.trim())
    expect(missing.value).toBeUndefined()
  }, 120_000)
})
