// The assembled aide server on stdio (local ONNX model, audit plugins, disk
// cache in AIDE_LSP_CACHE_DIR), as the benchmark's subject.
import { createAiLanguageServer } from '../src/ai-server.ts'
import { createStdioConnection } from '../src/node.ts'

createAiLanguageServer({
  connection: createStdioConnection(),
  name: 'aide-lsp-bench',
  plugins: process.env.AIDE_LSP_PLUGINS === 'off' ? false : {},
  localModel: process.env.AIDE_LSP_MODEL !== 'off',
  localModelExecution: process.env.AIDE_LSP_MODEL_EXECUTION === 'worker' ? 'worker' : 'inline',
  cache: process.env.AIDE_LSP_CACHE_DIR ? { dir: process.env.AIDE_LSP_CACHE_DIR } : false,
}).listen()
