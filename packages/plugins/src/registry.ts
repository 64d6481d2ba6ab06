/**
 * A local, directory-backed plugin registry: install from a folder or a
 * tarball (integrity checked, escaping entries refused), update keeping the
 * previous version, rollback, uninstall, enable/disable, list and search.
 *
 * Layout under `dir`:
 * - `registry.json` — which version of each plugin is current, its previous
 *   versions and whether it is enabled (written atomically);
 * - `plugins/<id>/<version>/` — `aide-plugin.json` and the module.
 */
import { randomUUID } from 'node:crypto'
import { lstat, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import {
  AideError,
  assertNumber,
  assertObject,
  assertOneOf,
  assertString,
  type DeadlineOptions,
  type EventSink,
  invalidInput,
  noopEventSink,
  throwIfAborted,
  validateDeadlineOptions,
  withDeadline,
} from '@aide/core'
import semver from 'semver'
import {
  ENTRY_KINDS,
  type EntryKind,
  MANIFEST_FILE,
  type PluginManifest,
  parseManifest,
  verifyIntegrity,
} from './manifest.js'

/** Events the registry emits. */
export interface PluginRegistryEvents {
  /** A plugin was installed. */
  'plugin-install': { pluginId: string; version: string }
  /** A plugin was updated; `previousVersion` is kept for rollback. */
  'plugin-update': { pluginId: string; version: string; previousVersion: string }
  /** A plugin was rolled back to `version`. */
  'plugin-rollback': { pluginId: string; version: string; removedVersion: string }
  /** A plugin was uninstalled. */
  'plugin-uninstall': { pluginId: string; version: string }
  /** A plugin was enabled. */
  'plugin-enable': { pluginId: string }
  /** A plugin was disabled. */
  'plugin-disable': { pluginId: string }
}

/** Options of {@link openPluginRegistry}. */
export interface PluginRegistryOptions {
  /** Lifecycle events. */
  events?: EventSink<PluginRegistryEvents>
  /** Previous versions kept per plugin for rollback (default 3). */
  keepVersions?: number
}

/** An installed plugin. */
export interface InstalledPlugin {
  /** Manifest of the current version. */
  manifest: PluginManifest
  /** Absolute folder of the current version (loadable with `host.load(dir)`). */
  dir: string
  /** Whether the plugin is enabled. */
  enabled: boolean
  /** Older versions kept for rollback, newest last. */
  previousVersions: string[]
}

/** One search result. */
export interface SearchHit {
  /** Plugin id. */
  id: string
  /** Current version. */
  version: string
  /** Name. */
  name: string
  /** Description. */
  description: string
  /** Whether the plugin is enabled. */
  enabled: boolean
  /** Relevance; higher first. */
  score: number
}

/** Options of {@link PluginRegistry.search}. */
export interface SearchOptions {
  /** Only plugins with an entry of this kind. */
  kind?: EntryKind
  /** Most results returned (default 20). */
  limit?: number
}

/** Options of {@link PluginRegistry.install}. */
export interface InstallOptions extends DeadlineOptions {
  /** Enable the plugin once installed (default true). */
  enable?: boolean
}

/** Registry statistics. */
export interface PluginRegistryStats {
  /** Installed plugins. */
  installed: number
  /** Enabled plugins. */
  enabled: number
  /** Versions kept for rollback, over all plugins. */
  previousVersions: number
}

/** A local plugin registry. */
export interface PluginRegistry {
  /** The registry folder. */
  readonly dir: string
  /** Every installed plugin, by id. */
  list(): InstalledPlugin[]
  /** One installed plugin; `E_NOT_FOUND` if absent. */
  get(pluginId: string): InstalledPlugin
  /** Searches ids, names, descriptions and keywords; every query word must match. */
  search(query: string, options?: SearchOptions): SearchHit[]
  /**
   * Installs from a plugin folder or a `.tar`/`.tgz` archive. Rejects
   * `E_ALREADY_EXISTS` if the id is installed (use `update`), `E_INTEGRITY` on a
   * hash mismatch, `E_INVALID_INPUT` for a malformed manifest or an archive
   * entry that would escape the target folder.
   */
  install(source: string, options?: InstallOptions): Promise<InstalledPlugin>
  /** Installs a newer version of an installed plugin, keeping the current one for rollback. */
  update(source: string, options?: DeadlineOptions): Promise<InstalledPlugin>
  /** Returns to the previous version, removing the current one. `E_INVALID_STATE` if there is none. */
  rollback(pluginId: string, options?: DeadlineOptions): Promise<InstalledPlugin>
  /** Removes a plugin and every version of it. */
  uninstall(pluginId: string, options?: DeadlineOptions): Promise<void>
  /** Enables a plugin. */
  enable(pluginId: string): Promise<void>
  /** Disables a plugin (it stays installed). */
  disable(pluginId: string): Promise<void>
  /** Plain-data statistics. */
  stats(): PluginRegistryStats
}

interface StoredPlugin {
  current: string
  previous: string[]
  enabled: boolean
}

interface StoredState {
  version: 1
  plugins: Record<string, StoredPlugin>
}

interface IndexEntry {
  plugin: InstalledPlugin
  id: string
  name: string
  description: string
  keywords: string[]
  kinds: Set<EntryKind>
}

const STATE_FILE = 'registry.json'

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch {
    return false
  }
}

async function readManifestAt(dir: string, field: string): Promise<PluginManifest> {
  let text: string
  try {
    text = await readFile(join(dir, MANIFEST_FILE), 'utf8')
  } catch (error) {
    throw new AideError('E_INVALID_INPUT', `${field} has no readable ${MANIFEST_FILE}`, {
      cause: error,
      details: { field, dir },
    })
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (error) {
    throw new AideError(
      'E_INVALID_INPUT',
      `${field}: ${MANIFEST_FILE} is not valid JSON: ${(error as Error).message}`,
      {
        cause: error,
        details: { field },
      },
    )
  }
  return parseManifest(raw)
}

/** Refuses archive entries that are links, devices, absolute or climb out with `..`. */
function archiveEntryProblem(path: string, type: string): string | undefined {
  const normalized = path.replace(/\\/g, '/')
  if (normalized.startsWith('/') || /^[A-Za-z]:/.test(normalized)) return 'absolute path'
  if (normalized.split('/').includes('..')) return 'path escapes the target folder'
  if (!['File', 'OldFile', 'ContiguousFile', 'Directory'].includes(type))
    return `entry type ${type} is not allowed`
  return undefined
}

async function extractArchive(file: string, into: string, signal: AbortSignal): Promise<void> {
  const tar = await import('tar')
  const problems: Array<{ path: string; problem: string }> = []
  await tar.list({
    file,
    onReadEntry: (entry) => {
      const problem = archiveEntryProblem(entry.path, entry.type)
      if (problem) problems.push({ path: entry.path, problem })
    },
  })
  if (problems.length > 0) {
    throw new AideError(
      'E_INVALID_INPUT',
      `source: archive refused: ${problems.map((p) => `"${p.path}" (${p.problem})`).join(', ')}`,
      { details: { field: 'source', entries: problems } },
    )
  }
  throwIfAborted(signal)
  await mkdir(into, { recursive: true })
  await tar.extract({
    file,
    cwd: into,
    strict: true,
    // A second line of defence: the listing above already refused these.
    filter: (path, entry) =>
      archiveEntryProblem(path, (entry as { type?: string }).type ?? 'File') === undefined,
  })
}

async function locatePluginRoot(dir: string): Promise<string> {
  if (await exists(join(dir, MANIFEST_FILE))) return dir
  const children = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory())
  if (children.length === 1 && (await exists(join(dir, children[0]!.name, MANIFEST_FILE)))) {
    return join(dir, children[0]!.name)
  }
  throw new AideError(
    'E_INVALID_INPUT',
    `source: no ${MANIFEST_FILE} at the top of the plugin (or of its single folder)`,
    {
      details: { field: 'source' },
    },
  )
}

/**
 * Opens (creating if needed) the registry in `dir` and loads its index.
 * Nothing is held open: the registry needs no disposal.
 */
export async function openPluginRegistry(
  dir: string,
  options: PluginRegistryOptions = {},
): Promise<PluginRegistry> {
  assertString(dir, 'dir')
  assertObject(options, 'options')
  const keepVersions = options.keepVersions ?? 3
  assertNumber(keepVersions, 'options.keepVersions', { min: 0, max: 100, integer: true })
  const events = options.events ?? noopEventSink
  const root = resolve(dir)
  const stateFile = join(root, STATE_FILE)
  await mkdir(join(root, 'plugins'), { recursive: true })

  let state: StoredState = { version: 1, plugins: {} }
  if (await exists(stateFile)) {
    try {
      const parsed = JSON.parse(await readFile(stateFile, 'utf8')) as StoredState
      assertObject(parsed, 'registry.json')
      assertObject(parsed.plugins, 'registry.json.plugins')
      state = parsed
    } catch (error) {
      throw new AideError(
        'E_INVALID_STATE',
        `plugins: ${stateFile} is corrupt; restore it from a backup or move it aside`,
        {
          cause: error,
          details: { file: stateFile },
        },
      )
    }
  }

  const index = new Map<string, IndexEntry>()
  const versionDir = (id: string, version: string) => join(root, 'plugins', id, version)

  async function indexPlugin(id: string): Promise<void> {
    const stored = state.plugins[id]
    if (!stored) {
      index.delete(id)
      return
    }
    const folder = versionDir(id, stored.current)
    const manifest = await readManifestAt(folder, `registry plugin ${id}`)
    const plugin: InstalledPlugin = {
      manifest,
      dir: folder,
      enabled: stored.enabled,
      previousVersions: [...stored.previous],
    }
    index.set(id, {
      plugin,
      id: id.toLowerCase(),
      name: manifest.name.toLowerCase(),
      description: manifest.description.toLowerCase(),
      keywords: manifest.keywords.map((k) => k.toLowerCase()),
      kinds: new Set(manifest.entries.map((e) => e.kind)),
    })
  }

  for (const id of Object.keys(state.plugins)) await indexPlugin(id)

  async function saveState(): Promise<void> {
    const temporary = `${stateFile}.${process.pid}.${randomUUID()}.tmp`
    await writeFile(temporary, `${JSON.stringify(state, null, 2)}\n`)
    await rename(temporary, stateFile)
  }

  let queue: Promise<unknown> = Promise.resolve()
  function serialized<T>(
    label: string,
    opts: DeadlineOptions | undefined,
    task: (signal: AbortSignal) => Promise<T>,
  ) {
    validateDeadlineOptions(opts, 'options')
    const run = queue.then(() =>
      withDeadline(task, { ...opts, label: `plugins registry: ${label}` }),
    )
    queue = run.catch(() => undefined)
    return run
  }

  /** Validates a source, copies the manifest and module into the version folder. */
  async function stage(
    source: string,
    signal: AbortSignal,
  ): Promise<{ manifest: PluginManifest; bytes: Uint8Array }> {
    assertString(source, 'source')
    const path = resolve(source)
    let info: Awaited<ReturnType<typeof stat>>
    try {
      info = await stat(path)
    } catch (error) {
      throw new AideError('E_NOT_FOUND', `source: ${path} does not exist`, {
        cause: error,
        details: { field: 'source' },
      })
    }
    let scratch: string | undefined
    try {
      let pluginDir = path
      if (info.isFile()) {
        scratch = join(root, `.staging-${randomUUID()}`)
        await extractArchive(path, scratch, signal)
        pluginDir = await locatePluginRoot(scratch)
      } else if (!info.isDirectory()) {
        throw invalidInput('source', 'must be a plugin folder or a .tar/.tgz archive')
      }
      const manifest = await readManifestAt(pluginDir, 'source')
      const wasmPath = join(pluginDir, manifest.wasm.path)
      const wasmInfo = await lstat(wasmPath).catch(() => undefined)
      if (!wasmInfo?.isFile()) {
        throw invalidInput(
          'source',
          `has no regular file at ${manifest.wasm.path} (symbolic links are refused)`,
        )
      }
      const bytes = new Uint8Array(await readFile(wasmPath))
      verifyIntegrity(manifest, bytes)
      return { manifest, bytes }
    } finally {
      if (scratch) await rm(scratch, { recursive: true, force: true })
    }
  }

  async function writeVersion(manifest: PluginManifest, bytes: Uint8Array): Promise<void> {
    const target = versionDir(manifest.id, manifest.version)
    const temporary = `${target}.${randomUUID()}.tmp`
    await mkdir(join(temporary, dirname(manifest.wasm.path)), { recursive: true })
    await writeFile(join(temporary, manifest.wasm.path), bytes)
    await writeFile(join(temporary, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`)
    await rm(target, { recursive: true, force: true })
    await rename(temporary, target)
  }

  const getEntry = (pluginId: unknown): IndexEntry => {
    assertString(pluginId, 'pluginId')
    const entry = index.get(pluginId)
    if (!entry) {
      throw new AideError('E_NOT_FOUND', `plugins registry: "${pluginId}" is not installed`, {
        details: { pluginId },
      })
    }
    return entry
  }

  async function setEnabled(pluginId: string, enabled: boolean): Promise<void> {
    return serialized(enabled ? 'enable' : 'disable', undefined, async () => {
      getEntry(pluginId)
      const stored = state.plugins[pluginId]!
      if (stored.enabled === enabled) return
      stored.enabled = enabled
      await saveState()
      await indexPlugin(pluginId)
      if (enabled) events.emit('plugin-enable', { pluginId })
      else events.emit('plugin-disable', { pluginId })
    })
  }

  return {
    dir: root,
    list: () =>
      [...index.values()]
        .map((e) => e.plugin)
        .sort((a, b) => a.manifest.id.localeCompare(b.manifest.id)),
    get: (pluginId) => getEntry(pluginId).plugin,
    search(query, searchOptions = {}) {
      assertString(query, 'query', { allowEmpty: true, maxLength: 1000 })
      assertObject(searchOptions, 'options')
      const limit = searchOptions.limit ?? 20
      assertNumber(limit, 'options.limit', { min: 1, integer: true })
      if (searchOptions.kind !== undefined)
        assertOneOf(searchOptions.kind, 'options.kind', ENTRY_KINDS)
      const words = query.toLowerCase().split(/\s+/).filter(Boolean)
      const hits: SearchHit[] = []
      for (const entry of index.values()) {
        if (searchOptions.kind && !entry.kinds.has(searchOptions.kind)) continue
        let score = 0
        let matchedAll = true
        for (const word of words) {
          let best = 0
          if (entry.id === word) best = 100
          else if (entry.id.startsWith(word)) best = 50
          else if (entry.id.includes(word)) best = 30
          if (entry.keywords.includes(word)) best = Math.max(best, 25)
          if (entry.name.includes(word)) best = Math.max(best, 20)
          if (best === 0 && entry.keywords.some((k) => k.includes(word))) best = 10
          if (best === 0 && entry.description.includes(word)) best = 5
          if (best === 0) {
            matchedAll = false
            break
          }
          score += best
        }
        if (!matchedAll) continue
        const { manifest, enabled } = entry.plugin
        hits.push({
          id: manifest.id,
          version: manifest.version,
          name: manifest.name,
          description: manifest.description,
          enabled,
          score,
        })
      }
      hits.sort((a, b) => b.score - a.score || a.id.localeCompare(b.id))
      return hits.slice(0, limit)
    },
    install(source, installOptions = {}) {
      assertObject(installOptions, 'options')
      const enable = installOptions.enable ?? true
      if (typeof enable !== 'boolean') throw invalidInput('options.enable', 'must be a boolean')
      return serialized('install', installOptions, async (signal) => {
        const { manifest, bytes } = await stage(source, signal)
        if (state.plugins[manifest.id]) {
          throw new AideError(
            'E_ALREADY_EXISTS',
            `plugins registry: ${manifest.id} is already installed; use update()`,
            {
              details: { pluginId: manifest.id },
            },
          )
        }
        throwIfAborted(signal)
        await writeVersion(manifest, bytes)
        state.plugins[manifest.id] = { current: manifest.version, previous: [], enabled: enable }
        await saveState()
        await indexPlugin(manifest.id)
        events.emit('plugin-install', { pluginId: manifest.id, version: manifest.version })
        return index.get(manifest.id)!.plugin
      })
    },
    update(source, updateOptions) {
      return serialized('update', updateOptions, async (signal) => {
        const { manifest, bytes } = await stage(source, signal)
        const stored = state.plugins[manifest.id]
        if (!stored) {
          throw new AideError(
            'E_NOT_FOUND',
            `plugins registry: ${manifest.id} is not installed; use install()`,
            {
              details: { pluginId: manifest.id },
            },
          )
        }
        if (!semver.gt(manifest.version, stored.current)) {
          throw invalidInput(
            'source',
            `version ${manifest.version} of ${manifest.id} is not newer than the installed ${stored.current}; use rollback() to go back`,
          )
        }
        throwIfAborted(signal)
        await writeVersion(manifest, bytes)
        const previousVersion = stored.current
        stored.previous.push(previousVersion)
        const dropped = stored.previous.splice(
          0,
          Math.max(0, stored.previous.length - keepVersions),
        )
        stored.current = manifest.version
        await saveState()
        for (const version of dropped)
          await rm(versionDir(manifest.id, version), { recursive: true, force: true })
        await indexPlugin(manifest.id)
        events.emit('plugin-update', {
          pluginId: manifest.id,
          version: manifest.version,
          previousVersion,
        })
        return index.get(manifest.id)!.plugin
      })
    },
    rollback(pluginId, rollbackOptions) {
      return serialized('rollback', rollbackOptions, async () => {
        getEntry(pluginId)
        const stored = state.plugins[pluginId]!
        const target = stored.previous.at(-1)
        if (target === undefined) {
          throw new AideError(
            'E_INVALID_STATE',
            `plugins registry: ${pluginId} has no previous version to roll back to`,
            {
              details: { pluginId },
            },
          )
        }
        const removedVersion = stored.current
        stored.previous.pop()
        stored.current = target
        await saveState()
        await rm(versionDir(pluginId, removedVersion), { recursive: true, force: true })
        await indexPlugin(pluginId)
        events.emit('plugin-rollback', { pluginId, version: target, removedVersion })
        return index.get(pluginId)!.plugin
      })
    },
    uninstall(pluginId, uninstallOptions) {
      return serialized('uninstall', uninstallOptions, async () => {
        getEntry(pluginId)
        const version = state.plugins[pluginId]!.current
        delete state.plugins[pluginId]
        await saveState()
        index.delete(pluginId)
        await rm(join(root, 'plugins', pluginId), { recursive: true, force: true })
        events.emit('plugin-uninstall', { pluginId, version })
      })
    },
    enable: (pluginId) => setEnabled(pluginId, true),
    disable: (pluginId) => setEnabled(pluginId, false),
    stats() {
      const plugins = Object.values(state.plugins)
      return {
        installed: plugins.length,
        enabled: plugins.filter((p) => p.enabled).length,
        previousVersions: plugins.reduce((sum, p) => sum + p.previous.length, 0),
      }
    },
  }
}
