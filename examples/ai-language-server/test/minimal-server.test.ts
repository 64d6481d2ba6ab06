import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import {
  createProtocolConnection,
  PublishDiagnosticsNotification,
  type PublishDiagnosticsParams,
  StreamMessageReader,
  StreamMessageWriter,
} from 'vscode-languageserver-protocol/node'

describe('the minimal toolkit server (src/minimal-server.ts) over stdio', () => {
  it('initialises, completes from context, reports audit diagnostics and exits cleanly', async () => {
    const child = spawn(
      process.execPath,
      [
        '--conditions=@aide/source',
        '--import',
        'tsx',
        fileURLToPath(new URL('../src/minimal-server.ts', import.meta.url)),
        '--stdio',
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    )
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => resolve(code)),
    )
    const client = createProtocolConnection(
      new StreamMessageReader(child.stdout),
      new StreamMessageWriter(child.stdin),
    )
    const diagnostics: PublishDiagnosticsParams[] = []
    let notify = () => undefined as void
    client.onNotification(PublishDiagnosticsNotification.type, (params) => {
      diagnostics.push(params)
      notify()
    })
    client.listen()
    try {
      const init = await client.sendRequest('initialize', {
        processId: null,
        rootUri: null,
        capabilities: {},
      })
      expect((init as { capabilities: Record<string, unknown> }).capabilities).toHaveProperty(
        'completionProvider',
      )
      await client.sendNotification('initialized', {})
      const uri = 'file:///tmp/minimal/cart.ts'
      const text =
        'export function total(items: number[]) {\n  const totalPrice = 1\n  console.log(items)\n  return totalP'
      await client.sendNotification('textDocument/didOpen', {
        textDocument: { uri, languageId: 'typescript', version: 1, text },
      })
      const lines = text.split('\n')
      const list = (await client.sendRequest('textDocument/completion', {
        textDocument: { uri },
        position: { line: lines.length - 1, character: lines.at(-1)!.length },
      })) as { items: Array<{ label: string }> }
      expect(list.items.map((item) => item.label)).toContain('totalPrice')
      await new Promise<void>((resolve) => {
        notify = () => diagnostics.some((d) => d.diagnostics.length > 0) && resolve()
        notify()
      })
      expect(diagnostics.flatMap((d) => d.diagnostics.map((x) => x.code))).toContain(
        'no-console-log',
      )
      await client.sendRequest('shutdown')
      await client.sendNotification('exit')
      expect(await exited).toBe(0)
    } finally {
      client.dispose()
      child.kill()
    }
  }, 60_000)
})
