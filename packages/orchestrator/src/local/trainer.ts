/**
 * A small neural next-token model (a fixed window of token embeddings → one
 * tanh hidden layer → logits over the vocabulary) trained in plain
 * JavaScript with per-example SGD, and its export to ONNX.
 *
 * Deterministic: the same token streams, settings and seed give the same
 * weights, bit for bit.
 */
import { assertNumber, assertObject, invalidInput, seededRandom } from '@aide/core'
import {
  buildModel,
  DataType,
  floatTensor,
  int64Tensor,
  loadOnnxSchema,
  valueInfo,
} from '../quantize/graph.js'
import { PAD_ID, UNKNOWN_ID } from './tokenizer.js'

/** Shape of a next-token model. */
export interface NextTokenShape {
  /** Vocabulary size (logits per row). */
  vocabularySize: number
  /** Tokens of context the model sees. */
  contextLength: number
  /** Embedding width. */
  embeddingSize: number
  /** Hidden layer width. */
  hiddenSize: number
}

/** Weights of a next-token model (row-major). */
export interface NextTokenWeights extends NextTokenShape {
  /** [vocabularySize, embeddingSize] */
  embedding: Float32Array
  /** [contextLength * embeddingSize, hiddenSize] */
  hiddenWeights: Float32Array
  /** [hiddenSize] */
  hiddenBias: Float32Array
  /** [hiddenSize, vocabularySize] */
  outputWeights: Float32Array
  /** [vocabularySize] */
  outputBias: Float32Array
}

/** Training settings of {@link trainNextTokenModel}. */
export interface TrainOptions extends NextTokenShape {
  /** Training examples to visit (positions sampled from the streams). */
  steps: number
  /** Initial learning rate, decayed linearly to a tenth. Default 0.08. */
  learningRate?: number
  /** PRNG seed. Default 1. */
  seed?: number
  /** Called about every 2% of the steps. */
  onProgress?: (done: number, total: number, recentLoss: number) => void
}

/** Deterministic PRNG (mulberry32), the same one `@aide/core` exports as `seededRandom`. */
export const createRandom: (seed: number) => () => number = seededRandom

/** All (context window, next token) positions of the streams whose target is a known token. */
function positions(streams: readonly Int32Array[]): Array<[number, number]> {
  const out: Array<[number, number]> = []
  streams.forEach((stream, s) => {
    for (let i = 0; i < stream.length; i++) if (stream[i] !== UNKNOWN_ID) out.push([s, i])
  })
  return out
}

/** Fills `window` with the `length` ids before `index` (left-padded). */
function contextAt(stream: Int32Array, index: number, window: Int32Array): void {
  const length = window.length
  for (let k = 0; k < length; k++) {
    const at = index - length + k
    window[k] = at >= 0 ? stream[at]! : PAD_ID
  }
}

/** Trains a next-token model on token-id streams (one per file). */
export function trainNextTokenModel(
  streams: readonly Int32Array[],
  options: TrainOptions,
): NextTokenWeights {
  assertObject(options, 'options')
  for (const key of [
    'vocabularySize',
    'contextLength',
    'embeddingSize',
    'hiddenSize',
    'steps',
  ] as const) {
    assertNumber(options[key], `options.${key}`, { min: 1, integer: true })
  }
  const { vocabularySize: V, contextLength: N, embeddingSize: D, hiddenSize: H, steps } = options
  const all = positions(streams)
  if (all.length === 0) throw invalidInput('streams', 'contain no trainable positions')
  const random = createRandom(options.seed ?? 1)
  const uniform = (scale: number) => (random() * 2 - 1) * scale
  const X = N * D
  const weights: NextTokenWeights = {
    vocabularySize: V,
    contextLength: N,
    embeddingSize: D,
    hiddenSize: H,
    embedding: Float32Array.from({ length: V * D }, () => uniform(0.1)),
    hiddenWeights: Float32Array.from({ length: X * H }, () => uniform(1 / Math.sqrt(X))),
    hiddenBias: new Float32Array(H),
    outputWeights: Float32Array.from({ length: H * V }, () => uniform(1 / Math.sqrt(H))),
    outputBias: new Float32Array(V),
  }
  const {
    embedding: E,
    hiddenWeights: W1,
    hiddenBias: b1,
    outputWeights: W2,
    outputBias: b2,
  } = weights
  const window = new Int32Array(N)
  const x = new Float32Array(X)
  const h = new Float32Array(H)
  const logits = new Float32Array(V)
  const dh = new Float32Array(H)
  const dx = new Float32Array(X)
  const baseRate = options.learningRate ?? 0.08
  const progressEvery = Math.max(1, Math.floor(steps / 50))
  let lossSum = 0
  let lossCount = 0

  for (let step = 0; step < steps; step++) {
    const rate = baseRate * (1 - 0.9 * (step / steps))
    const [s, index] = all[Math.floor(random() * all.length)]!
    const stream = streams[s]!
    const target = stream[index]!
    contextAt(stream, index, window)
    for (let n = 0; n < N; n++) x.set(E.subarray(window[n]! * D, window[n]! * D + D), n * D)
    // Hidden layer.
    for (let j = 0; j < H; j++) h[j] = b1[j]!
    for (let k = 0; k < X; k++) {
      const xk = x[k]!
      if (xk === 0) continue
      const row = k * H
      for (let j = 0; j < H; j++) h[j]! += xk * W1[row + j]!
    }
    for (let j = 0; j < H; j++) h[j] = Math.tanh(h[j]!)
    // Output layer and softmax.
    logits.set(b2)
    for (let j = 0; j < H; j++) {
      const hj = h[j]!
      const row = j * V
      for (let v = 0; v < V; v++) logits[v]! += hj * W2[row + v]!
    }
    let max = -Infinity
    for (let v = 0; v < V; v++) if (logits[v]! > max) max = logits[v]!
    let sum = 0
    for (let v = 0; v < V; v++) {
      const e = Math.exp(logits[v]! - max)
      logits[v] = e
      sum += e
    }
    for (let v = 0; v < V; v++) logits[v]! /= sum
    lossSum -= Math.log(Math.max(1e-12, logits[target]!))
    lossCount++
    logits[target]! -= 1 // now dLoss/dLogits
    // Backward through the output layer (read W2 before updating it).
    for (let j = 0; j < H; j++) {
      const row = j * V
      let acc = 0
      for (let v = 0; v < V; v++) acc += W2[row + v]! * logits[v]!
      dh[j] = acc * (1 - h[j]! * h[j]!)
      const scaled = rate * h[j]!
      for (let v = 0; v < V; v++) W2[row + v]! -= scaled * logits[v]!
    }
    for (let v = 0; v < V; v++) b2[v]! -= rate * logits[v]!
    // Backward through the hidden layer.
    for (let k = 0; k < X; k++) {
      const row = k * H
      let acc = 0
      for (let j = 0; j < H; j++) acc += W1[row + j]! * dh[j]!
      dx[k] = acc
      const xk = x[k]!
      if (xk !== 0) {
        const scaled = rate * xk
        for (let j = 0; j < H; j++) W1[row + j]! -= scaled * dh[j]!
      }
    }
    for (let j = 0; j < H; j++) b1[j]! -= rate * dh[j]!
    for (let n = 0; n < N; n++) {
      const base = window[n]! * D
      for (let d = 0; d < D; d++) E[base + d]! -= rate * dx[n * D + d]!
    }
    if ((step + 1) % progressEvery === 0 || step + 1 === steps) {
      options.onProgress?.(step + 1, steps, lossSum / Math.max(1, lossCount))
      lossSum = 0
      lossCount = 0
    }
  }
  return weights
}

/** Exports weights as an ONNX model: `input_ids` int64 [batch, contextLength] → `logits` float32 [batch, vocabularySize]. */
export async function nextTokenModelToOnnx(
  weights: NextTokenWeights,
  metadata: Record<string, string> = {},
): Promise<Uint8Array> {
  const schema = await loadOnnxSchema()
  const { vocabularySize: V, contextLength: N, embeddingSize: D, hiddenSize: H } = weights
  return buildModel(schema, {
    name: 'aide-next-token',
    inputs: [valueInfo('input_ids', DataType.INT64, ['batch', N])],
    outputs: [valueInfo('logits', DataType.FLOAT, ['batch', V])],
    nodes: [
      { opType: 'Gather', name: 'embed', input: ['embedding', 'input_ids'], output: ['embedded'] },
      { opType: 'Reshape', name: 'flatten', input: ['embedded', 'flat_shape'], output: ['flat'] },
      {
        opType: 'MatMul',
        name: 'hidden_matmul',
        input: ['flat', 'hidden_weights'],
        output: ['hidden_linear'],
      },
      {
        opType: 'Add',
        name: 'hidden_bias_add',
        input: ['hidden_linear', 'hidden_bias'],
        output: ['hidden_pre'],
      },
      { opType: 'Tanh', name: 'hidden_tanh', input: ['hidden_pre'], output: ['hidden'] },
      {
        opType: 'MatMul',
        name: 'output_matmul',
        input: ['hidden', 'output_weights'],
        output: ['output_linear'],
      },
      {
        opType: 'Add',
        name: 'output_bias_add',
        input: ['output_linear', 'output_bias'],
        output: ['logits'],
      },
    ],
    initializers: [
      floatTensor('embedding', [V, D], weights.embedding),
      int64Tensor('flat_shape', [2], [-1, N * D]),
      floatTensor('hidden_weights', [N * D, H], weights.hiddenWeights),
      floatTensor('hidden_bias', [H], weights.hiddenBias),
      floatTensor('output_weights', [H, V], weights.outputWeights),
      floatTensor('output_bias', [V], weights.outputBias),
    ],
    metadata: { context_length: String(N), vocabulary_size: String(V), ...metadata },
  })
}

/** Context windows and targets of every known-token position (for evaluation). */
export function evaluationRows(
  streams: readonly Int32Array[],
  contextLength: number,
): { inputs: BigInt64Array; targets: Int32Array } {
  const all = positions(streams)
  const inputs = new BigInt64Array(all.length * contextLength)
  const targets = new Int32Array(all.length)
  const window = new Int32Array(contextLength)
  all.forEach(([s, index], row) => {
    contextAt(streams[s]!, index, window)
    for (let k = 0; k < contextLength; k++) inputs[row * contextLength + k] = BigInt(window[k]!)
    targets[row] = streams[s]![index]!
  })
  return { inputs, targets }
}
