/**
 * An ONNX weight quantizer in plain JavaScript (onnxruntime's own
 * quantization tools are Python-only).
 *
 * - `int8`: weight-only. Float initializers feeding MatMul (input B), Gemm
 *   (input B, honouring `transB`) and Gather (the table) become int8 with a
 *   float scale and an int8 zero point, followed by a DequantizeLinear node
 *   that reproduces the original tensor name, so consumers are untouched.
 *   Symmetric, per output channel where the opset allows it (>= 13), per
 *   tensor otherwise.
 * - `fp16`: every large float initializer is stored as float16 and a Cast
 *   node back to float32 reproduces the original name, so the graph computes
 *   in float32 as before.
 */
import { assertNumber, assertObject, assertOneOf, invalidInput } from '@aide/core'
import {
  DataType,
  decodeModel,
  encodeModel,
  float32ToFloat16Bits,
  loadOnnxSchema,
  type NodeProto,
  rawBytes,
  readFloatTensor,
  type TensorProto,
  tensorDims,
} from './graph.js'

/** Target precision of {@link quantizeModel}. */
export type QuantizePrecision = 'int8' | 'fp16'

/** Options of {@link quantizeModel}. */
export interface QuantizeOptions {
  /** `'int8'` (weight-only) or `'fp16'`. */
  precision: QuantizePrecision
  /** Per-output-channel scales for int8 (needs opset >= 13; falls back to per-tensor). Default true. */
  perChannel?: boolean
  /** Initializers with fewer elements stay float32 (biases, shapes). Default 64. */
  minElements?: number
}

/** One initializer the quantizer converted. */
export interface QuantizedTensor {
  name: string
  /** The operator that consumes it (`MatMul`, `Gemm`, `Gather`, or `*` for fp16). */
  operator: string
  elements: number
  /** Channel axis of the scales; undefined for per-tensor. */
  axis: number | undefined
}

/** What {@link quantizeModel} returns. */
export interface QuantizeResult {
  /** The quantized model. */
  model: Uint8Array
  precision: QuantizePrecision
  originalBytes: number
  quantizedBytes: number
  /** originalBytes / quantizedBytes. */
  compression: number
  tensors: QuantizedTensor[]
}

const QUANTIZABLE: Record<
  string,
  (node: NodeProto) => { input: number; axis: number } | undefined
> = {
  MatMul: () => ({ input: 1, axis: 1 }),
  Gemm: (node) => {
    const transB = node.attribute?.find((a) => a.name === 'transB')
    const t = transB ? Number(transB.i ?? 0) : 0
    return { input: 1, axis: t ? 0 : 1 }
  },
  Gather: (node) => {
    const axis = node.attribute?.find((a) => a.name === 'axis')
    if (axis && Number(axis.i ?? 0) !== 0) return undefined
    return { input: 0, axis: 0 }
  },
}

/** Quantizes one rank-2 weight to int8 along `axis` (or per tensor when `axis` is undefined). */
export function quantizeWeights(
  weights: Float32Array,
  dims: readonly number[],
  axis: number | undefined,
): { values: Int8Array; scales: Float32Array } {
  const [rows, cols] = [dims[0]!, dims[1]!]
  const channels = axis === undefined ? 1 : axis === 0 ? rows : cols
  const maxAbs = new Float32Array(channels)
  const channelOf = (r: number, c: number) => (axis === undefined ? 0 : axis === 0 ? r : c)
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const ch = channelOf(r, c)
      const v = Math.abs(weights[r * cols + c]!)
      if (v > maxAbs[ch]!) maxAbs[ch] = v
    }
  }
  const scales = maxAbs.map((m) => (m > 0 ? m / 127 : 1))
  const values = new Int8Array(weights.length)
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const q = Math.round(weights[r * cols + c]! / scales[channelOf(r, c)]!)
      values[r * cols + c] = Math.max(-127, Math.min(127, q))
    }
  }
  return { values, scales }
}

function uniqueName(taken: Set<string>, base: string): string {
  let name = base
  for (let i = 1; taken.has(name); i++) name = `${base}_${i}`
  taken.add(name)
  return name
}

/**
 * Produces an int8 (weight-only) or fp16 variant of an fp32 ONNX model.
 * Malformed model bytes throw `E_INVALID_INPUT` (field `model`).
 */
export async function quantizeModel(
  model: Uint8Array,
  options: QuantizeOptions,
): Promise<QuantizeResult> {
  if (!(model instanceof Uint8Array))
    throw invalidInput('model', 'must be a Uint8Array of ONNX model bytes')
  assertObject(options, 'options')
  assertOneOf(options.precision, 'options.precision', ['int8', 'fp16'])
  const minElements = options.minElements ?? 64
  assertNumber(minElements, 'options.minElements', { min: 1, integer: true })
  const schema = await loadOnnxSchema()
  const decoded = decodeModel(schema, model)
  const graph = decoded.graph!
  const opset = Math.max(
    0,
    ...(decoded.opsetImport ?? []).filter((o) => !o.domain).map((o) => Number(o.version ?? 0)),
  )
  const perChannel = (options.perChannel ?? true) && opset >= 13
  if (options.precision === 'int8' && opset < 10) {
    throw invalidInput(
      'model',
      `uses opset ${opset}; int8 quantization needs DequantizeLinear (opset >= 10)`,
    )
  }

  const initializers = new Map<string, TensorProto>()
  for (const t of graph.initializer ?? []) if (t.name) initializers.set(t.name, t)
  const graphInputs = new Set((graph.input ?? []).map((i) => i.name))
  const taken = new Set<string>([
    ...initializers.keys(),
    ...(graph.node ?? []).flatMap((n) => [...(n.input ?? []), ...(n.output ?? [])]),
  ])
  const newNodes: NodeProto[] = []
  const newInitializers: TensorProto[] = []
  const converted = new Set<string>()
  const tensors: QuantizedTensor[] = []

  const eligible = (name: string | undefined): TensorProto | undefined => {
    if (!name || converted.has(name) || graphInputs.has(name)) return undefined
    const t = initializers.get(name)
    if (!t || t.dataType !== DataType.FLOAT) return undefined
    const elements = tensorDims(t).reduce((a, b) => a * b, 1)
    return elements >= minElements ? t : undefined
  }

  if (options.precision === 'int8') {
    // Axis each initializer would be quantized along, per consumer; only tensors every consumer agrees on qualify.
    const plan = new Map<string, { axis: number; operator: string } | null>()
    for (const node of graph.node ?? []) {
      for (const [index, name] of (node.input ?? []).entries()) {
        if (!name || !initializers.has(name)) continue
        const rule = QUANTIZABLE[node.opType ?? '']?.(node)
        const fits =
          rule && rule.input === index ? { axis: rule.axis, operator: node.opType! } : null
        const previous = plan.get(name)
        if (previous === undefined) plan.set(name, fits)
        else if (previous === null || fits === null || previous.axis !== fits.axis)
          plan.set(name, null)
      }
    }
    for (const [name, target] of plan) {
      const tensor = eligible(name)
      if (!target || !tensor || tensorDims(tensor).length !== 2) continue
      const dims = tensorDims(tensor)
      const axis = perChannel ? target.axis : undefined
      const { values, scales } = quantizeWeights(readFloatTensor(tensor), dims, axis)
      const quantizedName = uniqueName(taken, `${name}_quantized`)
      const scaleName = uniqueName(taken, `${name}_scale`)
      const zeroName = uniqueName(taken, `${name}_zero_point`)
      const scaleDims = axis === undefined ? [] : [scales.length]
      newInitializers.push(
        { name: quantizedName, dims, dataType: DataType.INT8, rawData: rawBytes(values) },
        { name: scaleName, dims: scaleDims, dataType: DataType.FLOAT, rawData: rawBytes(scales) },
        {
          name: zeroName,
          dims: scaleDims,
          dataType: DataType.INT8,
          rawData: new Uint8Array(scales.length),
        },
      )
      newNodes.push({
        opType: 'DequantizeLinear',
        name: `${name}_dequantize`,
        input: [quantizedName, scaleName, zeroName],
        output: [name],
        attribute: axis === undefined ? [] : [{ name: 'axis', type: 2, i: axis }],
      })
      converted.add(name)
      tensors.push({ name, operator: target.operator, elements: values.length, axis })
    }
  } else {
    for (const name of initializers.keys()) {
      const tensor = eligible(name)
      if (!tensor) continue
      const values = readFloatTensor(tensor)
      const halves = new Uint16Array(values.length)
      for (let i = 0; i < values.length; i++) halves[i] = float32ToFloat16Bits(values[i]!)
      const halfName = uniqueName(taken, `${name}_fp16`)
      newInitializers.push({
        name: halfName,
        dims: tensorDims(tensor),
        dataType: DataType.FLOAT16,
        rawData: rawBytes(halves),
      })
      newNodes.push({
        opType: 'Cast',
        name: `${name}_cast`,
        input: [halfName],
        output: [name],
        attribute: [{ name: 'to', type: 2, i: DataType.FLOAT }],
      })
      converted.add(name)
      tensors.push({ name, operator: '*', elements: values.length, axis: undefined })
    }
  }

  graph.initializer = [
    ...(graph.initializer ?? []).filter((t) => !converted.has(t.name ?? '')),
    ...newInitializers,
  ]
  // Producers first: the new nodes only read initializers, so they lead the topological order.
  graph.node = [...newNodes, ...(graph.node ?? [])]
  const output = encodeModel(schema, decoded)
  return {
    model: output,
    precision: options.precision,
    originalBytes: model.byteLength,
    quantizedBytes: output.byteLength,
    compression: model.byteLength / output.byteLength,
    tensors,
  }
}
