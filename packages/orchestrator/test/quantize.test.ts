import { isAideError } from '@aide/core'
import { beforeAll, describe, expect, it } from 'vitest'
import { createOnnxBackend } from '../src/onnx.js'
import {
  buildModel,
  DataType,
  estimateAccuracyLoss,
  floatTensor,
  loadOnnxSchema,
  quantizeModel,
  quantizeWeights,
  valueInfo,
} from '../src/quantize/index.js'
import { classifierModel, linearModel, seeded } from './onnx-fixtures.js'

const VOCAB = 64
const CONTEXT = 4

function calibration(count: number, seed = 11) {
  const random = seeded(seed)
  return Array.from({ length: count }, () => ({
    ids: {
      type: 'int64',
      data: BigInt64Array.from({ length: 8 * CONTEXT }, () =>
        BigInt(Math.floor(((random() + 1) / 2) * VOCAB)),
      ),
      dims: [8, CONTEXT],
    },
  }))
}

describe('quantizer', () => {
  let fp32: Uint8Array
  beforeAll(async () => {
    fp32 = await classifierModel(VOCAB, 16, CONTEXT, 32)
  })

  it('int8 weight-only: quantizes MatMul, Gemm (transB) and Gather weights per channel and stays accurate', async () => {
    const result = await quantizeModel(fp32, { precision: 'int8' })
    const byName = Object.fromEntries(result.tensors.map((t) => [t.name, t]))
    expect(byName.W1).toMatchObject({ operator: 'MatMul', axis: 1 })
    expect(byName.W2).toMatchObject({ operator: 'Gemm', axis: 0 })
    expect(byName.E).toMatchObject({ operator: 'Gather', axis: 0 })
    expect(byName.b1).toBeUndefined()
    // Small tables carry relatively more scales; the shipped model's figure is in its build report.
    expect(result.compression).toBeGreaterThan(2.5)
    const report = await estimateAccuracyLoss(fp32, result.model, calibration(6))
    expect(report.rows).toBe(48)
    expect(report.maxAbsoluteError).toBeGreaterThan(0)
    expect(report.meanAbsoluteError).toBeLessThan(0.05)
    expect(report.top1Agreement).toBeGreaterThan(0.85)
    expect(report.topKAgreement).toBe(1)
  })

  it('fp16: halves the weights with Casts and keeps the meaning', async () => {
    const result = await quantizeModel(fp32, { precision: 'fp16' })
    expect(result.compression).toBeGreaterThan(1.8)
    const report = await estimateAccuracyLoss(fp32, result.model, calibration(4), { k: 3 })
    expect(report.maxAbsoluteError).toBeLessThan(0.02)
    expect(report.top1Agreement).toBeGreaterThan(0.95)
    expect(report.k).toBe(3)
  })

  it('per-tensor int8 is less accurate than per-channel on uneven channels', () => {
    const dims = [2, 2]
    // Column 0 is large, column 1 tiny: one shared scale crushes column 1.
    const weights = Float32Array.from([100, 0.01, -50, -0.02])
    const perChannel = quantizeWeights(weights, dims, 1)
    const perTensor = quantizeWeights(weights, dims, undefined)
    // Error on the small column (indices 1 and 3).
    const error = (
      q: { values: Int8Array; scales: Float32Array },
      channelOf: (i: number) => number,
    ) =>
      Math.max(...[1, 3].map((i) => Math.abs(weights[i]! - q.values[i]! * q.scales[channelOf(i)]!)))
    expect(error(perChannel, (i) => i % 2)).toBeLessThan(error(perTensor, () => 0))
    expect(perChannel.scales).toHaveLength(2)
    expect(perTensor.scales).toHaveLength(1)
  })

  it('a quantized model runs in the backend as a precision variant', async () => {
    const int8 = (await quantizeModel(fp32, { precision: 'int8' })).model
    const backend = await createOnnxBackend({
      model: { fp32, int8: { source: int8, quality: 0.99 } },
      execution: 'inline',
      batching: false,
    })
    try {
      expect(backend.variants()).toEqual([
        { precision: 'fp32' },
        { precision: 'int8', quality: 0.99 },
      ])
      const input = calibration(1)[0]!
      const a = await backend.invoke(
        { task: 'tensor', model: 'clf#fp32', input: { tensors: input } },
        { signal: new AbortController().signal },
      )
      const b = await backend.invoke(
        { task: 'tensor', model: 'clf#int8', input: { tensors: input } },
        { signal: new AbortController().signal },
      )
      expect(a.output.tensors!.logits!.dims).toEqual([8, VOCAB])
      expect(b.output.tensors!.logits!.dims).toEqual([8, VOCAB])
    } finally {
      await backend.dispose()
    }
  })

  it('falls back to per-tensor scales below opset 13', async () => {
    const schema = await loadOnnxSchema()
    const weights = Float32Array.from({ length: 64 }, seeded(5))
    const bytes = buildModel(schema, {
      name: 'old-opset',
      opset: 11,
      inputs: [valueInfo('x', DataType.FLOAT, ['batch', 8])],
      outputs: [valueInfo('y', DataType.FLOAT, ['batch', 8])],
      nodes: [{ opType: 'MatMul', input: ['x', 'W'], output: ['y'] }],
      initializers: [floatTensor('W', [8, 8], weights)],
    })
    const result = await quantizeModel(bytes, { precision: 'int8' })
    expect(result.tensors).toEqual([
      { name: 'W', operator: 'MatMul', elements: 64, axis: undefined },
    ])
    const input = {
      x: { type: 'float32', data: Float32Array.from({ length: 16 }, seeded(6)), dims: [2, 8] },
    }
    const report = await estimateAccuracyLoss(bytes, result.model, [input])
    expect(report.meanAbsoluteError).toBeLessThan(0.05)
  })

  it('leaves a model without quantizable weights unchanged in meaning', async () => {
    const { bytes } = await linearModel(4, 3)
    const result = await quantizeModel(bytes, { precision: 'int8', minElements: 1000 })
    expect(result.tensors).toEqual([])
    const report = await estimateAccuracyLoss(bytes, result.model, [
      { x: { type: 'float32', data: [1, 2, 3, 4], dims: [1, 4] } },
    ])
    expect(report.maxAbsoluteError).toBe(0)
  })

  it('rejects malformed models, options and calibration inputs', async () => {
    await expect(
      quantizeModel(new Uint8Array([0xff, 0xff, 0xff]), { precision: 'int8' }),
    ).rejects.toMatchObject({
      code: 'E_INVALID_INPUT',
      details: { field: 'model' },
    })
    await expect(quantizeModel(fp32, { precision: 'int4' as never })).rejects.toMatchObject({
      details: { field: 'options.precision' },
    })
    await expect(quantizeModel('model.onnx' as never, { precision: 'int8' })).rejects.toMatchObject(
      { details: { field: 'model' } },
    )
    await expect(estimateAccuracyLoss(fp32, fp32, [])).rejects.toMatchObject({
      details: { field: 'calibrationInputs' },
    })
    await expect(
      estimateAccuracyLoss(fp32, fp32, calibration(1), { outputName: 'nope' }),
    ).rejects.toMatchObject({
      details: { field: 'options.outputName' },
    })
    const error = await estimateAccuracyLoss(fp32, fp32, calibration(1), {
      signal: AbortSignal.abort(),
    }).catch((e: unknown) => e)
    expect(isAideError(error, 'E_CANCELLED')).toBe(true)
  })

  it('runs the estimate on onnxruntime-web too', async () => {
    const int8 = (await quantizeModel(fp32, { precision: 'int8' })).model
    const report = await estimateAccuracyLoss(fp32, int8, calibration(2), { runtime: 'web' })
    expect(report.rows).toBe(16)
    expect(report.topKAgreement).toBe(1)
  })
})
