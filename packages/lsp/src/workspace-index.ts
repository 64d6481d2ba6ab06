/**
 * The unopened files of a workspace, read through `@aide/memory-pool`'s
 * `WorkspaceMemory` (bounded memory, change tracking), offered to context
 * gathering as snapshots so completions see related code that is not open.
 */
import { readdir } from 'node:fs/promises'
import { extname, join, relative, sep } from 'node:path'
import { pathToFileURL } from 'node:url'
import {
  AideError,
  assertNumber,
  assertObject,
  assertString,
  type DeadlineOptions,
  type Disposable,
  type Logger,
  noopLogger,
  throwIfAborted,
  validateDeadlineOptions,
  withDeadline,
} from '@aide/core'
import { WorkspaceMemory } from '@aide/memory-pool/workspace'
import { TextDocument } from 'vscode-languageserver-textdocument'
import type { DocumentSnapshot } from './document-store.js'

/** Options of {@link WorkspaceIndex}. */
export interface WorkspaceIndexOptions {
  /** The workspace folder. */
  root: string
  /** Files indexed at most. Default 500. */
  maxFiles?: number
  /** Memory budget for file contents in bytes. Default 32 MiB. */
  maxBytes?: number
  /** Largest file indexed in bytes. Default 512 KiB. */
  maxFileBytes?: number
  /** File extensions indexed (with the dot). Default: common source extensions. */
  extensions?: readonly string[]
  /** Directory names skipped. Default: `node_modules`, `.git`, `dist`, `build`, `coverage`, … */
  ignoreDirectories?: readonly string[]
  /** Watch indexed files and refresh them when they change. Default true. */
  watch?: boolean
  logger?: Logger
}

/** Plain figures from {@link WorkspaceIndex.stats}. */
export interface WorkspaceIndexStats {
  root: string
  files: number
  refreshed: number
  removed: number
  failed: number
  built: boolean
}

const DEFAULT_EXTENSIONS = [
  '.ts',
  '.tsx',
  '.js',
  '.jsx',
  '.mjs',
  '.cjs',
  '.py',
  '.go',
  '.rs',
  '.java',
  '.kt',
  '.rb',
  '.php',
  '.c',
  '.h',
  '.cpp',
  '.cs',
  '.swift',
  '.lua',
]
const DEFAULT_IGNORED = [
  'node_modules',
  '.git',
  'dist',
  'build',
  'out',
  'coverage',
  '.next',
  '.cache',
  'target',
  'vendor',
  '.venv',
]

const LANGUAGE_BY_EXTENSION: Record<string, string> = {
  '.ts': 'typescript',
  '.tsx': 'typescriptreact',
  '.js': 'javascript',
  '.jsx': 'javascriptreact',
  '.mjs': 'javascript',
  '.cjs': 'javascript',
  '.py': 'python',
  '.go': 'go',
  '.rs': 'rust',
}

/** See the module comment. Call {@link WorkspaceIndex.build} once, then read {@link WorkspaceIndex.snapshots}. */
export class WorkspaceIndex implements Disposable {
  readonly root: string
  readonly #memory: WorkspaceMemory
  readonly #snapshots = new Map<string, DocumentSnapshot>()
  readonly #maxFiles: number
  readonly #extensions: ReadonlySet<string>
  readonly #ignored: ReadonlySet<string>
  readonly #logger: Logger
  readonly #subscription: Disposable | undefined
  #refreshed = 0
  #removed = 0
  #failed = 0
  #built = false
  #disposed = false

  constructor(options: WorkspaceIndexOptions) {
    assertObject(options, 'options')
    assertString(options.root, 'options.root')
    if (options.maxFiles !== undefined)
      assertNumber(options.maxFiles, 'options.maxFiles', { min: 0, integer: true })
    if (options.extensions !== undefined && !Array.isArray(options.extensions)) {
      throw new AideError(
        'E_INVALID_INPUT',
        'options.extensions must be an array of extensions such as ".ts"',
        { details: { field: 'options.extensions' } },
      )
    }
    const maxBytes = options.maxBytes ?? 32 * 1024 * 1024
    this.#memory = new WorkspaceMemory({
      root: options.root,
      maxBytes,
      maxFileBytes: Math.min(maxBytes, options.maxFileBytes ?? 512 * 1024),
      watch: options.watch ?? true,
      ...(options.logger ? { logger: options.logger } : {}),
    })
    this.root = this.#memory.root
    this.#maxFiles = options.maxFiles ?? 500
    this.#extensions = new Set(options.extensions ?? DEFAULT_EXTENSIONS)
    this.#ignored = new Set(options.ignoreDirectories ?? DEFAULT_IGNORED)
    this.#logger = options.logger ?? noopLogger
    this.#subscription = this.#memory.onChange((change) => {
      this.#refresh(change.path).catch(() => undefined)
    })
  }

  /**
   * Lists the workspace's source files (up to `maxFiles`) and reads them.
   * Unreadable files are skipped and counted. `onProgress` is told how far it got.
   */
  async build(
    options: DeadlineOptions & { onProgress?: (done: number, total: number) => void } = {},
  ): Promise<{ files: number }> {
    validateDeadlineOptions(options)
    if (this.#disposed) throw new AideError('E_DISPOSED', 'lsp: the workspace index is disposed')
    return withDeadline(
      async (signal) => {
        const paths = await this.#list(signal)
        let done = 0
        for (let start = 0; start < paths.length; start += 16) {
          throwIfAborted(signal, 'lsp: workspace indexing')
          const batch = paths.slice(start, start + 16)
          await Promise.all(batch.map((path) => this.#refresh(path, signal)))
          done += batch.length
          options.onProgress?.(done, paths.length)
        }
        this.#built = true
        return { files: this.#snapshots.size }
      },
      { ...options, label: 'lsp: workspace indexing' },
    )
  }

  /** Snapshots of the indexed files (their `uri` is a `file://` URL). */
  snapshots(): DocumentSnapshot[] {
    return [...this.#snapshots.values()]
  }

  /** Plain figures. */
  stats(): WorkspaceIndexStats {
    return {
      root: this.root,
      files: this.#snapshots.size,
      refreshed: this.#refreshed,
      removed: this.#removed,
      failed: this.#failed,
      built: this.#built,
    }
  }

  /** Stops watching and frees the contents. Idempotent. */
  dispose(): void {
    if (this.#disposed) return
    this.#disposed = true
    void this.#subscription?.dispose()
    this.#memory.dispose()
    this.#snapshots.clear()
  }

  async #list(signal: AbortSignal): Promise<string[]> {
    const found: string[] = []
    const queue = ['']
    while (queue.length > 0 && found.length < this.#maxFiles) {
      throwIfAborted(signal, 'lsp: workspace indexing')
      const directory = queue.shift()!
      let entries: import('node:fs').Dirent[]
      try {
        entries = await readdir(join(this.root, directory), { withFileTypes: true })
      } catch (error) {
        this.#logger.warn({ err: error, directory }, 'lsp: cannot list a workspace directory')
        continue
      }
      entries.sort((a, b) => a.name.localeCompare(b.name))
      for (const entry of entries) {
        const path = directory ? `${directory}/${entry.name}` : entry.name
        if (entry.isDirectory()) {
          if (!this.#ignored.has(entry.name) && !entry.name.startsWith('.')) queue.push(path)
        } else if (
          entry.isFile() &&
          this.#extensions.has(extname(entry.name)) &&
          found.length < this.#maxFiles
        ) {
          found.push(path)
        }
      }
    }
    return found
  }

  async #refresh(path: string, signal?: AbortSignal): Promise<void> {
    if (this.#disposed) return
    const absolute = join(this.root, path)
    const uri = pathToFileURL(absolute).href
    try {
      const text = await this.#memory.read(path, signal ? { signal } : {})
      if (this.#disposed) return
      const previous = this.#snapshots.get(uri)
      const version = (previous?.version ?? 0) + 1
      const document = TextDocument.create(
        uri,
        LANGUAGE_BY_EXTENSION[extname(path)] ?? extname(path).slice(1),
        version,
        text,
      )
      this.#snapshots.set(uri, { uri, languageId: document.languageId, version, text, document })
      if (previous) this.#refreshed++
    } catch (error) {
      if (AideError.isInstance(error) && error.code === 'E_NOT_FOUND') {
        if (this.#snapshots.delete(uri)) this.#removed++
        return
      }
      if (
        AideError.isInstance(error) &&
        (error.code === 'E_CANCELLED' || error.code === 'E_TIMEOUT' || error.code === 'E_DISPOSED')
      )
        throw error
      this.#failed++
      this.#logger.warn(
        { err: error, path: relative(this.root, absolute).split(sep).join('/') },
        'lsp: cannot index a workspace file',
      )
    }
  }
}
