/**
 * `@aide/core`: the foundation every aide package builds on.
 *
 * @packageDocumentation
 */

export {
  abortable,
  anySignal,
  cancelledError,
  type DeadlineOptions,
  sleep,
  throwIfAborted,
  timeoutError,
  validateDeadlineOptions,
  type WithDeadlineOptions,
  withDeadline,
} from './abort.js'
export {
  type Clock,
  ManualClock,
  systemClock,
  type TimerHandle,
  type TimerOptions,
} from './clock.js'
export {
  type Disposable,
  type DisposableHandle,
  DisposableStore,
  disposeAll,
  isDisposable,
  toDisposable,
} from './disposable.js'
export {
  AIDE_ERROR_CODES,
  AideError,
  type AideErrorCode,
  type AideErrorOptions,
  invalidInput,
  isAideError,
  toAideError,
} from './errors.js'
export {
  type CacheGetOrSetOptions,
  type CacheLike,
  type CacheSetOptions,
  type EventSink,
  noopEventSink,
} from './interfaces.js'
export { seededRandom } from './random.js'
export {
  defineService,
  type FactoryContext,
  type ResolvedDeps,
  type ServiceGraph,
  type ServiceId,
  ServiceManager,
  type ServiceManagerEvents,
  type ServiceManagerOptions,
  type ServiceManagerStats,
  type ServiceRegistration,
  type ServiceState,
  type ServiceStats,
  type ServiceType,
} from './services/manager.js'
export {
  type TraceDocument,
  type TraceEvent,
  type TraceSpan,
  toTraceDocument,
} from './services/trace.js'
export { assertClock, assertEventSink, assertLogger, guardEventSink } from './sinks.js'
export {
  type Counter,
  DEFAULT_BUCKETS,
  type Gauge,
  type Histogram,
  type HistogramOptions,
  InMemoryMeter,
  type InstrumentOptions,
  type Labels,
  type Logger,
  type LogMethod,
  type Meter,
  type MetricFamilySnapshot,
  noopLogger,
  noopMeter,
  PROMETHEUS_CONTENT_TYPE,
  renderPrometheus,
  type SeriesSnapshot,
} from './telemetry.js'
export {
  assertFunction,
  assertNumber,
  assertObject,
  assertOneOf,
  assertOptionalSignal,
  assertString,
  type NumberRule,
} from './validate.js'
