import {
  buildModel,
  DataType,
  floatTensor,
  int64Tensor,
  loadOnnxSchema,
  valueInfo,
} from '../src/quantize/graph.js'

/** Deterministic pseudo-random numbers in [-1, 1). */
export function seeded(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0
    return state / 2 ** 31 - 1
  }
}

/** y = x · W + b with x: float32 [batch, inputs], y: float32 [batch, outputs]. */
export async function linearModel(
  inputs = 4,
  outputs = 3,
  seed = 1,
): Promise<{ bytes: Uint8Array; weights: Float32Array; bias: Float32Array }> {
  const schema = await loadOnnxSchema()
  const random = seeded(seed)
  const weights = Float32Array.from({ length: inputs * outputs }, random)
  const bias = Float32Array.from({ length: outputs }, random)
  const bytes = buildModel(schema, {
    name: 'linear',
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', inputs])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', outputs])],
    nodes: [
      { opType: 'MatMul', input: ['x', 'W'], output: ['xw'] },
      { opType: 'Add', input: ['xw', 'b'], output: ['y'] },
    ],
    initializers: [floatTensor('W', [inputs, outputs], weights), floatTensor('b', [outputs], bias)],
  })
  return { bytes, weights, bias }
}

/** Reference computation of {@link linearModel}. */
export function linearReference(
  x: Float32Array,
  weights: Float32Array,
  bias: Float32Array,
  inputs: number,
  outputs: number,
): Float32Array {
  const rows = x.length / inputs
  const y = new Float32Array(rows * outputs)
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outputs; o++) {
      let sum = bias[o]!
      for (let i = 0; i < inputs; i++) sum += x[r * inputs + i]! * weights[i * outputs + o]!
      y[r * outputs + o] = sum
    }
  }
  return y
}

/**
 * A small next-token classifier: ids int64 [batch, context] → Gather(E) →
 * Reshape → MatMul W1 (+b1) → Tanh → Gemm W2ᵀ (transB) + b2 → logits [batch, vocab].
 */
export async function classifierModel(
  vocab = 64,
  dim = 16,
  context = 4,
  hidden = 32,
  seed = 7,
): Promise<Uint8Array> {
  const schema = await loadOnnxSchema()
  const random = seeded(seed)
  const table = (n: number, scale: number) =>
    Float32Array.from({ length: n }, () => random() * scale)
  return buildModel(schema, {
    name: 'classifier',
    inputs: [valueInfo('ids', DataType.INT64, ['batch', context])],
    outputs: [valueInfo('logits', DataType.FLOAT, ['batch', vocab])],
    nodes: [
      { opType: 'Gather', input: ['E', 'ids'], output: ['embedded'] },
      { opType: 'Reshape', input: ['embedded', 'flat_shape'], output: ['flat'] },
      { opType: 'MatMul', input: ['flat', 'W1'], output: ['h0'] },
      { opType: 'Add', input: ['h0', 'b1'], output: ['h1'] },
      { opType: 'Tanh', input: ['h1'], output: ['h'] },
      {
        opType: 'Gemm',
        input: ['h', 'W2', 'b2'],
        output: ['logits'],
        attribute: [{ name: 'transB', type: 2, i: 1 }],
      },
    ],
    initializers: [
      floatTensor('E', [vocab, dim], table(vocab * dim, 1)),
      int64Tensor('flat_shape', [2], [-1, context * dim]),
      floatTensor('W1', [context * dim, hidden], table(context * dim * hidden, 0.3)),
      floatTensor('b1', [hidden], table(hidden, 0.1)),
      floatTensor('W2', [vocab, hidden], table(vocab * hidden, 0.5)),
      floatTensor('b2', [vocab], table(vocab, 0.1)),
    ],
  })
}

/** Asserts two numeric sequences agree to `digits` decimal places. */
export function expectAllClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  digits = 4,
): void {
  if (actual.length !== expected.length)
    throw new Error(`length ${actual.length} !== ${expected.length}`)
  for (let i = 0; i < actual.length; i++) {
    if (Math.abs(actual[i]! - expected[i]!) > 10 ** -digits) {
      throw new Error(`element ${i}: ${actual[i]} is not close to ${expected[i]}`)
    }
  }
}
