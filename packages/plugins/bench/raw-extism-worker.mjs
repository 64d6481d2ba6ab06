// Peer measurement for the worker cases: raw @extism/extism with runInWorker.
// Runs in its own plain `node` process because Extism's worker cannot start in
// a process that has source maps enabled (the bench runs under tsx, which
// enables them). Prints one JSON object: call timing and load times.
//   node bench/raw-extism-worker.mjs <module.wasm> <quick: 0|1>
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import createPlugin from '@extism/extism'
import { measure } from 'mitata'

const [wasmPath, quickFlag] = process.argv.slice(2)
const quick = quickFlag === '1'
const wasm = readFileSync(wasmPath)
const input = 'x'.repeat(256)

const plugin = await createPlugin({ wasm: [{ data: wasm }] }, { useWasi: false, runInWorker: true })
const options = { min_cpu_time: (quick ? 50 : 400) * 1e6, max_samples: quick ? 2_000 : 100_000 }
let call = await measure(async () => {
  const output = await plugin.call('echo', input)
  await plugin.reset()
  return output
}, options)
if (!quick) {
  const again = await measure(async () => {
    const output = await plugin.call('echo', input)
    await plugin.reset()
    return output
  }, options)
  if (again.avg < call.avg) call = again
}
await plugin.close()

const loads = []
for (let i = 0; i < (quick ? 5 : 20); i++) {
  const started = performance.now()
  const loaded = await createPlugin(
    { wasm: [{ data: wasm }] },
    { useWasi: false, runInWorker: true },
  )
  await loaded.close()
  loads.push(performance.now() - started)
}
process.stdout.write(`${JSON.stringify({ callOpsPerSec: 1e9 / call.avg, loadsMs: loads })}\n`)
