/**
 * One plugin instance in a worker thread that the host owns.
 *
 * Extism 1.0's own `runInWorker` starts its worker from a `data:` URL with the
 * parent's exec arguments; under `--enable-source-maps` (or a loader such as
 * tsx) Node 20 fails to start that worker and the failure is raised as an
 * uncaught error that ends the host process. So the host starts its own worker
 * with clean exec arguments, runs Extism in-thread inside it, and listens to
 * the worker's `error` and `exit` events: a crash fails the pending call, never
 * the host. `close()` terminates the worker at once (a runaway call included).
 */
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { AideError } from '@aide/core'

/** What the worker needs to create the plugin. */
export interface IsolatedPluginOptions {
  /** The compiled (memory-capped) module; structured-cloned into the worker. */
  module: object
  /** Whether the module needs WASI. */
  useWasi: boolean
  /** Config values granted to the plugin. */
  config: Record<string, string>
  /** Absolute paths readable through `aide_read_file`, and the workspace root paths are relative to. */
  workspace: { root: string; read: string[] } | undefined
  /** Whether the module imports `aide_read_file`. */
  needsReadFile: boolean
  /** Receives the plugin's log lines (only when logging is granted). */
  onLog: ((level: string, message: string) => void) | undefined
}

/** The calls the host makes on a plugin instance (the subset of Extism's `Plugin` it uses). */
export interface PluginInstance {
  call(name: string, input: Uint8Array): Promise<{ bytes(): Uint8Array } | null>
  close(): Promise<void>
  /** Releases the memory blocks of finished calls (in-thread Extism plugins; workers reset themselves). */
  reset?(): Promise<boolean>
}

// Plain CommonJS run with `eval: true`, so it needs no file and no loader.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const { readFileSync, realpathSync } = require('node:fs')
const { resolve, relative, isAbsolute, sep } = require('node:path')
const extism = require(workerData.extismPath)
const within = (folder, path) => {
  const rel = relative(folder, path)
  return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel))
}
const log = (level) => (...args) => {
  if (workerData.log) parentPort.postMessage({ type: 'log', level, message: args.map(String).join(' ') })
}
const logger = { trace: log('trace'), debug: log('debug'), info: log('info'), log: log('info'), warn: log('warn'), error: log('error') }
const workspace = workerData.workspace
const readFile = (context, offset) => {
  const requested = context.read(offset)?.text()
  if (!workspace || requested === undefined) return 0n
  try {
    const real = realpathSync(resolve(workspace.root, requested))
    const roots = workspace.read.map((p) => { try { return realpathSync(p) } catch { return p } })
    if (!roots.some((root) => within(root, real))) return 0n
    return context.store(new Uint8Array(readFileSync(real)))
  } catch {
    return 0n
  }
}
extism.createPlugin({ wasm: [{ module: workerData.module }] }, {
  useWasi: workerData.useWasi,
  runInWorker: false,
  config: workerData.config,
  allowedHosts: [],
  allowedPaths: {},
  logger,
  functions: workerData.needsReadFile ? { 'extism:host/user': { aide_read_file: readFile } } : undefined,
}).then((plugin) => {
  parentPort.on('message', ({ id, name, input }) => {
    // reset() after each call releases the call's blocks (see releaseCallMemory in host.ts).
    plugin.call(name, input).then(
      (output) => {
        const bytes = output ? output.bytes() : null
        plugin.reset().catch(() => undefined)
        parentPort.postMessage({ type: 'result', id, ok: true, output: bytes })
      },
      (error) => {
        plugin.reset().catch(() => undefined)
        parentPort.postMessage({ type: 'result', id, ok: false, message: error && error.message ? error.message : String(error) })
      },
    )
  })
  parentPort.postMessage({ type: 'ready' })
}, (error) => {
  parentPort.postMessage({ type: 'fatal', message: error && error.message ? error.message : String(error) })
})
`

let extismPath: string | undefined

function resolveExtism(): string {
  if (extismPath) return extismPath
  const base = typeof __filename === 'string' ? __filename : fileURLToPath(import.meta.url)
  try {
    extismPath = createRequire(base).resolve('@extism/extism')
  } catch (error) {
    throw new AideError(
      'E_UNAVAILABLE',
      'plugins: cannot resolve `@extism/extism`. Install it (`npm i @extism/extism@^1`) to run plugins with @aide/plugins',
      { cause: error },
    )
  }
  return extismPath
}

interface Pending {
  resolve: (value: { bytes(): Uint8Array } | null) => void
  reject: (error: unknown) => void
}

/** Starts a worker running one plugin instance; resolves once the plugin is instantiated. */
export function startIsolatedPlugin(options: IsolatedPluginOptions): Promise<PluginInstance> {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    execArgv: [],
    env: {},
    stdout: true,
    stderr: true,
    workerData: {
      extismPath: resolveExtism(),
      module: options.module,
      useWasi: options.useWasi,
      config: options.config,
      workspace: options.workspace,
      needsReadFile: options.needsReadFile,
      log: options.onLog !== undefined,
    },
  })
  worker.unref()
  // Drain the worker's stdio so a chatty plugin cannot block it.
  worker.stdout.resume()
  worker.stderr.resume()
  const pending = new Map<number, Pending>()
  let nextId = 1
  let closed = false
  let failure: AideError | undefined

  const failAll = (error: AideError) => {
    failure ??= error
    for (const call of pending.values()) call.reject(error)
    pending.clear()
  }

  return new Promise<PluginInstance>((resolveStart, rejectStart) => {
    const instance: PluginInstance = {
      call(name, input) {
        if (failure) return Promise.reject(failure)
        if (closed)
          return Promise.reject(
            new AideError('E_DISPOSED', 'plugins: the plugin worker was closed'),
          )
        const id = nextId++
        return new Promise((resolveCall, rejectCall) => {
          pending.set(id, { resolve: resolveCall, reject: rejectCall })
          worker.postMessage({ id, name, input })
        })
      },
      async close() {
        if (closed) return
        closed = true
        failAll(new AideError('E_DISPOSED', 'plugins: the plugin worker was closed'))
        await worker.terminate()
      },
    }
    worker.on('message', (message: { type: string; [key: string]: unknown }) => {
      if (message.type === 'ready') {
        resolveStart(instance)
      } else if (message.type === 'fatal') {
        const error = new AideError(
          'E_PLUGIN',
          `plugins: the plugin failed to start: ${message.message}`,
        )
        failAll(error)
        rejectStart(error)
        void worker.terminate()
      } else if (message.type === 'log') {
        options.onLog?.(String(message.level), String(message.message))
      } else if (message.type === 'result') {
        const call = pending.get(message.id as number)
        if (!call) return
        pending.delete(message.id as number)
        if (message.ok) {
          const bytes = message.output as Uint8Array | null
          call.resolve(bytes ? { bytes: () => bytes } : null)
        } else {
          call.reject(new Error(String(message.message)))
        }
      }
    })
    worker.on('error', (error) => {
      const wrapped = new AideError(
        'E_PLUGIN',
        `plugins: the plugin worker crashed: ${error.message}`,
        { cause: error },
      )
      failAll(wrapped)
      rejectStart(wrapped)
    })
    worker.on('exit', (code) => {
      if (closed) return
      const error = new AideError(
        'E_PLUGIN',
        `plugins: the plugin worker exited unexpectedly (code ${code})`,
      )
      failAll(error)
      rejectStart(error)
    })
  })
}
