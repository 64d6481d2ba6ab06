/**
 * `@aide/cache/node`: the embedded default for Node. Its {@link createCache}
 * builds L1 (memory) + L3 (disk) when no `l3` is given, so values survive
 * restarts with no server to run; everything else is the root entry's API,
 * re-exported. The root entry (`@aide/cache`) stays browser-safe and
 * memory-only by default: it never loads `node:fs`.
 *
 * @packageDocumentation
 */
import { homedir } from 'node:os'
import { join } from 'node:path'
import { assertObject, assertString, invalidInput } from '@aide/core'
import { type CacheOptions, createCache as createCacheCore, type MultiLevelCache } from './cache.js'
import { diskTier } from './disk.js'
import type { CacheTier } from './tier.js'

export { type DiskTier, type DiskTierOptions, type DiskTierStats, diskTier } from './disk.js'
export * from './index.js'

/** Options of the Node {@link createCache}: the root options, with a disk L3 by default. */
export interface NodeCacheOptions extends Omit<CacheOptions, 'l3'> {
  /**
   * L3 tier. Default: `diskTier({ dir })` in {@link NodeCacheOptions.dir}.
   * `false` for no L3 (memory only, or memory + `l2`).
   */
  l3?: CacheTier | false
  /**
   * Directory of the default disk tier. Default: {@link defaultCacheDir} for
   * the cache's `namespace` (`AIDE_CACHE_DIR/<namespace>` when that variable
   * is set). Not allowed together with an explicit `l3`.
   */
  dir?: string
}

/** The environment {@link defaultCacheDir} reads (defaults: this process). */
export interface CacheDirEnvironment {
  /** Environment variables (`AIDE_CACHE_DIR`, `XDG_CACHE_HOME`, `LOCALAPPDATA`). */
  env?: Record<string, string | undefined>
  /** `process.platform`. */
  platform?: string
  /** The user's home directory. */
  home?: string
}

/**
 * Where the Node {@link createCache} keeps its disk tier by default:
 * `<base>/<namespace or "default">`, where `<base>` is
 * - `$AIDE_CACHE_DIR` when set (an absolute path; for containers and CI),
 * - Linux and other Unix: `$XDG_CACHE_HOME/aide-cache`, else `~/.cache/aide-cache`,
 * - macOS: `~/Library/Caches/aide-cache`,
 * - Windows: `%LOCALAPPDATA%\aide-cache`, else `~\AppData\Local\aide-cache`.
 *
 * Caches of different applications must use different namespaces (or `dir`s):
 * with the same namespace they share the directory and so the entries.
 */
export function defaultCacheDir(namespace?: string, environment: CacheDirEnvironment = {}): string {
  if (namespace !== undefined) assertString(namespace, 'namespace', { maxLength: 256 })
  const env = environment.env ?? process.env
  const platform = environment.platform ?? process.platform
  const sub = namespace === undefined ? 'default' : encodeURIComponent(namespace)
  const configured = env.AIDE_CACHE_DIR
  if (configured !== undefined && configured !== '') return join(configured, sub)
  const home = environment.home ?? homedir()
  let base: string
  if (platform === 'darwin') base = join(home, 'Library', 'Caches')
  else if (platform === 'win32') base = env.LOCALAPPDATA || join(home, 'AppData', 'Local')
  else base = env.XDG_CACHE_HOME || join(home, '.cache')
  return join(base, 'aide-cache', sub)
}

/**
 * Creates a multi-level cache with the embedded default: L1 in memory and L3
 * on disk in {@link defaultCacheDir} (or `options.dir`). Pass `l3: false`
 * for memory only, or your own `l3` tier. See `CacheOptions` for the rest.
 *
 * Throws `E_UNAVAILABLE` when the directory cannot be created, and
 * `E_INVALID_INPUT` for bad options (for example `dir` together with `l3`).
 */
export function createCache<V = unknown>(options: NodeCacheOptions = {}): MultiLevelCache<V> {
  assertObject(options, 'options')
  const { l3, dir, ...rest } = options
  if (dir !== undefined) {
    assertString(dir, 'options.dir', { maxLength: 4096 })
    if (l3 !== undefined) {
      throw invalidInput(
        'options.dir',
        'cannot be combined with options.l3 (set the dir on your tier)',
      )
    }
  }
  if (l3 === false) return createCacheCore<V>(rest)
  if (l3 !== undefined) return createCacheCore<V>({ ...rest, l3 })
  const tier = diskTier({
    dir: dir ?? defaultCacheDir(options.namespace),
    ...(options.clock ? { clock: options.clock } : {}),
  })
  return createCacheCore<V>({ ...rest, l3: tier })
}
