import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { describe, expect, it } from 'vitest'
import { InMemoryMeter, noopLogger, noopMeter, renderPrometheus } from '../src/index.js'

describe('InMemoryMeter', () => {
  it('counts, gauges and observes per label set', () => {
    const meter = new InMemoryMeter()
    const requests = meter.counter('aide_requests_total', { help: 'Requests' })
    requests.inc()
    requests.inc(2, { route: '/a' })
    requests.inc(1, { route: '/a' })
    expect(meter.value('aide_requests_total')).toBe(1)
    expect(meter.value('aide_requests_total', { route: '/a' })).toBe(3)
    const inflight = meter.gauge('aide_in_flight', { help: 'In flight' })
    inflight.inc()
    inflight.inc()
    inflight.dec()
    expect(meter.value('aide_in_flight')).toBe(1)
    inflight.set(7)
    expect(meter.value('aide_in_flight')).toBe(7)
    // Asking again for a name returns the same instrument, writing the same series.
    meter.counter('aide_requests_total', { help: 'again' }).inc(1, { route: '/a' })
    expect(meter.value('aide_requests_total', { route: '/a' })).toBe(4)
  })

  it('rejects invalid names, labels, negative counter increments and type clashes', () => {
    const meter = new InMemoryMeter()
    expect(() => meter.counter('bad-name', { help: 'x' })).toThrow(
      expect.objectContaining({ code: 'E_INVALID_INPUT' }),
    )
    const counter = meter.counter('ok_total', { help: 'x' })
    expect(() => counter.inc(-1)).toThrow(/must be >= 0/)
    expect(() => counter.inc(1, { 'bad-label': 'x' })).toThrow(/labels.bad-label/)
    expect(() => counter.inc(1, { __reserved: 'x' })).toThrow(/labels.__reserved/)
    expect(() => meter.gauge('ok_total', { help: 'x' })).toThrow(/already registered as a counter/)
    expect(() => meter.histogram('h', { help: 'x', buckets: [2, 1] })).toThrow(/strictly ascending/)
  })
})

describe('renderPrometheus', () => {
  it('produces text an independent Prometheus parser accepts, with escaping and histograms', () => {
    const meter = new InMemoryMeter()
    meter
      .counter('aide_cache_hits_total', { help: 'Cache hits.\nBy tier, with a \\ backslash' })
      .inc(5, {
        tier: 'l1',
        key: 'quote " backslash \\ newline \n end',
      })
    meter.gauge('aide_pool_bytes', { help: 'Bytes held' }).set(1.5e9)
    const latency = meter.histogram('aide_request_seconds', {
      help: 'Latency',
      buckets: [0.01, 0.1, 1],
    })
    for (const v of [0.005, 0.05, 0.05, 0.5, 5]) latency.observe(v, { model: 'local' })

    const text = renderPrometheus(meter)
    expect(text).toContain('# TYPE aide_request_seconds histogram')
    expect(text).toContain('aide_request_seconds_bucket{model="local",le="+Inf"} 5')
    expect(text).toContain('key="quote \\" backslash \\\\ newline \\n end"')
    expect(text.endsWith('\n')).toBe(true)

    const parsed = parsePrometheusTextFormat(text)
    const byName = new Map(parsed.map((family) => [family.name, family]))
    const hits = byName.get('aide_cache_hits_total')!
    expect(hits.type).toBe('COUNTER')
    expect(hits.help).toBe('Cache hits.\nBy tier, with a \\ backslash')
    expect(hits.metrics[0]).toEqual({
      value: '5',
      labels: { key: 'quote " backslash \\ newline \n end', tier: 'l1' },
    })
    expect(byName.get('aide_pool_bytes')!.metrics[0]!.value).toBe('1500000000')
    const histogram = byName.get('aide_request_seconds')!
    expect(histogram.type).toBe('HISTOGRAM')
    // This parser flattens only the buckets of labelled histograms; check the rest by line.
    expect(histogram.metrics[0]!.buckets).toEqual({
      '0.01': '1',
      '0.1': '3',
      '1': '4',
      '+Inf': '5',
    })
    expect(text).toContain(
      `aide_request_seconds_sum{model="local"} ${0.005 + 0.05 + 0.05 + 0.5 + 5}`,
    )
    expect(text).toContain('aide_request_seconds_count{model="local"} 5')
  })

  it('renders an unlabelled histogram the parser reads back whole', () => {
    const meter = new InMemoryMeter()
    const sizes = meter.histogram('aide_payload_bytes', {
      help: 'Payload sizes',
      buckets: [10, 100],
    })
    for (const v of [1, 50, 500]) sizes.observe(v)
    const [family] = parsePrometheusTextFormat(renderPrometheus(meter))
    expect(family).toEqual({
      name: 'aide_payload_bytes',
      help: 'Payload sizes',
      type: 'HISTOGRAM',
      metrics: [{ buckets: { '10': '1', '100': '2', '+Inf': '3' }, count: '3', sum: '551' }],
    })
  })

  it('renders an empty meter as empty text', () => {
    expect(renderPrometheus(new InMemoryMeter())).toBe('')
  })
})

describe('no-op telemetry', () => {
  it('accepts every call shape and records nothing', () => {
    noopLogger.info('message')
    noopLogger.child({ a: 1 }).error({ err: new Error('x') }, 'failed %s', 'here')
    noopMeter.counter('x', { help: 'x' }).inc()
    noopMeter.gauge('x', { help: 'x' }).set(1)
    noopMeter.histogram('x', { help: 'x' }).observe(1)
    expect(noopLogger.child({})).toBe(noopLogger)
  })
})
