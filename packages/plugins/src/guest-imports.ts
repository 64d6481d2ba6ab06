/**
 * The Extism host functions the host adds to, or replaces in, what a plugin
 * imports: the host-side memory budget (`alloc`), variables that survive the
 * per-call reset with a size cap (`var_get`, `var_set`), outbound HTTP through
 * the synchronous bridge (`http_request`, `http_status_code`) and workspace
 * reads (`extism:host/user.aide_read_file`).
 *
 * The same code runs in both isolation modes: in the host's thread for
 * `in-thread` plugins, and inside the plugin's worker for `worker` plugins,
 * where it arrives as source text (`createGuestImports.toString()`). So the
 * function must stay self-contained: nothing from outside its body except the
 * `deps` it is given and JavaScript/Node globals, and only type-only imports
 * in this file.
 */
import type * as Fs from 'node:fs'
import type * as Path from 'node:path'
import type * as WorkerThreads from 'node:worker_threads'

/** The slice of Extism's `CallContext` the host functions use (all public API). */
export interface GuestContext {
  alloc(size: bigint | number): bigint
  read(address: bigint | number): { bytes(): Uint8Array; text(): string } | null
  store(value: string | Uint8Array): bigint
  length(address: bigint): bigint
}

/** Node modules the host functions need; passed in so the code stays self-contained. */
export interface GuestDeps {
  fs: Pick<typeof Fs, 'readFileSync' | 'realpathSync' | 'statSync'>
  path: Pick<typeof Path, 'resolve' | 'relative' | 'isAbsolute' | 'sep'>
  workerThreads: Pick<typeof WorkerThreads, 'receiveMessageOnPort'>
}

/** Structured-cloneable settings of one plugin instance. */
export interface GuestSettings {
  /** Cap on the host-side Extism memory one call may hold (input, output, allocations, stored values). */
  memoryBytes: number
  /** Cap on the total size of the plugin's Extism variables (keys and values). */
  maxVarBytes: number
  /** Workspace reads: the root relative paths resolve against and the absolute paths granted. */
  workspace: { root: string; read: string[] } | undefined
  /** The instance's end of the HTTP bridge, when `http` was granted. */
  http: { port: WorkerThreads.MessagePort; flag: SharedArrayBuffer } | undefined
}

/** What {@link createGuestImports} returns. */
export interface GuestImports {
  /** Extism `functions` option: replacements in `extism:host/env` and the host's user functions. */
  functions: Record<string, Record<string, (context: GuestContext, ...args: never[]) => unknown>>
  /** Starts the accounting of a call: its input size and its time budget. */
  beginCall(inputBytes: number, timeoutMs: number): void
}

/**
 * Errors raised by these functions carry `aideCode` (and `aideDetails`): the
 * host turns them into an `AideError` with that code. They propagate through
 * the plugin's frames and fail the call.
 */
export interface GuestFailure extends Error {
  aideCode: string
  aideDetails?: Record<string, unknown>
}

/** Builds the host functions of one plugin instance. Must stay self-contained (see the module doc). */
export function createGuestImports(deps: GuestDeps, settings: GuestSettings): GuestImports {
  const fail = (code: string, message: string, details?: Record<string, unknown>) =>
    Object.assign(new Error(message), { aideCode: code, aideDetails: details })
  // Blocks that count against the budget of the running call. Extism frees a
  // block by dropping it (its length then reads 0), and releases them all at
  // the reset after the call; `used` counts allocations since the call began
  // and is recounted from the live blocks only when it would pass the cap.
  let used = 0
  let inputBytes = 0
  let deadline = Number.POSITIVE_INFINITY
  let addresses: bigint[] = []
  let sizes: number[] = []

  const reserve = (context: GuestContext, size: number, what: string) => {
    if (used + size <= settings.memoryBytes) {
      used += size
      return
    }
    let live = inputBytes
    const keptAddresses: bigint[] = []
    const keptSizes: number[] = []
    for (let i = 0; i < addresses.length; i++) {
      if (context.length(addresses[i]!) > 0n) {
        live += sizes[i]!
        keptAddresses.push(addresses[i]!)
        keptSizes.push(sizes[i]!)
      }
    }
    addresses = keptAddresses
    sizes = keptSizes
    used = live
    if (used + size > settings.memoryBytes) {
      throw fail(
        'E_LIMIT',
        `${what} of ${size} bytes would take the plugin's host-side memory past limits.memoryBytes (${settings.memoryBytes} bytes, ${used} in use)`,
        { limit: 'memoryBytes', requested: size, inUse: used, memoryBytes: settings.memoryBytes },
      )
    }
    used += size
  }
  const track = (address: bigint, size: number) => {
    addresses.push(address)
    sizes.push(size)
    return address
  }
  // Extism wraps a Uint8Array's whole underlying buffer as the block: give it exact copies only.
  const exact = (bytes: Uint8Array) =>
    bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
      ? bytes
      : new Uint8Array(bytes)
  const storeCounted = (context: GuestContext, bytes: Uint8Array, what: string) => {
    reserve(context, bytes.byteLength, what)
    return track(context.store(exact(bytes)), bytes.byteLength)
  }

  const env: Record<string, (context: GuestContext, ...args: never[]) => unknown> = {}

  env.alloc = (context: GuestContext, size: bigint) => {
    const bytes = Number(size)
    reserve(context, bytes, 'alloc')
    return track(context.alloc(size), bytes)
  }

  // Extism's own variables point at blocks that the per-call reset drops, so
  // they would not survive to the next call; these keep a copy, capped.
  const variables = new Map<string, Uint8Array>()
  let variableBytes = 0
  const keyOf = (context: GuestContext, address: bigint) => {
    const key = context.read(address)
    if (key === null) throw fail('E_PLUGIN', 'var_get/var_set: the key block is invalid')
    return key.text()
  }
  env.var_set = (context: GuestContext, keyAddress: bigint, valueAddress: bigint) => {
    const key = keyOf(context, keyAddress)
    const previous = variables.get(key)
    const previousSize = previous ? key.length + previous.byteLength : 0
    if (valueAddress === 0n) {
      variables.delete(key)
      variableBytes -= previousSize
      return
    }
    const value = context.read(valueAddress)
    if (value === null) throw fail('E_PLUGIN', `var_set("${key}"): the value block is invalid`)
    const bytes = value.bytes().slice()
    const total = variableBytes - previousSize + key.length + bytes.byteLength
    if (total > settings.maxVarBytes) {
      throw fail(
        'E_LIMIT',
        `var_set("${key}") would take the plugin's variables to ${total} bytes, past limits.maxVarBytes (${settings.maxVarBytes})`,
        { limit: 'maxVarBytes', requested: total, maxVarBytes: settings.maxVarBytes },
      )
    }
    variables.set(key, bytes)
    variableBytes = total
  }
  env.var_get = (context: GuestContext, keyAddress: bigint) => {
    const value = variables.get(keyOf(context, keyAddress))
    return value === undefined ? 0n : storeCounted(context, value, 'var_get')
  }

  const http = settings.http
  let lastStatus = 0
  let sequence = 0
  if (http) {
    const flag = new Int32Array(http.flag)
    env.http_request = (context: GuestContext, requestAddress: bigint, bodyAddress: bigint) => {
      const block = context.read(requestAddress)
      if (block === null) throw fail('E_PLUGIN', 'http_request: the request block is invalid')
      let request: { url?: unknown; method?: unknown; headers?: unknown; header?: unknown }
      try {
        request = JSON.parse(block.text())
      } catch {
        throw fail(
          'E_PLUGIN',
          'http_request: the request is not JSON ({ "url": …, "method"?: …, "headers"?: {…} })',
        )
      }
      if (request === null || typeof request !== 'object')
        throw fail('E_PLUGIN', 'http_request: the request must be a JSON object')
      const method = typeof request.method === 'string' ? request.method.toUpperCase() : 'GET'
      const body =
        bodyAddress !== 0n && method !== 'GET' && method !== 'HEAD'
          ? context.read(bodyAddress)?.bytes().slice()
          : undefined
      const remaining = deadline - Date.now()
      if (remaining <= 0)
        throw fail('E_TIMEOUT', 'http_request: the call has no time left for a request')
      const id = ++sequence
      Atomics.store(flag, 0, 0)
      http.port.postMessage({
        id,
        url: request.url,
        method,
        headers: request.headers ?? request.header,
        body,
        timeoutMs: remaining,
      })
      // The bridge posts its answer, then raises the flag: after every wake-up,
      // look at the port again. Answers to earlier, abandoned requests are skipped.
      for (;;) {
        const received = deps.workerThreads.receiveMessageOnPort(http.port)
        if (received) {
          const answer = received.message as {
            id: number
            ok: boolean
            status?: number
            body?: Uint8Array
            code?: string
            message?: string
            details?: Record<string, unknown>
          }
          if (answer.id !== id) continue
          if (!answer.ok)
            throw fail(answer.code ?? 'E_PLUGIN', String(answer.message), answer.details)
          lastStatus = answer.status ?? 0
          return storeCounted(context, answer.body ?? new Uint8Array(0), 'the HTTP response')
        }
        const left = deadline - Date.now()
        if (left <= 0) {
          throw fail(
            'E_TIMEOUT',
            `http_request to ${String(request.url)} did not answer within the call's time limit`,
            { url: String(request.url) },
          )
        }
        Atomics.wait(flag, 0, 0, left)
        Atomics.store(flag, 0, 0)
      }
    }
    env.http_status_code = () => lastStatus
  }

  const functions: GuestImports['functions'] = { 'extism:host/env': env }

  const workspace = settings.workspace
  if (workspace) {
    const { readFileSync, realpathSync, statSync } = deps.fs
    const { resolve, relative, isAbsolute, sep } = deps.path
    const within = (folder: string, path: string) => {
      const rel = relative(folder, path)
      return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel))
    }
    functions['extism:host/user'] = {
      // Returns the file's bytes, or 0 when the path is outside the granted
      // folders (symlinks resolved first) or cannot be read.
      aide_read_file: (context: GuestContext, address: bigint) => {
        const requested = context.read(address)?.text()
        if (requested === undefined) return 0n
        let real: string
        let size: number
        try {
          real = realpathSync(resolve(workspace.root, requested))
          const roots = workspace.read.map((p) => {
            try {
              return realpathSync(p)
            } catch {
              return p
            }
          })
          if (!roots.some((root) => within(root, real))) return 0n
          const info = statSync(real)
          if (!info.isFile()) return 0n
          size = info.size
        } catch {
          return 0n
        }
        // Refuse before reading: a huge file must not be read into the host at all.
        const what = `aide_read_file("${requested}")`
        reserve(context, size, what)
        let bytes: Uint8Array
        try {
          bytes = new Uint8Array(readFileSync(real))
        } catch {
          return 0n
        }
        if (bytes.byteLength > size) reserve(context, bytes.byteLength - size, what)
        return track(context.store(bytes), bytes.byteLength)
      },
    }
  }

  return {
    functions,
    beginCall(bytes: number, timeoutMs: number) {
      inputBytes = bytes
      used = bytes
      addresses = []
      sizes = []
      deadline = Date.now() + timeoutMs
    },
  }
}
