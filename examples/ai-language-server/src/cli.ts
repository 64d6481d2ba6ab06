/**
 * `aide-lsp --stdio`: the aide AI language server.
 */
import { createAiLanguageServer } from '@aide/lsp/ai'
import { createStdioConnection } from '@aide/lsp/node'
import pino from 'pino'

const usage = `usage: aide-lsp --stdio

Serves the Language Server Protocol on stdin/stdout. Settings come from the
client's initializationOptions or workspace/didChangeConfiguration ("aide" section).
Logs go to stderr (level from AIDE_LSP_LOG_LEVEL, default "warn").`

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

const server = createAiLanguageServer({
  connection: createStdioConnection(),
  name: 'aide-lsp',
  version: '0.0.0',
  logger,
})
server.listen()
