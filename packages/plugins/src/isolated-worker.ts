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
import { createGuestImports, type GuestFailure, type GuestSettings } from './guest-imports.js'

/** What the worker needs to create the plugin. */
export interface IsolatedPluginOptions {
  /** The compiled (memory-capped) module; structured-cloned into the worker. */
  module: object
  /** Whether the module needs WASI. */
  useWasi: boolean
  /** Config values granted to the plugin. */
  config: Record<string, string>
  /** Settings of the host functions (memory budget, variables, workspace reads, HTTP bridge port). */
  guest: GuestSettings
  /** Receives the plugin's log lines (only when logging is granted). */
  onLog: ((level: string, message: string) => void) | undefined
}

/** The calls the host makes on a plugin instance, in either isolation mode. */
export interface PluginInstance {
  /**
   * Runs an export with `input` and releases the call's Extism blocks
   * afterwards. `timeoutMs` is the call's time budget for blocking host
   * functions (HTTP). Resolves to the output (empty when none).
   */
  call(name: string, input: Uint8Array, timeoutMs: number): Promise<Uint8Array>
  close(): Promise<void>
}

// Plain CommonJS run with `eval: true`, so it needs no file and no loader.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const extism = require(workerData.extismPath)
// Transpilers that keep function names (tsx, esbuild's keepNames) call a
// \`__name\` helper inside serialised functions; a no-op stands in for it.
const __name = (target) => target
const createGuestImports = ${createGuestImports.toString()}
const log = (level) => (...args) => {
  if (workerData.log) parentPort.postMessage({ type: 'log', level, message: args.map(String).join(' ') })
}
const logger = { trace: log('trace'), debug: log('debug'), info: log('info'), log: log('info'), warn: log('warn'), error: log('error') }
const guest = createGuestImports(
  { fs: require('node:fs'), path: require('node:path'), workerThreads: require('node:worker_threads') },
  workerData.guest,
)
const EMPTY = new Uint8Array(0)
extism.createPlugin({ wasm: [{ module: workerData.module }] }, {
  useWasi: workerData.useWasi,
  runInWorker: false,
  config: workerData.config,
  allowedHosts: [],
  allowedPaths: {},
  logger,
  functions: guest.functions,
}).then((plugin) => {
  parentPort.on('message', ({ id, name, input, timeoutMs }) => {
    guest.beginCall(input.byteLength, timeoutMs)
    // reset() after each call releases the call's blocks: an Extism instance
    // fails for good after ~16k calls without it.
    plugin.call(name, input).then(
      (output) => {
        const bytes = output ? output.bytes() : EMPTY
        plugin.reset()
        parentPort.postMessage({ id, ok: true, output: bytes })
      },
      (error) => {
        plugin.reset()
        parentPort.postMessage({
          id,
          ok: false,
          message: error && error.message ? error.message : String(error),
          code: error && typeof error.aideCode === 'string' ? error.aideCode : undefined,
          details: error && error.aideDetails,
        })
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
  resolve: (value: Uint8Array) => void
  reject: (error: unknown) => void
}

/** Starts a worker running one plugin instance; resolves once the plugin is instantiated. */
export function startIsolatedPlugin(options: IsolatedPluginOptions): Promise<PluginInstance> {
  const httpPort = options.guest.http?.port
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
      guest: options.guest,
      log: options.onLog !== undefined,
    },
    transferList: httpPort ? [httpPort] : [],
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
      call(name, input, timeoutMs) {
        if (failure) return Promise.reject(failure)
        if (closed)
          return Promise.reject(
            new AideError('E_DISPOSED', 'plugins: the plugin worker was closed'),
          )
        const id = nextId++
        return new Promise((resolveCall, rejectCall) => {
          pending.set(id, { resolve: resolveCall, reject: rejectCall })
          worker.postMessage({ id, name, input, timeoutMs })
        })
      },
      async close() {
        if (closed) return
        closed = true
        failAll(new AideError('E_DISPOSED', 'plugins: the plugin worker was closed'))
        await worker.terminate()
      },
    }
    worker.on('message', (message: WorkerMessage) => {
      if (message.id !== undefined) {
        const call = pending.get(message.id)
        if (!call) return
        pending.delete(message.id)
        if (message.ok) call.resolve(message.output)
        else call.reject(guestFailure(message.message, message.code, message.details))
      } else if (message.type === 'ready') {
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
        options.onLog?.(message.level, message.message)
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

type WorkerMessage =
  | { id: number; ok: true; output: Uint8Array }
  | { id: number; ok: false; message: string; code?: string; details?: Record<string, unknown> }
  | { id?: undefined; type: 'ready' }
  | { id?: undefined; type: 'fatal'; message: string }
  | { id?: undefined; type: 'log'; level: string; message: string }

/** The worker's report of a failed call, with the code a host function gave it, if any. */
function guestFailure(message: string, code?: string, details?: Record<string, unknown>): Error {
  const error = new Error(message)
  return code
    ? Object.assign(error, { aideCode: code, aideDetails: details } as GuestFailure)
    : error
}
