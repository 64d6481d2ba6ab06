/**
 * A real loopback HTTP server that plays an OpenAI-compatible provider and
 * injects faults. The first path segment picks the behaviour:
 * `http://127.0.0.1:PORT/<scenario>/v1/chat/completions`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

export type Scenario =
  | 'ok'
  | 'status-500'
  | 'status-502'
  | 'status-503'
  | 'status-429'
  | 'flaky-429'
  | 'flaky-503'
  | 'status-401'
  | 'status-404'
  | 'status-403'
  | 'status-408'
  | 'status-409'
  | 'context-length'
  | 'stall'
  | 'slow-first-token'
  | 'cut'
  | 'cut-clean'
  | 'malformed-json'
  | 'malformed-sse'
  | 'oversized'
  | 'slow-drip'
  | 'stream-error-event'

export interface ReceivedRequest {
  scenario: string
  authorization: string | undefined
  body: Record<string, unknown>
  /** `performance.now()` when the request arrived. */
  at: number
}

export interface FakeProvider {
  /** Base URL for a scenario, ending in `/v1`. */
  url(scenario: Scenario): string
  /** Requests received, in order. */
  readonly requests: ReceivedRequest[]
  /** Requests received for one scenario. */
  count(scenario: Scenario): number
  /** Text the `ok` scenario answers with. */
  readonly answer: string
  close(): Promise<void>
}

const ANSWER = 'Hello from the fake provider, all good.'
const WORDS = ANSWER.split(/(?<= )/)

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  })
  res.end(text)
}

function completion(model: string, text: string) {
  return {
    id: 'cmpl-1',
    object: 'chat.completion',
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 12, completion_tokens: 9, total_tokens: 21 },
  }
}

function chunk(text: string | undefined, finish: string | null = null, usage?: unknown) {
  return `data: ${JSON.stringify({
    object: 'chat.completion.chunk',
    choices:
      text === undefined && finish === null
        ? []
        : [{ index: 0, delta: text === undefined ? {} : { content: text }, finish_reason: finish }],
    ...(usage ? { usage } : {}),
  })}\n\n`
}

function sseHead(res: ServerResponse): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  })
  res.flushHeaders()
}

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export async function startFakeProvider(): Promise<FakeProvider> {
  const requests: ReceivedRequest[] = []
  const sockets = new Set<Socket>()
  const counts = new Map<string, number>()
  let closed = false

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const scenario = (req.url ?? '/').split('/')[1] ?? ''
    let raw = ''
    for await (const part of req) raw += part
    let body: Record<string, unknown> = {}
    try {
      body = JSON.parse(raw)
    } catch {
      body = {}
    }
    requests.push({
      scenario,
      authorization: req.headers.authorization,
      body,
      at: performance.now(),
    })
    const n = (counts.get(scenario) ?? 0) + 1
    counts.set(scenario, n)
    const stream = body.stream === true
    const model = String(body.model ?? 'fake')
    const ok = async () => {
      if (!stream) return json(res, 200, completion(model, ANSWER))
      sseHead(res)
      for (const word of WORDS) res.write(chunk(word))
      res.write(chunk(undefined, 'stop'))
      res.write(chunk(undefined, null, { prompt_tokens: 12, completion_tokens: 9 }))
      res.end('data: [DONE]\n\n')
    }
    switch (scenario) {
      case 'ok':
        return ok()
      case 'status-500':
      case 'status-502':
      case 'status-503':
        return json(res, Number(scenario.slice(7)), {
          error: { message: 'upstream is down', type: 'server_error' },
        })
      case 'status-429':
        return json(
          res,
          429,
          { error: { message: 'Rate limit reached', type: 'rate_limit' } },
          { 'retry-after': '30' },
        )
      case 'flaky-429':
        if (n === 1)
          return json(
            res,
            429,
            { error: { message: 'Rate limit reached' } },
            { 'retry-after-ms': '300' },
          )
        return ok()
      case 'flaky-503':
        if (n === 1) return json(res, 503, { error: { message: 'warming up' } })
        return ok()
      case 'status-401':
        // Echoes the credential back, as some providers do in part: it must be redacted.
        return json(res, 401, {
          error: {
            message: `Incorrect API key provided: ${req.headers.authorization?.slice(7)}`,
            code: 'invalid_api_key',
          },
        })
      case 'status-404':
        return json(res, 404, { error: { message: `The model ${model} does not exist` } })
      case 'status-403':
        return json(res, 403, { error: { message: 'Project does not have access to this model' } })
      case 'status-408':
        return json(res, 408, { error: { message: 'Request timed out' } })
      case 'status-409':
        return json(res, 409, { error: { message: 'Conflict: the model is being updated' } })
      case 'context-length':
        return json(res, 400, {
          error: {
            message:
              "This model's maximum context length is 16 tokens. However, your messages resulted in 900 tokens.",
            type: 'invalid_request_error',
            code: 'context_length_exceeded',
          },
        })
      case 'stall':
        // Accept, send headers, then never send a body.
        if (stream) sseHead(res)
        else {
          res.writeHead(200, { 'content-type': 'application/json' })
          res.flushHeaders()
        }
        return
      case 'slow-first-token':
        sseHead(res)
        await wait(5_000)
        if (!closed && !res.destroyed) await ok()
        return
      case 'cut':
        sseHead(res)
        for (const word of WORDS.slice(0, 3)) res.write(chunk(word))
        await wait(20)
        res.socket?.destroy()
        return
      case 'cut-clean':
        sseHead(res)
        for (const word of WORDS.slice(0, 3)) res.write(chunk(word))
        res.end()
        return
      case 'malformed-json':
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end('{"choices": [{"message": {"content": "Hel')
        return
      case 'malformed-sse':
        sseHead(res)
        res.end('data: {"choices": [{"delta": {"content": "broken\n\ndata: [DONE]\n\n')
        return
      case 'oversized': {
        const text = 'x'.repeat(256 * 1024)
        if (!stream) return json(res, 200, completion(model, text))
        sseHead(res)
        for (let i = 0; i < 64 && !res.destroyed; i++) res.write(chunk(text.slice(0, 8 * 1024)))
        res.end('data: [DONE]\n\n')
        return
      }
      case 'slow-drip':
        if (!stream) {
          await wait(100)
          return ok()
        }
        sseHead(res)
        for (const word of WORDS) {
          if (closed || res.destroyed) return
          res.write(chunk(word))
          await wait(60)
        }
        res.write(chunk(undefined, 'stop'))
        res.end('data: [DONE]\n\n')
        return
      case 'stream-error-event':
        sseHead(res)
        res.write(chunk(WORDS[0]))
        res.end(`data: ${JSON.stringify({ error: { message: 'model overloaded' } })}\n\n`)
        return
      default:
        return json(res, 404, { error: { message: `unknown scenario ${scenario}` } })
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy())
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: (scenario) => `http://127.0.0.1:${port}/${scenario}/v1`,
    requests,
    count: (scenario) => counts.get(scenario) ?? 0,
    answer: ANSWER,
    async close() {
      closed = true
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** A loopback URL where nothing listens (connection refused). */
export async function refusedUrl(): Promise<string> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return `http://127.0.0.1:${port}/v1`
}
