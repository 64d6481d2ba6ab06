// The worker-mode comparisons, in one plain `node` process: @aide/plugins with
// its host-owned worker against raw @extism/extism with `runInWorker`, same
// module, same input, alternating runs. A plain process because Extism's own
// worker cannot start in a process with source maps enabled (the bench runs
// under tsx, which enables them), so index.ts bundles src/ with esbuild first
// and passes the bundle here. Prints one JSON object.
//   node bench/worker-pair.mjs <host bundle.mjs> <module.wasm> <quick: 0|1>
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import createPlugin from '@extism/extism'
import { measure } from 'mitata'

const [bundlePath, wasmPath, quickFlag] = process.argv.slice(2)
const quick = quickFlag === '1'
const { createPluginHost, sha256Hex } = await import(bundlePath)
const wasm = new Uint8Array(readFileSync(wasmPath))
const input = 'x'.repeat(256)
const manifest = {
  id: 'bench.limits',
  version: '1.0.0',
  hostApi: '^1.0.0',
  wasm: { path: 'plugin.wasm', sha256: sha256Hex(wasm) },
  entries: [{ kind: 'command', export: 'echo', command: 'echo' }],
}
const options = { min_cpu_time: (quick ? 50 : 400) * 1e6, max_samples: quick ? 2_000 : 100_000 }

const host = createPluginHost({ hostApiVersion: '1.0.0', isolation: 'worker' })
await host.load({ manifest, wasm })
const raw = await createPlugin({ wasm: [{ data: wasm }] }, { useWasi: false, runInWorker: true })
const subjectCall = () => host.call('bench.limits', 'echo', input)
// Like the host, release the call's blocks: an unreset instance fails after ~16k calls.
const peerCall = async () => {
  const output = await raw.call('echo', input)
  await raw.reset()
  return output
}
let subject = Number.POSITIVE_INFINITY
let peer = Number.POSITIVE_INFINITY
for (let round = 0; round < (quick ? 1 : 3); round++) {
  subject = Math.min(subject, (await measure(subjectCall, options)).avg)
  peer = Math.min(peer, (await measure(peerCall, options)).avg)
}
await raw.close()
await host.dispose()

const subjectLoads = []
const peerLoads = []
for (let i = 0; i < (quick ? 5 : 20); i++) {
  let started = performance.now()
  const loader = createPluginHost({ hostApiVersion: '1.0.0', isolation: 'worker' })
  await loader.load({ manifest, wasm })
  await loader.dispose()
  subjectLoads.push(performance.now() - started)
  started = performance.now()
  const loaded = await createPlugin(
    { wasm: [{ data: wasm }] },
    { useWasi: false, runInWorker: true },
  )
  await loaded.close()
  peerLoads.push(performance.now() - started)
}
process.stdout.write(
  `${JSON.stringify({ subjectOpsPerSec: 1e9 / subject, peerOpsPerSec: 1e9 / peer, subjectLoadsMs: subjectLoads, peerLoadsMs: peerLoads })}\n`,
)
