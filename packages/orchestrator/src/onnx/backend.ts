/**
 * The local ONNX backend shared by `@aide/orchestrator/onnx` and
 * `@aide/orchestrator/onnx-web`: model sources, precision variants, input
 * mapping, dynamic batching, stats and disposal. Where sessions run is the
 * job of an {@link Executor}.
 */
import {
  AideError,
  assertNumber,
  assertObject,
  type Clock,
  cancelledError,
  invalidInput,
  systemClock,
  throwIfAborted,
  withDeadline,
} from '@aide/core'
import type {
  BackendCallOptions,
  BackendRequest,
  BackendResult,
  ModelBackend,
  TensorData,
} from '../backend.js'
import { type BatchDelivery, DynamicBatcher } from './batcher.js'
import type { Executor, ModelSignature } from './runtime.js'
import {
  type DenseTensor,
  MemoryPoolTensorAllocator,
  normalizeTensor,
  type TensorAllocator,
} from './tensor.js'

/** Numeric precision of a model variant. */
export type Precision = 'fp32' | 'fp16' | 'int8'

/** All precisions, most precise first. */
export const PRECISIONS: readonly Precision[] = ['fp32', 'fp16', 'int8']

/**
 * The model bytes, or where to read them: a file path for `@aide/orchestrator/onnx`,
 * a URL (fetched) for `@aide/orchestrator/onnx-web`.
 */
export type ModelSource = string | Uint8Array | ArrayBuffer

/** Reads a model named by a string source (a path or a URL, depending on the entry). */
export type ReadModelSource = (source: string) => Promise<Uint8Array>

/** One precision variant of a model. */
export interface ModelVariant {
  /** The ONNX model (path or bytes). */
  source: ModelSource
  /**
   * Measured quality of this variant on a 0..1 scale (e.g. top-5 accuracy on
   * held-out data). Used by {@link choosePrecision} against a quality floor.
   */
  quality?: number
}

/** Dynamic batching settings. */
export interface BatchingOptions {
  /** Most rows (batch-axis entries) in one run. Default 32. */
  maxBatch?: number
  /**
   * Longest time a request waits for company when `dispatchWhenIdle` is
   * `false`, in ms. Default 1.
   */
  maxDelayMs?: number
  /**
   * Send a request at once, alone, when a session is free and nothing is
   * queued (default true): a lone caller pays no delay, and requests arriving
   * while the sessions are busy are stacked into the next batch, sent as soon
   * as one is free. `false` always waits for company, up to `maxDelayMs`.
   */
  dispatchWhenIdle?: boolean
}

/** Options shared by both ONNX backends. */
export interface LocalBackendOptions {
  /** The model: one source (used as `fp32`), or precision variants of one model. */
  model: ModelSource | Partial<Record<Precision, ModelSource | ModelVariant>>
  /** Variant used when the request does not name one. Default: the most precise available. */
  defaultPrecision?: Precision
  /** Stack concurrent requests along axis 0; `false` runs each request alone. Default on. */
  batching?: BatchingOptions | false
  /** Execution providers in order of preference; the first one available is used. Default `['cpu']`. */
  executionProviders?: readonly string[]
  /** Threads used inside one operator (onnxruntime `intraOpNumThreads`). Default 1. */
  intraOpNumThreads?: number
  /** Threads used across operators (onnxruntime `interOpNumThreads`). Default 1. */
  interOpNumThreads?: number
  /** Clock for the batching delay (a `ManualClock` in tests). */
  clock?: Clock
  /** Where batch buffers come from. Default: an `@aide/memory-pool` BufferPool owned by the backend. */
  allocator?: TensorAllocator
  /** Aborts loading the model. */
  signal?: AbortSignal
  /** Gives up loading after this many ms (E_TIMEOUT). */
  timeoutMs?: number
}

/** What {@link LocalOnnxBackend.stats} reports. */
export type LocalBackendStats = {
  kind: string
  executionProvider: string
  availableExecutionProviders: string[]
  variants: Precision[]
  defaultPrecision: Precision
  requests: number
  errors: number
  cancelled: number
  inFlight: number
  batching: ReturnType<DynamicBatcher['stats']> | false
  executor: Record<string, unknown>
  allocator: Record<string, unknown>
}

/**
 * Picks the cheapest precision whose measured quality meets `qualityFloor`
 * among the variants the hardware supports; falls back to the most precise
 * supported variant when none meets it. Variants without a quality count as
 * meeting any floor only for `fp32`.
 */
export function choosePrecision(
  variants: Partial<Record<Precision, { quality?: number }>>,
  qualityFloor = 0,
  supported: readonly Precision[] = PRECISIONS,
): Precision {
  const available = PRECISIONS.filter((p) => variants[p] !== undefined && supported.includes(p))
  if (available.length === 0) throw invalidInput('variants', 'has no variant the hardware supports')
  for (const p of [...available].reverse()) {
    const quality = variants[p]!.quality ?? (p === 'fp32' ? 1 : 0)
    if (quality >= qualityFloor) return p
  }
  return available[0]!
}

/** Precisions the CPU execution provider can run (fp16 weights are cast to fp32 in the graph). */
export function supportedPrecisions(executionProvider: string): Precision[] {
  return executionProvider === 'cpu' || executionProvider === 'wasm'
    ? ['fp32', 'fp16', 'int8']
    : ['fp32', 'fp16']
}

async function readSource(
  source: ModelSource,
  field: string,
  read: ReadModelSource,
): Promise<Uint8Array> {
  if (typeof source === 'string') {
    if (source.length === 0) throw invalidInput(field, 'must not be empty')
    try {
      return await read(source)
    } catch (error) {
      if (AideError.isInstance(error)) throw error
      throw new AideError(
        'E_NOT_FOUND',
        `onnx: cannot read the model ${source}: ${(error as Error).message}`,
        { cause: error, details: { field, source } },
      )
    }
  }
  if (source instanceof Uint8Array) return source
  if (source instanceof ArrayBuffer) return new Uint8Array(source)
  throw invalidInput(field, 'must be a file path, a Uint8Array or an ArrayBuffer')
}

function isSource(value: unknown): value is ModelSource {
  return typeof value === 'string' || value instanceof Uint8Array || value instanceof ArrayBuffer
}

/**
 * Rejects with `E_CANCELLED` as soon as `signal` aborts, without creating an
 * AbortController per call (that alone was a measurable share of a small
 * model's inference time). The work itself is not interrupted.
 */
function raceSignal<T>(
  work: Promise<T>,
  signal: AbortSignal | undefined,
  label: string,
): Promise<T> {
  if (!signal) return work
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(cancelledError(signal.reason, label))
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}

/** Validated options and the variant bytes, ready for an executor. */
export interface PreparedModel {
  models: Partial<Record<Precision, Uint8Array>>
  qualities: Partial<Record<Precision, number>>
}

/** Reads every variant's bytes and validates the options (used by both backends). */
export async function prepareModel(
  options: LocalBackendOptions,
  read: ReadModelSource,
): Promise<PreparedModel> {
  assertObject(options, 'options')
  const spec = options.model
  const entries: Array<[Precision, ModelSource | ModelVariant]> = []
  if (isSource(spec)) entries.push(['fp32', spec])
  else {
    assertObject(spec, 'options.model')
    for (const [key, value] of Object.entries(spec)) {
      if (!PRECISIONS.includes(key as Precision))
        throw invalidInput(`options.model.${key}`, `is not a precision (${PRECISIONS.join(', ')})`)
      if (value !== undefined) entries.push([key as Precision, value])
    }
    if (entries.length === 0) throw invalidInput('options.model', 'must name at least one variant')
  }
  const models: Partial<Record<Precision, Uint8Array>> = {}
  const qualities: Partial<Record<Precision, number>> = {}
  for (const [precision, value] of entries) {
    const field: string = `options.model${isSource(spec) ? '' : `.${precision}`}`
    const variant: ModelVariant = isSource(value) ? { source: value } : value
    if (!isSource(value)) {
      assertObject(value, field)
      if (value.quality !== undefined)
        assertNumber(value.quality, `${field}.quality`, { min: 0, max: 1 })
    }
    models[precision] = await readSource(
      variant.source,
      isSource(value) ? field : `${field}.source`,
      read,
    )
    if (variant.quality !== undefined) qualities[precision] = variant.quality
  }
  return { models, qualities }
}

/** Validates the numeric options shared by both backends. */
export function validateLocalOptions(options: LocalBackendOptions): void {
  if (options.intraOpNumThreads !== undefined)
    assertNumber(options.intraOpNumThreads, 'options.intraOpNumThreads', { min: 1, integer: true })
  if (options.interOpNumThreads !== undefined)
    assertNumber(options.interOpNumThreads, 'options.interOpNumThreads', { min: 1, integer: true })
  if (options.batching !== undefined && options.batching !== false) {
    assertObject(options.batching, 'options.batching')
    if (options.batching.maxBatch !== undefined)
      assertNumber(options.batching.maxBatch, 'options.batching.maxBatch', {
        min: 1,
        integer: true,
      })
    if (
      options.batching.dispatchWhenIdle !== undefined &&
      typeof options.batching.dispatchWhenIdle !== 'boolean'
    ) {
      throw invalidInput('options.batching.dispatchWhenIdle', 'must be a boolean')
    }
    if (options.batching.maxDelayMs !== undefined)
      assertNumber(options.batching.maxDelayMs, 'options.batching.maxDelayMs', { min: 0 })
  }
  if (
    options.executionProviders !== undefined &&
    (!Array.isArray(options.executionProviders) || options.executionProviders.length === 0)
  ) {
    throw invalidInput('options.executionProviders', 'must be a non-empty array of provider names')
  }
  if (options.defaultPrecision !== undefined && !PRECISIONS.includes(options.defaultPrecision)) {
    throw invalidInput('options.defaultPrecision', `must be one of ${PRECISIONS.join(', ')}`)
  }
}

/** Picks the first preferred execution provider that is available. */
export function chooseExecutionProvider(
  preferred: readonly string[],
  available: readonly string[],
): string {
  const chosen = preferred.find((p) => available.includes(p))
  if (!chosen) {
    throw new AideError(
      'E_UNAVAILABLE',
      `onnx: none of the execution providers ${preferred.join(', ')} is available here (available: ${available.join(', ')})`,
      { details: { preferred: [...preferred], available: [...available] } },
    )
  }
  return chosen
}

/**
 * A local ONNX model as a {@link ModelBackend}. Requests carry named tensors
 * in `request.input.tensors`; the result carries the output tensors. A
 * request picks a precision variant with a `#fp32` / `#fp16` / `#int8` suffix
 * on `request.model`, otherwise the default variant runs.
 */
export class LocalOnnxBackend implements ModelBackend {
  private readonly batcher: DynamicBatcher<BackendResult> | undefined
  private readonly label: string
  /** Ends a request (counters, error mapping): shared by the batcher and the unbatched path. */
  private readonly delivery: BatchDelivery<BackendResult>
  private readonly fail: (error: unknown) => never
  private readonly allocator: TensorAllocator
  private readonly ownsAllocator: boolean
  private readonly counters = { requests: 0, errors: 0, cancelled: 0, inFlight: 0 }
  private disposed = false
  private disposing: Promise<void> | undefined

  /** @internal use `createOnnxBackend` / `createOnnxWebBackend`. */
  constructor(
    readonly kind: string,
    private readonly executor: Executor,
    private readonly signatures: Partial<Record<Precision, ModelSignature>>,
    private readonly qualities: Partial<Record<Precision, number>>,
    readonly executionProvider: string,
    private readonly availableProviders: string[],
    readonly defaultPrecision: Precision,
    options: LocalBackendOptions,
    parallelism: number,
  ) {
    this.ownsAllocator = options.allocator === undefined
    this.allocator = options.allocator ?? new MemoryPoolTensorAllocator()
    this.label = `${kind}: inference`
    this.delivery = {
      result: (outputs) => {
        this.counters.inFlight--
        // Output tensors are already plain { type, data, dims } objects this call owns.
        return { output: { tensors: outputs }, finishReason: 'stop' }
      },
      failure: (error) => {
        this.counters.inFlight--
        if (AideError.isInstance(error)) {
          if (error.code === 'E_CANCELLED') this.counters.cancelled++
          else this.counters.errors++
          return error
        }
        this.counters.errors++
        return new AideError('E_MODEL', `${kind}: inference failed: ${(error as Error).message}`, {
          cause: error,
        })
      },
    }
    this.fail = (error) => {
      throw this.delivery.failure(error)
    }
    if (options.batching !== false) {
      this.batcher = new DynamicBatcher(
        {
          maxBatch: options.batching?.maxBatch ?? 32,
          maxDelayMs: options.batching?.maxDelayMs ?? 1,
          dispatchWhenIdle: options.batching?.dispatchWhenIdle ?? true,
          maxConcurrentBatches: parallelism,
          abandonRunning: executor.mode !== 'inline',
          // onnxruntime-node defers each run to an immediate queued by session.run;
          // onnxruntime-web's runs are truly asynchronous, so it keeps the turn-long hold.
          inThread: executor.mode === 'inline' && kind === 'onnx',
          clock: options.clock ?? systemClock,
          allocator: this.allocator,
        },
        (variant, feeds) => this.executor.run(variant, feeds),
        this.delivery,
      )
    }
    if (executor.mode === 'inline' && this.batcher) {
      const batcher = this.batcher
      executor.onSwitch = (threads) => batcher.reconfigure(threads, true)
    }
  }

  /** The precision variants loaded, with their measured quality when given. */
  variants(): Array<{ precision: Precision; quality?: number }> {
    return PRECISIONS.filter((p) => this.signatures[p]).map((p) =>
      this.qualities[p] === undefined
        ? { precision: p }
        : { precision: p, quality: this.qualities[p]! },
    )
  }

  /** Input and output names of a variant (default variant when omitted). */
  signature(precision: Precision = this.defaultPrecision): ModelSignature {
    const s = this.signatures[precision]
    if (!s)
      throw invalidInput(
        'precision',
        `is not a loaded variant (${this.variants()
          .map((v) => v.precision)
          .join(', ')})`,
      )
    return { inputNames: [...s.inputNames], outputNames: [...s.outputNames] }
  }

  private resolvePrecision(model: string): Precision {
    // indexOf first: lastIndexOf has no fast path in V8, and most names carry no suffix.
    if (model.indexOf('#') < 0) return this.defaultPrecision
    const hash = model.lastIndexOf('#')
    const precision = model.slice(hash + 1) as Precision
    if (!this.signatures[precision]) {
      throw invalidInput(
        'request.model',
        `names variant "${precision}", which is not loaded (${this.variants()
          .map((v) => v.precision)
          .join(', ')})`,
      )
    }
    return precision
  }

  invoke(request: BackendRequest, options: BackendCallOptions): Promise<BackendResult> {
    let precision: Precision
    let feeds: Record<string, DenseTensor>
    const signal = options?.signal
    try {
      assertObject(request, 'request')
      assertObject(request.input, 'request.input')
      if (typeof request.model !== 'string') throw invalidInput('request.model', 'must be a string')
      if (this.disposed) throw new AideError('E_DISPOSED', `${this.kind}: the backend is disposed`)
      throwIfAborted(signal, this.label)
      precision = this.resolvePrecision(request.model)
      feeds = this.mapInputs(request.input.tensors, precision)
    } catch (error) {
      return Promise.reject(error)
    }
    this.counters.requests++
    this.counters.inFlight++
    if (this.batcher) {
      const rows = DynamicBatcher.rowsOf(feeds)
      if (rows !== undefined) return this.batcher.submit(precision, feeds, rows, signal)
    }
    let work: Promise<Record<string, DenseTensor>>
    try {
      work = this.executor.run(precision, feeds)
    } catch (error) {
      work = Promise.reject(error)
    }
    if (this.executor.mode !== 'inline') work = raceSignal(work, signal, this.label)
    else if (signal) {
      // An in-thread run cannot be interrupted and finishes before an abort could be seen;
      // skip the listener bookkeeping and drop the result if the caller left meanwhile.
      return work.then((outputs) => {
        if (signal.aborted) throw this.delivery.failure(cancelledError(signal.reason, this.label))
        return this.delivery.result(outputs)
      }, this.fail)
    }
    return work.then(this.delivery.result, this.fail)
  }

  private mapInputs(
    tensors: ModelInputTensors | undefined,
    precision: Precision,
  ): Record<string, DenseTensor> {
    if (tensors === undefined)
      throw invalidInput('request.input.tensors', 'is required by a local ONNX model')
    assertObject(tensors, 'request.input.tensors')
    const names = this.signatures[precision]!.inputNames
    for (const name in tensors) {
      if (Object.hasOwn(tensors, name) && !names.includes(name)) {
        throw invalidInput(
          `request.input.tensors.${name}`,
          `is not an input of the model (inputs: ${names.join(', ')})`,
        )
      }
    }
    const feeds: Record<string, DenseTensor> = {}
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!
      const tensor = Object.hasOwn(tensors, name) ? tensors[name] : undefined
      if (tensor === undefined)
        throw invalidInput(`request.input.tensors.${name}`, 'is required by the model')
      feeds[name] = normalizeTensor(tensor, 'request.input.tensors.', name)
    }
    return feeds
  }

  stats(): LocalBackendStats {
    return {
      kind: this.kind,
      executionProvider: this.executionProvider,
      availableExecutionProviders: [...this.availableProviders],
      variants: this.variants().map((v) => v.precision),
      defaultPrecision: this.defaultPrecision,
      ...this.counters,
      batching: this.batcher ? this.batcher.stats() : false,
      executor: this.executor.stats(),
      allocator: this.allocator.stats?.() ?? {},
    }
  }

  /** Releases the sessions and worker threads. Idempotent. */
  dispose(): Promise<void> {
    this.disposing ??= (async () => {
      this.disposed = true
      this.batcher?.close(new AideError('E_DISPOSED', `${this.kind}: the backend was disposed`))
      await this.executor.dispose()
      if (this.ownsAllocator) this.allocator.dispose?.()
    })()
    return this.disposing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose()
  }
}

type ModelInputTensors = Readonly<Record<string, TensorData>>

/**
 * Runs a backend factory under the caller's `signal` / `timeoutMs` (measured
 * on `options.clock`), covering reading the files, loading the runtime and
 * creating the sessions.
 */
export function loadWithinDeadline(
  kind: string,
  options: LocalBackendOptions,
  build: (signal: AbortSignal) => Promise<LocalOnnxBackend>,
): Promise<LocalOnnxBackend> {
  return withDeadline(build, {
    signal: options.signal,
    timeoutMs: options.timeoutMs,
    clock: options.clock ?? systemClock,
    label: `${kind}: loading the model`,
  })
}

/** Shared construction of both backends once an executor exists. */
export async function startLocalBackend(
  kind: string,
  options: LocalBackendOptions,
  prepared: PreparedModel,
  executor: Executor,
  executionProvider: string,
  availableProviders: string[],
  parallelism: number,
  signal: AbortSignal,
): Promise<LocalOnnxBackend> {
  let signatures: Record<string, ModelSignature>
  // A caller that gives up (abort or deadline) must not leave sessions or workers behind.
  const onAbort = () => void executor.dispose()
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    signatures = await executor.load()
  } catch (error) {
    await executor.dispose()
    if (AideError.isInstance(error)) throw error
    throw new AideError(
      'E_MODEL',
      `${kind}: the model could not be loaded: ${(error as Error).message}`,
      { cause: error },
    )
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
  if (signal.aborted) {
    await executor.dispose()
    throw cancelledError(signal.reason, `${kind}: loading the model`)
  }
  const loaded = PRECISIONS.filter((p) => prepared.models[p])
  const supported = supportedPrecisions(executionProvider)
  const defaultPrecision =
    options.defaultPrecision ?? loaded.find((p) => supported.includes(p)) ?? loaded[0]!
  if (!prepared.models[defaultPrecision]) {
    await executor.dispose()
    throw invalidInput(
      'options.defaultPrecision',
      `names "${defaultPrecision}", which is not among the variants`,
    )
  }
  return new LocalOnnxBackend(
    kind,
    executor,
    signatures,
    prepared.qualities,
    executionProvider,
    availableProviders,
    defaultPrecision,
    options,
    parallelism,
  )
}
