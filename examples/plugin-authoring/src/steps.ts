/**
 * The steps of writing an aide plugin, one function each: build the
 * AssemblyScript source to WebAssembly, package it with a manifest carrying
 * the module's hash, install it into a local registry, load it into a plugin
 * host and call it.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  createPluginHost,
  MANIFEST_FILE,
  openPluginRegistry,
  type PluginDiagnostic,
  type PluginHost,
  type PluginManifest,
  type PluginRegistry,
  parseManifest,
  sha256Hex,
} from '@aide/plugins'
import { create as createTar } from 'tar'

/** The example's folder. */
export const exampleDir = join(dirname(fileURLToPath(import.meta.url)), '..')
/** The plugin's source folder. */
export const pluginDir = join(exampleDir, 'plugin')
const require = createRequire(join(exampleDir, 'package.json'))

/** Step 1 — compile `plugin/assembly/index.ts` to `plugin/dist/plugin.wasm` (skipped when up to date). */
export function buildPlugin(options: { force?: boolean } = {}): {
  wasmPath: string
  rebuilt: boolean
} {
  const source = join(pluginDir, 'assembly', 'index.ts')
  const wasmPath = join(pluginDir, 'dist', 'plugin.wasm')
  if (
    !options.force &&
    existsSync(wasmPath) &&
    statSync(wasmPath).mtimeMs >= statSync(source).mtimeMs
  ) {
    return { wasmPath, rebuilt: false }
  }
  const asc = join(dirname(require.resolve('assemblyscript/package.json')), 'bin', 'asc.js')
  const temporary = join(pluginDir, 'dist', `plugin.${process.pid}.wasm`)
  mkdirSync(dirname(temporary), { recursive: true })
  execFileSync(
    process.execPath,
    [
      asc,
      relative(exampleDir, source),
      '--outFile',
      relative(exampleDir, temporary),
      // AssemblyScript's abort imports a host function Extism does not have: trap instead.
      '--use',
      'abort=plugin/assembly/index/abortHandler',
      '--optimize',
    ],
    // asc resolves `@extism/as-pdk` from the working directory's node_modules.
    { cwd: exampleDir, stdio: ['ignore', 'inherit', 'inherit'] },
  )
  // A rename is atomic: a concurrent reader sees the old module or the new one.
  renameSync(temporary, wasmPath)
  return { wasmPath, rebuilt: true }
}

/**
 * Step 2 — write `plugin/dist/aide-plugin.json`: the source manifest plus the
 * module's SHA-256, which the host checks before loading. Validates it with
 * the same parser the host uses, and packs the folder as a `.tgz`.
 */
export async function packagePlugin(
  outDir: string,
  version?: string,
): Promise<{ manifest: PluginManifest; archive: string }> {
  const wasm = await readFile(join(pluginDir, 'dist', 'plugin.wasm'))
  const source = JSON.parse(await readFile(join(pluginDir, 'manifest.json'), 'utf8'))
  const raw = {
    ...source,
    ...(version ? { version } : {}),
    wasm: { ...source.wasm, sha256: sha256Hex(wasm) },
  }
  const manifest = parseManifest(raw)
  const stage = join(outDir, `${manifest.id}-${manifest.version}`)
  await mkdir(stage, { recursive: true })
  await writeFile(join(stage, 'plugin.wasm'), wasm)
  await writeFile(join(stage, MANIFEST_FILE), `${JSON.stringify(raw, null, 2)}\n`)
  const archive = `${stage}.tgz`
  await createTar({ gzip: true, file: `${archive}.tmp`, cwd: stage }, [
    'plugin.wasm',
    MANIFEST_FILE,
  ])
  await rename(`${archive}.tmp`, archive)
  return { manifest, archive }
}

/** Step 3 — install the archive into a local registry and find it by search. */
export async function installPlugin(
  registryDir: string,
  archive: string,
): Promise<{ registry: PluginRegistry; found: string[] }> {
  const registry = await openPluginRegistry(registryDir)
  await registry.install(archive)
  const found = registry.search('todo').map((hit) => `${hit.id}@${hit.version}`)
  return { registry, found }
}

/** Step 4 — load the registry's enabled plugins into a host and call the plugin. */
export async function callPlugin(
  registry: PluginRegistry,
  text: string,
): Promise<{ host: PluginHost; diagnostics: PluginDiagnostic[]; raw: unknown }> {
  const host = createPluginHost({
    hostApiVersion: '1.0.0',
    limits: { timeoutMs: 5_000, memoryBytes: 32 * 1024 * 1024 },
  })
  const failures = await host.syncWithRegistry(registry)
  if (failures.length > 0) {
    await host.dispose()
    throw failures[0]!.error
  }
  // Through the aggregate API an editor uses…
  const { diagnostics, failures: callFailures } = await host.runDiagnostics({
    uri: 'file:///src/app.ts',
    languageId: 'typescript',
    text,
  })
  if (callFailures.length > 0) {
    await host.dispose()
    throw callFailures[0]!.error
  }
  // …and as a raw call of the export.
  const bytes = await host.call('example.todo-comments', 'diagnostics', text)
  return { host, diagnostics, raw: JSON.parse(new TextDecoder().decode(bytes)) }
}
