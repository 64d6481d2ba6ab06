/**
 * A real HTTP server on 127.0.0.1 for the http capability tests. It runs in its
 * own worker thread: an in-thread plugin blocks the test's thread while its
 * request is out, so a server there could never answer.
 */
import { Worker } from 'node:worker_threads'

const SERVER_SOURCE = `
const { parentPort } = require('node:worker_threads')
const http = require('node:http')
let connections = 0
const paths = []
const server = http.createServer((request, response) => {
  const url = new URL(request.url, 'http://127.0.0.1')
  paths.push(request.method + ' ' + url.pathname)
  const chunks = []
  request.on('data', (chunk) => chunks.push(chunk))
  request.on('end', () => {
    const body = Buffer.concat(chunks).toString()
    if (url.pathname === '/hello') {
      response.end('hello from the server')
    } else if (url.pathname === '/missing') {
      response.statusCode = 404
      response.end('no such thing')
    } else if (url.pathname === '/echo') {
      response.end(request.method + ' ' + (request.headers['x-test'] || '-') + ' ' + body)
    } else if (url.pathname === '/hang') {
      // never answers
    } else if (url.pathname === '/big') {
      response.setHeader('content-length', String(256 * 1024))
      response.end(Buffer.alloc(256 * 1024, 120))
    } else if (url.pathname === '/big-chunked') {
      for (let i = 0; i < 4; i++) response.write(Buffer.alloc(64 * 1024, 120))
      response.end()
    } else if (url.pathname === '/redirect') {
      response.statusCode = 302
      response.setHeader('location', url.searchParams.get('to'))
      response.end()
    } else {
      response.statusCode = 500
      response.end('unknown path')
    }
  })
})
server.on('connection', () => { connections++ })
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ type: 'listening', port: server.address().port }))
parentPort.on('message', (message) => {
  if (message === 'stats') parentPort.postMessage({ type: 'stats', connections, paths: [...paths] })
})
`

/** A running test server. */
export interface TestHttpServer {
  /** Its port on 127.0.0.1. */
  port: number
  /** Connections accepted and requests seen (`METHOD /path`) so far. */
  stats(): Promise<{ connections: number; paths: string[] }>
  /** Stops the server's thread. */
  close(): Promise<void>
}

/** Starts the server in a worker thread. */
export async function startHttpServer(): Promise<TestHttpServer> {
  const worker = new Worker(SERVER_SOURCE, { eval: true, execArgv: [] })
  const next = (type: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const onMessage = (message: Record<string, unknown>) => {
        if (message.type !== type) return
        worker.off('message', onMessage)
        worker.off('error', reject)
        resolve(message)
      }
      worker.on('message', onMessage)
      worker.once('error', reject)
    })
  const { port } = await next('listening')
  return {
    port: port as number,
    async stats() {
      const reply = next('stats')
      worker.postMessage('stats')
      const { connections, paths } = await reply
      return { connections: connections as number, paths: paths as string[] }
    },
    async close() {
      await worker.terminate()
    },
  }
}
