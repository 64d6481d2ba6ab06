/**
 * Checks and guards for the collaborators a component is handed in its
 * options: a logger, an event sink, a clock. Checking them up front turns a
 * malformed object into an `E_INVALID_INPUT` naming the option, instead of a
 * `TypeError` from deep inside a timer later. Guarding a sink keeps a user's
 * throwing `emit` from failing (or half-finishing) the operation that
 * reported the event.
 */
import type { Clock } from './clock.js'
import { invalidInput } from './errors.js'
import type { EventSink } from './interfaces.js'
import type { Logger } from './telemetry.js'

const LOGGER_METHODS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const
const CLOCK_METHODS = ['now', 'setTimeout', 'setInterval', 'clearTimer'] as const

function assertMethods(value: unknown, field: string, methods: readonly string[]): void {
  if (typeof value !== 'object' || value === null) {
    throw invalidInput(field, `must be an object, got ${value === null ? 'null' : typeof value}`)
  }
  for (const method of methods) {
    if (typeof (value as Record<string, unknown>)[method] !== 'function') {
      throw invalidInput(field, `must have a ${method}() method`)
    }
  }
}

/**
 * Throws `E_INVALID_INPUT` naming `field` unless `value` has the log methods a
 * component calls (`trace` … `fatal`). `child` is not required.
 */
export function assertLogger(value: unknown, field: string): asserts value is Logger {
  assertMethods(value, field, LOGGER_METHODS)
}

/** Throws `E_INVALID_INPUT` naming `field` unless `value` implements {@link Clock}. */
export function assertClock(value: unknown, field: string): asserts value is Clock {
  assertMethods(value, field, CLOCK_METHODS)
}

/** Throws `E_INVALID_INPUT` naming `field` unless `value` has an `emit()` method. */
export function assertEventSink(value: unknown, field: string): asserts value is EventSink<any> {
  assertMethods(value, field, ['emit'])
}

/**
 * Wraps a user's event sink so that an `emit` that throws is logged as a
 * warning (or, if the logger throws too, dropped) instead of propagating into
 * the component that reported the event.
 *
 * @param sink - The sink to guard; `undefined` gives a sink that drops everything.
 * @param logger - Where a failing `emit` is reported.
 * @param source - A name for log records (`services`, `buffer-pool`…).
 */
export function guardEventSink<Events extends object>(
  sink: EventSink<Events> | undefined,
  logger: Logger,
  source: string,
): EventSink<Events> {
  if (sink === undefined) return { emit: () => undefined }
  return {
    emit(type, payload) {
      try {
        sink.emit(type, payload)
      } catch (error) {
        try {
          logger.warn({ err: error, type }, `${source}: event sink threw on ${type}`)
        } catch {
          // A logger that throws as well has nowhere left to report to.
        }
      }
    },
  }
}
