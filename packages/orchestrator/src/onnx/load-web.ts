/** Lazy loader of the onnxruntime-web optional peer (used by `@aide/orchestrator/onnx-web`). */
import { type OrtModule, unavailable } from './runtime.js'

/** Loads onnxruntime-web on first use (E_UNAVAILABLE when missing). */
export async function loadOnnxRuntimeWeb(): Promise<OrtModule> {
  try {
    const module = (await import('onnxruntime-web')) as unknown as OrtModule & {
      default?: OrtModule
    }
    return module.InferenceSession ? module : module.default!
  } catch (error) {
    throw unavailable('onnxruntime-web', 'onnx-web', error)
  }
}
