import { afterEach, describe, expect, it } from 'vitest'
import type {
  CodeAction,
  CompletionList,
  InlineCompletionList,
} from 'vscode-languageserver-protocol'
import { endOf, LspProcessClient } from '../src/lsp-client.ts'

const clients: LspProcessClient[] = []
function start(): LspProcessClient {
  const client = LspProcessClient.start()
  clients.push(client)
  return client
}
afterEach(() => {
  for (const client of clients.splice(0)) client.kill()
})

describe('aide-lsp --stdio, end to end with the protocol client', () => {
  it('serves completion, inline completion, audit diagnostics and a quick fix over a real session', async () => {
    const client = start()
    const init = await client.initialize()
    expect(init.serverInfo?.name).toBe('aide-lsp')
    expect(init.capabilities).toMatchObject({
      inlineCompletionProvider: true,
      codeActionProvider: {},
    })

    await client.open('src/pricing.ts')
    const cart = await client.open('src/cart.ts')
    const diagnostics = await client.waitForDiagnostics(cart, (d) => d.diagnostics.length > 0)
    expect(diagnostics.diagnostics.map((d) => d.code)).toEqual(['no-debugger', 'no-console-log'])

    await client.typeAtEnd(
      cart,
      '\nexport function orderValue(items: Item[]): number {\n  return items.re',
    )
    const inline = (await client.inline(cart, endOf(cart.text))) as InlineCompletionList
    expect(inline.items[0]?.insertText).toMatch(/^duce\(/)
    const list = (await client.complete(cart, endOf(cart.text))) as CompletionList
    expect(list.items.map((item) => item.label)).toContain(
      'reduce((sum, item) => sum + item.price * item.quantity, 0)',
    )

    const current = await client.waitForDiagnostics(cart)
    const target = current.diagnostics.find((d) => d.code === 'no-console-log')!
    const actions = (await client.codeActions(cart, target.range, [target])) as CodeAction[]
    expect(actions.map((a) => a.title)).toEqual(['Remove the console.log call'])
    const change = actions[0]!.edit!.documentChanges![0]! as unknown as {
      textDocument: { version: number }
      edits: Array<{ range: never; newText: string }>
    }
    expect(change.textDocument.version).toBe(cart.version)
    await client.edit(cart, change.edits)
    const after = await client.waitForDiagnostics(cart)
    expect(after.diagnostics.map((d) => d.code)).toEqual(['no-debugger'])
    expect(cart.text).not.toContain('console.log')
    // The real local ONNX model and the WebAssembly audit plugins loaded in the server process.
    const deadline = Date.now() + 30_000
    const loaded = (title: string) =>
      client.progress.some((p) => p.title === title && p.kind === 'end')
    while (
      !(loaded('aide: loading the completion model') && loaded('aide: loading audit plugins')) &&
      Date.now() < deadline
    ) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    expect(loaded('aide: loading the completion model')).toBe(true)
    expect(loaded('aide: loading audit plugins')).toBe(true)
    expect(await client.shutdown()).toBe(0)
  })

  it('keeps serving after malformed JSON-RPC, invalid params and bad settings', async () => {
    const client = start()
    await client.initialize({ completion: { maxItems: 'many' } })
    // A frame whose body is not JSON.
    const garbage = '{"jsonrpc": "2.0", "method": '
    client.child.stdin!.write(`Content-Length: ${Buffer.byteLength(garbage)}\r\n\r\n${garbage}`)
    await expect(
      client.connection.sendRequest('textDocument/completion', { position: { line: 0 } }),
    ).rejects.toMatchObject({ code: -32602 })
    const document = await client.open('src/untitled.ts', 'const greeting = "héllo 😀"\r\ngree')
    const list = (await client.complete(document, { line: 1, character: 4 })) as CompletionList
    expect(list.items.map((item) => item.label)).toContain('greeting')
    expect(client.messages.join('\n')).toMatch(
      /initializationOptions.completion.maxItems must be a number/,
    )
    expect(await client.shutdown()).toBe(0)
  })

  it('exits cleanly, without a crash, when the client disappears', async () => {
    const client = start()
    await client.initialize()
    await client.open('src/cart.ts')
    client.child.stdin!.end()
    const code = await client.exited()
    // No shutdown request was received, so LSP says exit code 1 — but no crash report.
    expect(code).toBe(1)
    expect(client.stderr).not.toMatch(/uncaught|unhandled|TypeError|ReferenceError/i)
  })
})
