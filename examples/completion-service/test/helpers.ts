/**
 * Test fixtures: a log sink, an OpenAI-compatible provider on loopback that
 * can hold its answers, and a Prometheus text-format parser.
 */
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { DEFAULT_CORPUS_DIR, type ServiceConfig } from '../src/config.js'

/** Collects the service's JSON log lines. */
export class LogSink extends Writable {
  readonly lines: string[] = []
  override _write(chunk: Buffer, _encoding: string, callback: () => void): void {
    this.lines.push(...chunk.toString().split('\n').filter(Boolean))
    callback()
  }
  text(): string {
    return this.lines.join('\n')
  }
  parsed(): Array<Record<string, unknown>> {
    return this.lines.map((line) => JSON.parse(line) as Record<string, unknown>)
  }
}

export function testConfig(overrides: Partial<ServiceConfig> = {}): ServiceConfig {
  return {
    host: '127.0.0.1',
    port: 0,
    apiKeys: [{ key: 'sk-tenant-a-0123456789', tenant: 'tenant-a' }],
    rateLimit: { requestsPerSecond: 1000, burst: 1000 },
    providers: [],
    corpusDir: DEFAULT_CORPUS_DIR,
    cacheTtlMs: 60_000,
    requestTimeoutMs: 20_000,
    logLevel: 'info',
    ...overrides,
  }
}

/** An OpenAI-compatible provider on loopback. With `hold`, answers wait for `release()`. */
export interface FakeProvider {
  url: string
  answer: string
  received: Array<{ authorization: string | undefined; body: Record<string, unknown> }>
  /** Resolves when the next request arrives (or at once if `count` already arrived). */
  requestArrived(count: number): Promise<void>
  release(): void
  close(): Promise<void>
}

export async function startFakeProvider(options: { hold?: boolean } = {}): Promise<FakeProvider> {
  const answer = 'answer from the fake provider'
  const received: FakeProvider['received'] = []
  const held: Array<() => void> = []
  const arrivals: Array<{ count: number; resolve: () => void }> = []
  let released = !options.hold
  const server = createServer(async (request: IncomingMessage, response: ServerResponse) => {
    let raw = ''
    for await (const chunk of request) raw += chunk
    received.push({
      authorization: request.headers.authorization,
      body: JSON.parse(raw) as Record<string, unknown>,
    })
    for (const arrival of arrivals.filter((a) => received.length >= a.count)) {
      arrivals.splice(arrivals.indexOf(arrival), 1)
      arrival.resolve()
    }
    const send = () => {
      const text = JSON.stringify({
        id: 'cmpl-1',
        object: 'chat.completion',
        choices: [
          { index: 0, message: { role: 'assistant', content: answer }, finish_reason: 'stop' },
        ],
        usage: { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 },
      })
      response.writeHead(200, { 'content-type': 'application/json' })
      response.end(text)
    }
    if (released) send()
    else held.push(send)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}/v1`,
    answer,
    received,
    requestArrived: (count) =>
      received.length >= count
        ? Promise.resolve()
        : new Promise<void>((resolve) => arrivals.push({ count, resolve })),
    release: () => {
      released = true
      for (const send of held.splice(0)) send()
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** One sample of a Prometheus text exposition. */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? (-?(?:\d+(?:\.\d+)?(?:e[+-]?\d+)?|\+Inf|-Inf|NaN))$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

/** Parses the Prometheus text format (0.0.4), throwing on any line that does not fit it. */
export function parsePrometheus(text: string): {
  types: Map<string, string>
  samples: Sample[]
} {
  const types = new Map<string, string>()
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '') continue
    if (line.startsWith('# HELP ')) continue
    const type =
      /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line)
    if (type) {
      types.set(type[1]!, type[2]!)
      continue
    }
    const match = SAMPLE.exec(line)
    if (!match) throw new Error(`not a Prometheus sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const label of (match[2] ?? '').matchAll(LABEL)) labels[label[1]!] = label[2]!
    samples.push({ name: match[1]!, labels, value: Number(match[3]) })
  }
  return { types, samples }
}
