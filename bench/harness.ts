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
import { performance } from 'node:perf_hooks'
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
   * Times subject and peer in alternating rounds and records the throughput
   * (ops/s) of each.
   *
   * - Each side is run through its own compiled loop (a unique source, so V8
   *   shares no type feedback between the two: neither call site turns
   *   polymorphic because of the other library).
   * - Both sides are warmed, then each is calibrated so one round takes about
   *   `roundMs`; rounds alternate (subject, peer, peer, subject, …) so drift
   *   and load from other processes fall on both sides alike.
   * - When both sides are synchronous (a first call returns no promise) they
   *   are timed in this process's CPU time (user + system, all threads, so GC
   *   helper threads count): time spent descheduled on a shared machine is
   *   charged to nobody. When either is asynchronous, both are timed on the
   *   wall clock (an asynchronous side may wait for I/O, which CPU time would
   *   not see), and an asynchronous side is awaited call by call.
   * - Each side's value is its total operations over its total time across
   *   all rounds, so occasional expensive rounds (a full GC the side caused)
   *   count in full; the note adds the median of the paired per-round ratios
   *   and its interquartile range.
   */
  async compareOps(
    caseName: string,
    subject: { name: string; fn: () => unknown },
    peer: { name: string; fn: () => unknown },
    note?: string,
  ): Promise<Comparison | undefined> {
    if (!this.wants(caseName)) return undefined
    const quick = this.options.quick
    const roundMs = quick ? 5 : 20
    const rounds = quick ? 8 : 30
    const asyncs = [await isAsync(subject.fn), await isAsync(peer.fn)]
    const clock = asyncs[0] || asyncs[1] ? 'wall' : 'cpu'
    const sides = [
      await prepareSide(subject.fn, asyncs[0]!, clock, roundMs),
      await prepareSide(peer.fn, asyncs[1]!, clock, roundMs),
    ]
    const ops = [0, 0]
    const elapsed = [0, 0]
    const ratios: number[] = []
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? [0, 1] : [1, 0]
      const perRound = [0, 0]
      for (const index of order) {
        const side = sides[index]!
        const ms = await side.round()
        ops[index]! += side.iterations
        elapsed[index]! += ms
        perRound[index] = side.iterations / ms
      }
      ratios.push(perRound[0]! / perRound[1]!)
    }
    ratios.sort((a, b) => a - b)
    const q = (f: number) => ratios[Math.min(ratios.length - 1, Math.floor(f * ratios.length))]!
    const method = `${rounds} alternating rounds, ${clock} time; paired per-round ratio median ${q(0.5).toFixed(2)}, p25-p75 ${q(0.25).toFixed(2)}-${q(0.75).toFixed(2)}`
    return this.add({
      case: caseName,
      subject: subject.name,
      peer: peer.name,
      metric: 'ops/s',
      subjectValue: (ops[0]! / elapsed[0]!) * 1000,
      peerValue: (ops[1]! / elapsed[1]!) * 1000,
      higherIsBetter: true,
      note: note ? `${note}; ${method}` : method,
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

/**
 * CPU time of this process in ms (user + system, every thread). Synchronous
 * benchmark rounds are timed with it: on a shared machine the process is
 * often descheduled, which the wall clock would charge to whichever side
 * happened to be running.
 */
export function cpuMs(): number {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

interface PreparedSide {
  iterations: number
  /** Runs one round of `iterations` calls; resolves to the time it took in ms. */
  round(): Promise<number>
}

let loopSerial = 0

/** Calls `fn` once; true if it returned a promise (awaited here). */
async function isAsync(fn: () => unknown): Promise<boolean> {
  const first = fn()
  if (typeof (first as { then?: unknown } | undefined)?.then !== 'function') return false
  await first
  return true
}

/**
 * Compiles a timing loop for one side (a fresh function with a unique source,
 * so the call site inside sees only this side's function), warms it, and
 * calibrates how many calls make a round of about `roundMs`.
 */
async function prepareSide(
  fn: () => unknown,
  isAsync: boolean,
  clockName: 'cpu' | 'wall',
  roundMs: number,
): Promise<PreparedSide> {
  const id = ++loopSerial
  // `new Function` is used here, in benchmarks only, to get one loop per side.
  const loop = isAsync
    ? (new Function(
        'fn',
        'n',
        `// loop ${id}\nreturn (async () => { for (let i = 0; i < n; i++) await fn() })()`,
      ) as (fn: () => unknown, n: number) => Promise<void>)
    : (new Function('fn', 'n', `// loop ${id}\nfor (let i = 0; i < n; i++) fn()`) as (
        fn: () => unknown,
        n: number,
      ) => void)
  const clock = clockName === 'wall' ? () => performance.now() : cpuMs
  const timeRound = async (n: number): Promise<number> => {
    const start = clock()
    await loop(fn, n)
    return clock() - start
  }
  // Warm-up (about 5 rounds' worth, so the loop and `fn` reach optimised
  // code), then calibration: double n until a call of the loop is measurable.
  let n = 1
  let warmedMs = 0
  for (;;) {
    const ms = await timeRound(n)
    warmedMs += ms
    if (warmedMs >= 5 * roundMs && (ms >= roundMs / 4 || n >= 1 << 26)) {
      const iterations = Math.max(1, Math.round((n * roundMs) / Math.max(ms, 1e-3)))
      await timeRound(iterations)
      return {
        iterations,
        round: () => timeRound(iterations),
      }
    }
    if (ms < roundMs / 4) n *= 2
  }
}

/** Percentile (0-100) of a list of numbers (nearest rank). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]!
}
