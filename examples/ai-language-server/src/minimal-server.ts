/**
 * The smallest useful server built with the `@aide/lsp` toolkit: completions
 * from the open documents' context and the built-in audit line rules, over
 * stdio. The package README shows this file; `test/minimal-server.test.ts`
 * runs it as a real process.
 */
import {
  createAuditDiagnosticsProvider,
  createContextCompletionProvider,
  createLanguageServer,
} from '@aide/lsp'
import { createStdioConnection } from '@aide/lsp/node'

const server = createLanguageServer({
  connection: createStdioConnection(),
  completion: createContextCompletionProvider(), // or your model behind CompletionProvider
  diagnostics: createAuditDiagnosticsProvider(), // line rules with quick fixes
})
server.listen()
