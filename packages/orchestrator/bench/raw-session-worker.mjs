// The peer of the worker-mode overhead benchmark: the least a hand-written
// worker needs to run onnxruntime-node off the main thread. One session,
// created from the bytes in workerData; each message is one session.run whose
// output goes back with postMessage.
import { parentPort, workerData } from 'node:worker_threads'
import * as ortModule from 'onnxruntime-node'

const ort = ortModule.InferenceSession ? ortModule : ortModule.default
const session = await ort.InferenceSession.create(
  new Uint8Array(workerData.model),
  workerData.options,
)
parentPort.on('message', async ({ id, name, type, data, dims }) => {
  const outputs = await session.run({ [name]: new ort.Tensor(type, data, dims) })
  const t = outputs[session.outputNames[0]]
  parentPort.postMessage({ id, type: t.type, dims: t.dims, data: t.data })
})
parentPort.postMessage('ready')
