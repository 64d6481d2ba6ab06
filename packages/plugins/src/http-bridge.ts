/**
 * Outbound HTTP for plugins. Extism host calls are synchronous for the guest,
 * and `fetch` is not, so the request is carried out by a thread that is free
 * to wait on the network: one small "bridge" worker per host. A plugin
 * instance (in the host's thread or in its own worker) posts the request on
 * its own MessagePort and blocks in `Atomics.wait`; the bridge checks the URL
 * against the hosts granted to that plugin, fetches with the call's remaining
 * time and a response-size cap, posts the answer and raises the flag; the
 * instance takes the answer off its port with `receiveMessageOnPort`
 * (see `http_request` in guest-imports.ts).
 *
 * The allowlist lives here, in host code the plugin cannot reach: a request
 * to a host outside it, or a redirect to one, is refused before any
 * connection is made.
 */
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads'

/** Counter slots of a plugin's HTTP statistics (a shared BigInt64Array). */
export const HTTP_COUNTERS = { requests: 0, denied: 1, failed: 2, bytesReceived: 3 } as const

/** What the bridge needs to serve one plugin instance. */
export interface HttpGrant {
  /** Granted host patterns: `host`, `*.domain` (any subdomain) or `*` (any host). */
  hosts: string[]
  /** Largest response body accepted, in bytes. */
  maxResponseBytes: number
  /** Shared statistics of the plugin (see {@link HTTP_COUNTERS}); updated by the bridge. */
  counters: SharedArrayBuffer
}

interface ConnectMessage extends HttpGrant {
  type: 'connect'
  port: MessagePort
  flag: SharedArrayBuffer
}

interface HttpRequestMessage {
  id: number
  url: unknown
  method: string
  headers: unknown
  body: Uint8Array | undefined
  timeoutMs: number
}

/**
 * The bridge worker's program. Serialised with `toString()` into the worker,
 * so it must stay self-contained, like `createGuestImports`.
 */
function serveHttp(parentPort: MessagePort): void {
  const REDIRECTS = new Set([301, 302, 303, 307, 308])
  const MAX_REDIRECTS = 5
  const fail = (code: string, message: string, details?: Record<string, unknown>) =>
    Object.assign(new Error(message), { aideCode: code, aideDetails: details })
  const matches = (patterns: string[], hostname: string) => {
    const host = hostname.toLowerCase().replace(/\.$/, '')
    return patterns.some(
      (pattern) =>
        pattern === '*' ||
        pattern === host ||
        (pattern.startsWith('*.') && host.endsWith(pattern.slice(1))),
    )
  }

  async function perform(
    request: HttpRequestMessage,
    grant: ConnectMessage,
    signal: AbortSignal,
    counters: BigInt64Array,
  ): Promise<{ status: number; body: Uint8Array }> {
    if (typeof request.url !== 'string')
      throw fail('E_PLUGIN', 'http_request: the request has no "url" string')
    let url: URL
    try {
      url = new URL(request.url)
    } catch {
      throw fail('E_PLUGIN', `http_request: "${request.url}" is not a valid URL`)
    }
    let method = request.method
    if (!/^[A-Z]{1,16}$/.test(method))
      throw fail('E_PLUGIN', `http_request: "${method}" is not an HTTP method`)
    const headers: Record<string, string> = {}
    if (request.headers !== undefined && request.headers !== null) {
      if (typeof request.headers !== 'object' || Array.isArray(request.headers))
        throw fail('E_PLUGIN', 'http_request: "headers" must be an object of strings')
      for (const [name, value] of Object.entries(request.headers)) {
        if (typeof value !== 'string')
          throw fail('E_PLUGIN', `http_request: header "${name}" must be a string`)
        headers[name] = value
      }
    }
    let body = request.body
    for (let hop = 0; ; hop++) {
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        Atomics.add(counters, 1, 1n)
        throw fail(
          'E_PERMISSION',
          `http_request: only http and https URLs, not "${url.protocol}"`,
          {
            url: url.href,
          },
        )
      }
      if (!matches(grant.hosts, url.hostname)) {
        Atomics.add(counters, 1, 1n)
        throw fail(
          'E_PERMISSION',
          `http_request to ${url.origin} refused: "${url.hostname}" is not among the hosts granted to the plugin (${grant.hosts.join(', ') || 'none'}); declare it under capabilities.http and allow it in the host's capabilities.http policy`,
          { url: url.href, host: url.hostname, capability: 'http' },
        )
      }
      let response: Response
      try {
        response = await fetch(url, {
          method,
          headers,
          body: body as RequestInit['body'],
          redirect: 'manual',
          signal,
        })
      } catch (error) {
        if (signal.aborted) throw signal.reason
        const cause = (error as { cause?: { message?: string } }).cause
        throw fail(
          'E_UNAVAILABLE',
          `http_request to ${url.origin} failed: ${cause?.message ?? (error as Error).message}`,
          { url: url.href },
        )
      }
      const location = response.headers.get('location')
      if (REDIRECTS.has(response.status) && location !== null && hop < MAX_REDIRECTS) {
        await response.body?.cancel()
        url = new URL(location, url)
        if (response.status === 303 || (response.status <= 302 && method === 'POST')) {
          method = 'GET'
          body = undefined
        }
        continue
      }
      const declared = Number(response.headers.get('content-length') ?? '0')
      const tooLarge = (size: number) =>
        fail(
          'E_LIMIT',
          `http_request to ${url.origin}: the response (${size} bytes or more) is larger than limits.maxHttpResponseBytes (${grant.maxResponseBytes})`,
          {
            url: url.href,
            limit: 'maxHttpResponseBytes',
            maxHttpResponseBytes: grant.maxResponseBytes,
          },
        )
      if (declared > grant.maxResponseBytes) {
        await response.body?.cancel()
        throw tooLarge(declared)
      }
      const chunks: Uint8Array[] = []
      let total = 0
      if (response.body) {
        const reader = response.body.getReader()
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          total += value.byteLength
          if (total > grant.maxResponseBytes) {
            await reader.cancel()
            throw tooLarge(total)
          }
          chunks.push(value)
        }
      }
      const bytes = new Uint8Array(total)
      let offset = 0
      for (const chunk of chunks) {
        bytes.set(chunk, offset)
        offset += chunk.byteLength
      }
      return { status: response.status, body: bytes }
    }
  }

  parentPort.on('message', (grant: ConnectMessage) => {
    if (grant.type !== 'connect') return
    const flag = new Int32Array(grant.flag)
    const counters = new BigInt64Array(grant.counters)
    const running = new Set<AbortController>()
    const answer = (message: Record<string, unknown>, transfer: ArrayBuffer[] = []) => {
      grant.port.postMessage(message, transfer)
      Atomics.store(flag, 0, 1)
      Atomics.notify(flag, 0)
    }
    grant.port.on('message', (request: HttpRequestMessage) => {
      Atomics.add(counters, 0, 1n)
      const controller = new AbortController()
      running.add(controller)
      const timer = setTimeout(
        () =>
          controller.abort(
            fail(
              'E_TIMEOUT',
              `http_request to ${String(request.url)} did not answer within the call's time limit`,
              { url: String(request.url) },
            ),
          ),
        Math.max(1, request.timeoutMs),
      )
      perform(request, grant, controller.signal, counters).then(
        ({ status, body }) => {
          clearTimeout(timer)
          running.delete(controller)
          Atomics.add(counters, 3, BigInt(body.byteLength))
          answer({ id: request.id, ok: true, status, body }, [body.buffer as ArrayBuffer])
        },
        (error: { aideCode?: string; aideDetails?: unknown; message?: string }) => {
          clearTimeout(timer)
          running.delete(controller)
          if (error?.aideCode !== 'E_PERMISSION') Atomics.add(counters, 2, 1n)
          answer({
            id: request.id,
            ok: false,
            code: error?.aideCode ?? 'E_PLUGIN',
            message: error?.message ?? String(error),
            details: error?.aideDetails,
          })
        },
      )
    })
    // The instance is gone (worker killed, plugin unloaded): stop its requests.
    grant.port.on('close', () => {
      for (const controller of running) controller.abort()
    })
  })
}

// `__name`: see WORKER_SOURCE in isolated-worker.ts.
const BRIDGE_SOURCE = `const __name = (target) => target
;(${serveHttp.toString()})(require('node:worker_threads').parentPort)`

/** The host's HTTP bridge: one worker, started on first use. */
export class HttpBridge {
  #worker: Worker | undefined

  /**
   * Connects one plugin instance: returns the instance's port and wake-up
   * flag (pass both to `createGuestImports`, transferring the port into a
   * plugin worker).
   */
  connect(grant: HttpGrant): { port: MessagePort; flag: SharedArrayBuffer } {
    const worker = this.#start()
    const { port1, port2 } = new MessageChannel()
    const flag = new SharedArrayBuffer(4)
    const message: ConnectMessage = { type: 'connect', port: port1, flag, ...grant }
    worker.postMessage(message, [port1])
    return { port: port2, flag }
  }

  /** Stops the bridge; requests in flight fail in their plugin. Idempotent. */
  async close(): Promise<void> {
    const worker = this.#worker
    this.#worker = undefined
    await worker?.terminate()
  }

  #start(): Worker {
    if (this.#worker) return this.#worker
    const worker = new Worker(BRIDGE_SOURCE, { eval: true, execArgv: [], env: {} })
    worker.unref()
    // A crashed bridge is replaced on the next connect; instances connected to
    // it see their requests run out of time.
    const forget = () => {
      if (this.#worker === worker) this.#worker = undefined
    }
    worker.on('error', forget)
    worker.on('exit', forget)
    this.#worker = worker
    return worker
  }
}
