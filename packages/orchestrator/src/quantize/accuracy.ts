/**
 * Measures how far a quantized variant drifts from the original model on
 * calibration inputs.
 */
import {
  assertNumber,
  assertObject,
  assertOneOf,
  type DeadlineOptions,
  invalidInput,
  throwIfAborted,
  validateDeadlineOptions,
  withDeadline,
} from '@aide/core'
import type { TensorData } from '../backend.js'
import { loadOnnxRuntimeNode } from '../onnx/load-node.js'
import { loadOnnxRuntimeWeb } from '../onnx/load-web.js'
import { InlineExecutor } from '../onnx/runtime.js'
import { type DenseTensor, normalizeTensor } from '../onnx/tensor.js'

/** Options of {@link estimateAccuracyLoss}. */
export interface AccuracyOptions extends DeadlineOptions {
  /** Which onnxruntime runs the comparison. Default `'node'`. */
  runtime?: 'node' | 'web'
  /** Output compared (default: the model's first output). */
  outputName?: string
  /** `k` of the top-k agreement. Default 5. */
  k?: number
}

/** What {@link estimateAccuracyLoss} reports. */
export interface AccuracyReport {
  /** Calibration inputs run. */
  samples: number
  /** Rows compared (the output's last axis is the class axis; every other axis is a row). */
  rows: number
  outputName: string
  /** Largest |original − variant| over every output element. */
  maxAbsoluteError: number
  /** Mean |original − variant| over every output element. */
  meanAbsoluteError: number
  /** Fraction of rows whose arg-max is the same in both models. */
  top1Agreement: number
  /** Fraction of rows where the original's arg-max is among the variant's top `k`. */
  topKAgreement: number
  k: number
}

function topK(values: ArrayLike<number>, start: number, length: number, k: number): number[] {
  const indices = Array.from({ length }, (_, i) => i)
  indices.sort((a, b) => values[start + b]! - values[start + a]!)
  return indices.slice(0, k)
}

/**
 * Runs `original` and `variant` on each calibration input and compares the
 * chosen output: max and mean absolute error, top-1 and top-k agreement.
 */
export async function estimateAccuracyLoss(
  original: Uint8Array,
  variant: Uint8Array,
  calibrationInputs: ReadonlyArray<Readonly<Record<string, TensorData>>>,
  options: AccuracyOptions = {},
): Promise<AccuracyReport> {
  if (!(original instanceof Uint8Array))
    throw invalidInput('original', 'must be a Uint8Array of ONNX model bytes')
  if (!(variant instanceof Uint8Array))
    throw invalidInput('variant', 'must be a Uint8Array of ONNX model bytes')
  if (!Array.isArray(calibrationInputs) || calibrationInputs.length === 0) {
    throw invalidInput('calibrationInputs', 'must be a non-empty array of named input tensors')
  }
  assertObject(options, 'options')
  validateDeadlineOptions(options)
  const runtime = options.runtime ?? 'node'
  assertOneOf(runtime, 'options.runtime', ['node', 'web'])
  const k = options.k ?? 5
  assertNumber(k, 'options.k', { min: 1, integer: true })
  const feeds: Array<Record<string, DenseTensor>> = calibrationInputs.map((input, i) => {
    assertObject(input, `calibrationInputs[${i}]`)
    const out: Record<string, DenseTensor> = {}
    for (const [name, t] of Object.entries(input))
      out[name] = normalizeTensor(t as TensorData, `calibrationInputs[${i}].${name}`)
    return out
  })

  const ort = runtime === 'node' ? await loadOnnxRuntimeNode() : await loadOnnxRuntimeWeb()
  const executor = new InlineExecutor(
    ort,
    { original, variant },
    { executionProviders: [runtime === 'node' ? 'cpu' : 'wasm'] },
  )
  try {
    return await withDeadline(
      async (signal) => {
        const signatures = await executor.load()
        const outputName = options.outputName ?? signatures.original!.outputNames[0]!
        if (
          !signatures.original!.outputNames.includes(outputName) ||
          !signatures.variant!.outputNames.includes(outputName)
        ) {
          throw invalidInput(
            'options.outputName',
            `names "${outputName}", which is not an output of both models`,
          )
        }
        let rows = 0
        let elements = 0
        let sumError = 0
        let maxError = 0
        let top1 = 0
        let topKHits = 0
        for (const feed of feeds) {
          throwIfAborted(signal, 'quantize: accuracy estimate')
          const a = (await executor.run('original', feed))[outputName]!
          const b = (await executor.run('variant', feed))[outputName]!
          const av = a.data as Float32Array
          const bv = b.data as Float32Array
          for (let i = 0; i < av.length; i++) {
            const error = Math.abs(av[i]! - bv[i]!)
            sumError += error
            if (error > maxError) maxError = error
          }
          elements += av.length
          const classes = a.dims[a.dims.length - 1] ?? 1
          for (let start = 0; start + classes <= av.length; start += classes) {
            const best = topK(av, start, classes, 1)[0]
            const variantTop = topK(bv, start, classes, k)
            if (variantTop[0] === best) top1++
            if (variantTop.includes(best!)) topKHits++
            rows++
          }
        }
        return {
          samples: feeds.length,
          rows,
          outputName,
          maxAbsoluteError: maxError,
          meanAbsoluteError: elements === 0 ? 0 : sumError / elements,
          top1Agreement: rows === 0 ? 1 : top1 / rows,
          topKAgreement: rows === 0 ? 1 : topKHits / rows,
          k,
        }
      },
      {
        signal: options.signal,
        timeoutMs: options.timeoutMs,
        label: 'quantize: accuracy estimate',
      },
    )
  } finally {
    await executor.dispose()
  }
}
