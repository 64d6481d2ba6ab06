/**
 * Chrome trace-event format (the JSON that chrome://tracing and Perfetto open).
 * See "Trace Event Format" (Google): complete events have `ph: 'X'`, `ts` and
 * `dur` in microseconds.
 */

/** One trace event. */
export interface TraceEvent {
  /** Event name: the service id. */
  name: string
  /** Category, e.g. `service.init` or `service.wait`. */
  cat: string
  /** Phase: `X` for a complete event, `M` for metadata. */
  ph: 'X' | 'M' | 'i'
  /** Start, microseconds from the manager's creation. */
  ts: number
  /** Duration in microseconds (complete events). */
  dur?: number
  pid: number
  tid: number
  /** Instant-event scope (`i` events). */
  s?: 't' | 'p' | 'g'
  args?: Record<string, unknown>
}

/** A whole trace document. */
export interface TraceDocument {
  traceEvents: TraceEvent[]
  displayTimeUnit: 'ms' | 'ns'
  otherData?: Record<string, unknown>
}

/** A span recorded by the service manager, in milliseconds from its origin. */
export interface TraceSpan {
  name: string
  category: string
  startMs: number
  endMs: number
  args?: Record<string, unknown>
}

/**
 * Lays spans out on lanes (threads in the viewer) so overlapping spans never
 * share a lane, and renders the trace document.
 */
export function toTraceDocument(
  spans: readonly TraceSpan[],
  processName = 'aide services',
): TraceDocument {
  const sorted = [...spans].sort((a, b) => a.startMs - b.startMs || b.endMs - a.endMs)
  const laneEnds: number[] = []
  const events: TraceEvent[] = [
    {
      name: 'process_name',
      cat: '__metadata',
      ph: 'M',
      ts: 0,
      pid: 1,
      tid: 0,
      args: { name: processName },
    },
  ]
  for (const span of sorted) {
    let lane = laneEnds.findIndex((end) => end <= span.startMs)
    if (lane < 0) {
      lane = laneEnds.length
      laneEnds.push(span.endMs)
      events.push({
        name: 'thread_name',
        cat: '__metadata',
        ph: 'M',
        ts: 0,
        pid: 1,
        tid: lane + 1,
        args: { name: `lane ${lane + 1}` },
      })
    } else {
      laneEnds[lane] = span.endMs
    }
    events.push({
      name: span.name,
      cat: span.category,
      ph: 'X',
      ts: Math.round(span.startMs * 1000),
      dur: Math.max(0, Math.round((span.endMs - span.startMs) * 1000)),
      pid: 1,
      tid: lane + 1,
      ...(span.args ? { args: span.args } : {}),
    })
  }
  return { traceEvents: events, displayTimeUnit: 'ms' }
}
