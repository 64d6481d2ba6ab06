/**
 * `execution: 'auto'` (the default of `@aide/orchestrator/onnx`): sessions run
 * on the calling thread while their runs are short, and move to worker threads
 * when they are not.
 *
 * onnxruntime-node's `session.run` blocks the thread it runs on for the whole
 * inference. For a small model that block is shorter than a worker round trip
 * (the shipped completion model runs in ~40 µs, a thread hop costs ~80 µs), so
 * moving it would double the cost for no gain in responsiveness; a 50 ms model
 * on the event loop, on the other hand, stalls every other callback for 50 ms.
 *
 * The rule: each in-thread run is timed from its call to its result (cheap; an
 * upper bound, since it includes whatever else the event loop did in between).
 * A run that looks slow that way turns on precise timing for the next
 * {@link WINDOW} runs: from an immediate queued just before onnxruntime's own
 * to the result, i.e. the run itself. When 5 of the last 8 precisely timed runs
 * blocked for more than `maxBlockingMs`, a worker pool is started (lazily, in
 * the background); requests keep running in-thread until it is ready, then
 * every later run goes to the workers. Runs already under way in-thread finish
 * there, and the in-thread sessions are released once they have. The switch is
 * one-way and recorded in `stats()` (when, why, the longest run seen); nothing
 * is emitted or logged on the hot path. Needing a majority of slow runs (5 of
 * 8) keeps hiccups (GC pauses, the OS descheduling the process on a busy
 * machine) from moving a fast model: with 3 of 8, a benchmark on a loaded
 * 2-core machine moved the 40 µs shipped model to workers and lost 4x
 * throughput. A model whose every run is slow still moves after 5 runs, and a
 * busy event loop alone (slow call-to-result times, short runs) never moves it.
 */
import type { Executor, InlineExecutor, InlineRunObserver, ModelSignature } from './runtime.js'
import type { DenseTensor } from './tensor.js'

/** Slow runs among the last {@link WINDOW} that move a backend to worker threads. */
export const SLOW_RUNS_TO_SWITCH = 5
/** How many recent in-thread runs the switch rule looks at. */
export const WINDOW = 8
const WINDOW_MASK = (1 << WINDOW) - 1

function bitCount(bits: number): number {
  let count = 0
  for (let b = bits; b !== 0; b &= b - 1) count++
  return count
}

/** Stats of an {@link AutoExecutor}. */
export type AutoExecutorStats = {
  mode: 'auto'
  /** Where runs go now. */
  running: 'inline' | 'worker'
  maxBlockingMs: number
  /** Runs made on the calling thread. */
  inlineRuns: number
  /** Longest precisely timed in-thread run, in ms (0 while no run looked slow). */
  longestInlineRunMs: number
  /** Set once the backend decided to move to worker threads. */
  switch?: {
    reason: string
    /** `Date.now()` when the decision was taken. */
    decidedAt: number
    /** `Date.now()` when the workers took over (absent while they start). */
    switchedAt?: number
    /** Why the workers could not start (runs then stay in-thread). */
    failed?: string
  }
  /** The worker pool's own stats, once started. */
  worker?: Record<string, unknown>
}

/** See the module comment. */
export class AutoExecutor implements Executor, InlineRunObserver {
  private current: 'inline' | 'worker' = 'inline'
  private worker: Executor | undefined
  private workerLoading: Promise<unknown> | undefined
  private inlineReleased: Promise<void> | undefined
  /** Precisely timed runs still to make before going back to call-to-result timing. */
  private preciseLeft = 0
  private slowBits = 0
  private longest = 0
  private decision: NonNullable<AutoExecutorStats['switch']> | undefined
  private disposed = false

  /** Called once the worker pool has taken over, with its parallelism. */
  onSwitch: ((parallelism: number) => void) | undefined

  constructor(
    private readonly inline: InlineExecutor,
    private readonly createWorker: () => Executor,
    private readonly threads: number,
    private readonly maxBlockingMs: number,
  ) {
    inline.observer = this
  }

  get mode(): 'inline' | 'worker' {
    return this.current
  }

  /** @internal {@link InlineRunObserver} */
  get precise(): boolean {
    return this.preciseLeft > 0
  }

  load(): Promise<Record<string, ModelSignature>> {
    return this.inline.load()
  }

  run(variant: string, feeds: Record<string, DenseTensor>): Promise<Record<string, DenseTensor>> {
    if (this.current === 'inline') return this.inline.run(variant, feeds)
    if (this.inlineReleased === undefined && this.inline.inFlight === 0) this.releaseInline()
    return this.worker!.run(variant, feeds)
  }

  /** @internal {@link InlineRunObserver}: an in-thread run took `ms`. */
  ran(ms: number, precise: boolean): void {
    if (ms > this.longest && precise) this.longest = ms
    if (!precise) {
      if (ms > this.maxBlockingMs) this.preciseLeft = WINDOW
      return
    }
    this.preciseLeft--
    const slow = ms > this.maxBlockingMs ? 1 : 0
    this.slowBits = ((this.slowBits << 1) | slow) & WINDOW_MASK
    if (slow) {
      this.preciseLeft = WINDOW
      if (this.decision === undefined && bitCount(this.slowBits) >= SLOW_RUNS_TO_SWITCH)
        this.startWorkers(ms)
    }
  }

  private startWorkers(lastMs: number): void {
    this.decision = {
      reason: `${SLOW_RUNS_TO_SWITCH} of the last ${WINDOW} in-thread runs blocked the event loop for more than maxBlockingMs (${this.maxBlockingMs} ms); the last took ${lastMs.toFixed(2)} ms`,
      decidedAt: Date.now(),
    }
    const worker = this.createWorker()
    this.worker = worker
    this.workerLoading = worker.load().then(
      () => {
        if (this.disposed) return
        this.current = 'worker'
        this.decision!.switchedAt = Date.now()
        this.onSwitch?.(this.threads)
        if (this.inline.inFlight === 0) this.releaseInline()
      },
      (error: unknown) => {
        this.decision!.failed = (error as Error).message
        this.worker = undefined
        void worker.dispose()
      },
    )
  }

  private releaseInline(): void {
    this.inlineReleased ??= this.inline.dispose()
  }

  async dispose(): Promise<void> {
    if (this.disposed) return
    this.disposed = true
    await this.workerLoading
    const worker = this.worker
    this.worker = undefined
    await Promise.all([worker?.dispose(), this.inlineReleased ?? this.inline.dispose()])
  }

  stats(): AutoExecutorStats {
    const inline = this.inline.stats() as { runs: number }
    const stats: AutoExecutorStats = {
      mode: 'auto',
      running: this.current,
      maxBlockingMs: this.maxBlockingMs,
      inlineRuns: inline.runs,
      longestInlineRunMs: this.longest,
    }
    if (this.decision) stats.switch = { ...this.decision }
    if (this.worker) stats.worker = this.worker.stats()
    return stats
  }
}
