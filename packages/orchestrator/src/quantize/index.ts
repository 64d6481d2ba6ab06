/**
 * `@aide/orchestrator/quantize`: int8 (weight-only) and fp16 variants of an
 * fp32 ONNX model, produced in JavaScript, and a measure of their accuracy
 * loss. Needs `onnx-proto` (optional peer); the accuracy estimate also needs
 * onnxruntime-node or onnxruntime-web.
 *
 * @packageDocumentation
 */
export { type AccuracyOptions, type AccuracyReport, estimateAccuracyLoss } from './accuracy.js'
export {
  buildModel,
  DataType,
  floatTensor,
  type GraphSpec,
  int64Tensor,
  loadOnnxSchema,
  type Onnx,
  valueInfo,
} from './graph.js'
export {
  type QuantizedTensor,
  type QuantizeOptions,
  type QuantizePrecision,
  type QuantizeResult,
  quantizeModel,
  quantizeWeights,
} from './quantize.js'
