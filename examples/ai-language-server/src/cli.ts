/**
 * `aide-lsp --stdio`: the aide AI language server.
 */
import { createAiLanguageServer } from '@aide/lsp/ai'
import { createStdioConnection } from '@aide/lsp/node'
import { type ModelConfig, openAICompatible } from '@aide/orchestrator'
import pino from 'pino'

const usage = `usage: aide-lsp --stdio [--no-model] [--no-plugins] [--no-cache] [--cache-dir DIR] [--redis URL]

Serves the Language Server Protocol on stdin/stdout. Settings come from the
client's initializationOptions or workspace/didChangeConfiguration ("aide" section).

  --no-model      answer completions from context only (no local ONNX model)
  --no-plugins    diagnostics from the line rules only (no WebAssembly audit plugins)
  --no-cache      no response cache
  --cache-dir DIR disk cache folder (default $AIDE_LSP_CACHE_DIR, else ~/.cache/aide-lsp)
  --redis URL     share the response cache through Redis (default $AIDE_REDIS_URL; needs ioredis)

Environment: AIDE_LSP_LOG_LEVEL (default "warn"; logs go to stderr),
AIDE_OPENAI_BASE_URL, AIDE_OPENAI_MODEL, AIDE_OPENAI_API_KEY (an OpenAI-compatible
server — OpenAI, llama.cpp server, Ollama, vLLM — tried after the local model).`

const args = process.argv.slice(2)
if (args.includes('--help') || args.includes('-h')) {
  process.stderr.write(`${usage}\n`)
  process.exit(0)
}
if (args.includes('--version')) {
  process.stderr.write('aide-lsp 0.0.0\n')
  process.exit(0)
}
if (!args.includes('--stdio')) {
  process.stderr.write(`aide-lsp: missing --stdio\n${usage}\n`)
  process.exit(2)
}
const cacheDirIndex = args.indexOf('--cache-dir')
const cacheDir = cacheDirIndex >= 0 ? args[cacheDirIndex + 1] : process.env.AIDE_LSP_CACHE_DIR
if (cacheDirIndex >= 0 && !cacheDir) {
  process.stderr.write('aide-lsp: --cache-dir needs a folder\n')
  process.exit(2)
}

const redisIndex = args.indexOf('--redis')
const redisUrl = redisIndex >= 0 ? args[redisIndex + 1] : process.env.AIDE_REDIS_URL
if (redisIndex >= 0 && !redisUrl) {
  process.stderr.write('aide-lsp: --redis needs a URL\n')
  process.exit(2)
}

// stdout carries the protocol: every log line goes to stderr.
const logger = pino(
  { name: 'aide-lsp', level: process.env.AIDE_LSP_LOG_LEVEL ?? 'warn' },
  pino.destination(2),
)
process.on('uncaughtException', (error) =>
  logger.error({ err: error }, 'uncaught exception (server keeps running)'),
)
process.on('unhandledRejection', (reason) =>
  logger.error({ err: reason }, 'unhandled rejection (server keeps running)'),
)

const models: ModelConfig[] = []
if (process.env.AIDE_OPENAI_BASE_URL) {
  models.push({
    id: process.env.AIDE_OPENAI_MODEL ?? 'openai-compatible',
    backend: openAICompatible({
      baseUrl: process.env.AIDE_OPENAI_BASE_URL,
      ...(process.env.AIDE_OPENAI_API_KEY ? { apiKey: process.env.AIDE_OPENAI_API_KEY } : {}),
      ...(process.env.AIDE_OPENAI_MODEL ? { model: process.env.AIDE_OPENAI_MODEL } : {}),
    }),
    tasks: ['completion'],
  })
}

const server = createAiLanguageServer({
  connection: createStdioConnection(),
  name: 'aide-lsp',
  version: '0.0.0',
  logger,
  models,
  localModel: !args.includes('--no-model'),
  plugins: args.includes('--no-plugins') ? false : {},
  cache: args.includes('--no-cache')
    ? false
    : { ...(cacheDir ? { dir: cacheDir } : {}), ...(redisUrl ? { redis: redisUrl } : {}) },
})
server.listen()
