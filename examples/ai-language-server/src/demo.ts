/**
 * The main demo: starts `aide-lsp --stdio` as a real child process and drives
 * a real LSP session against the sample workspace — open files, type, ask for
 * completions, receive the audit diagnostics, apply a quick fix — printing a
 * transcript with timings.
 */
import { performance } from 'node:perf_hooks'
import type {
  CodeAction,
  CompletionList,
  Diagnostic,
  InlineCompletionList,
} from 'vscode-languageserver-protocol'
import { endOf, LspProcessClient } from './lsp-client.ts'

const started = performance.now()
const stamp = () => `${(performance.now() - started).toFixed(0).padStart(6)} ms`
const say = (text: string) => console.log(`${stamp()}  ${text}`)
const show = (text: string) => console.log(text.replace(/^/gm, '            │ '))
const describe = (d: Diagnostic) =>
  `${['', 'error', 'warning', 'info', 'hint'][d.severity ?? 2]} ${d.code} (line ${d.range.start.line + 1}): ${d.message}`

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now()
  const value = await work()
  return [value, performance.now() - t0]
}

async function main(): Promise<void> {
  console.log('aide AI language server — demo session over stdio\n')
  const client = LspProcessClient.start()
  try {
    say('started `aide-lsp --stdio` as a child process')
    const [init, initMs] = await timed(() => client.initialize())
    say(
      `initialize → ${init.serverInfo?.name} ${init.serverInfo?.version} in ${initMs.toFixed(1)} ms; capabilities: ${Object.keys(init.capabilities).join(', ')}`,
    )

    await client.open('src/pricing.ts')
    const cart = await client.open('src/cart.ts')
    say('opened src/pricing.ts and src/cart.ts')

    const [first, diagnosticsMs] = await timed(() =>
      client.waitForDiagnostics(cart, (d) => d.diagnostics.length > 0),
    )
    say(`audit diagnostics for cart.ts v${first.version} after ${diagnosticsMs.toFixed(0)} ms:`)
    show(first.diagnostics.map(describe).join('\n'))

    for (const step of client.progress.filter((p) => p.kind === 'end')) {
      const begin = client.progress.find((p) => p.kind === 'begin' && p.title === step.title)
      say(`progress: "${step.title}" done in ${begin ? (step.at - begin.at).toFixed(0) : '?'} ms`)
    }
    say('typing a new function at the end of cart.ts, asking for inline completions on each key…')
    await client.typeAtEnd(cart, '\nexport function orderValue(items: Item[]): number {\n')
    const inlineRequests: Array<Promise<InlineCompletionList | unknown>> = []
    await client.typeAtEnd(cart, '  return items.re', (position) => {
      inlineRequests.push(client.inline(cart, position))
    })
    const [inlineResults, inlineMs] = await timed(() => Promise.all(inlineRequests))
    const answered = inlineResults.filter(
      (r) => ((r as InlineCompletionList | null)?.items.length ?? 0) > 0,
    ).length
    say(
      `${inlineRequests.length} inline requests while typing: ${answered} answered, ${inlineRequests.length - answered} superseded by newer keystrokes (last settled ${inlineMs.toFixed(0)} ms after typing)`,
    )
    const lastInline = inlineResults.at(-1) as InlineCompletionList
    if (lastInline?.items[0])
      show(`inline suggestion: ${JSON.stringify(lastInline.items[0].insertText)}`)

    const [list, completionMs] = await timed(
      async () => (await client.complete(cart, endOf(cart.text))) as CompletionList,
    )
    say(
      `textDocument/completion at the cursor → ${list.items.length} items in ${completionMs.toFixed(1)} ms:`,
    )
    show(
      list.items.map((item, index) => `${index + 1}. ${item.label}   [${item.detail}]`).join('\n'),
    )
    const chosen = list.items[0]
    if (chosen?.textEdit && 'range' in chosen.textEdit) {
      await client.edit(cart, [
        chosen.textEdit,
        { range: { start: endOf(cart.text), end: endOf(cart.text) }, newText: '' },
      ])
      say(`accepted "${chosen.label}"; the line is now:`)
      show(cart.text.split('\n').at(-1) ?? '')
      await client.typeAtEnd(cart, '\n}\n')
    }

    const current = await client.waitForDiagnostics(cart)
    const debuggerDiagnostic = current.diagnostics.find((d) => d.code === 'no-debugger')
    if (!debuggerDiagnostic) throw new Error('expected the no-debugger diagnostic')
    const [actions, actionMs] = await timed(
      async () =>
        (await client.codeActions(cart, debuggerDiagnostic.range, [
          debuggerDiagnostic,
        ])) as CodeAction[],
    )
    say(
      `code actions for "${debuggerDiagnostic.code}" in ${actionMs.toFixed(1)} ms: ${actions.map((a) => a.title).join(', ')}`,
    )
    const fix = actions[0]
    const change = fix?.edit?.documentChanges?.[0]
    if (!change || !('edits' in change))
      throw new Error('expected a quick fix with a versioned text edit')
    await client.edit(
      cart,
      change.edits.map((e) => ('newText' in e ? e : { range: e.range, newText: '' })),
    )
    say(`applied "${fix.title}" (edit for document version ${change.textDocument.version})`)
    const [after, republishMs] = await timed(() => client.waitForDiagnostics(cart))
    say(`diagnostics for v${after.version} ${republishMs.toFixed(0)} ms later:`)
    show(after.diagnostics.map(describe).join('\n') || '(none)')

    say('final cart.ts:')
    show(cart.text.trimEnd())
    const [code, shutdownMs] = await timed(() => client.shutdown())
    say(`shutdown + exit → server exited with code ${code} in ${shutdownMs.toFixed(0)} ms`)
  } catch (error) {
    console.error(`demo failed: ${error instanceof Error ? error.stack : String(error)}`)
    if (client.stderr) console.error(`server stderr:\n${client.stderr}`)
    process.exitCode = 1
  } finally {
    client.kill()
  }
}

await main()
