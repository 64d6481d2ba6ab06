/**
 * Tensor validation, stacking along the batch axis, and splitting back.
 * Batch buffers come from a {@link TensorAllocator}, so a pool can back them.
 */
import { invalidInput } from '@aide/core'
import { BufferPool, type ElementKind } from '@aide/memory-pool'
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

/** Validates a request tensor and converts plain arrays to the matching typed array. */
export function normalizeTensor(value: TensorData, field: string): DenseTensor {
  if (typeof value !== 'object' || value === null)
    throw invalidInput(field, 'must be a tensor object')
  const Ctor = CONSTRUCTORS[value.type]
  if (!Ctor)
    throw invalidInput(
      `${field}.type`,
      `must be one of ${TENSOR_TYPES.join(', ')}, got ${JSON.stringify(value.type)}`,
    )
  if (!Array.isArray(value.dims))
    throw invalidInput(`${field}.dims`, 'must be an array of non-negative integers')
  const dims = new Array<number>(value.dims.length)
  let count = 1
  for (let i = 0; i < dims.length; i++) {
    const d = value.dims[i]!
    if (!Number.isInteger(d) || d < 0)
      throw invalidInput(`${field}.dims`, 'must be an array of non-negative integers')
    dims[i] = d
    count *= d
  }
  let data: TypedArray
  const raw = value.data as unknown
  if (ArrayBuffer.isView(raw) && !(raw instanceof DataView)) {
    if (!(raw instanceof (Ctor as unknown as new () => TypedArray))) {
      throw invalidInput(`${field}.data`, `must be a ${Ctor.name} for type ${value.type}`)
    }
    data = raw as TypedArray
  } else if (Array.isArray(raw)) {
    try {
      const bigint = value.type === 'int64' || value.type === 'uint64'
      data = Ctor.from(bigint ? raw.map((v) => BigInt(v)) : raw.map((v) => Number(v)))
    } catch (error) {
      throw invalidInput(
        `${field}.data`,
        `has values that are not valid ${value.type}: ${(error as Error).message}`,
      )
    }
  } else {
    throw invalidInput(`${field}.data`, 'must be a typed array or an array of numbers')
  }
  if (data.length !== count) {
    throw invalidInput(
      `${field}.data`,
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
    const handle = this.pool.acquireElements(POOL_KINDS[type]!, length)
    return { data: handle.view(POOL_KINDS[type]!) as TypedArray, release: () => handle.release() }
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

/** Key that decides whether two requests can share a batch: types and non-batch dims. */
export function batchKey(feeds: Record<string, DenseTensor>): string | undefined {
  const names = Object.keys(feeds)
  // One input (the common case): no sort, no intermediate arrays.
  if (names.length === 1) return tensorKey(names[0]!, feeds[names[0]!]!)
  let key = ''
  for (const name of names.sort()) {
    const part = tensorKey(name, feeds[name]!)
    if (part === undefined) return undefined
    key = key === '' ? part : `${key}|${part}`
  }
  return key
}

function tensorKey(name: string, t: DenseTensor): string | undefined {
  const dims = t.dims
  if (dims.length === 0) return undefined
  let shape = ''
  for (let i = 1; i < dims.length; i++) shape = i === 1 ? `${dims[i]}` : `${shape}x${dims[i]}`
  return `${name}:${t.type}:${shape}`
}

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
  parts: ReadonlyArray<Record<string, DenseTensor>>,
  allocator: TensorAllocator,
): { feeds: Record<string, DenseTensor>; leases: TensorLease[] } {
  const feeds: Record<string, DenseTensor> = {}
  const leases: TensorLease[] = []
  const first = parts[0]!
  for (const name of Object.keys(first)) {
    const sample = first[name]!
    let rows = 0
    let length = 0
    for (const p of parts) {
      rows += p[name]!.dims[0]!
      length += p[name]!.data.length
    }
    const lease = allocator.allocate(sample.type, length)
    leases.push(lease)
    let offset = 0
    for (const p of parts) {
      const src = p[name]!.data
      ;(lease.data as Float32Array).set(src as Float32Array, offset)
      offset += src.length
    }
    feeds[name] = { type: sample.type, data: lease.data, dims: [rows, ...sample.dims.slice(1)] }
  }
  return { feeds, leases }
}

/**
 * Splits batch outputs back into per-request outputs. Each part is a view
 * into the batch output, not a copy: output buffers are allocated by the
 * runtime (or by deserializing a worker's reply) for this one run and are
 * never reused, and copying them doubled the garbage of a batched request
 * (more young-generation collections, each a pause of the event loop).
 */
export function splitOutputs(
  outputs: Record<string, DenseTensor>,
  rowCounts: readonly number[],
): Array<Record<string, DenseTensor>> {
  const results: Array<Record<string, DenseTensor>> = rowCounts.map(() => ({}))
  let totalRows = 0
  for (const count of rowCounts) totalRows += count
  for (const name in outputs) {
    const t = outputs[name]!
    if (t.dims[0] !== totalRows) {
      // An output without the batch axis is shared by every request: each gets its own copy.
      for (const r of results)
        r[name] = { type: t.type, data: t.data.slice() as TypedArray, dims: [...t.dims] }
      continue
    }
    const rowSize = totalRows === 0 ? 0 : t.data.length / totalRows
    const rest = t.dims.slice(1)
    let row = 0
    for (let i = 0; i < rowCounts.length; i++) {
      const count = rowCounts[i]!
      results[i]![name] = {
        type: t.type,
        data: t.data.subarray(row * rowSize, (row + count) * rowSize) as TypedArray,
        dims: [count, ...rest],
      }
      row += count
    }
  }
  return results
}
