// Worker-thread side of the onnxruntime-node backend (run by piscina).
// Each worker creates one session per model variant on first use and keeps it
// for its lifetime: creating and releasing sessions repeatedly leaks memory in
// onnxruntime-node, and session.run blocks the thread it runs on.
import { workerData } from 'node:worker_threads'
import * as ortModule from 'onnxruntime-node'

const ort = ortModule.InferenceSession ? ortModule : ortModule.default
const sessions = new Map()

function session(variant) {
  let pending = sessions.get(variant)
  if (!pending) {
    const bytes = workerData.models[variant]
    if (!bytes) throw new Error(`unknown model variant "${variant}"`)
    // onnxruntime-node refuses views of a SharedArrayBuffer: copy once per worker.
    const copy = new Uint8Array(bytes.byteLength)
    copy.set(new Uint8Array(bytes))
    pending = ort.InferenceSession.create(copy, workerData.sessionOptions)
    sessions.set(variant, pending)
  }
  return pending
}

export default async function handle(task) {
  const s = await session(task.variant)
  if (task.op === 'describe')
    return { inputNames: [...s.inputNames], outputNames: [...s.outputNames] }
  const feeds = {}
  for (const [name, t] of Object.entries(task.feeds))
    feeds[name] = new ort.Tensor(t.type, t.data, t.dims)
  const outputs = await s.run(feeds)
  const result = {}
  for (const [name, t] of Object.entries(outputs))
    result[name] = { type: t.type, dims: [...t.dims], data: t.data }
  return result
}
