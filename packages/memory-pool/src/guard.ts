/**
 * The logger a component is handed is user code, and it is called from
 * timers, finalisers and watchers where nothing could catch what it throws.
 * Every memory-pool component logs through {@link guardLogger} and emits
 * through core's `guardEventSink` with that logger, so a throwing sink is
 * logged, a throwing logger is ignored, and neither reaches the component.
 */
import type { Logger, LogMethod } from '@aide/core'

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const

/** A logger that forwards to `logger` and ignores whatever its methods throw (there is nowhere left to report it). */
export function guardLogger(logger: Logger): Logger {
  const guarded = { child: (bindings) => guardLogger(logger.child(bindings)) } as Logger
  for (const level of LEVELS) {
    guarded[level] = ((...args: unknown[]) => {
      try {
        Reflect.apply(logger[level], logger, args)
      } catch {
        // A logger that throws has nowhere left to report to.
      }
    }) as LogMethod
  }
  return guarded
}
