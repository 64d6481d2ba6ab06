// Worker-thread side of the onnxruntime-node backend (see worker-executor.ts).
// The worker creates one session per model variant when it starts and keeps
// them for its lifetime (creating and releasing sessions repeatedly leaks
// memory in onnxruntime-node), then answers run requests:
//   main -> worker: [id, variant, name, type, data, dims, name, type, data, dims...]
//   worker -> main: [id, name, type, dims, data, ...] or { id, error: { name, message } }
// (flat arrays: cheaper to clone than nested objects, and a round trip clones two)
// Startup ends with { ready: signatures } or { failed: { name, message } }.
//
// main -> worker { close: true } ends the worker from the inside, once its
// runs are done: Worker.terminate() from the main thread while this thread is
// inside onnxruntime-node's native session.run aborts the whole process
// ("terminate called after throwing an instance of 'Napi::Error'", seen with
// onnxruntime-node 1.30 on Node 20), so the pool never terminates a worker.
import { parentPort, workerData } from 'node:worker_threads'
import * as ortModule from 'onnxruntime-node'

const ort = ortModule.InferenceSession ? ortModule : ortModule.default
const sessions = new Map()
let active = 0
let closing = false

function describe(error) {
  return { name: error?.name ?? 'Error', message: error?.message ?? String(error) }
}

async function start() {
  const signatures = {}
  for (const [variant, shared] of Object.entries(workerData.models)) {
    // onnxruntime-node refuses views of a SharedArrayBuffer: copy once per worker.
    const bytes = new Uint8Array(shared.byteLength)
    bytes.set(new Uint8Array(shared))
    const session = await ort.InferenceSession.create(bytes, workerData.sessionOptions)
    sessions.set(variant, session)
    signatures[variant] = {
      inputNames: [...session.inputNames],
      outputNames: [...session.outputNames],
    }
  }
  return signatures
}

function run(message) {
  const session = sessions.get(message[1])
  if (!session) return Promise.reject(new Error(`unknown model variant "${message[1]}"`))
  const feeds = {}
  for (let i = 2; i < message.length; i += 4)
    feeds[message[i]] = new ort.Tensor(message[i + 1], message[i + 2], message[i + 3])
  return session.run(feeds)
}

const starting = start()

async function exitWhenIdle() {
  if (!closing || active > 0) return
  await starting.catch(() => undefined)
  for (const session of sessions.values()) await session.release().catch(() => undefined)
  sessions.clear()
  process.exit(0)
}

function settled() {
  active--
  if (closing) void exitWhenIdle()
}

parentPort.on('message', (message) => {
  if (!Array.isArray(message)) {
    if (message.close) {
      closing = true
      void exitWhenIdle()
    }
    return
  }
  const id = message[0]
  active++
  run(message).then(
    // Outputs are copied, not transferred: for the outputs of one run of a small
    // model, a transfer list measured slower than the copy.
    (results) => {
      const reply = [id]
      for (const name in results) {
        const t = results[name]
        reply.push(name, t.type, t.dims, t.data)
      }
      parentPort.postMessage(reply)
      settled()
    },
    (error) => {
      parentPort.postMessage({ id, error: describe(error) })
      settled()
    },
  )
})

starting.then(
  (signatures) => parentPort.postMessage({ ready: signatures }),
  (error) => parentPort.postMessage({ failed: describe(error) }),
)
