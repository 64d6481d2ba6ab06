/**
 * `@aide/cache/disk`: the L3 tier, one file per key in a directory.
 *
 * Crash safety: every entry is written to a temporary file and renamed over
 * its final name (an atomic replace on POSIX file systems), so a reader sees
 * either the old file or the new one, never a half-written one, even when the
 * writer is killed with SIGKILL mid-write. Each file also carries a SHA-256 of
 * its payload and its length: a torn or damaged file (power loss without
 * `fsync`, disk faults, manual edits) fails the check, is deleted and reads as
 * a miss, so a corrupted value is never returned.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import {
  AideError,
  assertObject,
  assertString,
  type Clock,
  type DeadlineOptions,
  invalidInput,
  systemClock,
  throwIfAborted,
} from '@aide/core'
import { isUsable, type StoredEntry } from './entry.js'
import { v8Serializer } from './serializer.js'
import type { Serializer } from './serializer-types.js'
import type { CacheTier, TierOwnStats } from './tier.js'

export { v8Serializer } from './serializer.js'
export type { Serializer } from './serializer-types.js'

/** Options of {@link diskTier}. */
export interface DiskTierOptions {
  /** Directory holding the entries (created if missing). Several processes may share it. */
  dir: string
  /** Value encoding. Default: V8 structured clone ({@link v8Serializer}). */
  serializer?: Serializer
  /**
   * `fsync` each file before renaming it, so entries also survive power loss
   * (not only process crashes). Slower. Default false.
   */
  fsync?: boolean
  /** Clock for expiry. Default: the system clock. */
  clock?: Clock
}

/** Counters of the disk tier. */
export interface DiskTierStats extends TierOwnStats {
  /** Files that failed their checksum or could not be decoded (deleted, read as misses). */
  corrupt: number
  /** Entries written. */
  writes: number
  /** Expired entries removed. */
  expired: number
}

const MAGIC = 0x41494443 // "AIDC"
const VERSION = 1
const HEADER = 4 + 1 + 3 + 4 + 32

interface Record {
  key: string
  entry: StoredEntry
}

/** The disk tier. Create with {@link diskTier}. */
export class DiskTier implements CacheTier {
  readonly name = 'disk'
  readonly dir: string
  readonly #serializer: Serializer
  readonly #fsync: boolean
  readonly #clock: Clock
  readonly #tmp: string
  #corrupt = 0
  #writes = 0
  #expired = 0
  #disposed = false

  constructor(options: DiskTierOptions) {
    assertObject(options, 'options')
    assertString(options.dir, 'options.dir')
    if (options.serializer !== undefined) {
      assertObject(options.serializer, 'options.serializer')
      if (
        typeof options.serializer.serialize !== 'function' ||
        typeof options.serializer.deserialize !== 'function'
      ) {
        throw new AideError(
          'E_INVALID_INPUT',
          'options.serializer must have serialize and deserialize functions',
          {
            details: { field: 'options.serializer' },
          },
        )
      }
    }
    this.dir = options.dir
    this.#serializer = options.serializer ?? v8Serializer
    this.#fsync = options.fsync ?? false
    this.#clock = options.clock ?? systemClock
    this.#tmp = join(this.dir, 'tmp')
    try {
      mkdirSync(this.#tmp, { recursive: true })
    } catch (cause) {
      throw new AideError(
        'E_UNAVAILABLE',
        `cache: cannot create the disk tier directory ${this.dir}`,
        { cause },
      )
    }
  }

  #path(key: string): string {
    // File names come from the UTF-8 bytes of the key, where every lone
    // surrogate becomes U+FFFD: such keys would share one file.
    if (typeof key !== 'string' || !(key as string & { isWellFormed(): boolean }).isWellFormed()) {
      throw invalidInput('key', 'must be a string without lone surrogates (well-formed UTF-16)')
    }
    const digest = createHash('sha256').update(key).digest('hex')
    return join(this.dir, digest.slice(0, 2), `${digest.slice(2)}.entry`)
  }

  #check(): void {
    if (this.#disposed) throw new AideError('E_DISPOSED', 'cache: disk tier has been disposed')
  }

  /** Encodes a record as header + payload. */
  #encode(record: Record): Buffer {
    const payload = Buffer.from(this.#serializer.serialize(record))
    const header = Buffer.alloc(HEADER)
    header.writeUInt32BE(MAGIC, 0)
    header.writeUInt8(VERSION, 4)
    header.writeUInt32BE(payload.length, 8)
    createHash('sha256').update(payload).digest().copy(header, 12)
    return Buffer.concat([header, payload])
  }

  /** Decodes and verifies a file; undefined when it is damaged. */
  #decode(bytes: Buffer): Record | undefined {
    if (bytes.length < HEADER) return undefined
    if (bytes.readUInt32BE(0) !== MAGIC || bytes.readUInt8(4) !== VERSION) return undefined
    const length = bytes.readUInt32BE(8)
    if (bytes.length !== HEADER + length) return undefined
    const payload = bytes.subarray(HEADER)
    const digest = createHash('sha256').update(payload).digest()
    if (!digest.equals(bytes.subarray(12, 44))) return undefined
    try {
      const record = this.#serializer.deserialize(payload) as Record
      if (typeof record?.key !== 'string' || typeof record.entry !== 'object') return undefined
      return record
    } catch {
      return undefined
    }
  }

  async #readRecord(path: string, signal?: AbortSignal): Promise<Record | undefined> {
    let bytes: Buffer
    try {
      bytes = await readFile(path, signal ? { signal } : {})
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw error
    }
    const record = this.#decode(bytes)
    if (!record) {
      this.#corrupt++
      await unlink(path).catch(() => undefined)
      return undefined
    }
    return record
  }

  async get(key: string, options: DeadlineOptions = {}): Promise<StoredEntry | undefined> {
    this.#check()
    throwIfAborted(options.signal)
    const path = this.#path(key)
    const record = await this.#readRecord(path, options.signal)
    if (!record || record.key !== key) return undefined
    if (!isUsable(record.entry, this.#clock.now())) {
      this.#expired++
      await unlink(path).catch(() => undefined)
      return undefined
    }
    return record.entry
  }

  async set(key: string, entry: StoredEntry, options: DeadlineOptions = {}): Promise<void> {
    this.#check()
    throwIfAborted(options.signal)
    const bytes = this.#encode({ key, entry })
    const path = this.#path(key)
    const temporary = join(this.#tmp, `${randomBytes(8).toString('hex')}.tmp`)
    const handle = await open(temporary, 'w')
    try {
      await handle.writeFile(bytes)
      if (this.#fsync) await handle.sync()
    } finally {
      await handle.close()
    }
    try {
      await rename(temporary, path)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
      await mkdir(join(path, '..'), { recursive: true })
      await rename(temporary, path)
    }
    this.#writes++
  }

  async delete(key: string, options: DeadlineOptions = {}): Promise<boolean> {
    this.#check()
    throwIfAborted(options.signal)
    try {
      await unlink(this.#path(key))
      return true
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw error
    }
  }

  async *#files(): AsyncGenerator<string> {
    let shards: string[]
    try {
      shards = await readdir(this.dir)
    } catch {
      return
    }
    for (const shard of shards) {
      if (shard.length !== 2) continue
      let names: string[]
      try {
        names = await readdir(join(this.dir, shard))
      } catch {
        continue
      }
      for (const name of names) if (name.endsWith('.entry')) yield join(this.dir, shard, name)
    }
  }

  /** Removes every entry tagged `tag`. Scans the directory: O(entries). */
  async deleteByTag(tag: string, options: DeadlineOptions = {}): Promise<number> {
    this.#check()
    let removed = 0
    for await (const path of this.#files()) {
      throwIfAborted(options.signal)
      const record = await this.#readRecord(path)
      if (record?.entry.tags.includes(tag)) {
        await unlink(path).catch(() => undefined)
        removed++
      }
    }
    return removed
  }

  async clear(options: DeadlineOptions = {}): Promise<void> {
    this.#check()
    for await (const path of this.#files()) {
      throwIfAborted(options.signal)
      await unlink(path).catch(() => undefined)
    }
  }

  /**
   * Removes expired and damaged entries, and temporary files older than
   * `staleTemporaryMs` left by writers that crashed. Returns how many files went.
   */
  async prune(options: DeadlineOptions & { staleTemporaryMs?: number } = {}): Promise<number> {
    this.#check()
    let removed = 0
    const now = this.#clock.now()
    for await (const path of this.#files()) {
      throwIfAborted(options.signal)
      const before = this.#corrupt
      const record = await this.#readRecord(path)
      if (this.#corrupt > before) removed++
      else if (record && !isUsable(record.entry, now)) {
        await unlink(path).catch(() => undefined)
        this.#expired++
        removed++
      }
    }
    const cutoff = Date.now() - (options.staleTemporaryMs ?? 60_000)
    for (const name of await readdir(this.#tmp).catch(() => [] as string[])) {
      const path = join(this.#tmp, name)
      const info = await stat(path).catch(() => undefined)
      if (info && info.mtimeMs < cutoff) {
        await rm(path, { force: true })
        removed++
      }
    }
    return removed
  }

  stats(): DiskTierStats {
    return {
      size: undefined,
      evictions: 0,
      corrupt: this.#corrupt,
      writes: this.#writes,
      expired: this.#expired,
    }
  }

  dispose(): void {
    this.#disposed = true
  }
}

/** Creates a disk tier (L3). See {@link DiskTierOptions}. */
export function diskTier(options: DiskTierOptions): DiskTier {
  return new DiskTier(options)
}
