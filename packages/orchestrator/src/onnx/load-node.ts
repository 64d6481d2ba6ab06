/** Lazy loader of the onnxruntime-node optional peer (used by `@aide/orchestrator/onnx`). */
import { type OrtModule, unavailable } from './runtime.js'

/** Loads onnxruntime-node on first use (E_UNAVAILABLE when missing). */
export async function loadOnnxRuntimeNode(): Promise<OrtModule> {
  if (!process.env.ORT_DISABLE_TELEMETRY) process.env.ORT_DISABLE_TELEMETRY = '1'
  try {
    const module = (await import('onnxruntime-node')) as unknown as OrtModule & {
      default?: OrtModule
    }
    return module.InferenceSession ? module : module.default!
  } catch (error) {
    throw unavailable('onnxruntime-node', 'onnx', error)
  }
}
