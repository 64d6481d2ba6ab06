/**
 * @aide/plugins benchmarks, against raw @extism/extism in the same run:
 * - call overhead of `host.call` against a raw Extism `plugin.call`, in-thread and in a worker;
 * - load time (verify, cap memory, compile, start) against a raw `createPlugin`, warm, plus the cold first load;
 * - how quickly a runaway call is stopped, against the target of timeout + 50 ms;
 * - registry search p95 over 1,000 manifests, against the 10 ms target.
 *
 *   pnpm --filter @aide/plugins bench -- [--json out.jsonl] [--quick]
 */
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { promisify } from 'node:util'
import createPlugin from '@extism/extism'
import { BenchReport, percentile } from '../../../bench/harness.ts'
import { compileWat, packageDir } from '../scripts/build-plugins.mjs'
import { createPluginHost, openPluginRegistry, sha256Hex } from '../src/index.ts'

const report = new BenchReport('plugins')
const quick = report.options.quick
const wasm = await compileWat(
  await readFile(join(packageDir, 'test', 'fixtures', 'limits.wat'), 'utf8'),
)
const manifest = {
  id: 'bench.limits',
  version: '1.0.0',
  hostApi: '^1.0.0',
  wasm: { path: 'plugin.wasm', sha256: sha256Hex(wasm) },
  entries: ['echo', 'spin'].map((name) => ({ kind: 'command', export: name, command: name })),
}
const input = 'x'.repeat(256)

async function timeMs(fn: () => Promise<unknown>, runs: number): Promise<number[]> {
  const samples: number[] = []
  for (let i = 0; i < runs; i++) {
    const started = performance.now()
    await fn()
    samples.push(performance.now() - started)
  }
  return samples
}

// Cold: the first load in this process (imports Extism, first compile, first worker).
{
  const started = performance.now()
  const host = createPluginHost({ hostApiVersion: '1.0.0' })
  await host.load({ manifest, wasm })
  console.log(
    `plugins      cold first load (worker, incl. importing @extism/extism): ${(performance.now() - started).toFixed(1)} ms`,
  )
  await host.dispose()
}

// Raw Extism's runInWorker cannot start under tsx (source maps), so both sides
// of the worker cases run in one plain child process, against src/ bundled
// with esbuild (the one tsx itself uses). The bundle sits under node_modules
// so that it resolves @extism/extism like the package does.
const scratch = await mkdtemp(join(tmpdir(), 'aide-plugins-bench-'))
const wasmPath = join(scratch, 'limits.wasm')
await writeFile(wasmPath, wasm)
const wantsWorker = report.wants('call-overhead-worker') || report.wants('load-warm-worker')
let workerPair:
  | {
      subjectOpsPerSec: number
      peerOpsPerSec: number
      subjectLoadsMs: number[]
      peerLoadsMs: number[]
    }
  | undefined
if (wantsWorker) {
  const esbuild = createRequire(createRequire(import.meta.url).resolve('tsx'))('esbuild') as {
    build(options: Record<string, unknown>): Promise<unknown>
  }
  const bundle = join(packageDir, 'node_modules', '.cache', 'aide-bench', 'host.mjs')
  await esbuild.build({
    entryPoints: [join(packageDir, 'src', 'index.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    conditions: ['@aide/source'],
    external: ['@extism/extism', 'semver', 'tar'],
    outfile: bundle,
    logLevel: 'warning',
  })
  workerPair = JSON.parse(
    (
      await promisify(execFile)(
        process.execPath,
        [join(import.meta.dirname, 'worker-pair.mjs'), bundle, wasmPath, quick ? '1' : '0'],
        { cwd: packageDir, maxBuffer: 1 << 20 },
      )
    ).stdout,
  )
}

for (const isolation of ['in-thread', 'worker'] as const) {
  const host = createPluginHost({ hostApiVersion: '1.0.0', isolation })
  await host.load({ manifest, wasm })
  if (isolation === 'in-thread') {
    const raw = await createPlugin(
      { wasm: [{ data: wasm }] },
      { useWasi: false, runInWorker: false },
    )
    if (report.wants('call-overhead-in-thread')) {
      const subjectCall = () => host.call('bench.limits', 'echo', input)
      // Like the host, release the call's blocks: an unreset instance fails after ~16k calls.
      const peerCall = async () => {
        const output = await raw.call('echo', input)
        await raw.reset()
        return output
      }
      // Interleaved batches of 200 calls, median batch of each side: on a shared,
      // loaded machine a burst hits a few batches of both sides, not one side.
      const batch = 200
      const runBatch = async (fn: () => Promise<unknown>) => {
        const started = performance.now()
        for (let i = 0; i < batch; i++) await fn()
        return performance.now() - started
      }
      for (let i = 0; i < 10; i++) {
        await runBatch(subjectCall)
        await runBatch(peerCall)
      }
      const subjectMs: number[] = []
      const peerMs: number[] = []
      for (let round = 0; round < (quick ? 10 : 100); round++) {
        subjectMs.push(await runBatch(subjectCall))
        peerMs.push(await runBatch(peerCall))
      }
      const subjectOps = (batch / percentile(subjectMs, 50)) * 1000
      const peerOps = (batch / percentile(peerMs, 50)) * 1000
      report.add({
        case: 'call-overhead-in-thread',
        subject: '@aide/plugins host.call',
        peer: 'raw @extism/extism call',
        metric: 'ops/s',
        subjectValue: subjectOps,
        peerValue: peerOps,
        higherIsBetter: true,
        note: '256-byte echo, call + reset on both sides; same process, 100 interleaved batches of 200 calls, median batch',
      })
    }
    await raw.close()
  } else if (workerPair && report.wants('call-overhead-worker')) {
    report.add({
      case: 'call-overhead-worker',
      subject: '@aide/plugins host.call (host-owned worker)',
      peer: 'raw @extism/extism runInWorker',
      metric: 'ops/s',
      subjectValue: workerPair.subjectOpsPerSec,
      peerValue: workerPair.peerOpsPerSec,
      higherIsBetter: true,
      note: '256-byte echo, call + reset on both sides; both in one plain node child process (src bundled), alternating runs, best of 3',
    })
  }
  await host.dispose()

  if (report.wants(`load-warm-${isolation}`) && (isolation === 'in-thread' || workerPair)) {
    const runs = quick ? 5 : 20
    const subject =
      isolation === 'worker'
        ? workerPair!.subjectLoadsMs
        : await timeMs(async () => {
            const loader = createPluginHost({ hostApiVersion: '1.0.0', isolation })
            await loader.load({ manifest, wasm })
            await loader.dispose()
          }, runs)
    const peer =
      isolation === 'worker'
        ? workerPair!.peerLoadsMs
        : await timeMs(async () => {
            const plugin = await createPlugin({ wasm: [{ data: wasm }] }, { useWasi: false })
            await plugin.close()
          }, runs)
    report.add({
      case: `load-warm-${isolation}`,
      subject: '@aide/plugins host.load',
      peer: 'raw createPlugin',
      metric: 'p50 ms',
      subjectValue: percentile(subject, 50),
      peerValue: percentile(peer, 50),
      higherIsBetter: false,
      note: `${runs} loads; host adds sha256, manifest checks, memory cap, compile${isolation === 'worker' ? '; both in the plain child process' : ''}`,
    })
  }
}

if (report.wants('runaway-stop')) {
  const timeoutMs = 200
  const host = createPluginHost({ hostApiVersion: '1.0.0', limits: { timeoutMs } })
  await host.load({ manifest, wasm })
  const samples: number[] = []
  for (let i = 0; i < (quick ? 3 : 10); i++) {
    // Start from a warm worker, so the figure is the stop time, not a worker start-up.
    await host.call('bench.limits', 'echo', 'warm')
    const started = performance.now()
    await host.call('bench.limits', 'spin', '').catch(() => undefined)
    samples.push(performance.now() - started)
  }
  report.add({
    case: 'runaway-stop',
    subject: '@aide/plugins (timeout 200 ms)',
    peer: 'target: timeout + 50 ms',
    metric: 'max ms to reject',
    subjectValue: Math.max(...samples),
    peerValue: timeoutMs + 50,
    higherIsBetter: false,
    note: `${samples.length} runaway calls; worker killed and respawned each time`,
  })
  await host.dispose()
}

if (report.wants('registry-search')) {
  const dir = await mkdtemp(join(tmpdir(), 'aide-plugins-bench-'))
  const words = [
    'security',
    'lint',
    'format',
    'sql',
    'secrets',
    'docs',
    'rust',
    'python',
    'typescript',
    'test',
  ]
  const plugins: Record<string, { current: string; previous: string[]; enabled: boolean }> = {}
  for (let i = 0; i < 1000; i++) {
    const id = `bench.plugin-${i}`
    const folder = join(dir, 'plugins', id, '1.0.0')
    await mkdir(folder, { recursive: true })
    await writeFile(
      join(folder, 'aide-plugin.json'),
      JSON.stringify({
        ...manifest,
        id,
        name: `Plugin ${i} ${words[i % words.length]}`,
        description: `Checks ${words[(i * 7) % words.length]} and ${words[(i * 3) % words.length]} issues in projects number ${i}`,
        keywords: [words[i % words.length], words[(i + 3) % words.length]],
      }),
    )
    plugins[id] = { current: '1.0.0', previous: [], enabled: true }
  }
  await writeFile(join(dir, 'registry.json'), JSON.stringify({ version: 1, plugins }))
  const registry = await openPluginRegistry(dir)
  const queries = [
    'security',
    'sql secrets',
    'plugin-42',
    'typescript lint',
    'nothing-here',
    'docs',
  ]
  const samples: number[] = []
  for (let round = 0; round < (quick ? 20 : 200); round++) {
    for (const query of queries) {
      const started = performance.now()
      registry.search(query)
      samples.push(performance.now() - started)
    }
  }
  report.add({
    case: 'registry-search-1000',
    subject: '@aide/plugins registry.search',
    peer: 'target: 10 ms',
    metric: 'p95 ms',
    subjectValue: percentile(samples, 95),
    peerValue: 10,
    higherIsBetter: false,
    note: `1,000 manifests, ${samples.length} searches`,
  })
  await rm(dir, { recursive: true, force: true })
}

await rm(scratch, { recursive: true, force: true })
report.summary()
