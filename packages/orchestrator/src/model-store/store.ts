/**
 * Versioned models on disk: `<directory>/<id>/<version>/model.onnx` with a
 * manifest (sha256, size, metadata), and `<directory>/<id>/active.json`
 * naming the active version and the activation history. Every write goes to
 * a temporary file that is renamed into place, so a reader sees the old state
 * or the new one, never a partial file. A file whose sha256 no longer matches
 * its manifest is refused with `E_INTEGRITY`.
 */
import { createHash, randomUUID } from 'node:crypto'
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  AideError,
  assertObject,
  assertString,
  type Clock,
  type DeadlineOptions,
  invalidInput,
  systemClock,
  validateDeadlineOptions,
  withDeadline,
} from '@aide/core'

const ID = /^[a-z0-9][a-z0-9._-]{0,127}$/
const VERSION = /^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$/
const MODEL_FILE = 'model.onnx'
const MANIFEST_FILE = 'manifest.json'
const ACTIVE_FILE = 'active.json'

/** One stored model version. */
export interface ModelRecord {
  id: string
  version: string
  /** Hex sha256 of the model file. */
  sha256: string
  /** Size of the model file in bytes. */
  bytes: number
  /** Absolute path of the model file. */
  path: string
  /** Free-form metadata given to `add` (precision, accuracy, source…). */
  metadata: Record<string, unknown>
  /** When it was added (ms since epoch, from the store's clock). */
  addedAt: number
}

interface ActivePointer {
  version: string
  /** Previously active versions, most recent last. */
  history: string[]
  activatedAt: number
}

/** Options of {@link ModelStore.open}. */
export interface ModelStoreOptions {
  /** Folder holding the store (created if missing). */
  directory: string
  /** Clock for timestamps. Default: the system clock. */
  clock?: Clock
}

/** Options of {@link ModelStore.add}. */
export interface AddModelOptions extends DeadlineOptions {
  /** Free-form JSON metadata stored in the manifest. */
  metadata?: Record<string, unknown>
}

/** Figures of a {@link ModelStore}. */
export interface ModelStoreStats {
  models: number
  versions: number
  activations: number
  rollbacks: number
  integrityFailures: number
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

function parseReference(
  reference: string,
  field: string,
): { id: string; version: string | undefined } {
  assertString(reference, field)
  const at = reference.lastIndexOf('@')
  const id = at > 0 ? reference.slice(0, at) : reference
  const version = at > 0 ? reference.slice(at + 1) : undefined
  checkId(id, field)
  if (version !== undefined) checkVersion(version, field)
  return { id, version }
}

function checkId(id: unknown, field: string): asserts id is string {
  assertString(id, field)
  if (!ID.test(id))
    throw invalidInput(
      field,
      `must match ${ID} (lower-case letters, digits, ".", "_", "-"), got ${JSON.stringify(id)}`,
    )
}

function checkVersion(version: unknown, field: string): asserts version is string {
  assertString(version, field)
  if (!VERSION.test(version))
    throw invalidInput(field, `must match ${VERSION}, got ${JSON.stringify(version)}`)
}

/** Versioned, verified model files with an atomically switched active version. */
export class ModelStore {
  private readonly locks = new Map<string, Promise<unknown>>()
  private readonly counters = { activations: 0, rollbacks: 0, integrityFailures: 0 }

  private constructor(
    /** The store's folder. */
    readonly directory: string,
    private readonly clock: Clock,
  ) {}

  /** Opens (creating if needed) a store in `options.directory`. */
  static async open(options: ModelStoreOptions): Promise<ModelStore> {
    assertObject(options, 'options')
    assertString(options.directory, 'options.directory')
    await mkdir(options.directory, { recursive: true })
    return new ModelStore(options.directory, options.clock ?? systemClock)
  }

  /** Serialises the mutations of one model id. */
  private exclusive<T>(id: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve()
    const next = previous.then(work, work)
    const settled = next.catch(() => undefined)
    this.locks.set(id, settled)
    void settled.then(() => {
      if (this.locks.get(id) === settled) this.locks.delete(id)
    })
    return next
  }

  private async writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
    const temporary = `${path}.${randomUUID()}.tmp`
    try {
      await writeFile(temporary, data)
      await rename(temporary, path)
    } catch (error) {
      await rm(temporary, { force: true })
      throw error
    }
  }

  /**
   * Adds `id@version` from bytes or a file path. Adding the same content
   * again is a no-op; different content under an existing version throws
   * `E_ALREADY_EXISTS` (versions are immutable).
   */
  async add(
    id: string,
    version: string,
    source: Uint8Array | string,
    options: AddModelOptions = {},
  ): Promise<ModelRecord> {
    checkId(id, 'id')
    checkVersion(version, 'version')
    assertObject(options, 'options')
    validateDeadlineOptions(options)
    if (options.metadata !== undefined) assertObject(options.metadata, 'options.metadata')
    if (!(source instanceof Uint8Array) && typeof source !== 'string')
      throw invalidInput('source', 'must be model bytes or a file path')
    return withDeadline(
      () =>
        this.exclusive(id, async () => {
          const bytes = typeof source === 'string' ? new Uint8Array(await readFile(source)) : source
          if (bytes.byteLength === 0) throw invalidInput('source', 'is empty')
          const hash = sha256(bytes)
          const existing = await this.readManifest(id, version).catch((error: unknown) => {
            if (AideError.isInstance(error) && error.code === 'E_NOT_FOUND') return undefined
            throw error
          })
          if (existing) {
            if (existing.sha256 === hash) return existing
            throw new AideError(
              'E_ALREADY_EXISTS',
              `model-store: ${id}@${version} already exists with different content; add a new version`,
              {
                details: { id, version },
              },
            )
          }
          const folder = join(this.directory, id, version)
          await mkdir(folder, { recursive: true })
          await this.writeAtomic(join(folder, MODEL_FILE), bytes)
          const record: ModelRecord = {
            id,
            version,
            sha256: hash,
            bytes: bytes.byteLength,
            path: join(folder, MODEL_FILE),
            metadata: { ...(options.metadata ?? {}) },
            addedAt: this.clock.now(),
          }
          const { path: _path, ...manifest } = record
          await this.writeAtomic(
            join(folder, MANIFEST_FILE),
            `${JSON.stringify(manifest, null, 2)}\n`,
          )
          return record
        }),
      {
        signal: options.signal,
        timeoutMs: options.timeoutMs,
        label: `model-store: adding ${id}@${version}`,
      },
    )
  }

  private async readManifest(id: string, version: string): Promise<ModelRecord> {
    const folder = join(this.directory, id, version)
    let text: string
    try {
      text = await readFile(join(folder, MANIFEST_FILE), 'utf8')
    } catch {
      throw new AideError('E_NOT_FOUND', `model-store: ${id}@${version} is not in the store`, {
        details: { id, version },
      })
    }
    try {
      const manifest = JSON.parse(text) as Omit<ModelRecord, 'path'>
      return { ...manifest, path: join(folder, MODEL_FILE) }
    } catch (error) {
      this.counters.integrityFailures++
      throw new AideError(
        'E_INTEGRITY',
        `model-store: the manifest of ${id}@${version} is corrupted`,
        { cause: error, details: { id, version } },
      )
    }
  }

  private async verified(record: ModelRecord): Promise<Uint8Array> {
    let bytes: Uint8Array
    try {
      bytes = new Uint8Array(await readFile(record.path))
    } catch (error) {
      this.counters.integrityFailures++
      throw new AideError(
        'E_INTEGRITY',
        `model-store: the file of ${record.id}@${record.version} is missing`,
        {
          cause: error,
          details: { id: record.id, version: record.version, path: record.path },
        },
      )
    }
    const hash = sha256(bytes)
    if (hash !== record.sha256) {
      this.counters.integrityFailures++
      throw new AideError(
        'E_INTEGRITY',
        `model-store: ${record.id}@${record.version} is corrupted (sha256 ${hash} does not match ${record.sha256}); add it again under a new version`,
        {
          details: {
            id: record.id,
            version: record.version,
            path: record.path,
            expected: record.sha256,
            actual: hash,
          },
        },
      )
    }
    return bytes
  }

  private async readPointer(id: string): Promise<ActivePointer | undefined> {
    try {
      return JSON.parse(
        await readFile(join(this.directory, id, ACTIVE_FILE), 'utf8'),
      ) as ActivePointer
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw new AideError('E_INTEGRITY', `model-store: the active pointer of ${id} is unreadable`, {
        cause: error,
        details: { id },
      })
    }
  }

  /** The record of `id@version`. */
  async get(id: string, version: string): Promise<ModelRecord> {
    checkId(id, 'id')
    checkVersion(version, 'version')
    return this.readManifest(id, version)
  }

  /** Every stored version of `id` (or of every model), oldest first. */
  async list(id?: string): Promise<ModelRecord[]> {
    if (id !== undefined) checkId(id, 'id')
    const ids = id !== undefined ? [id] : await readdir(this.directory).catch(() => [] as string[])
    const records: ModelRecord[] = []
    for (const modelId of ids) {
      const entries = await readdir(join(this.directory, modelId), { withFileTypes: true }).catch(
        () => [],
      )
      for (const entry of entries) {
        if (!entry.isDirectory()) continue
        records.push(await this.readManifest(modelId, entry.name).catch(() => undefined as never))
      }
    }
    return records
      .filter(Boolean)
      .sort((a, b) => a.addedAt - b.addedAt || a.version.localeCompare(b.version))
  }

  /**
   * Makes `id@version` the active version after verifying its file. The
   * switch is one atomic rename; on failure the previous version stays active.
   */
  async activate(id: string, version: string, options: DeadlineOptions = {}): Promise<ModelRecord> {
    checkId(id, 'id')
    checkVersion(version, 'version')
    validateDeadlineOptions(options)
    return withDeadline(
      () =>
        this.exclusive(id, async () => {
          const record = await this.readManifest(id, version)
          await this.verified(record)
          const current = await this.readPointer(id)
          const history = current
            ? [...current.history, current.version].filter((v) => v !== version).slice(-50)
            : []
          if (current?.version === version) return record
          await this.writeAtomic(
            join(this.directory, id, ACTIVE_FILE),
            JSON.stringify({
              version,
              history,
              activatedAt: this.clock.now(),
            } satisfies ActivePointer),
          )
          this.counters.activations++
          return record
        }),
      { ...options, label: `model-store: activating ${id}@${version}` },
    )
  }

  /** Re-activates the version that was active before the current one. */
  async rollback(id: string, options: DeadlineOptions = {}): Promise<ModelRecord> {
    checkId(id, 'id')
    validateDeadlineOptions(options)
    return withDeadline(
      () =>
        this.exclusive(id, async () => {
          const current = await this.readPointer(id)
          const history = [...(current?.history ?? [])]
          while (history.length > 0) {
            const version = history.pop()!
            const record = await this.readManifest(id, version).catch(() => undefined)
            if (!record) continue
            await this.verified(record)
            await this.writeAtomic(
              join(this.directory, id, ACTIVE_FILE),
              JSON.stringify({
                version,
                history,
                activatedAt: this.clock.now(),
              } satisfies ActivePointer),
            )
            this.counters.rollbacks++
            return record
          }
          throw new AideError(
            'E_NOT_FOUND',
            `model-store: ${id} has no earlier version to roll back to`,
            { details: { id } },
          )
        }),
      { ...options, label: `model-store: rolling back ${id}` },
    )
  }

  /** The active record of `id`, or undefined when none was activated. */
  async active(id: string): Promise<ModelRecord | undefined> {
    checkId(id, 'id')
    const pointer = await this.readPointer(id)
    return pointer ? this.readManifest(id, pointer.version) : undefined
  }

  /**
   * Resolves `id` (its active version) or `id@version` and returns the
   * verified model bytes with the record. Corrupted files throw `E_INTEGRITY`.
   */
  async read(reference: string): Promise<{ record: ModelRecord; bytes: Uint8Array }> {
    const { id, version } = parseReference(reference, 'reference')
    const record =
      version !== undefined ? await this.readManifest(id, version) : await this.active(id)
    if (!record)
      throw new AideError(
        'E_NOT_FOUND',
        `model-store: ${id} has no active version; activate one first`,
        { details: { id } },
      )
    return { record, bytes: await this.verified(record) }
  }

  /** Deletes `id@version`; the active version cannot be removed. */
  async remove(id: string, version: string): Promise<void> {
    checkId(id, 'id')
    checkVersion(version, 'version')
    await this.exclusive(id, async () => {
      await this.readManifest(id, version)
      const pointer = await this.readPointer(id)
      if (pointer?.version === version) {
        throw new AideError(
          'E_INVALID_STATE',
          `model-store: ${id}@${version} is active; activate another version first`,
          {
            details: { id, version },
          },
        )
      }
      await rm(join(this.directory, id, version), { recursive: true, force: true })
    })
  }

  /** Counts of models, versions and operations (plain data). */
  async stats(): Promise<ModelStoreStats> {
    const records = await this.list()
    return {
      models: new Set(records.map((r) => r.id)).size,
      versions: records.length,
      ...this.counters,
    }
  }
}
