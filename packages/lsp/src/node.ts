/**
 * `@aide/lsp/node`: connections for Node.js — stdio for a real server
 * process, and an in-memory client/server pair for tests.
 */
import { PassThrough } from 'node:stream'
import { type Connection, createConnection, ProposedFeatures } from 'vscode-languageserver/node'
import {
  createProtocolConnection,
  type ProtocolConnection,
  StreamMessageReader,
  StreamMessageWriter,
} from 'vscode-languageserver-protocol/node'

/**
 * A server connection on the process's stdin/stdout. When the client goes
 * away (stdin ends) the process exits, as LSP servers do.
 */
export function createStdioConnection(): Connection {
  return createConnection(ProposedFeatures.all, process.stdin, process.stdout)
}

/** Both ends of an in-memory LSP session. */
export interface InMemoryLspPair {
  /** Give this to `createLanguageServer({ connection })`. */
  server: Connection
  /** A protocol client: `sendRequest`, `sendNotification`, `onNotification`; call `listen()` first. */
  client: ProtocolConnection
  /** Aborts when the pair is disposed; pass it as `createLanguageServer({ closed })`. */
  closed: AbortSignal
  /** Ends the client side (the server sees its input end). Idempotent. */
  dispose(): void
}

/**
 * An in-memory client/server connection pair over real JSON-RPC framing.
 * Closing it does not exit the process (message readers are passed rather
 * than raw streams, so `vscode-languageserver` does not install its exit hooks).
 */
export function createInMemoryLspPair(): InMemoryLspPair {
  const toServer = new PassThrough()
  const toClient = new PassThrough()
  const server = createConnection(
    ProposedFeatures.all,
    new StreamMessageReader(toServer),
    new StreamMessageWriter(toClient),
  )
  const client = createProtocolConnection(
    new StreamMessageReader(toClient),
    new StreamMessageWriter(toServer),
  )
  const closed = new AbortController()
  let disposed = false
  return {
    server,
    client,
    closed: closed.signal,
    dispose() {
      if (disposed) return
      disposed = true
      closed.abort()
      client.dispose()
      // Only the client side is torn down, as when an editor goes away: the
      // server's reader sees the end of its input. Its output stream is left
      // open so writes already queued by the server complete instead of failing
      // into a disposed connection's logger (vscode-jsonrpc reports write
      // failures through the remote console, which then throws).
      toServer.end()
    },
  }
}

export {
  WorkspaceIndex,
  type WorkspaceIndexOptions,
  type WorkspaceIndexStats,
} from './workspace-index.js'
