/**
 * `@aide/memory-pool/workspace`: `WorkspaceMemory`, a workspace's files held
 * in memory on demand under a byte budget (Node only: it uses `node:fs`).
 *
 * @packageDocumentation
 */
import { type FSWatcher, watch as fsWatch, type Stats } from 'node:fs'
import { open, realpath, stat } from 'node:fs/promises'
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import {
  AideError,
  assertClock,
  assertFunction,
  assertLogger,
  assertNumber,
  assertObject,
  assertOneOf,
  assertString,
  type Clock,
  type DeadlineOptions,
  type Disposable,
  type EventSink,
  guardEventSink,
  invalidInput,
  type Logger,
  type Meter,
  noopEventSink,
  noopLogger,
  systemClock,
  throwIfAborted,
  toAideError,
  toDisposable,
  validateDeadlineOptions,
  withDeadline,
} from '@aide/core'
import { guardLogger } from './guard.js'
import { assertMeterOptions, type MetricSpec, startMetrics } from './metrics.js'

/** Why a file's cached content was dropped. */
export type ChangeReason = 'watch' | 'invalidate' | 'stale' | 'watch-error'

/** A change to a file of the workspace that WorkspaceMemory noticed. */
export interface WorkspaceChange {
  /** Path relative to the root, with `/` separators. */
  path: string
  /**
   * What noticed it: the file watcher, an explicit `invalidate`, a stat check
   * on read (when watching is off or failed), or a watcher error.
   */
  reason: ChangeReason
  /** Whether the file was resident when the change was noticed. */
  wasResident: boolean
}

/** Events a {@link WorkspaceMemory} reports through its `events` sink. */
export interface WorkspaceMemoryEvents {
  /** A file changed (or was invalidated). */
  'file-change': WorkspaceChange
  /** A file was evicted to stay under the budget. */
  'file-evict': {
    /** Path relative to the root. */
    path: string
    /** Bytes it accounted for. */
    bytes: number
  }
  /** A directory watcher failed; files in it are checked with `stat` on each read instead. */
  'watch-error': {
    /** The directory, relative to the root (`""` for the root). */
    directory: string
    /** What went wrong. */
    message: string
  }
}

/** Options of {@link WorkspaceMemory}. */
export interface WorkspaceMemoryOptions {
  /** The workspace directory. Every path is resolved against it and must stay inside it. */
  root: string
  /** Budget for resident content in bytes. Default 64 MiB. */
  maxBytes?: number
  /** Largest file that may be read; larger ones throw `E_LIMIT`. Default `min(maxBytes, 8 MiB)`, at most `maxBytes`. */
  maxFileBytes?: number
  /** Watch the directories of resident files and drop changed files. Default true. With false, each read checks the file with `stat`. */
  watch?: boolean
  /** Files read at once by `prefetch`. Default 4. */
  prefetchConcurrency?: number
  /** Where warnings (watch failures) are logged. */
  logger?: Logger
  /** Where workspace events go. */
  events?: EventSink<WorkspaceMemoryEvents>
  /**
   * Where the workspace publishes its metrics (labelled `root`): gauges
   * `aide_workspace_resident_bytes`, `aide_workspace_resident_files`, counters
   * `aide_workspace_hits_total`, `aide_workspace_misses_total`,
   * `aide_workspace_evictions_total`, `aide_workspace_failures_total`. Published
   * every `metricsIntervalMs` and on dispose, never on the read path.
   */
  meter?: Meter
  /** How often metrics are published, in ms. Default 10000. */
  metricsIntervalMs?: number
  /** Time source of the metrics timer. Default: the system clock. */
  clock?: Clock
}

/** Options of {@link WorkspaceMemory.read}. */
export interface ReadOptions extends DeadlineOptions {
  /** `'text'` (UTF-8, the default) or `'bytes'` (a copy the caller owns). */
  as?: 'text' | 'bytes'
}

/** Result of {@link WorkspaceMemory.prefetch}. */
export interface PrefetchResult {
  /** Paths now resident (relative to the root). */
  loaded: string[]
  /** Paths that could not be read, with the typed error. */
  failed: Array<{ path: string; error: AideError }>
}

/** A snapshot of a {@link WorkspaceMemory}'s accounting, as plain data. */
export interface WorkspaceMemoryStats {
  /** Bytes held for resident files (file bytes plus decoded text). */
  residentBytes: number
  /** Files resident. */
  residentFiles: number
  /** The budget. */
  maxBytes: number
  /** Reads served from memory. */
  hits: number
  /** Reads that went to disk. */
  misses: number
  /** Files evicted to stay under the budget. */
  evictions: number
  /** Changes noticed (watcher events, invalidations, stale stat checks) for resident or loading files. */
  changes: number
  /** Files loaded from disk (reads and prefetches). */
  loads: number
  /** Loads currently running. */
  loadsInFlight: number
  /** Reads and prefetches that failed. */
  failures: number
  /** Directories currently watched. */
  watchedDirectories: number
  /** Directory watchers that failed (their files fall back to stat checks). */
  watchFailures: number
}

interface Entry {
  key: string
  bytes: Buffer
  text: string | undefined
  accounted: number
  real: string
  fingerprint: string
  /** Watched directories this entry is registered in. */
  directories: string[]
  /** True when no watcher covers the file: check it with stat on each read. */
  verify: boolean
}

interface Load {
  promise: Promise<Entry>
  stale: boolean
}

interface DirectoryWatch {
  directory: string
  watcher: FSWatcher | undefined
  /** Basename → keys of resident or loading files under that name. */
  names: Map<string, Set<string>>
  refs: number
}

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024
const DEFAULT_MAX_FILE_BYTES = 8 * 1024 * 1024
const KEY_CACHE_SIZE = 4096

/**
 * A workspace's files in memory, loaded on first read, evicted least recently
 * used first when over budget, and dropped when they change on disk.
 *
 * ```ts
 * import { WorkspaceMemory } from '@aide/memory-pool/workspace'
 * const files = new WorkspaceMemory({ root: '/repo', maxBytes: 32 * 1024 * 1024 })
 * const text = await files.read('src/index.ts')
 * files.onChange((change) => console.log('changed', change.path))
 * ```
 *
 * Paths are relative to `root` (absolute paths inside it are accepted).
 * Paths that leave the root, symlinks that resolve outside it, missing,
 * unreadable and oversized files are rejected with typed errors.
 */
export class WorkspaceMemory {
  readonly root: string
  readonly #maxBytes: number
  readonly #maxFileBytes: number
  readonly #watch: boolean
  readonly #prefetchConcurrency: number
  readonly #logger: Logger
  readonly #events: EventSink<WorkspaceMemoryEvents>
  readonly #entries = new Map<string, Entry>()
  readonly #loads = new Map<string, Load>()
  readonly #watchers = new Map<string, DirectoryWatch>()
  readonly #listeners = new Set<(change: WorkspaceChange) => void>()
  readonly #keys = new Map<string, string>()
  #realRoot: Promise<string> | undefined
  #metrics: { dispose(): void } | undefined
  #disposed = false
  #resident = 0
  #hits = 0
  #misses = 0
  #evictions = 0
  #changes = 0
  #loadCount = 0
  #failures = 0
  #watchFailures = 0

  constructor(options: WorkspaceMemoryOptions) {
    assertObject(options, 'options')
    const {
      root,
      maxBytes = DEFAULT_MAX_BYTES,
      watch = true,
      prefetchConcurrency = 4,
      logger = noopLogger,
      events = noopEventSink,
      meter,
      metricsIntervalMs = 10_000,
      clock = systemClock,
    } = options
    assertString(root, 'options.root')
    assertNumber(maxBytes, 'options.maxBytes', { integer: true, min: 1 })
    const maxFileBytes = options.maxFileBytes ?? Math.min(maxBytes, DEFAULT_MAX_FILE_BYTES)
    assertNumber(maxFileBytes, 'options.maxFileBytes', { integer: true, min: 0, max: maxBytes })
    if (typeof watch !== 'boolean')
      throw invalidInput('options.watch', `must be a boolean, got ${typeof watch}`)
    assertNumber(prefetchConcurrency, 'options.prefetchConcurrency', {
      integer: true,
      min: 1,
      max: 64,
    })
    assertLogger(logger, 'options.logger')
    assertObject(events, 'options.events')
    assertFunction(events.emit, 'options.events.emit')
    assertClock(clock, 'options.clock')
    if (meter !== undefined) assertMeterOptions(meter, metricsIntervalMs)
    this.root = resolve(root)
    this.#maxBytes = maxBytes
    this.#maxFileBytes = maxFileBytes
    this.#watch = watch
    this.#prefetchConcurrency = prefetchConcurrency
    // Sinks are called from watchers and mid-update: one that throws is logged, never propagated.
    this.#logger = guardLogger(logger)
    this.#events = guardEventSink(events, this.#logger, 'workspace-memory')
    if (meter !== undefined) {
      const counter = (name: string, help: string, read: () => number): MetricSpec => ({
        kind: 'counter',
        name,
        help,
        read,
      })
      this.#metrics = startMetrics(
        meter,
        { root: this.root },
        [
          {
            kind: 'gauge',
            name: 'aide_workspace_resident_bytes',
            help: 'Bytes held for resident files',
            unit: 'bytes',
            read: () => this.#resident,
          },
          {
            kind: 'gauge',
            name: 'aide_workspace_resident_files',
            help: 'Files resident in memory',
            read: () => this.#entries.size,
          },
          counter('aide_workspace_hits_total', 'Reads served from memory', () => this.#hits),
          counter('aide_workspace_misses_total', 'Reads that went to disk', () => this.#misses),
          counter(
            'aide_workspace_evictions_total',
            'Files evicted to stay under the budget',
            () => this.#evictions,
          ),
          counter(
            'aide_workspace_failures_total',
            'Reads and prefetches that failed',
            () => this.#failures,
          ),
        ],
        clock,
        metricsIntervalMs,
      )
    }
  }

  /**
   * The content of a file: loaded from disk on first use, from memory after.
   *
   * @param path - Relative to the root (or absolute inside it).
   * @throws `E_INVALID_INPUT` (path leaves the root or names a directory), `E_PERMISSION`
   *   (symlink to outside the root, or unreadable), `E_NOT_FOUND` (missing or deleted),
   *   `E_LIMIT` (larger than `maxFileBytes`), `E_CANCELLED` / `E_TIMEOUT`, `E_DISPOSED`.
   */
  read(path: string, options?: ReadOptions & { as?: 'text' }): Promise<string>
  read(path: string, options: ReadOptions & { as: 'bytes' }): Promise<Uint8Array>
  async read(path: string, options: ReadOptions = {}): Promise<string | Uint8Array> {
    this.#assertOpen()
    assertObject(options, 'options')
    validateDeadlineOptions(options)
    const as = options.as ?? 'text'
    assertOneOf(as, 'options.as', ['text', 'bytes'] as const)
    const key = this.#key(path)
    throwIfAborted(options.signal, 'workspace-memory: read')
    let entry = this.#entries.get(key)
    if (entry?.verify) {
      const fresh = await this.#stillFresh(entry)
      this.#assertOpen()
      if (!fresh) {
        // Concurrent readers may all find it stale; only the first reports the change.
        if (this.#entries.get(key) === entry) {
          this.#drop(entry)
          this.#noteChange(key, 'stale', true)
        }
        entry = undefined
      }
    }
    if (entry && this.#entries.get(key) === entry) {
      this.#hits++
      this.#entries.delete(key)
      this.#entries.set(key, entry)
    } else {
      this.#misses++
      const load = this.#load(key)
      entry = await withDeadline(() => load, {
        ...options,
        label: `workspace-memory: read "${key}"`,
      }).catch((error: unknown) => {
        this.#failures++
        throw error
      })
    }
    return this.#materialize(entry, as)
  }

  /**
   * Loads files into memory ahead of use, a few at a time. Failures are
   * collected, not thrown; only cancellation, a deadline or disposal rejects.
   */
  async prefetch(paths: readonly string[], options: DeadlineOptions = {}): Promise<PrefetchResult> {
    this.#assertOpen()
    if (!Array.isArray(paths)) throw invalidInput('paths', 'must be an array of strings')
    const keys = paths.map((path, index) => this.#key(path, `paths[${index}]`))
    assertObject(options, 'options')
    validateDeadlineOptions(options)
    const result: PrefetchResult = { loaded: [], failed: [] }
    return withDeadline(
      async (signal) => {
        let next = 0
        const worker = async () => {
          while (next < keys.length && !signal.aborted && !this.#disposed) {
            const key = keys[next++]!
            if (this.#entries.has(key)) {
              result.loaded.push(key)
              continue
            }
            try {
              await this.#load(key)
              result.loaded.push(key)
            } catch (error) {
              this.#failures++
              result.failed.push({ path: key, error: toAideError(error) })
            }
          }
        }
        await Promise.all(
          Array.from({ length: Math.min(this.#prefetchConcurrency, keys.length) }, worker),
        )
        this.#assertOpen()
        return result
      },
      { ...options, label: 'workspace-memory: prefetch' },
    )
  }

  /** Whether a file is resident (does not load it or change its recency). */
  has(path: string): boolean {
    return this.#entries.has(this.#key(path))
  }

  /**
   * Drops a file's cached content, e.g. when an editor reports a change the
   * watcher cannot see. Returns whether it was resident.
   */
  invalidate(path: string): boolean {
    this.#assertOpen()
    const key = this.#key(path)
    return this.#invalidateKey(key, 'invalidate')
  }

  /** Drops every resident file. Returns how many were resident. */
  invalidateAll(): number {
    this.#assertOpen()
    const keys = [...this.#entries.keys(), ...this.#loads.keys()]
    let count = 0
    for (const key of new Set(keys)) if (this.#invalidateKey(key, 'invalidate')) count++
    return count
  }

  /** Calls `listener` for every change noticed. Dispose the result to stop. */
  onChange(listener: (change: WorkspaceChange) => void): Disposable {
    assertFunction(listener, 'listener')
    this.#listeners.add(listener)
    return toDisposable(() => {
      this.#listeners.delete(listener)
    })
  }

  /** A snapshot of the accounting. */
  stats(): WorkspaceMemoryStats {
    let watched = 0
    for (const watch of this.#watchers.values()) if (watch.watcher) watched++
    return {
      residentBytes: this.#resident,
      residentFiles: this.#entries.size,
      maxBytes: this.#maxBytes,
      hits: this.#hits,
      misses: this.#misses,
      evictions: this.#evictions,
      changes: this.#changes,
      loads: this.#loadCount,
      loadsInFlight: this.#loads.size,
      failures: this.#failures,
      watchedDirectories: watched,
      watchFailures: this.#watchFailures,
    }
  }

  /** True once disposed. */
  get disposed(): boolean {
    return this.#disposed
  }

  /** Closes every watcher and drops all content. Later calls throw `E_DISPOSED`. Idempotent. */
  dispose(): void {
    if (this.#disposed) return
    this.#disposed = true
    for (const watch of this.#watchers.values()) watch.watcher?.close()
    this.#watchers.clear()
    this.#entries.clear()
    this.#listeners.clear()
    this.#resident = 0
    this.#metrics?.dispose()
    this.#metrics = undefined
  }

  [Symbol.dispose](): void {
    this.dispose()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose()
  }

  #assertOpen(): void {
    if (this.#disposed)
      throw new AideError('E_DISPOSED', 'workspace-memory: used after dispose; create a new one')
  }

  /** Validates a path and turns it into its key: relative to the root, `/`-separated. */
  #key(path: string, field = 'path'): string {
    const cached = typeof path === 'string' ? this.#keys.get(path) : undefined
    if (cached !== undefined) return cached
    assertString(path, field)
    if (path.includes('\0')) throw invalidInput(field, 'must not contain NUL characters')
    const absolute = resolve(this.root, path)
    const rel = relative(this.root, absolute)
    if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
      throw invalidInput(
        field,
        `must name a file inside the workspace root ${this.root}, got ${JSON.stringify(path)}`,
        {
          root: this.root,
          path,
        },
      )
    }
    const key = sep === '/' ? rel : rel.split(sep).join('/')
    // Resolving paths costs more than the rest of a hot read, so remember recent results.
    if (this.#keys.size >= KEY_CACHE_SIZE) this.#keys.clear()
    this.#keys.set(path, key)
    return key
  }

  #realRootPath(): Promise<string> {
    this.#realRoot ??= realpath(this.root).catch((error: unknown) => {
      this.#realRoot = undefined
      throw fsError(error, '', this.root, 'the workspace root')
    })
    return this.#realRoot
  }

  /** One shared load per key; concurrent readers wait on the same promise. */
  #load(key: string): Promise<Entry> {
    const existing = this.#loads.get(key)
    if (existing) return existing.promise
    const load: Load = { promise: undefined as unknown as Promise<Entry>, stale: false }
    load.promise = this.#runLoad(key, load).finally(() => {
      if (this.#loads.get(key) === load) this.#loads.delete(key)
    })
    this.#loads.set(key, load)
    return load.promise
  }

  async #runLoad(key: string, load: Load): Promise<Entry> {
    const absolute = join(this.root, key)
    const directories = new Set<string>()
    let inserted: Entry | undefined
    try {
      for (let attempt = 1; ; attempt++) {
        load.stale = false
        // Watch before reading, so a change during the read is not missed.
        directories.add(dirname(absolute))
        let watched = this.#watch && this.#retain(dirname(absolute), basename(absolute), key)
        const realRoot = await this.#realRootPath()
        let real: string
        try {
          real = await realpath(absolute)
        } catch (error) {
          throw fsError(error, key, absolute)
        }
        if (!isInside(realRoot, real)) {
          throw new AideError(
            'E_PERMISSION',
            `workspace-memory: "${key}" is a symlink to ${real}, outside the workspace root; read files inside the root only`,
            { details: { path: key, target: real, root: realRoot } },
          )
        }
        if (real !== absolute) {
          directories.add(dirname(real))
          watched = this.#watch && this.#retain(dirname(real), basename(real), key) && watched
        }
        const { bytes, stats } = await this.#readFile(key, real)
        this.#assertOpen()
        if (load.stale && attempt < 3) continue
        this.#loadCount++
        const entry: Entry = {
          key,
          bytes,
          text: undefined,
          accounted: bytes.byteLength,
          real,
          fingerprint: fingerprint(stats),
          directories: [...directories],
          verify: !watched || load.stale,
        }
        inserted = entry
        this.#insert(entry)
        return entry
      }
    } catch (error) {
      if (!this.#disposed) {
        // Never leave a failed load's entry resident: its watches are released below, so it would go stale.
        if (inserted) this.#drop(inserted)
        for (const directory of directories) this.#releaseName(directory, key)
      }
      throw error
    }
  }

  async #readFile(key: string, real: string): Promise<{ bytes: Buffer; stats: Stats }> {
    let handle: Awaited<ReturnType<typeof open>>
    try {
      handle = await open(real, 'r')
    } catch (error) {
      throw fsError(error, key, real)
    }
    try {
      const stats = await handle.stat()
      if (!stats.isFile())
        throw invalidInput('path', `must name a regular file, "${key}" is not one`, { path: key })
      if (stats.size > this.#maxFileBytes) throw tooLarge(key, stats.size, this.#maxFileBytes)
      const bytes = await handle.readFile()
      if (bytes.byteLength > this.#maxFileBytes)
        throw tooLarge(key, bytes.byteLength, this.#maxFileBytes)
      return { bytes, stats }
    } catch (error) {
      throw fsError(error, key, real)
    } finally {
      await handle.close().catch(() => undefined)
    }
  }

  #insert(entry: Entry): void {
    const previous = this.#entries.get(entry.key)
    if (previous) {
      this.#entries.delete(entry.key)
      this.#resident -= previous.accounted
      for (const directory of previous.directories) {
        if (!entry.directories.includes(directory)) this.#releaseName(directory, entry.key)
      }
    }
    this.#entries.set(entry.key, entry)
    this.#resident += entry.accounted
    this.#evictOver(entry)
  }

  #evictOver(keep: Entry): void {
    for (const victim of this.#entries.values()) {
      if (this.#resident <= this.#maxBytes) return
      if (victim === keep) continue
      this.#drop(victim)
      this.#evictions++
      this.#events.emit('file-evict', { path: victim.key, bytes: victim.accounted })
    }
  }

  /** Removes an entry and its watcher registrations. */
  #drop(entry: Entry): void {
    if (this.#entries.get(entry.key) !== entry) return
    this.#entries.delete(entry.key)
    this.#resident -= entry.accounted
    for (const directory of entry.directories) this.#releaseName(directory, entry.key)
  }

  #materialize(entry: Entry, as: 'text' | 'bytes'): string | Uint8Array {
    if (as === 'bytes') return new Uint8Array(entry.bytes)
    if (entry.text === undefined) {
      const text = entry.bytes.toString('utf8')
      entry.text = text
      // V8 keeps pure-ASCII strings one byte per character, others two.
      const extra = text.length === entry.bytes.byteLength ? text.length : text.length * 2
      entry.accounted += extra
      if (this.#entries.get(entry.key) === entry) {
        this.#resident += extra
        this.#evictOver(entry)
      }
    }
    return entry.text
  }

  async #stillFresh(entry: Entry): Promise<boolean> {
    try {
      // stat follows symlinks, so a re-pointed link shows up as a different inode.
      return fingerprint(await stat(join(this.root, entry.key))) === entry.fingerprint
    } catch {
      return false
    }
  }

  #invalidateKey(key: string, reason: ChangeReason): boolean {
    const load = this.#loads.get(key)
    if (load) load.stale = true
    const entry = this.#entries.get(key)
    if (entry) this.#drop(entry)
    if (entry || load) this.#noteChange(key, reason, entry !== undefined)
    return entry !== undefined
  }

  #noteChange(path: string, reason: ChangeReason, wasResident: boolean): void {
    this.#changes++
    const change: WorkspaceChange = { path, reason, wasResident }
    this.#events.emit('file-change', change)
    for (const listener of this.#listeners) {
      try {
        listener(change)
      } catch (error) {
        this.#logger.error({ err: error, path }, 'workspace-memory: a change listener threw')
      }
    }
  }

  /**
   * Registers `key` under `name` in the watcher of `directory`, starting the
   * watcher if needed. Returns false when the directory cannot be watched.
   */
  #retain(directory: string, name: string, key: string): boolean {
    let watch = this.#watchers.get(directory)
    if (!watch) {
      watch = { directory, watcher: undefined, names: new Map(), refs: 0 }
      try {
        const watcher = fsWatch(directory, { persistent: false })
        const current = watch
        watcher.on('change', (_type, filename) => this.#onWatchEvent(current, filename))
        watcher.on('error', (error) => this.#onWatchError(current, error))
        watch.watcher = watcher
      } catch (error) {
        if (!isMissing(error)) this.#noteWatchFailure(watch, error)
        return false
      }
      this.#watchers.set(directory, watch)
    }
    let keys = watch.names.get(name)
    if (!keys) {
      keys = new Set()
      watch.names.set(name, keys)
    }
    if (!keys.has(key)) {
      keys.add(key)
      watch.refs++
    }
    return watch.watcher !== undefined
  }

  #releaseName(directory: string, key: string): void {
    const watch = this.#watchers.get(directory)
    if (!watch) return
    for (const [name, keys] of watch.names) {
      if (keys.delete(key)) {
        watch.refs--
        if (keys.size === 0) watch.names.delete(name)
      }
    }
    if (watch.refs <= 0) {
      watch.watcher?.close()
      this.#watchers.delete(directory)
    }
  }

  #onWatchEvent(watch: DirectoryWatch, filename: string | Buffer | null): void {
    if (this.#disposed || this.#watchers.get(watch.directory) !== watch) return
    const name = filename === null ? undefined : filename.toString()
    if (name === undefined || name === basename(watch.directory)) {
      // No name, or the directory itself was renamed or removed: drop everything under it.
      this.#closeWatch(watch, 'watch')
      return
    }
    const keys = watch.names.get(name)
    if (!keys) return
    for (const key of [...keys]) this.#invalidateKey(key, 'watch')
  }

  #onWatchError(watch: DirectoryWatch, error: unknown): void {
    if (this.#disposed || this.#watchers.get(watch.directory) !== watch) return
    this.#noteWatchFailure(watch, error)
    this.#closeWatch(watch, 'watch-error')
  }

  /** Closes a watcher and drops every file registered under it; later reads re-watch. */
  #closeWatch(watch: DirectoryWatch, reason: ChangeReason): void {
    watch.watcher?.close()
    this.#watchers.delete(watch.directory)
    const keys = new Set<string>()
    for (const names of watch.names.values()) for (const key of names) keys.add(key)
    for (const key of keys) this.#invalidateKey(key, reason)
  }

  #noteWatchFailure(watch: DirectoryWatch, error: unknown): void {
    this.#watchFailures++
    const message = error instanceof Error ? error.message : String(error)
    const directory = relative(this.root, watch.directory).split(sep).join('/')
    this.#logger.warn(
      { directory, err: error },
      'workspace-memory: watching failed; falling back to stat checks',
    )
    this.#events.emit('watch-error', { directory, message })
  }
}

function fingerprint(stats: Stats): string {
  return `${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path)
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel)
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  return code === 'ENOENT' || code === 'ENOTDIR'
}

function tooLarge(key: string, size: number, max: number): AideError {
  return new AideError(
    'E_LIMIT',
    `workspace-memory: "${key}" is ${size} bytes, more than maxFileBytes ${max}; raise maxFileBytes or read it another way`,
    { details: { path: key, size, maxFileBytes: max }, isRetryable: false },
  )
}

/** Maps a file-system error to a typed error that says what to do. */
function fsError(error: unknown, key: string, path: string, what = `"${key}"`): AideError {
  if (AideError.isInstance(error)) return error
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  const details = { path: key, code }
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return new AideError(
        'E_NOT_FOUND',
        `workspace-memory: ${what} does not exist (deleted or never created)`,
        {
          cause: error,
          details,
        },
      )
    case 'EACCES':
    case 'EPERM':
      return new AideError(
        'E_PERMISSION',
        `workspace-memory: ${what} is not readable (${code}); check its permissions`,
        {
          cause: error,
          details,
        },
      )
    case 'EISDIR':
      return invalidInput('path', `must name a regular file, "${key}" is a directory`, {
        path: key,
      })
    case 'ELOOP':
      return invalidInput('path', `"${key}" is a symlink loop`, { path: key })
    default:
      return new AideError(
        'E_UNAVAILABLE',
        `workspace-memory: could not read ${what} at ${path}: ${String(error)}`,
        {
          cause: error,
          details,
        },
      )
  }
}
