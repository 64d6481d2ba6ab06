/**
 * Publishing a component's counters to a core `Meter` on a timer, never on
 * the hot path. Shared by `BufferPool` and `WorkspaceMemory`.
 */
import {
  assertFunction,
  assertNumber,
  assertObject,
  type Clock,
  type Labels,
  type Meter,
  type TimerHandle,
} from '@aide/core'

/** One published series: a gauge set to a current value, or a counter fed the growth of a running total. */
export interface MetricSpec {
  kind: 'gauge' | 'counter'
  name: string
  help: string
  unit?: string
  /** Reads the current value (gauge) or running total (counter). */
  read: () => number
}

/** Checks the `meter` and `metricsIntervalMs` options every metered component takes. */
export function assertMeterOptions(meter: Meter, intervalMs: number): void {
  assertObject(meter, 'options.meter')
  assertFunction(meter.counter, 'options.meter.counter')
  assertFunction(meter.gauge, 'options.meter.gauge')
  assertNumber(intervalMs, 'options.metricsIntervalMs', { min: 1 })
}

/**
 * Registers the series and returns a publisher: call `publish()` to push the
 * current values now; `dispose()` stops the timer and publishes once more.
 */
export function startMetrics(
  meter: Meter,
  labels: Labels,
  specs: readonly MetricSpec[],
  clock: Clock,
  intervalMs: number,
): { publish(): void; dispose(): void } {
  const series = specs.map((spec) => {
    const options = spec.unit ? { help: spec.help, unit: spec.unit } : { help: spec.help }
    if (spec.kind === 'gauge') {
      const gauge = meter.gauge(spec.name, options)
      return () => gauge.set(spec.read(), labels)
    }
    const counter = meter.counter(spec.name, options)
    let published = 0
    return () => {
      const total = spec.read()
      if (total > published) counter.inc(total - published, labels)
      published = total
    }
  })
  const publish = () => {
    for (const update of series) update()
  }
  let timer: TimerHandle | undefined = clock.setInterval(publish, intervalMs)
  return {
    publish,
    dispose() {
      if (timer === undefined) return
      clock.clearTimer(timer)
      timer = undefined
      publish()
    },
  }
}
