/**
 * The one benchmark harness every package uses. A benchmark compares a subject
 * (an aide component) with a named peer in the same process and run, prints a
 * table of ratios, and with `--json FILE` appends one JSON object per
 * comparison (the shape in DESIGN.md), so one report can gather them all.
 *
 * Benchmarks report; they never assert a time.
 */
import { appendFileSync, mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { do_not_optimize, measure } from 'mitata'

export { do_not_optimize }

/** One comparison row, exactly as written to the `--json` file. */
export interface Comparison {
  suite: string
  case: string
  subject: string
  peer: string
  metric: string
  subjectValue: number
  peerValue: number
  /** subjectValue / peerValue when higher is better, peerValue / subjectValue otherwise: > 1 means the subject wins. */
  ratio: number
  higherIsBetter: boolean
  /** Free-form notes (sizes, settings). */
  note?: string
}

/** Parsed command-line options common to every bench script. */
export interface BenchOptions {
  /** Append JSON lines here. */
  json: string | undefined
  /** Shorter runs (CI smoke, `--quick`). */
  quick: boolean
  /** Only run cases whose name contains this. */
  filter: string | undefined
  /** Other `--key value` pairs (e.g. `--traces DIR`). */
  extra: Record<string, string | true>
}

/** Reads `--json FILE`, `--quick`, `--filter TEXT` and any other `--key [value]`. */
export function parseBenchArgs(argv: readonly string[] = process.argv.slice(2)): BenchOptions {
  const options: BenchOptions = { json: undefined, quick: false, filter: undefined, extra: {} }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith('--')) continue
    const key = arg.slice(2)
    const next = argv[i + 1]
    const takesValue = next !== undefined && !next.startsWith('--')
    const value = takesValue ? next : true
    if (takesValue) i++
    if (key === '') continue
    if (key === 'json' && typeof value === 'string') options.json = resolve(value)
    else if (key === 'quick') options.quick = true
    else if (key === 'filter' && typeof value === 'string') options.filter = value
    else options.extra[key] = value
  }
  if (process.env.AIDE_BENCH_QUICK === '1') options.quick = true
  return options
}

/** Timing statistics of one measured function, in nanoseconds per call. */
export interface Timing {
  avgNs: number
  p50Ns: number
  p99Ns: number
  p999Ns: number
  opsPerSec: number
  samples: number
}

/** Measures a function (sync or async) with mitata. */
export async function time(fn: () => unknown, options: { quick?: boolean } = {}): Promise<Timing> {
  const stats = await measure(fn, {
    min_cpu_time: (options.quick ? 50 : 400) * 1e6,
    max_samples: options.quick ? 2_000 : 100_000,
  })
  return {
    avgNs: stats.avg,
    p50Ns: stats.p50,
    p99Ns: stats.p99,
    p999Ns: stats.p999,
    opsPerSec: 1e9 / stats.avg,
    samples: stats.samples.length,
  }
}

/** Collects comparisons for one suite, prints them, and writes JSON lines. */
export class BenchReport {
  readonly rows: Comparison[] = []

  constructor(
    readonly suite: string,
    readonly options: BenchOptions = parseBenchArgs(),
  ) {}

  /** Whether a case passes `--filter`. */
  wants(caseName: string): boolean {
    return !this.options.filter || caseName.includes(this.options.filter)
  }

  /** Records one comparison (the ratio is computed here). */
  add(row: Omit<Comparison, 'suite' | 'ratio'>): Comparison {
    const ratio = row.higherIsBetter
      ? row.subjectValue / row.peerValue
      : row.peerValue / row.subjectValue
    const full: Comparison = {
      suite: this.suite,
      ...row,
      ratio: Number.isFinite(ratio) ? ratio : 0,
    }
    this.rows.push(full)
    const fmt = (v: number) =>
      Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3)
    console.log(
      `${this.suite.padEnd(12)} ${row.case.padEnd(36)} ${row.subject} ${fmt(row.subjectValue)} vs ${row.peer} ${fmt(row.peerValue)} ${row.metric}  ratio ${full.ratio.toFixed(2)}x${full.ratio >= 1 ? '' : ' (peer ahead)'}${row.note ? `  [${row.note}]` : ''}`,
    )
    if (this.options.json) {
      mkdirSync(dirname(this.options.json), { recursive: true })
      appendFileSync(this.options.json, `${JSON.stringify(full)}\n`)
    }
    return full
  }

  /**
   * Times subject and peer (alternating, twice each, keeping the better run)
   * and records ops/s for both.
   */
  async compareOps(
    caseName: string,
    subject: { name: string; fn: () => unknown },
    peer: { name: string; fn: () => unknown },
    note?: string,
  ): Promise<Comparison | undefined> {
    if (!this.wants(caseName)) return undefined
    const quick = this.options.quick
    let s = await time(subject.fn, { quick })
    let p = await time(peer.fn, { quick })
    if (!quick) {
      const s2 = await time(subject.fn, { quick })
      const p2 = await time(peer.fn, { quick })
      if (s2.avgNs < s.avgNs) s = s2
      if (p2.avgNs < p.avgNs) p = p2
    }
    return this.add({
      case: caseName,
      subject: subject.name,
      peer: peer.name,
      metric: 'ops/s',
      subjectValue: s.opsPerSec,
      peerValue: p.opsPerSec,
      higherIsBetter: true,
      ...(note ? { note } : {}),
    })
  }

  /** Prints a closing summary table. */
  summary(): void {
    if (this.rows.length === 0) return
    console.log(`\n${this.suite}: ${this.rows.length} comparisons`)
    console.table(
      this.rows.map((r) => ({
        case: r.case,
        subject: r.subject,
        peer: r.peer,
        metric: r.metric,
        subject_value: Number(r.subjectValue.toPrecision(4)),
        peer_value: Number(r.peerValue.toPrecision(4)),
        ratio: Number(r.ratio.toFixed(2)),
      })),
    )
  }
}

/** Percentile (0-100) of a list of numbers (nearest rank). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]!
}
