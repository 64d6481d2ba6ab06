/**
 * Tensor validation, stacking along the batch axis, and splitting back.
 * Batch buffers come from a {@link TensorAllocator}, so a pool can back them.
 */
import { invalidInput } from '@aide/core'
import { BufferPool, type ElementKind, type PoolHandle } from '@aide/memory-pool'
import type { TensorData } from '../backend.js'

/** Typed arrays a tensor may hold. */
export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array

type TypedArrayConstructor = {
  new (length: number): TypedArray
  from(values: ArrayLike<any>): TypedArray
  BYTES_PER_ELEMENT: number
}

const CONSTRUCTORS: Record<string, TypedArrayConstructor> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array as unknown as TypedArrayConstructor,
  uint64: BigUint64Array as unknown as TypedArrayConstructor,
  bool: Uint8Array,
}

/** Element types accepted in request tensors. */
export const TENSOR_TYPES: readonly string[] = Object.keys(CONSTRUCTORS)

/** A validated tensor with a typed-array payload. */
export interface DenseTensor {
  type: string
  data: TypedArray
  dims: number[]
}

function fieldOf(field: string, name: string | undefined, suffix = ''): string {
  return (name === undefined ? field : field + name) + suffix
}

/**
 * Validates a request tensor and converts plain arrays to the matching typed
 * array. The field named in errors is `field`, followed by `name` when given
 * (joined only when an error is thrown: building it per request was garbage).
 */
export function normalizeTensor(value: TensorData, field: string, name?: string): DenseTensor {
  if (typeof value !== 'object' || value === null)
    throw invalidInput(fieldOf(field, name), 'must be a tensor object')
  const Ctor = CONSTRUCTORS[value.type]
  if (!Ctor)
    throw invalidInput(
      fieldOf(field, name, '.type'),
      `must be one of ${TENSOR_TYPES.join(', ')}, got ${JSON.stringify(value.type)}`,
    )
  if (!Array.isArray(value.dims))
    throw invalidInput(fieldOf(field, name, '.dims'), 'must be an array of non-negative integers')
  // The caller's dims array is kept, not copied (like its data): a request's tensors
  // must not change while it is in flight.
  const dims = value.dims as number[]
  let count = 1
  for (let i = 0; i < dims.length; i++) {
    const d = dims[i]!
    if (!Number.isInteger(d) || d < 0)
      throw invalidInput(fieldOf(field, name, '.dims'), 'must be an array of non-negative integers')
    count *= d
  }
  let data: TypedArray
  const raw = value.data as unknown
  if (ArrayBuffer.isView(raw) && !(raw instanceof DataView)) {
    if (!(raw instanceof (Ctor as unknown as new () => TypedArray))) {
      throw invalidInput(
        fieldOf(field, name, '.data'),
        `must be a ${Ctor.name} for type ${value.type}`,
      )
    }
    data = raw as TypedArray
  } else if (Array.isArray(raw)) {
    try {
      const bigint = value.type === 'int64' || value.type === 'uint64'
      data = Ctor.from(bigint ? raw.map((v) => BigInt(v)) : raw.map((v) => Number(v)))
    } catch (error) {
      throw invalidInput(
        fieldOf(field, name, '.data'),
        `has values that are not valid ${value.type}: ${(error as Error).message}`,
      )
    }
  } else {
    throw invalidInput(
      fieldOf(field, name, '.data'),
      'must be a typed array or an array of numbers',
    )
  }
  if (data.length !== count) {
    throw invalidInput(
      fieldOf(field, name, '.data'),
      `has ${data.length} elements but dims [${dims.join(', ')}] need ${count}`,
    )
  }
  return { type: value.type, data, dims }
}

/** A buffer lent by a {@link TensorAllocator}; `release()` gives it back. */
export interface TensorLease {
  data: TypedArray
  release(): void
}

/**
 * Where batch tensors are allocated. The default allocates on the heap; a
 * pooled allocator reuses buffers between batches.
 */
export interface TensorAllocator {
  allocate(type: string, length: number): TensorLease
  stats?(): Record<string, unknown>
  dispose?(): void
}

/** Plain heap allocation (what the runtime would do anyway). */
export const heapAllocator: TensorAllocator = {
  allocate(type, length) {
    const Ctor = CONSTRUCTORS[type]!
    return { data: new Ctor(length), release() {} }
  },
}

const POOL_KINDS: Record<string, ElementKind> = {
  float32: 'float32',
  float64: 'float64',
  float16: 'uint16',
  int8: 'int8',
  uint8: 'uint8',
  int16: 'int16',
  uint16: 'uint16',
  int32: 'int32',
  uint32: 'uint32',
  int64: 'bigint64',
  uint64: 'biguint64',
  bool: 'uint8',
}

/** A pooled batch buffer; a class rather than a closure per lease. */
class PoolLease implements TensorLease {
  constructor(
    private readonly handle: PoolHandle,
    readonly data: TypedArray,
  ) {}

  release(): void {
    this.handle.release()
  }
}

/**
 * Batch buffers from an `@aide/memory-pool` {@link BufferPool}, so a steady
 * stream of batches reuses the same memory. Every byte of a batch buffer is
 * overwritten by stacking, so reuse skips zeroing.
 */
export class MemoryPoolTensorAllocator implements TensorAllocator {
  readonly pool: BufferPool
  private readonly owned: boolean

  constructor(pool?: BufferPool) {
    this.owned = pool === undefined
    this.pool =
      pool ?? new BufferPool({ name: 'onnx-batches', zeroOnReuse: false, onExhausted: 'unpooled' })
  }

  allocate(type: string, length: number): TensorLease {
    const kind = POOL_KINDS[type]!
    const handle = this.pool.acquireElements(kind, length)
    return new PoolLease(handle, handle.view(kind) as TypedArray)
  }

  stats(): Record<string, unknown> {
    const { inUseBytes, freeBytes, hits, misses, highWaterBytes } = this.pool.stats()
    return { inUseBytes, freeBytes, hits, misses, highWaterBytes }
  }

  /** Disposes the pool when this allocator created it. */
  dispose(): void {
    if (this.owned) this.pool.dispose()
  }
}

/**
 * Whether two requests of the same model variant can share a batch: the same
 * input types and the same dimensions after the batch axis. Compared in
 * place rather than through a string key built per request.
 */
export function sameBatchKind(
  a: Record<string, DenseTensor>,
  b: Record<string, DenseTensor>,
): boolean {
  let names = 0
  for (const name in b) {
    const x = a[name]
    const y = b[name]!
    if (x === undefined || x.type !== y.type) return false
    const dx = x.dims
    const dy = y.dims
    if (dx.length !== dy.length) return false
    for (let i = 1; i < dy.length; i++) if (dx[i] !== dy[i]) return false
    names++
  }
  for (const _ in a) names--
  return names === 0
}

/** Rows (length of axis 0) shared by every input, or undefined when they differ or an input is a scalar. */
export function batchRows(feeds: Record<string, DenseTensor>): number | undefined {
  let rows: number | undefined
  for (const name in feeds) {
    const r = feeds[name]!.dims[0]
    if (r === undefined) return undefined
    if (rows === undefined) rows = r
    else if (rows !== r) return undefined
  }
  return rows
}

/** Stacks the same-named inputs of several requests along axis 0. */
export function stackFeeds(
  parts: ReadonlyArray<{ readonly feeds: Record<string, DenseTensor> }>,
  allocator: TensorAllocator,
  leases: TensorLease[],
): Record<string, DenseTensor> {
  const feeds: Record<string, DenseTensor> = {}
  const first = parts[0]!.feeds
  for (const name in first) {
    const sample = first[name]!
    let rows = 0
    let length = 0
    for (let p = 0; p < parts.length; p++) {
      const t = parts[p]!.feeds[name]!
      rows += t.dims[0]!
      length += t.data.length
    }
    const lease = allocator.allocate(sample.type, length)
    leases.push(lease)
    const target = lease.data as Float32Array
    let offset = 0
    for (let p = 0; p < parts.length; p++) {
      const src = parts[p]!.feeds[name]!.data as Float32Array
      target.set(src, offset)
      offset += src.length
    }
    const dims = sample.dims.slice()
    dims[0] = rows
    feeds[name] = { type: sample.type, data: target, dims }
  }
  return feeds
}

/**
 * One request's share of batch outputs: rows `start` to `start + count` of
 * every output that has the batch axis (`totalRows` rows). Each part is a view
 * into the batch output, not a copy: output buffers are allocated by the
 * runtime (or by deserializing a worker's reply) for this one run and are
 * never reused, and copying them doubled the garbage of a batched request
 * (more young-generation collections, each a pause of the event loop). An
 * output without the batch axis is shared by every request: each gets its own copy.
 */
export function sliceOutputs(
  outputs: Record<string, DenseTensor>,
  names: readonly string[],
  start: number,
  count: number,
  totalRows: number,
): Record<string, DenseTensor> {
  const part: Record<string, DenseTensor> = {}
  for (let n = 0; n < names.length; n++) {
    const name = names[n]!
    const t = outputs[name]!
    const dims = t.dims.slice()
    if (t.dims[0] !== totalRows) {
      part[name] = { type: t.type, data: t.data.slice() as TypedArray, dims }
      continue
    }
    const rowSize = totalRows === 0 ? 0 : t.data.length / totalRows
    dims[0] = count
    part[name] = {
      type: t.type,
      data: t.data.subarray(start * rowSize, (start + count) * rowSize) as TypedArray,
      dims,
    }
  }
  return part
}
