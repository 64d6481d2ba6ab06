/**
 * The plugin host: loads verified WebAssembly plugins on Extism, grants
 * capabilities, and enforces hard limits the runtime itself lacks — a time
 * limit per call (the plugin's worker is killed and respawned), a memory cap
 * (written into the module's memory maximum), per-plugin concurrency and
 * crash isolation.
 */
import * as fs from 'node:fs'
import { readFile } from 'node:fs/promises'
import * as path from 'node:path'
import { join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import * as workerThreads from 'node:worker_threads'
import {
  AIDE_ERROR_CODES,
  AideError,
  type AideErrorCode,
  assertNumber,
  assertObject,
  assertOneOf,
  assertString,
  type Clock,
  cancelledError,
  type DeadlineOptions,
  type EventSink,
  invalidInput,
  type Logger,
  type Meter,
  noopEventSink,
  noopLogger,
  noopMeter,
  systemClock,
  type TimerHandle,
  throwIfAborted,
  timeoutError,
  toAideError,
  validateDeadlineOptions,
  withDeadline,
} from '@aide/core'
import {
  type CapabilityPolicy,
  type GrantedCapabilities,
  grantCapabilities,
  parseCapabilityPolicy,
} from './capabilities.js'
import {
  assertDocument,
  type PluginCodeAction,
  type PluginDiagnostic,
  parseCodeActions,
  parseDiagnostics,
  parseRange,
  type Range,
  rangesIntersect,
  type TextDocument,
} from './documents.js'
import { createGuestImports, type GuestFailure, type GuestSettings } from './guest-imports.js'
import { HTTP_COUNTERS, HttpBridge } from './http-bridge.js'
import { type PluginInstance, startIsolatedPlugin } from './isolated-worker.js'
import {
  checkCompatibility,
  MANIFEST_FILE,
  type PluginEntry,
  type PluginManifest,
  parseManifest,
  verifyIntegrity,
} from './manifest.js'
import type { PluginRegistry } from './registry.js'
import { capMemory, WASM_PAGE_BYTES } from './wasm.js'

type ExtismModule = typeof import('@extism/extism')

let extismLoading: Promise<ExtismModule> | undefined

/** Imports `@extism/extism` on first use, so importing `@aide/plugins` never loads it. */
function loadExtism(): Promise<ExtismModule> {
  extismLoading ??= import('@extism/extism').catch((error: unknown) => {
    extismLoading = undefined
    throw new AideError(
      'E_UNAVAILABLE',
      'plugins: cannot import `@extism/extism`. Install it (`npm i @extism/extism@^1`) to run plugins with @aide/plugins',
      { cause: error },
    )
  })
  return extismLoading
}

/** Hard limits the host enforces on every plugin. */
export interface PluginLimits {
  /** Longest a single call may run before its worker is killed (default 2000 ms). */
  timeoutMs?: number
  /**
   * Cap on a plugin's memory, in bytes (default 64 MiB). Applies to the
   * module's own linear memory (rounded down to 64 KiB pages; `memory.grow`
   * past it fails) and, separately, to the host-side Extism memory one call
   * holds: input, output, `alloc` blocks and values the host stores for the
   * plugin (file contents, HTTP responses, variables read). Going past it fails
   * the call with `E_LIMIT`.
   */
  memoryBytes?: number
  /** Calls of one plugin that may run at once, each in its own worker (default 1). */
  concurrency?: number
  /** Calls of one plugin that may wait for a free worker before new ones fail with `E_LIMIT` (default 256). */
  maxQueue?: number
  /** Largest input accepted for one call, in bytes (default 16 MiB). */
  maxInputBytes?: number
  /** Largest HTTP response body a plugin may receive, in bytes (default 4 MiB); larger fails the call (`E_LIMIT`). */
  maxHttpResponseBytes?: number
  /**
   * Cap on the total size of a plugin instance's Extism variables (`var_set`),
   * keys included (default 1 MiB); past it the call fails (`E_LIMIT`).
   * Variables live as long as the instance: a respawned worker starts empty.
   */
  maxVarBytes?: number
}

/** Where plugin code runs. */
export type Isolation = 'worker' | 'in-thread'

/** Options of {@link createPluginHost}. */
export interface PluginHostOptions {
  /** The host API version plugins are checked against (semver), e.g. `1.0.0`. */
  hostApiVersion: string
  /** Hard limits. */
  limits?: PluginLimits
  /** What the host is willing to grant; everything else is denied. */
  capabilities?: CapabilityPolicy
  /**
   * `worker` (default) runs each plugin instance in a worker thread, so a
   * runaway call can be killed. `in-thread` is faster per call but a plugin
   * that loops forever blocks the host: use it only for plugins you trust.
   */
  isolation?: Isolation
  /** Lifecycle events (`plugin-load`, `plugin-timeout`, …). */
  events?: EventSink<PluginHostEvents>
  /** Host logger; plugin log lines go to a child logger when `log` is granted. */
  logger?: Logger
  /** Clock for the per-call time limit (default: the system clock). */
  clock?: Clock
  /**
   * Metrics: `aide_plugin_calls_total{plugin,outcome}` (outcome `ok`, `error`,
   * `timeout`, `cancelled`) and `aide_plugin_call_duration_seconds{plugin}`.
   */
  meter?: Meter
}

/** Events the host emits. */
export interface PluginHostEvents {
  /** A plugin was loaded. */
  'plugin-load': { pluginId: string; version: string; granted: string[]; denied: string[] }
  /** A plugin was unloaded. */
  'plugin-unload': { pluginId: string; version: string }
  /** A call passed the hard time limit; its worker was killed. */
  'plugin-timeout': { pluginId: string; export: string; timeoutMs: number }
  /** A call failed inside the plugin (trap, plugin error, bad output). */
  'plugin-error': { pluginId: string; export: string; code: string; message: string }
  /** A killed or crashed worker was replaced. */
  'plugin-respawn': { pluginId: string; reason: 'timeout' | 'cancelled' | 'crash' }
}

/** Per-plugin statistics. */
export interface PluginStats {
  /** Plugin id. */
  id: string
  /** Loaded version. */
  version: string
  /** Calls started. */
  calls: number
  /** Calls that failed (including timeouts and cancellations). */
  errors: number
  /** Calls stopped by the hard time limit. */
  timeouts: number
  /** Calls cancelled by the caller while running or waiting. */
  cancellations: number
  /** Workers killed or replaced after a crash, timeout or cancellation. */
  respawns: number
  /** Calls running now. */
  inFlight: number
  /** Calls waiting for a free worker. */
  queued: number
  /** Median latency of recent successful calls, in ms. */
  p50Ms: number
  /** 99th percentile latency of recent successful calls, in ms. */
  p99Ms: number
  /** HTTP requests the plugin made (`http_request`), whatever their outcome. */
  httpRequests: number
  /** HTTP requests refused because the host (or a redirect's host) was not granted. */
  httpDenied: number
  /** HTTP requests that failed otherwise: network error, time limit, response too large, bad request. */
  httpFailures: number
  /** Response body bytes the plugin received over HTTP. */
  httpBytesReceived: number
}

/** Host-wide statistics. */
export interface PluginHostStats {
  /** Number of loaded plugins. */
  loaded: number
  /** Stats per plugin id. */
  plugins: Record<string, PluginStats>
}

/** A loaded plugin as seen from outside. */
export interface LoadedPluginInfo {
  /** The validated manifest. */
  manifest: PluginManifest
  /** Granted capabilities. */
  granted: GrantedCapabilities
  /** Requests that were not granted. */
  denied: string[]
  /** Whether the host calls it from `runDiagnostics` / `runCodeActions`. */
  enabled: boolean
}

/** What to load: a plugin directory, or a manifest with its module bytes. */
export type PluginSource = string | { manifest: unknown; wasm: Uint8Array }

/** Options of {@link PluginHost.load}. */
export interface LoadOptions extends DeadlineOptions {
  /** Replace an already loaded plugin with the same id (default false: `E_ALREADY_EXISTS`). */
  replace?: boolean
}

/** Per-plugin failure reported by the aggregate calls instead of failing them. */
export interface PluginFailure {
  /** The plugin that failed. */
  pluginId: string
  /** Why. */
  error: AideError
}

/** Result of {@link PluginHost.runDiagnostics}. */
export interface DiagnosticsResult {
  /** Findings of every plugin that succeeded, in plugin order. */
  diagnostics: PluginDiagnostic[]
  /** Plugins that failed (timeouts, traps, malformed output); the others still report. */
  failures: PluginFailure[]
}

/** Result of {@link PluginHost.runCodeActions}. */
export interface CodeActionsResult {
  /** Actions whose range meets the requested range. */
  actions: PluginCodeAction[]
  /** Plugins that failed. */
  failures: PluginFailure[]
}

/** Options of the aggregate calls. */
export interface AggregateOptions extends DeadlineOptions {
  /** Only these plugin ids (default: every enabled plugin with a matching entry). */
  plugins?: string[]
}

/** The plugin host. */
export interface PluginHost {
  /** Verifies, checks and loads a plugin; resolves to what was granted. */
  load(source: PluginSource, options?: LoadOptions): Promise<LoadedPluginInfo>
  /** Unloads a plugin and kills its workers. Unknown ids reject with `E_NOT_FOUND`. */
  unload(pluginId: string): Promise<void>
  /**
   * Makes the loaded set match the registry's enabled plugins: loads new and
   * updated ones, unloads disabled and removed ones. Per-plugin load failures
   * are returned, not thrown.
   */
  syncWithRegistry(registry: PluginRegistry, options?: DeadlineOptions): Promise<PluginFailure[]>
  /** Includes or excludes a loaded plugin from the aggregate calls. */
  setEnabled(pluginId: string, enabled: boolean): void
  /** The loaded plugins. */
  list(): LoadedPluginInfo[]
  /**
   * Calls a declared entry point with raw input. Rejects `E_TIMEOUT` when the
   * hard limit or `options.timeoutMs` passes, `E_CANCELLED` on abort,
   * `E_PLUGIN` when the plugin traps or reports an error, `E_LIMIT` when too
   * many calls wait.
   */
  call(
    pluginId: string,
    exportName: string,
    input: string | Uint8Array,
    options?: DeadlineOptions,
  ): Promise<Uint8Array>
  /** Runs every enabled `diagnostics` entry over a document, isolating plugin failures. */
  runDiagnostics(document: TextDocument, options?: AggregateOptions): Promise<DiagnosticsResult>
  /**
   * Runs every enabled `code-action` entry for a range of a document and keeps
   * the actions that meet the range.
   */
  runCodeActions(
    document: TextDocument,
    range: Range,
    options?: AggregateOptions & { diagnostics?: PluginDiagnostic[] },
  ): Promise<CodeActionsResult>
  /** Plain-data statistics. */
  stats(): PluginHostStats
  /** Unloads everything. Idempotent. */
  dispose(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

interface Instance {
  plugin: PluginInstance
  busy: boolean
}

/** Node modules for the in-thread host functions (see guest-imports.ts). */
const GUEST_DEPS = { fs, path, workerThreads }

interface Waiter {
  resolve: (instance: Instance) => void
  reject: (error: unknown) => void
}

/** The parts of the WebAssembly JS API the host uses (Node's globals are not in this package's `lib`). */
interface WasmApi {
  compile(bytes: Uint8Array): Promise<WasmModule>
  Module: {
    imports(module: WasmModule): Array<{ module: string; name: string; kind: string }>
    exports(module: WasmModule): Array<{ name: string; kind: string }>
  }
}
type WasmModule = object
const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly

const LATENCY_WINDOW = 1024
const ENCODER = new TextEncoder()
const NEVER_ABORTED = new AbortController().signal

class Slot {
  readonly instances: Instance[] = []
  readonly waiters: Waiter[] = []
  spawning = 0
  enabled = true
  closed = false
  readonly latencies: number[] = []
  latencyIndex = 0
  counts = { calls: 0, errors: 0, timeouts: 0, cancellations: 0, respawns: 0, inFlight: 0 }
  /** Updated by the HTTP bridge thread (see HTTP_COUNTERS). */
  readonly http = new BigInt64Array(new SharedArrayBuffer(4 * 8))
  spawn: () => Promise<PluginInstance> = () => Promise.reject(new Error('not started'))

  constructor(
    readonly manifest: PluginManifest,
    readonly granted: GrantedCapabilities,
    readonly denied: string[],
  ) {
    this.exports = new Set(manifest.entries.map((entry) => entry.export))
    this.labels = { plugin: manifest.id }
    this.okLabels = { plugin: manifest.id, outcome: 'ok' }
  }

  /** Exports the manifest declares as entry points. */
  readonly exports: Set<string>
  /** Metric labels, built once. */
  readonly labels: { plugin: string }
  readonly okLabels: { plugin: string; outcome: 'ok' }

  idleInstance(): Instance | undefined {
    for (const instance of this.instances) {
      if (!instance.busy) {
        instance.busy = true
        return instance
      }
    }
    return undefined
  }

  httpCount(slot: keyof typeof HTTP_COUNTERS): number {
    return Number(Atomics.load(this.http, HTTP_COUNTERS[slot]))
  }

  recordLatency(ms: number): void {
    if (this.latencies.length < LATENCY_WINDOW) this.latencies.push(ms)
    else this.latencies[this.latencyIndex++ % LATENCY_WINDOW] = ms
  }

  percentile(p: number): number {
    if (this.latencies.length === 0) return 0
    const sorted = [...this.latencies].sort((a, b) => a - b)
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
  }
}

const KNOWN_NAMESPACES = new Set(['extism:host/env', 'extism:host/user', 'wasi_snapshot_preview1'])
const USER_FUNCTIONS: Record<string, 'workspace.read'> = { aide_read_file: 'workspace.read' }

function describeCapabilities(granted: GrantedCapabilities): string[] {
  return [
    ...(granted.log ? ['log'] : []),
    ...Object.keys(granted.config).map((key) => `config.${key}`),
    ...granted.workspaceRead.map((path) => `workspace.read:${path}`),
    ...granted.http.map((host) => `http:${host}`),
  ]
}

function pluginLogger(logger: Logger, pluginId: string, enabled: boolean): Console {
  const child = logger.child({ plugin: pluginId })
  const drop = () => undefined
  const line =
    (method: 'trace' | 'debug' | 'info' | 'warn' | 'error') =>
    (...args: unknown[]) =>
      child[method](args.map(String).join(' '))
  return {
    trace: enabled ? line('trace') : drop,
    debug: enabled ? line('debug') : drop,
    info: enabled ? line('info') : drop,
    log: enabled ? line('info') : drop,
    warn: enabled ? line('warn') : drop,
    error: enabled ? line('error') : drop,
  } as unknown as Console
}

/** Creates a plugin host. See {@link PluginHostOptions}. */
export function createPluginHost(options: PluginHostOptions): PluginHost {
  assertObject(options, 'options')
  assertString(options.hostApiVersion, 'options.hostApiVersion')
  if (!/^\d+\.\d+\.\d+(?:[-+].*)?$/.test(options.hostApiVersion)) {
    throw invalidInput(
      'options.hostApiVersion',
      `must be a semver version, got ${JSON.stringify(options.hostApiVersion)}`,
    )
  }
  const limitsInput = options.limits ?? {}
  assertObject(limitsInput, 'options.limits')
  const limits = {
    timeoutMs: limitsInput.timeoutMs ?? 2000,
    memoryBytes: limitsInput.memoryBytes ?? 64 * 1024 * 1024,
    concurrency: limitsInput.concurrency ?? 1,
    maxQueue: limitsInput.maxQueue ?? 256,
    maxInputBytes: limitsInput.maxInputBytes ?? 16 * 1024 * 1024,
    maxHttpResponseBytes: limitsInput.maxHttpResponseBytes ?? 4 * 1024 * 1024,
    maxVarBytes: limitsInput.maxVarBytes ?? 1024 * 1024,
  }
  assertNumber(limits.timeoutMs, 'options.limits.timeoutMs', { min: 1 })
  assertNumber(limits.memoryBytes, 'options.limits.memoryBytes', { min: WASM_PAGE_BYTES })
  assertNumber(limits.concurrency, 'options.limits.concurrency', { min: 1, max: 64, integer: true })
  assertNumber(limits.maxQueue, 'options.limits.maxQueue', { min: 0, integer: true })
  assertNumber(limits.maxInputBytes, 'options.limits.maxInputBytes', { min: 1 })
  assertNumber(limits.maxHttpResponseBytes, 'options.limits.maxHttpResponseBytes', { min: 0 })
  assertNumber(limits.maxVarBytes, 'options.limits.maxVarBytes', { min: 0 })
  const isolation = options.isolation ?? 'worker'
  assertOneOf(isolation, 'options.isolation', ['worker', 'in-thread'] as const)
  const policy = parseCapabilityPolicy(options.capabilities, 'options.capabilities')
  const events = options.events ?? noopEventSink
  const logger = options.logger ?? noopLogger
  const clock = options.clock ?? systemClock
  const meter = options.meter ?? noopMeter
  const callCounter = meter.counter('aide_plugin_calls_total', {
    help: 'Plugin calls by plugin and outcome',
  })
  const callDuration = meter.histogram('aide_plugin_call_duration_seconds', {
    help: 'Duration of successful plugin calls',
    unit: 'seconds',
  })
  // With the no-op meter, skip building label objects on every call.
  const metered = meter !== noopMeter
  const maxPages = Math.floor(limits.memoryBytes / WASM_PAGE_BYTES)
  const slots = new Map<string, Slot>()
  const countedFailures = new WeakSet<object>()
  const loading = new Set<string>()
  const httpBridge = new HttpBridge()
  let disposed: Promise<void> | undefined

  const emit = <K extends keyof PluginHostEvents>(type: K, payload: PluginHostEvents[K]) => {
    try {
      events.emit(type, payload)
    } catch (error) {
      logger.warn({ err: error, event: type }, 'plugins: event sink threw')
    }
  }

  const assertOpen = () => {
    if (disposed)
      throw new AideError('E_DISPOSED', 'plugins: the host was disposed; create a new one')
  }

  const getSlot = (pluginId: unknown, field: string): Slot => {
    assertString(pluginId, field)
    const slot = slots.get(pluginId)
    if (!slot) {
      throw new AideError(
        'E_NOT_FOUND',
        `plugins: no plugin "${pluginId}" is loaded; load it first`,
        {
          details: { pluginId },
        },
      )
    }
    return slot
  }

  async function prepare(
    source: PluginSource,
  ): Promise<{ manifest: PluginManifest; bytes: Uint8Array }> {
    if (typeof source === 'string') {
      const dir = resolve(source)
      let raw: unknown
      try {
        raw = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8'))
      } catch (error) {
        throw new AideError(
          'E_INVALID_INPUT',
          `plugins: cannot read ${join(dir, MANIFEST_FILE)}: ${(error as Error).message}`,
          {
            cause: error,
            details: { field: 'source' },
          },
        )
      }
      const manifest = parseManifest(raw)
      const bytes = new Uint8Array(await readFile(join(dir, manifest.wasm.path)))
      return { manifest, bytes }
    }
    assertObject(source, 'source')
    if (!(source.wasm instanceof Uint8Array))
      throw invalidInput('source.wasm', 'must be a Uint8Array')
    return { manifest: parseManifest(source.manifest, 'source.manifest'), bytes: source.wasm }
  }

  async function compileChecked(
    manifest: PluginManifest,
    bytes: Uint8Array,
    granted: GrantedCapabilities,
  ) {
    const capped = capMemory(bytes, maxPages)
    let module: WasmModule
    try {
      module = await Wasm.compile(capped)
    } catch (error) {
      throw new AideError(
        'E_PLUGIN',
        `plugins: ${manifest.id}: the module does not compile: ${(error as Error).message}`,
        {
          cause: error,
          details: { pluginId: manifest.id },
        },
      )
    }
    for (const entry of Wasm.Module.imports(module)) {
      if (!KNOWN_NAMESPACES.has(entry.module)) {
        throw new AideError(
          'E_PLUGIN',
          `plugins: ${manifest.id} imports "${entry.module}.${entry.name}", which this host does not provide`,
          {
            details: { pluginId: manifest.id, import: `${entry.module}.${entry.name}` },
          },
        )
      }
      if (
        entry.module === 'extism:host/env' &&
        (entry.name === 'http_request' || entry.name === 'http_status_code') &&
        granted.http.length === 0
      ) {
        throw new AideError(
          'E_PERMISSION',
          `plugins: ${manifest.id} imports "${entry.name}", which needs the "http" capability; it was not granted (declare the hosts under capabilities.http in the manifest and allow them in the host's capabilities.http policy)`,
          { details: { pluginId: manifest.id, import: entry.name, capability: 'http' } },
        )
      }
      if (entry.module === 'extism:host/user') {
        const capability = USER_FUNCTIONS[entry.name]
        if (!capability) {
          throw new AideError(
            'E_PLUGIN',
            `plugins: ${manifest.id} imports unknown host function "${entry.name}"`,
            {
              details: { pluginId: manifest.id, import: entry.name },
            },
          )
        }
        if (capability === 'workspace.read' && granted.workspaceRead.length === 0) {
          throw new AideError(
            'E_PERMISSION',
            `plugins: ${manifest.id} uses "${entry.name}", which needs the "workspace.read" capability; it was not granted (declare it in the manifest and allow it in the host's capabilities policy)`,
            { details: { pluginId: manifest.id, capability } },
          )
        }
      }
    }
    const exported = new Set(Wasm.Module.exports(module).map((e) => e.name))
    manifest.entries.forEach((entry, index) => {
      if (!exported.has(entry.export)) {
        throw new AideError(
          'E_PLUGIN',
          `plugins: ${manifest.id}: manifest.entries[${index}].export "${entry.export}" is not exported by the module`,
          {
            details: { pluginId: manifest.id, field: `manifest.entries[${index}].export` },
          },
        )
      }
    })
    return module
  }

  async function load(
    source: PluginSource,
    loadOptions: LoadOptions = {},
  ): Promise<LoadedPluginInfo> {
    assertOpen()
    validateDeadlineOptions(loadOptions, 'options')
    const { manifest, bytes } = await prepare(source)
    const existing = slots.get(manifest.id)
    if (existing && !loadOptions.replace) {
      throw new AideError(
        'E_ALREADY_EXISTS',
        `plugins: ${manifest.id} is already loaded; unload it or pass { replace: true }`,
        {
          details: { pluginId: manifest.id },
        },
      )
    }
    if (loading.has(manifest.id)) {
      throw new AideError('E_ALREADY_EXISTS', `plugins: ${manifest.id} is being loaded already`, {
        details: { pluginId: manifest.id },
      })
    }
    loading.add(manifest.id)
    try {
      return await loadVerified(manifest, bytes, loadOptions)
    } finally {
      loading.delete(manifest.id)
    }
  }

  async function loadVerified(
    manifest: PluginManifest,
    bytes: Uint8Array,
    loadOptions: LoadOptions,
  ): Promise<LoadedPluginInfo> {
    checkCompatibility(manifest, options.hostApiVersion)
    verifyIntegrity(manifest, bytes)
    const { granted, denied } = grantCapabilities(manifest.capabilities, policy)
    const module = await compileChecked(manifest, bytes, granted)
    const imports = Wasm.Module.imports(module)
    const usesWasi = imports.some((i) => i.module === 'wasi_snapshot_preview1')
    const needsReadFile = imports.some(
      (i) => i.module === 'extism:host/user' && i.name === 'aide_read_file',
    )
    const pluginLog = pluginLogger(logger, manifest.id, granted.log)
    const onLog = granted.log
      ? (level: string, message: string) => {
          const method =
            (['trace', 'debug', 'info', 'warn', 'error'] as const).find((m) => m === level) ??
            'info'
          ;(pluginLog as unknown as Record<string, (line: string) => void>)[method]!(message)
        }
      : undefined
    const extism = isolation === 'in-thread' ? await loadExtism() : undefined
    const slot = new Slot(manifest, granted, denied)
    const usesHttp = imports.some(
      (i) =>
        i.module === 'extism:host/env' &&
        (i.name === 'http_request' || i.name === 'http_status_code'),
    )
    // Each instance gets its own settings: its own budget, variables and HTTP port.
    const guestSettings = (): GuestSettings => ({
      memoryBytes: limits.memoryBytes,
      maxVarBytes: limits.maxVarBytes,
      workspace:
        needsReadFile && policy.workspace
          ? { root: policy.workspace.root, read: granted.workspaceRead }
          : undefined,
      http: usesHttp
        ? httpBridge.connect({
            hosts: granted.http,
            maxResponseBytes: limits.maxHttpResponseBytes,
            counters: slot.http.buffer as SharedArrayBuffer,
          })
        : undefined,
    })
    slot.spawn = extism
      ? async () => {
          const settings = guestSettings()
          const guest = createGuestImports(GUEST_DEPS, settings)
          try {
            const plugin = await extism.createPlugin(
              { wasm: [{ module: module as never }] },
              {
                useWasi: usesWasi,
                runInWorker: false,
                config: granted.config,
                allowedHosts: [],
                allowedPaths: {},
                logger: pluginLog,
                functions: guest.functions as never,
              },
            )
            return inThreadInstance(plugin, guest.beginCall, settings.http?.port)
          } catch (error) {
            settings.http?.port.close()
            throw error
          }
        }
      : () =>
          startIsolatedPlugin({
            module,
            useWasi: usesWasi,
            config: granted.config,
            guest: guestSettings(),
            onLog,
          })
    const spawn = slot.spawn
    const starting = spawn()
    let first: PluginInstance
    try {
      first = await withDeadline(() => starting, {
        ...loadOptions,
        label: `plugins: loading ${manifest.id}`,
      })
    } catch (error) {
      starting.then(
        (instance) => instance.close(),
        () => undefined,
      )
      throw toAideError(error, 'E_PLUGIN')
    }
    if (disposed) {
      await first.close()
      throw new AideError('E_DISPOSED', 'plugins: the host was disposed while loading')
    }
    slot.instances.push({ plugin: first, busy: false })
    const previous = slots.get(manifest.id)
    slots.set(manifest.id, slot)
    if (previous) {
      await closeSlot(previous)
      emit('plugin-unload', { pluginId: manifest.id, version: previous.manifest.version })
    }
    emit('plugin-load', {
      pluginId: manifest.id,
      version: manifest.version,
      granted: describeCapabilities(granted),
      denied,
    })
    return info(slot)
  }

  function info(slot: Slot): LoadedPluginInfo {
    return {
      manifest: slot.manifest,
      granted: slot.granted,
      denied: [...slot.denied],
      enabled: slot.enabled,
    }
  }

  async function closeSlot(slot: Slot): Promise<void> {
    if (slot.closed) return
    slot.closed = true
    const gone = new AideError('E_DISPOSED', `plugins: ${slot.manifest.id} was unloaded`)
    for (const waiter of slot.waiters.splice(0)) waiter.reject(gone)
    await Promise.all(slot.instances.splice(0).map((i) => i.plugin.close().catch(() => undefined)))
  }

  function acquire(slot: Slot, signal: AbortSignal): Promise<Instance> {
    const idle = slot.idleInstance()
    if (idle) return Promise.resolve(idle)
    if (slot.instances.length + slot.spawning < limits.concurrency) {
      slot.spawning++
      return slot.spawn().then(
        (plugin) => {
          slot.spawning--
          if (slot.closed) {
            void plugin.close()
            throw new AideError('E_DISPOSED', `plugins: ${slot.manifest.id} was unloaded`)
          }
          const instance = { plugin, busy: true }
          slot.instances.push(instance)
          if (signal.aborted) {
            release(slot, instance)
            throw cancelledError(signal.reason)
          }
          return instance
        },
        (error: unknown) => {
          slot.spawning--
          throw toAideError(
            error,
            'E_PLUGIN',
            `plugins: ${slot.manifest.id}: starting a worker failed`,
          )
        },
      )
    }
    if (slot.waiters.length >= limits.maxQueue) {
      return Promise.reject(
        new AideError(
          'E_LIMIT',
          `plugins: ${slot.manifest.id} has ${slot.waiters.length} calls waiting; try again later or raise limits.maxQueue`,
          {
            details: { pluginId: slot.manifest.id, maxQueue: limits.maxQueue },
          },
        ),
      )
    }
    return new Promise<Instance>((resolvePromise, rejectPromise) => {
      const waiter: Waiter = {
        resolve: (instance) => {
          signal.removeEventListener('abort', onAbort)
          resolvePromise(instance)
        },
        reject: (error) => {
          signal.removeEventListener('abort', onAbort)
          rejectPromise(error)
        },
      }
      const onAbort = () => {
        const index = slot.waiters.indexOf(waiter)
        if (index >= 0) slot.waiters.splice(index, 1)
        rejectPromise(cancelledError(signal.reason))
      }
      signal.addEventListener('abort', onAbort, { once: true })
      slot.waiters.push(waiter)
    })
  }

  function release(slot: Slot, instance: Instance): void {
    instance.busy = false
    const waiter = slot.waiters.shift()
    if (!waiter) return
    if (slot.instances.includes(instance)) {
      instance.busy = true
      waiter.resolve(instance)
      return
    }
    // The instance was retired: hand the waiter a fresh one.
    const controller = new AbortController()
    acquire(slot, controller.signal).then(waiter.resolve, waiter.reject)
  }

  function retire(slot: Slot, instance: Instance, reason: 'timeout' | 'cancelled' | 'crash'): void {
    const index = slot.instances.indexOf(instance)
    if (index >= 0) slot.instances.splice(index, 1)
    // close() terminates the worker at once; the abandoned call promise never settles.
    void instance.plugin.close().catch(() => undefined)
    if (slot.closed) return
    slot.counts.respawns++
    emit('plugin-respawn', { pluginId: slot.manifest.id, reason })
    if (slot.instances.length + slot.spawning > 0) return
    // Keep one warm worker so the next call does not pay the start-up; start it
    // after the failed call's caller has been told, not before.
    slot.spawning++
    setImmediate(() => {
      if (slot.closed) {
        slot.spawning--
        return
      }
      slot.spawn().then(
        (plugin) => {
          slot.spawning--
          if (slot.closed) {
            void plugin.close()
            return
          }
          const fresh = { plugin, busy: false }
          slot.instances.push(fresh)
          const waiter = slot.waiters.shift()
          if (waiter) {
            fresh.busy = true
            waiter.resolve(fresh)
          }
        },
        (error: unknown) => {
          slot.spawning--
          logger.error(
            { err: error, plugin: slot.manifest.id },
            'plugins: respawning a worker failed',
          )
          // Waiters would otherwise wait for a worker that will not come.
          for (const waiter of slot.waiters.splice(0)) waiter.reject(toAideError(error, 'E_PLUGIN'))
        },
      )
    }).unref()
  }

  /** Turns a failed plugin call into the host's error, counts it, emits, and says how to retire the instance. */
  function callFailure(
    slot: Slot,
    exportName: string,
    error: unknown,
  ): { failure: AideError; retire: 'timeout' | 'crash' } {
    const pluginId = slot.manifest.id
    if (slot.closed) {
      return {
        failure: new AideError('E_DISPOSED', `plugins: ${pluginId} was unloaded during the call`),
        retire: 'crash',
      }
    }
    const message = error instanceof Error ? error.message : String(error)
    const reported = (error as Partial<GuestFailure> | undefined)?.aideCode
    if (reported !== undefined) {
      // A host function refused (permission, limit, time) or failed (network).
      const code = (AIDE_ERROR_CODES as readonly string[]).includes(reported)
        ? (reported as AideErrorCode)
        : 'E_PLUGIN'
      const failure = new AideError(code, `plugins: ${pluginId}.${exportName}: ${message}`, {
        cause: error,
        details: { ...(error as GuestFailure).aideDetails, pluginId, export: exportName },
      })
      if (code === 'E_TIMEOUT') {
        slot.counts.timeouts++
        emit('plugin-timeout', { pluginId, export: exportName, timeoutMs: limits.timeoutMs })
        return { failure, retire: 'timeout' }
      }
      emit('plugin-error', { pluginId, export: exportName, code, message })
      return { failure, retire: 'crash' }
    }
    const failure = new AideError(
      'E_PLUGIN',
      `plugins: ${pluginId}.${exportName} failed: ${message}`,
      { cause: error, details: { pluginId, export: exportName } },
    )
    emit('plugin-error', { pluginId, export: exportName, code: failure.code, message })
    return { failure, retire: 'crash' }
  }

  function recordFailure(slot: Slot, error: AideError): void {
    slot.counts.errors++
    countedFailures.add(error)
    if (metered) callCounter.inc(1, { plugin: slot.manifest.id, outcome: outcomeOf(error) })
  }

  function recordSuccess(slot: Slot, elapsedMs: number): void {
    slot.recordLatency(elapsedMs)
    if (metered) {
      callCounter.inc(1, slot.okLabels)
      callDuration.observe(elapsedMs / 1000, slot.labels)
    }
  }

  /**
   * Runs a call on an instance nothing but the host's own limit can stop: no
   * caller signal or deadline. The hot path: no listeners, and a timer only
   * where a runaway call can be killed (worker isolation).
   */
  function executeUnsignalled(
    slot: Slot,
    instance: Instance,
    exportName: string,
    input: Uint8Array,
  ): Promise<Uint8Array> {
    if (isolation === 'worker') return execute(slot, instance, exportName, input, NEVER_ABORTED)
    slot.counts.inFlight++
    const started = performance.now()
    return instance.plugin.call(exportName, input, limits.timeoutMs).then(
      (output) => {
        slot.counts.inFlight--
        release(slot, instance)
        recordSuccess(slot, performance.now() - started)
        return output
      },
      (error: unknown) => {
        slot.counts.inFlight--
        const { failure, retire: reason } = callFailure(slot, exportName, error)
        retire(slot, instance, reason)
        recordFailure(slot, failure)
        throw failure
      },
    )
  }

  function execute(
    slot: Slot,
    instance: Instance,
    exportName: string,
    input: Uint8Array,
    signal: AbortSignal,
  ) {
    const pluginId = slot.manifest.id
    const listens = signal !== NEVER_ABORTED
    return new Promise<Uint8Array>((resolvePromise, rejectPromise) => {
      let settled = false
      let timer: TimerHandle | undefined
      const started = performance.now()
      const finish = (
        error: AideError | undefined,
        output?: Uint8Array,
        retireReason?: 'timeout' | 'cancelled' | 'crash',
      ) => {
        if (settled) return
        settled = true
        if (timer !== undefined) clock.clearTimer(timer)
        if (listens) signal.removeEventListener('abort', onAbort)
        slot.counts.inFlight--
        if (retireReason) retire(slot, instance, retireReason)
        else release(slot, instance)
        if (error) {
          recordFailure(slot, error)
          rejectPromise(error)
        } else {
          recordSuccess(slot, performance.now() - started)
          resolvePromise(output!)
        }
      }
      const onAbort = () => {
        slot.counts.cancellations++
        finish(
          cancelledError(signal.reason, `plugins: ${pluginId}.${exportName}`),
          undefined,
          'cancelled',
        )
      }
      slot.counts.inFlight++
      if (isolation === 'worker') {
        timer = clock.setTimeout(() => {
          slot.counts.timeouts++
          emit('plugin-timeout', { pluginId, export: exportName, timeoutMs: limits.timeoutMs })
          finish(
            timeoutError(limits.timeoutMs, `plugins: ${pluginId}.${exportName}`),
            undefined,
            'timeout',
          )
        }, limits.timeoutMs)
      }
      if (listens) signal.addEventListener('abort', onAbort, { once: true })
      instance.plugin.call(exportName, input, limits.timeoutMs).then(
        (output) => finish(undefined, output),
        (error: unknown) => {
          const { failure, retire: reason } = callFailure(slot, exportName, error)
          finish(failure, undefined, reason)
        },
      )
    })
  }

  function call(
    pluginId: string,
    exportName: string,
    input: string | Uint8Array,
    callOptions?: DeadlineOptions,
  ): Promise<Uint8Array> {
    let slot: Slot
    let bytes: Uint8Array
    try {
      assertOpen()
      slot = getSlot(pluginId, 'pluginId')
      assertString(exportName, 'exportName')
      if (!slot.exports.has(exportName)) {
        throw new AideError(
          'E_NOT_FOUND',
          `plugins: ${pluginId} declares no entry point "${exportName}"`,
          { details: { pluginId, export: exportName } },
        )
      }
      if (typeof input === 'string') bytes = ENCODER.encode(input)
      else if (input instanceof Uint8Array) {
        bytes = input
        // Extism hands the plugin the view's whole underlying buffer (and a
        // worker receives it whole): a view into a larger buffer, such as a
        // pooled Buffer, is copied so the plugin sees only its own input.
        // (`new Uint8Array(view)` copies; a Buffer's `slice()` would not.)
        if (bytes.byteOffset !== 0 || bytes.byteLength !== bytes.buffer.byteLength)
          bytes = new Uint8Array(bytes)
      } else throw invalidInput('input', 'must be a string or a Uint8Array')
      validateDeadlineOptions(callOptions, 'options')
      if (bytes.byteLength > limits.maxInputBytes) {
        throw new AideError(
          'E_LIMIT',
          `plugins: input of ${bytes.byteLength} bytes exceeds limits.maxInputBytes (${limits.maxInputBytes})`,
          { details: { field: 'input', bytes: bytes.byteLength } },
        )
      }
    } catch (error) {
      return Promise.reject(error)
    }
    slot.counts.calls++
    if (callOptions?.signal === undefined && callOptions?.timeoutMs === undefined) {
      // Fast path: nothing can cancel the call except the host's own hard limit.
      const idle = slot.idleInstance()
      if (idle) return executeUnsignalled(slot, idle, exportName, bytes)
    }
    return callWaiting(slot, exportName, bytes, callOptions ?? {})
  }

  async function callWaiting(
    slot: Slot,
    exportName: string,
    bytes: Uint8Array,
    callOptions: DeadlineOptions,
  ): Promise<Uint8Array> {
    const pluginId = slot.manifest.id
    try {
      if (callOptions.signal === undefined && callOptions.timeoutMs === undefined) {
        return await executeUnsignalled(slot, await acquire(slot, NEVER_ABORTED), exportName, bytes)
      }
      return await withDeadline(
        async (signal) => {
          const instance = await acquire(slot, signal)
          throwIfAborted(signal)
          return execute(slot, instance, exportName, bytes, signal)
        },
        { ...callOptions, clock, label: `plugins: ${pluginId}.${exportName}` },
      )
    } catch (error) {
      // Failures while running were counted by execute(); count the ones that ended a wait.
      if (!countedFailures.has(error as object)) {
        slot.counts.errors++
        if (metered) callCounter.inc(1, { plugin: pluginId, outcome: outcomeOf(error) })
        if (isAideError(error) && error.code === 'E_CANCELLED') slot.counts.cancellations++
      }
      throw error
    }
  }

  function entriesOf(
    kind: PluginEntry['kind'],
    document: TextDocument,
    only: string[] | undefined,
  ) {
    const out: Array<{ slot: Slot; entry: PluginEntry }> = []
    for (const slot of slots.values()) {
      if (only ? !only.includes(slot.manifest.id) : !slot.enabled) continue
      for (const entry of slot.manifest.entries) {
        if (entry.kind !== kind) continue
        if (entry.languages.length > 0 && !entry.languages.includes(document.languageId)) continue
        out.push({ slot, entry })
      }
    }
    return out
  }

  function decodeJson(bytes: Uint8Array, pluginId: string, exportName: string): unknown {
    try {
      return JSON.parse(new TextDecoder().decode(bytes))
    } catch (error) {
      throw new AideError(
        'E_PLUGIN',
        `plugins: ${pluginId}.${exportName} returned output that is not JSON`,
        {
          cause: error,
          details: { pluginId, export: exportName },
        },
      )
    }
  }

  function asPluginError(error: unknown, pluginId: string, exportName: string): AideError {
    if (isAideError(error) && error.code === 'E_INVALID_INPUT') {
      return new AideError(
        'E_PLUGIN',
        `plugins: ${pluginId}.${exportName} returned malformed output: ${error.message}`,
        {
          cause: error,
          details: { pluginId, export: exportName },
        },
      )
    }
    return toAideError(error, 'E_PLUGIN')
  }

  function validateAggregate(aggregate: AggregateOptions | undefined): string[] | undefined {
    if (aggregate === undefined) return undefined
    assertObject(aggregate, 'options')
    validateDeadlineOptions(aggregate, 'options')
    if (aggregate.plugins === undefined) return undefined
    if (!Array.isArray(aggregate.plugins))
      throw invalidInput('options.plugins', 'must be an array of plugin ids')
    aggregate.plugins.forEach((id, i) => {
      assertString(id, `options.plugins[${i}]`)
    })
    return aggregate.plugins
  }

  async function runDiagnostics(
    document: TextDocument,
    aggregate?: AggregateOptions,
  ): Promise<DiagnosticsResult> {
    assertOpen()
    assertDocument(document, 'document')
    const only = validateAggregate(aggregate)
    const targets = entriesOf('diagnostics', document, only)
    const deadline = { signal: aggregate?.signal, timeoutMs: aggregate?.timeoutMs }
    const results = await Promise.allSettled(
      targets.map(async ({ slot, entry }) => {
        const input = entry.input === 'text' ? document.text : JSON.stringify(document)
        const output = await call(slot.manifest.id, entry.export, input, deadline)
        try {
          return parseDiagnostics(
            decodeJson(output, slot.manifest.id, entry.export),
            slot.manifest.id,
          )
        } catch (error) {
          throw asPluginError(error, slot.manifest.id, entry.export)
        }
      }),
    )
    return collect(results, targets, (diagnostics: PluginDiagnostic[][]) => ({
      diagnostics: diagnostics.flat(),
    }))
  }

  async function runCodeActions(
    document: TextDocument,
    range: Range,
    aggregate?: AggregateOptions & { diagnostics?: PluginDiagnostic[] },
  ): Promise<CodeActionsResult> {
    assertOpen()
    assertDocument(document, 'document')
    const wanted = parseRange(range, 'range')
    const only = validateAggregate(aggregate)
    const diagnostics = aggregate?.diagnostics ?? []
    if (!Array.isArray(diagnostics)) throw invalidInput('options.diagnostics', 'must be an array')
    const targets = entriesOf('code-action', document, only)
    const deadline = { signal: aggregate?.signal, timeoutMs: aggregate?.timeoutMs }
    const results = await Promise.allSettled(
      targets.map(async ({ slot, entry }) => {
        const own = diagnostics.filter((d) => d.source === slot.manifest.id)
        const input =
          entry.input === 'text'
            ? document.text
            : JSON.stringify({ document, range: wanted, diagnostics: own })
        const output = await call(slot.manifest.id, entry.export, input, deadline)
        try {
          return parseCodeActions(
            decodeJson(output, slot.manifest.id, entry.export),
            slot.manifest.id,
          )
        } catch (error) {
          throw asPluginError(error, slot.manifest.id, entry.export)
        }
      }),
    )
    return collect(results, targets, (lists: PluginCodeAction[][]) => ({
      actions: lists.flat().filter((action) => rangesIntersect(action.range, wanted)),
    }))
  }

  function collect<T, R extends object>(
    results: PromiseSettledResult<T>[],
    targets: Array<{ slot: Slot }>,
    build: (values: T[]) => R,
  ): R & { failures: PluginFailure[] } {
    const values: T[] = []
    const failures: PluginFailure[] = []
    results.forEach((result, index) => {
      if (result.status === 'fulfilled') values.push(result.value)
      else
        failures.push({
          pluginId: targets[index]!.slot.manifest.id,
          error: toAideError(result.reason, 'E_PLUGIN'),
        })
    })
    return { ...build(values), failures }
  }

  async function unload(pluginId: string): Promise<void> {
    const slot = getSlot(pluginId, 'pluginId')
    slots.delete(pluginId)
    await closeSlot(slot)
    emit('plugin-unload', { pluginId, version: slot.manifest.version })
  }

  async function syncWithRegistry(
    registry: PluginRegistry,
    syncOptions: DeadlineOptions = {},
  ): Promise<PluginFailure[]> {
    assertOpen()
    assertObject(registry, 'registry')
    validateDeadlineOptions(syncOptions, 'options')
    const installed = await registry.list()
    const failures: PluginFailure[] = []
    const wanted = new Map(installed.filter((p) => p.enabled).map((p) => [p.manifest.id, p]))
    for (const [id, slot] of [...slots]) {
      const target = wanted.get(id)
      if (!target || target.manifest.version !== slot.manifest.version) await unload(id)
    }
    for (const [id, plugin] of wanted) {
      if (slots.has(id)) continue
      try {
        await load(plugin.dir, syncOptions)
      } catch (error) {
        failures.push({ pluginId: id, error: toAideError(error, 'E_PLUGIN') })
      }
    }
    return failures
  }

  function stats(): PluginHostStats {
    const plugins: Record<string, PluginStats> = {}
    for (const [id, slot] of slots) {
      plugins[id] = {
        id,
        version: slot.manifest.version,
        ...slot.counts,
        queued: slot.waiters.length,
        p50Ms: slot.percentile(50),
        p99Ms: slot.percentile(99),
        httpRequests: slot.httpCount('requests'),
        httpDenied: slot.httpCount('denied'),
        httpFailures: slot.httpCount('failed'),
        httpBytesReceived: slot.httpCount('bytesReceived'),
      }
    }
    return { loaded: slots.size, plugins }
  }

  const host: PluginHost = {
    load,
    unload,
    syncWithRegistry,
    setEnabled(pluginId, enabled) {
      const slot = getSlot(pluginId, 'pluginId')
      if (typeof enabled !== 'boolean') throw invalidInput('enabled', 'must be a boolean')
      slot.enabled = enabled
    },
    list: () => [...slots.values()].map(info),
    call,
    runDiagnostics,
    runCodeActions,
    stats,
    dispose() {
      disposed ??= (async () => {
        const all = [...slots.values()]
        slots.clear()
        await Promise.all(all.map(closeSlot))
        await httpBridge.close()
      })()
      return disposed
    },
    [Symbol.asyncDispose]() {
      return host.dispose()
    },
  }
  return host
}

function outcomeOf(error: unknown): 'error' | 'timeout' | 'cancelled' {
  if (isAideError(error) && error.code === 'E_TIMEOUT') return 'timeout'
  if (isAideError(error) && error.code === 'E_CANCELLED') return 'cancelled'
  return 'error'
}

function isAideError(value: unknown): value is AideError {
  return AideError.isInstance(value)
}

const EMPTY = new Uint8Array(0)

/**
 * An in-thread Extism plugin as a {@link PluginInstance}.
 *
 * Extism's JS SDK keeps every block a call allocated (input, output, host
 * allocations) until `reset()`, and an instance stops working for good once
 * about 16,000 blocks have accumulated: after ~16k calls without a reset,
 * every call fails with "cannot assign to this block". So each finished call
 * releases its blocks (variables are kept by the host functions, not in
 * Extism's blocks; see guest-imports.ts).
 */
function inThreadInstance(
  plugin: import('@extism/extism').Plugin,
  beginCall: (inputBytes: number, timeoutMs: number) => void,
  httpPort: workerThreads.MessagePort | undefined,
): PluginInstance {
  return {
    call(name, input, timeoutMs) {
      beginCall(input.byteLength, timeoutMs)
      return plugin.call(name, input).then(
        (output) => {
          const bytes = output ? output.bytes() : EMPTY
          void plugin.reset()
          return bytes
        },
        (error: unknown) => {
          void plugin.reset()
          throw error
        },
      )
    },
    async close() {
      httpPort?.close()
      await plugin.close()
    },
  }
}
