/**
 * A small LSP client over a real child process (`aide-lsp --stdio`), used by
 * the demo and the end-to-end tests.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath, pathToFileURL } from 'node:url'
import {
  CodeActionRequest,
  CompletionRequest,
  createProtocolConnection,
  DidChangeTextDocumentNotification,
  DidOpenTextDocumentNotification,
  ExitNotification,
  InitializedNotification,
  InitializeRequest,
  type InitializeResult,
  InlineCompletionRequest,
  type Position,
  type ProtocolConnection,
  PublishDiagnosticsNotification,
  type PublishDiagnosticsParams,
  type Range,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
  type TextEdit,
} from 'vscode-languageserver-protocol/node'

const here = dirname(fileURLToPath(import.meta.url))
/** The CLI entry point. */
export const cliPath = join(here, 'cli.ts')
/** The sample workspace shipped with the example. */
export const workspaceDir = join(here, '..', 'fixtures', 'workspace')

/** The command that starts the server from source (what editors can run too). */
export function serverCommand(): { command: string; args: string[] } {
  // An absolute loader URL, so the command works from any working directory (editors start servers anywhere).
  return {
    command: process.execPath,
    args: ['--conditions=@aide/source', '--import', import.meta.resolve('tsx'), cliPath, '--stdio'],
  }
}

/** Applies LSP text edits to `text` (edits must not overlap; any order). */
export function applyEdits(text: string, edits: readonly TextEdit[]): string {
  const offsetOf = (position: Position) => {
    const lines = text.split('\n')
    let offset = 0
    for (let line = 0; line < Math.min(position.line, lines.length); line++)
      offset += lines[line]!.length + 1
    const lineText = lines[position.line] ?? ''
    return Math.min(text.length, offset + Math.min(position.character, lineText.length))
  }
  const sorted = [...edits].sort((a, b) => offsetOf(b.range.start) - offsetOf(a.range.start))
  let result = text
  for (const edit of sorted)
    result =
      result.slice(0, offsetOf(edit.range.start)) +
      edit.newText +
      result.slice(offsetOf(edit.range.end))
  return result
}

/** The position at the end of `text`. */
export function endOf(text: string): Position {
  const lines = text.split('\n')
  return { line: lines.length - 1, character: lines[lines.length - 1]!.length }
}

export interface OpenDocument {
  uri: string
  version: number
  text: string
}

/** A client connected to a server child process. */
export class LspProcessClient {
  readonly connection: ProtocolConnection
  readonly diagnostics: PublishDiagnosticsParams[] = []
  /** `$/progress` reports received: title (from `begin`), kind and the time they arrived. */
  readonly progress: Array<{ title: string; kind: string; at: number }> = []
  #progressTitles = new Map<string | number, string>()
  /** `window/showMessage` texts received. */
  readonly messages: string[] = []
  readonly documents = new Map<string, OpenDocument>()
  stderr = ''
  #waiters = new Set<() => void>()

  private constructor(
    readonly child: ChildProcess,
    readonly cacheDir: string,
  ) {
    this.connection = createProtocolConnection(
      new StreamMessageReader(child.stdout!),
      new StreamMessageWriter(child.stdin!),
    )
    child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString()
    })
    this.connection.onNotification(PublishDiagnosticsNotification.type, (params) => {
      this.diagnostics.push(params)
      for (const wake of this.#waiters) wake()
    })
    this.connection.onRequest('window/workDoneProgress/create', () => null)
    this.connection.onNotification(
      '$/progress',
      (params: { token: string | number; value: { kind: string; title?: string } }) => {
        if (params.value.kind === 'begin')
          this.#progressTitles.set(params.token, params.value.title ?? '')
        this.progress.push({
          title: this.#progressTitles.get(params.token) ?? '',
          kind: params.value.kind,
          at: performance.now(),
        })
      },
    )
    this.connection.onNotification('window/logMessage', () => undefined)
    this.connection.onNotification('window/showMessage', (params: { message: string }) => {
      this.messages.push(params.message)
    })
    this.connection.listen()
  }

  /** Starts `aide-lsp --stdio` as a child process, with a fresh disk cache folder (removed by `kill`). */
  static start(options: { env?: NodeJS.ProcessEnv; args?: string[] } = {}): LspProcessClient {
    const { command, args } = serverCommand()
    const cacheDir = mkdtempSync(join(tmpdir(), 'aide-lsp-cache-'))
    const child = spawn(command, [...args, ...(options.args ?? [])], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, AIDE_LSP_CACHE_DIR: cacheDir, ...options.env },
    })
    return new LspProcessClient(child, cacheDir)
  }

  /** `initialize` + `initialized`. */
  async initialize(initializationOptions?: unknown): Promise<InitializeResult> {
    const result = await this.connection.sendRequest(InitializeRequest.type, {
      processId: process.pid,
      rootUri: pathToFileURL(workspaceDir).href,
      capabilities: {
        window: { workDoneProgress: true },
        textDocument: { publishDiagnostics: { versionSupport: true }, inlineCompletion: {} },
      },
      ...(initializationOptions !== undefined ? { initializationOptions } : {}),
    })
    await this.connection.sendNotification(InitializedNotification.type, {})
    return result
  }

  /** Opens a workspace file (relative to the sample workspace) or any text under a URI. */
  async open(
    relativePath: string,
    text = readFileSync(join(workspaceDir, relativePath), 'utf8'),
  ): Promise<OpenDocument> {
    const uri = pathToFileURL(join(workspaceDir, relativePath)).href
    const document = { uri, version: 1, text }
    this.documents.set(uri, document)
    await this.connection.sendNotification(DidOpenTextDocumentNotification.type, {
      textDocument: { uri, languageId: 'typescript', version: 1, text },
    })
    return document
  }

  /** Applies edits locally and sends them as one incremental change. */
  async edit(document: OpenDocument, edits: TextEdit[]): Promise<void> {
    document.version++
    document.text = applyEdits(document.text, edits)
    await this.connection.sendNotification(DidChangeTextDocumentNotification.type, {
      textDocument: { uri: document.uri, version: document.version },
      contentChanges: edits.map((edit) => ({ range: edit.range, text: edit.newText })),
    })
  }

  /** Types `text` at the end of the document, one character per change. */
  async typeAtEnd(
    document: OpenDocument,
    text: string,
    onKey?: (position: Position) => void,
  ): Promise<void> {
    for (const character of text) {
      const at = endOf(document.text)
      await this.edit(document, [{ range: { start: at, end: at }, newText: character }])
      onKey?.(endOf(document.text))
    }
  }

  complete(document: OpenDocument, position: Position) {
    return this.connection.sendRequest(CompletionRequest.type, {
      textDocument: { uri: document.uri },
      position,
    })
  }

  inline(document: OpenDocument, position: Position) {
    return this.connection.sendRequest(InlineCompletionRequest.type, {
      textDocument: { uri: document.uri },
      position,
      context: { triggerKind: 2 },
    })
  }

  codeActions(
    document: OpenDocument,
    range: Range,
    diagnostics: PublishDiagnosticsParams['diagnostics'],
  ) {
    return this.connection.sendRequest(CodeActionRequest.type, {
      textDocument: { uri: document.uri },
      range,
      context: { diagnostics },
    })
  }

  /** Resolves with the first diagnostics for `document`'s current version matching `predicate`. */
  waitForDiagnostics(
    document: OpenDocument,
    predicate: (params: PublishDiagnosticsParams) => boolean = () => true,
    timeoutMs = 20_000,
  ): Promise<PublishDiagnosticsParams> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.diagnostics.find(
          (d) => d.uri === document.uri && d.version === document.version && predicate(d),
        )
        if (found) {
          this.#waiters.delete(check)
          clearTimeout(timer)
          resolve(found)
        }
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(check)
        reject(
          new Error(
            `no diagnostics for ${document.uri} v${document.version} within ${timeoutMs} ms`,
          ),
        )
      }, timeoutMs)
      this.#waiters.add(check)
      check()
    })
  }

  /** Waits for the process to exit; resolves with its exit code. */
  exited(timeoutMs = 20_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null)
      return Promise.resolve(this.child.exitCode)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('server did not exit in time')), timeoutMs)
      this.child.once('exit', (code) => {
        clearTimeout(timer)
        resolve(code)
      })
    })
  }

  /** `shutdown` + `exit`; resolves with the exit code. */
  async shutdown(): Promise<number | null> {
    await this.connection.sendRequest(ShutdownRequest.type)
    await this.connection.sendNotification(ExitNotification.type)
    const code = await this.exited()
    this.connection.dispose()
    return code
  }

  /** Kills the process if it is still running and removes its cache folder. Idempotent. */
  kill(): void {
    this.connection.dispose()
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
    rmSync(this.cacheDir, { recursive: true, force: true })
  }
}
