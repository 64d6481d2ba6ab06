/**
 * Telemetry interfaces. Packages report through a `Logger` and a `Meter`;
 * both default to no-ops, so nothing is paid for unless an app wires them.
 */
import { invalidInput } from './errors.js'

/** A log method with pino's call shape: `log.info({ id }, 'message')` or `log.info('message')`. */
export interface LogMethod {
  (message: string, ...args: unknown[]): void
  (bindings: object, message?: string, ...args: unknown[]): void
}

/** A structured logger. Pino satisfies it as it is. */
export interface Logger {
  trace: LogMethod
  debug: LogMethod
  info: LogMethod
  warn: LogMethod
  error: LogMethod
  fatal: LogMethod
  /** A logger that adds `bindings` to every record. */
  child(bindings: Record<string, unknown>): Logger
}

const noop = () => undefined

/** A logger that drops everything. */
export const noopLogger: Logger = {
  trace: noop,
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  fatal: noop,
  child: () => noopLogger,
}

/** Label values of one series. */
export type Labels = Readonly<Record<string, string | number>>

/** A monotonically increasing count. */
export interface Counter {
  /** Adds `value` (default 1, must be >= 0). */
  inc(value?: number, labels?: Labels): void
}

/** A value that goes up and down. */
export interface Gauge {
  set(value: number, labels?: Labels): void
  inc(value?: number, labels?: Labels): void
  dec(value?: number, labels?: Labels): void
}

/** A distribution of observed values in buckets. */
export interface Histogram {
  observe(value: number, labels?: Labels): void
}

/** Options shared by every instrument. */
export interface InstrumentOptions {
  /** One line describing what is measured (the Prometheus `# HELP` text). */
  help: string
  /** Unit in the name's suffix is conventional (`_seconds`, `_bytes`); this is informational. */
  unit?: string
}

/** Options of a histogram. */
export interface HistogramOptions extends InstrumentOptions {
  /** Upper bounds of the buckets, ascending. Defaults to {@link DEFAULT_BUCKETS}. */
  buckets?: readonly number[]
}

/** Creates instruments. Asking twice for one name returns the same instrument. */
export interface Meter {
  counter(name: string, options: InstrumentOptions): Counter
  gauge(name: string, options: InstrumentOptions): Gauge
  histogram(name: string, options: HistogramOptions): Histogram
}

const noopInstrument: Counter & Gauge & Histogram = {
  inc: noop,
  set: noop,
  dec: noop,
  observe: noop,
}

/** A meter that records nothing. */
export const noopMeter: Meter = {
  counter: () => noopInstrument,
  gauge: () => noopInstrument,
  histogram: () => noopInstrument,
}

/** Latency buckets in seconds, from 0.5 ms to 10 s. */
export const DEFAULT_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]

/** One series of a metric family in a snapshot. */
export interface SeriesSnapshot {
  labels: Record<string, string>
  /** Counter or gauge value. */
  value?: number
  /** Histogram: cumulative counts per upper bound (the last is `+Inf`). */
  buckets?: Array<{ le: number; count: number }>
  sum?: number
  count?: number
}

/** One metric and all its series. */
export interface MetricFamilySnapshot {
  name: string
  help: string
  type: 'counter' | 'gauge' | 'histogram'
  series: SeriesSnapshot[]
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

/**
 * The key of a series, checking the label names on the way. `le` is reserved
 * on histograms: the exposition adds it to every bucket.
 */
function labelKey(labels: Labels | undefined, histogram = false): string {
  if (!labels) return ''
  if (typeof labels !== 'object' || Array.isArray(labels)) {
    throw invalidInput('labels', 'must be an object of label names to values')
  }
  const names = Object.keys(labels)
  if (names.length === 0) return ''
  names.sort()
  let key = ''
  for (const name of names) {
    if (!LABEL_NAME.test(name) || name.startsWith('__')) {
      throw invalidInput(`labels.${name}`, 'is not a valid Prometheus label name')
    }
    if (histogram && name === 'le') {
      throw invalidInput(`labels.${name}`, 'is reserved for the buckets of a histogram')
    }
    key += `${name}\u0000${String(labels[name])}\u0001`
  }
  return key
}

/** Checks a recorded value: a finite number (>= 0 for counters), else E_INVALID_INPUT. */
function checkValue(
  value: unknown,
  instrument: string,
  nonNegative = false,
): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    const got =
      typeof value === 'string'
        ? `string ${JSON.stringify(value)}`
        : value === null
          ? 'null'
          : typeof value === 'number'
            ? String(value)
            : typeof value
    throw invalidInput('value', `of ${instrument} must be a finite number, got ${got}`)
  }
  if (nonNegative && value < 0)
    throw invalidInput('value', `of ${instrument} must be >= 0, got ${value}`)
}

function normaliseLabels(labels: Labels | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  if (labels) for (const name of Object.keys(labels).sort()) out[name] = String(labels[name])
  return out
}

interface Family {
  name: string
  help: string
  type: MetricFamilySnapshot['type']
  buckets: readonly number[]
  series: Map<
    string,
    {
      labels: Record<string, string>
      value: number
      counts?: number[]
      sum?: number
      count?: number
    }
  >
}

/**
 * A `Meter` that keeps every series in memory, for tests, `stats()` and the
 * Prometheus exposition ({@link renderPrometheus}).
 */
export class InMemoryMeter implements Meter {
  #families = new Map<string, Family>()

  counter(name: string, options: InstrumentOptions): Counter {
    const family = this.#family(name, options, 'counter')
    return {
      inc: (value = 1, labels) => {
        checkValue(value, `counter ${name}`, true)
        this.#series(family, labels).value += value
      },
    }
  }

  gauge(name: string, options: InstrumentOptions): Gauge {
    const family = this.#family(name, options, 'gauge')
    return {
      set: (value, labels) => {
        checkValue(value, `gauge ${name}`)
        this.#series(family, labels).value = value
      },
      inc: (value = 1, labels) => {
        checkValue(value, `gauge ${name}`)
        this.#series(family, labels).value += value
      },
      dec: (value = 1, labels) => {
        checkValue(value, `gauge ${name}`)
        this.#series(family, labels).value -= value
      },
    }
  }

  histogram(name: string, options: HistogramOptions): Histogram {
    const buckets = options.buckets ?? DEFAULT_BUCKETS
    for (let i = 0; i < buckets.length; i++) {
      const bound = buckets[i]!
      if (!Number.isFinite(bound) || (i > 0 && bound <= buckets[i - 1]!)) {
        throw invalidInput('options.buckets', 'must be finite and strictly ascending')
      }
    }
    const family = this.#family(name, options, 'histogram', buckets)
    return {
      observe: (value, labels) => {
        checkValue(value, `histogram ${name}`)
        const series = this.#series(family, labels)
        const counts = series.counts!
        for (let i = 0; i < family.buckets.length; i++)
          if (value <= family.buckets[i]!) counts[i]!++
        counts[family.buckets.length]!++
        series.sum! += value
        series.count!++
      },
    }
  }

  /** A point-in-time copy of every metric family. */
  snapshot(): MetricFamilySnapshot[] {
    return [...this.#families.values()].map((family) => ({
      name: family.name,
      help: family.help,
      type: family.type,
      series: [...family.series.values()].map((series) =>
        family.type === 'histogram'
          ? {
              labels: { ...series.labels },
              buckets: [...family.buckets, Number.POSITIVE_INFINITY].map((le, i) => ({
                le,
                count: series.counts![i]!,
              })),
              sum: series.sum!,
              count: series.count!,
            }
          : { labels: { ...series.labels }, value: series.value },
      ),
    }))
  }

  /** The value of a counter or gauge series (0 if never written). */
  value(name: string, labels?: Labels): number {
    return this.#families.get(name)?.series.get(labelKey(labels))?.value ?? 0
  }

  /** Forgets every series (instruments stay registered). */
  reset(): void {
    for (const family of this.#families.values()) family.series.clear()
  }

  #family(
    name: string,
    options: InstrumentOptions,
    type: Family['type'],
    buckets: readonly number[] = [],
  ): Family {
    if (typeof name !== 'string' || !METRIC_NAME.test(name)) {
      throw invalidInput('name', `${JSON.stringify(name)} is not a valid Prometheus metric name`)
    }
    if (typeof options?.help !== 'string') throw invalidInput('options.help', 'must be a string')
    const existing = this.#families.get(name)
    if (existing) {
      if (existing.type !== type) {
        throw invalidInput('name', `${name} is already registered as a ${existing.type}`)
      }
      return existing
    }
    const family: Family = {
      name,
      help: options.help,
      type,
      buckets: [...buckets],
      series: new Map(),
    }
    this.#families.set(name, family)
    return family
  }

  #series(family: Family, labels: Labels | undefined) {
    const key = labelKey(labels, family.type === 'histogram')
    let series = family.series.get(key)
    if (!series) {
      series =
        family.type === 'histogram'
          ? {
              labels: normaliseLabels(labels),
              value: 0,
              counts: new Array(family.buckets.length + 1).fill(0),
              sum: 0,
              count: 0,
            }
          : { labels: normaliseLabels(labels), value: 0 }
      family.series.set(key, series)
    }
    return series
  }
}

function formatNumber(value: number): string {
  if (value === Number.POSITIVE_INFINITY) return '+Inf'
  if (value === Number.NEGATIVE_INFINITY) return '-Inf'
  if (Number.isNaN(value)) return 'NaN'
  return String(value)
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

function escapeHelp(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

function formatLabels(labels: Record<string, string>, extra?: [string, string]): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`)
  if (extra) parts.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`)
  return parts.length ? `{${parts.join(',')}}` : ''
}

/**
 * Renders metric families in the Prometheus text exposition format (0.0.4):
 * `# HELP` / `# TYPE` lines, escaped label values, and for histograms
 * cumulative `_bucket{le=…}` series with `_sum` and `_count`.
 */
export function renderPrometheus(source: InMemoryMeter | readonly MetricFamilySnapshot[]): string {
  const families = source instanceof InMemoryMeter ? source.snapshot() : source
  const lines: string[] = []
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`)
    lines.push(`# TYPE ${family.name} ${family.type}`)
    for (const series of family.series) {
      if (family.type === 'histogram') {
        for (const bucket of series.buckets ?? []) {
          lines.push(
            `${family.name}_bucket${formatLabels(series.labels, ['le', formatNumber(bucket.le)])} ${bucket.count}`,
          )
        }
        lines.push(
          `${family.name}_sum${formatLabels(series.labels)} ${formatNumber(series.sum ?? 0)}`,
        )
        lines.push(`${family.name}_count${formatLabels(series.labels)} ${series.count ?? 0}`)
      } else {
        lines.push(
          `${family.name}${formatLabels(series.labels)} ${formatNumber(series.value ?? 0)}`,
        )
      }
    }
  }
  return lines.length ? `${lines.join('\n')}\n` : ''
}

/** The content type of {@link renderPrometheus} output. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
