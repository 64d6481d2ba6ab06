// The assembled aide server on stdio, as the benchmark's subject.
import { createAiLanguageServer } from '../src/ai-server.ts'
import { createStdioConnection } from '../src/node.ts'

createAiLanguageServer({ connection: createStdioConnection(), name: 'aide-lsp-bench' }).listen()
