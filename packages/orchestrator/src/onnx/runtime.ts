/**
 * The slice of the onnxruntime JavaScript API (shared by onnxruntime-node and
 * onnxruntime-web) that the backends use, and the in-thread executor. The lazy
 * loaders of the two optional peers live in their own modules (`load-node.ts`,
 * `load-web.ts`), so a browser bundle of `@aide/orchestrator/onnx-web` never
 * references onnxruntime-node.
 */
import { AideError } from '@aide/core'
import type { DenseTensor, TypedArray } from './tensor.js'

/** Minimal shape of an onnxruntime `Tensor`. */
export interface OrtTensor {
  readonly type: string
  readonly dims: readonly number[]
  readonly data: unknown
  dispose?(): void
}

/** Minimal shape of an onnxruntime `InferenceSession`. */
export interface OrtSession {
  readonly inputNames: readonly string[]
  readonly outputNames: readonly string[]
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>
  release(): Promise<void>
}

/** Minimal shape of an onnxruntime module (node or web). */
export interface OrtModule {
  InferenceSession: {
    create(model: Uint8Array, options?: Record<string, unknown>): Promise<OrtSession>
  }
  Tensor: new (type: string, data: unknown, dims: readonly number[]) => OrtTensor
  listSupportedBackends?: () => Array<{ name: string; bundled?: boolean }>
  env?: Record<string, any>
}

/** Session settings the backends pass to onnxruntime. */
export interface SessionSettings {
  executionProviders: string[]
  intraOpNumThreads?: number
  interOpNumThreads?: number
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all'
}

/** The error for a missing optional runtime peer, saying what to install. */
export function unavailable(name: string, subpath: string, cause: unknown): AideError {
  return new AideError(
    'E_UNAVAILABLE',
    `orchestrator: cannot import \`${name}\`. Install it (\`npm i ${name}\`) to use \`@aide/orchestrator/${subpath}\`.`,
    { cause, details: { package: name } },
  )
}

/** Input and output names of a loaded model variant. */
export interface ModelSignature {
  inputNames: string[]
  outputNames: string[]
}

/** Where sessions live and run: in this thread or in worker threads. */
export interface Executor {
  /** Where runs go now (an `'auto'` executor starts `'inline'` and may move to `'worker'`). */
  readonly mode: 'inline' | 'worker'
  /** Set by the backend: called when runs move to worker threads, with their parallelism. */
  onSwitch?: ((parallelism: number) => void) | undefined
  /** Creates (once) the sessions of every variant and returns their signatures. */
  load(): Promise<Record<string, ModelSignature>>
  run(variant: string, feeds: Record<string, DenseTensor>): Promise<Record<string, DenseTensor>>
  dispose(): Promise<void>
  stats(): Record<string, unknown>
}

/** Converts an onnxruntime output tensor to a dense tensor we own. */
export function fromOrtTensor(tensor: OrtTensor): DenseTensor {
  // onnxruntime builds a fresh dims array per output tensor; it is ours to keep.
  return { type: tensor.type, dims: tensor.dims as number[], data: tensor.data as TypedArray }
}

/**
 * Told how long each in-thread run took (used by `execution: 'auto'`). With
 * `precise`, a run is timed from an immediate queued just before
 * onnxruntime's own, so the time is the run's, not whatever the event loop did
 * between the call and the run; otherwise from the call (cheaper, an upper bound).
 */
export interface InlineRunObserver {
  readonly precise: boolean
  ran(ms: number, precise: boolean): void
}

/** Runs sessions on the calling thread (onnxruntime-web, or onnxruntime-node with `execution: 'inline'` or `'auto'`). */
export class InlineExecutor implements Executor {
  readonly mode = 'inline' as const
  private sessions: Map<string, OrtSession> | undefined
  private loading: Promise<Record<string, ModelSignature>> | undefined
  private runs = 0
  private disposed = false
  /** Runs under way. */
  inFlight = 0
  observer: InlineRunObserver | undefined
  private markedAt = 0
  private readonly mark = () => {
    this.markedAt = performance.now()
  }
  /**
   * When each run under way started (-1: precisely timed, see `mark`), oldest
   * first. onnxruntime-node runs in-thread runs one at a time in the order
   * they were called, each from its own immediate, so they also finish in
   * that order: a ring of start times replaces a closure per run. (A run that
   * onnxruntime rejects before queuing it, e.g. a missing input, would finish
   * out of turn; the backend validates inputs first, and a mismatch would only
   * misattribute one timing, never a result.)
   */
  private startedAt = new Float64Array(16)
  private startedHead = 0
  private startedCount = 0
  private readonly converted = (
    outputs: Record<string, OrtTensor>,
  ): Record<string, DenseTensor> => {
    this.inFlight--
    const result: Record<string, DenseTensor> = {}
    for (const name in outputs) result[name] = fromOrtTensor(outputs[name]!)
    if (this.startedCount > 0) this.timed()
    return result
  }
  private readonly failed = (error: unknown): never => {
    this.inFlight--
    if (this.startedCount > 0) this.timed()
    throw error
  }

  constructor(
    private readonly ort: OrtModule,
    private readonly models: Record<string, Uint8Array>,
    private readonly settings: SessionSettings,
  ) {}

  load(): Promise<Record<string, ModelSignature>> {
    this.loading ??= (async () => {
      const sessions = new Map<string, OrtSession>()
      const signatures: Record<string, ModelSignature> = {}
      try {
        for (const [variant, bytes] of Object.entries(this.models)) {
          const session = await this.ort.InferenceSession.create(bytes, { ...this.settings })
          sessions.set(variant, session)
          if (this.disposed) throw new AideError('E_DISPOSED', 'onnx: disposed while loading')
          signatures[variant] = {
            inputNames: [...session.inputNames],
            outputNames: [...session.outputNames],
          }
        }
      } catch (error) {
        for (const s of sessions.values()) await s.release().catch(() => undefined)
        throw error
      }
      this.sessions = sessions
      return signatures
    })()
    return this.loading
  }

  run(variant: string, feeds: Record<string, DenseTensor>): Promise<Record<string, DenseTensor>> {
    const session = this.sessions?.get(variant)
    if (!session)
      return Promise.reject(
        new AideError('E_DISPOSED', `onnx: the session for variant "${variant}" is not loaded`),
      )
    let work: Promise<Record<string, OrtTensor>>
    const observer = this.observer
    try {
      const inputs: Record<string, OrtTensor> = {}
      for (const name in feeds) {
        const t = feeds[name]!
        inputs[name] = new this.ort.Tensor(t.type, t.data, t.dims)
      }
      this.runs++
      let started = -1
      if (observer) {
        if (observer.precise) setImmediate(this.mark)
        else started = performance.now()
      }
      work = session.run(inputs)
      if (observer) this.pushStart(started)
    } catch (error) {
      return Promise.reject(error)
    }
    this.inFlight++
    return work.then(this.converted, this.failed)
  }

  private pushStart(time: number): void {
    let ring = this.startedAt
    if (this.startedCount === ring.length) {
      const grown = new Float64Array(ring.length * 2)
      for (let i = 0; i < this.startedCount; i++)
        grown[i] = ring[(this.startedHead + i) % ring.length]!
      this.startedAt = ring = grown
      this.startedHead = 0
    }
    ring[(this.startedHead + this.startedCount) % ring.length] = time
    this.startedCount++
  }

  /** A run finished: tell the observer how long it took. */
  private timed(): void {
    const started = this.startedAt[this.startedHead]!
    this.startedHead = (this.startedHead + 1) % this.startedAt.length
    this.startedCount--
    const precise = started < 0
    this.observer?.ran(performance.now() - (precise ? this.markedAt : started), precise)
  }

  async dispose(): Promise<void> {
    this.disposed = true
    const sessions = this.sessions
    this.sessions = undefined
    if (sessions) for (const s of sessions.values()) await s.release().catch(() => undefined)
  }

  stats(): Record<string, unknown> {
    return { mode: this.mode, runs: this.runs }
  }
}
