/**
 * Runs the completion service from environment variables (see `config.ts`),
 * and shuts it down gracefully on SIGTERM or SIGINT.
 */
import { configFromEnv } from './config.js'
import { startCompletionService } from './service.js'

const service = await startCompletionService({ config: configFromEnv() })

let signals = 0
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    signals++
    if (signals > 1) {
      service.logger.warn({ signal }, 'shutdown: second signal, exiting now')
      process.exit(1)
    }
    service.logger.info({ signal }, 'shutdown: signal received')
    service.close().then(
      () => process.exit(0),
      (error: unknown) => {
        service.logger.error({ err: error }, 'shutdown: failed')
        process.exit(1)
      },
    )
  })
}
