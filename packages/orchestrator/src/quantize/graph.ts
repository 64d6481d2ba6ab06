/**
 * Small helpers over the ONNX protobuf schema (through `onnx-proto`): decode
 * and encode models, read and write initializer tensors, and build graphs in
 * code. Used by the quantizer, the model build script and the tests.
 */
import { AideError } from '@aide/core'
import type { onnx as OnnxNamespace } from 'onnx-proto'

/** The `onnx` protobuf namespace of `onnx-proto`. */
export type Onnx = typeof OnnxNamespace

let loaded: Onnx | undefined

/**
 * Loads `onnx-proto` (an optional peer) on first use.
 * Throws `E_UNAVAILABLE` saying what to install when it is missing.
 */
export async function loadOnnxSchema(): Promise<Onnx> {
  if (loaded) return loaded
  try {
    const module = (await import('onnx-proto')) as unknown as {
      onnx?: Onnx
      default?: { onnx: Onnx }
    }
    loaded = module.onnx ?? module.default?.onnx
  } catch (error) {
    throw new AideError(
      'E_UNAVAILABLE',
      'orchestrator: cannot import `onnx-proto`. Install it (`npm i onnx-proto`) to use `@aide/orchestrator/quantize`.',
      { cause: error, details: { package: 'onnx-proto' } },
    )
  }
  if (!loaded)
    throw new AideError(
      'E_UNAVAILABLE',
      'orchestrator: `onnx-proto` has no `onnx` namespace export',
    )
  return loaded
}

/** ONNX element type numbers used here (TensorProto.DataType). */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  FLOAT16: 10,
} as const

/** A decoded ONNX model (`onnx.ModelProto`). */
export type ModelProto = OnnxNamespace.ModelProto
/** A tensor of the ONNX schema. */
export type TensorProto = OnnxNamespace.ITensorProto
/** A graph node of the ONNX schema. */
export type NodeProto = OnnxNamespace.INodeProto

/** Decodes ONNX model bytes; malformed bytes throw `E_INVALID_INPUT`. */
export function decodeModel(schema: Onnx, bytes: Uint8Array, field = 'model'): ModelProto {
  try {
    const model = schema.ModelProto.decode(bytes)
    if (!model.graph) throw new Error('the model has no graph')
    return model
  } catch (error) {
    if (AideError.isInstance(error)) throw error
    throw new AideError(
      'E_INVALID_INPUT',
      `${field} is not a valid ONNX model: ${(error as Error).message}`,
      {
        cause: error,
        details: { field },
      },
    )
  }
}

/** Encodes a model to bytes. */
export function encodeModel(schema: Onnx, model: OnnxNamespace.IModelProto): Uint8Array {
  return schema.ModelProto.encode(model).finish()
}

function toNumber(value: number | { toNumber(): number }): number {
  return typeof value === 'number' ? value : value.toNumber()
}

/** Dimensions of an initializer as plain numbers. */
export function tensorDims(tensor: TensorProto): number[] {
  return (tensor.dims ?? []).map((d) => toNumber(d as number))
}

/** Reads a FLOAT initializer (raw or repeated storage) as a Float32Array. */
export function readFloatTensor(tensor: TensorProto): Float32Array {
  const count = tensorDims(tensor).reduce((a, b) => a * b, 1)
  if (tensor.rawData && tensor.rawData.byteLength > 0) {
    const raw = tensor.rawData
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
    const out = new Float32Array(count)
    for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true)
    return out
  }
  return Float32Array.from(tensor.floatData ?? [])
}

/** Little-endian raw bytes of a typed array (copies). */
export function rawBytes(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(
    data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer,
  )
}

/** A FLOAT initializer. */
export function floatTensor(
  name: string,
  dims: readonly number[],
  data: Float32Array,
): TensorProto {
  return { name, dims: [...dims], dataType: DataType.FLOAT, rawData: rawBytes(data) }
}

/** An INT64 initializer. */
export function int64Tensor(
  name: string,
  dims: readonly number[],
  values: readonly number[],
): TensorProto {
  return {
    name,
    dims: [...dims],
    dataType: DataType.INT64,
    rawData: rawBytes(BigInt64Array.from(values.map(BigInt))),
  }
}

/** A value-info entry (graph input or output) with named dynamic axes. */
export function valueInfo(
  name: string,
  elemType: number,
  dims: ReadonlyArray<number | string>,
): OnnxNamespace.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: {
          dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  }
}

/** Description of a graph built in code. */
export interface GraphSpec {
  name: string
  inputs: OnnxNamespace.IValueInfoProto[]
  outputs: OnnxNamespace.IValueInfoProto[]
  nodes: NodeProto[]
  initializers: TensorProto[]
  /** Default opset 13 (per-axis DequantizeLinear). */
  opset?: number
  /** Free-form metadata stored in the model. */
  metadata?: Record<string, string>
}

/** Builds and encodes a model from a graph description. */
export function buildModel(schema: Onnx, spec: GraphSpec): Uint8Array {
  return encodeModel(schema, {
    irVersion: 8,
    producerName: '@aide/orchestrator',
    opsetImport: [{ domain: '', version: spec.opset ?? 13 }],
    metadataProps: Object.entries(spec.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: spec.name,
      node: spec.nodes,
      initializer: spec.initializers,
      input: spec.inputs,
      output: spec.outputs,
    },
  })
}

/** Float32 to IEEE 754 half-precision bits (round to nearest even). */
export function float32ToFloat16Bits(value: number): number {
  const f32 = new Float32Array(1)
  const u32 = new Uint32Array(f32.buffer)
  f32[0] = value
  const x = u32[0]!
  const sign = (x >>> 16) & 0x8000
  const exponent = (x >>> 23) & 0xff
  let mantissa = x & 0x7fffff
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0)
  let e = exponent - 127 + 15
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    if (e < -10) return sign
    mantissa |= 0x800000
    const shift = 14 - e
    let half = mantissa >>> shift
    const remainder = mantissa & ((1 << shift) - 1)
    const halfway = 1 << (shift - 1)
    if (remainder > halfway || (remainder === halfway && half & 1)) half++
    return sign | half
  }
  let half = (e << 10) | (mantissa >>> 13)
  const remainder = mantissa & 0x1fff
  if (remainder > 0x1000 || (remainder === 0x1000 && half & 1)) half++
  if ((half & 0x7c00) === 0x7c00) e = 0x1f
  return sign | half
}
