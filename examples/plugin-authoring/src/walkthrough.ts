/**
 * Runs every step of the plugin-authoring walk-through and prints what each
 * one did. With `--json`, the last line is a JSON summary (the test reads it).
 *
 *   pnpm start [--work-dir DIR] [--rebuild] [--json]
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { buildPlugin, callPlugin, installPlugin, packagePlugin } from './steps.js'

const SAMPLE = [
  'export function total(items: number[]): number {',
  '  // TODO: handle an empty list',
  '  let sum = 0',
  '  for (const item of items) sum += item // FIXME overflow for huge inputs',
  '  return sum',
  '}',
  '',
].join('\n')

const { values } = parseArgs({
  options: {
    'work-dir': { type: 'string' },
    rebuild: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
})
const workDir = values['work-dir'] ?? (await mkdtemp(join(tmpdir(), 'aide-plugin-authoring-')))
const say = (text: string) => process.stdout.write(`${text}\n`)

say('1. build   plugin/assembly/index.ts -> plugin/dist/plugin.wasm')
const built = buildPlugin({ force: values.rebuild })
say(`           ${built.rebuilt ? 'compiled with asc' : 'up to date'}: ${built.wasmPath}`)

say('2. package manifest + sha256 -> .tgz')
const { manifest, archive } = await packagePlugin(join(workDir, 'packages'))
say(
  `           ${manifest.id}@${manifest.version} (sha256 ${manifest.wasm.sha256?.slice(0, 12)}…) -> ${archive}`,
)

say('3. install into a local registry')
const { registry, found } = await installPlugin(join(workDir, 'registry'), archive)
say(`           registry ${registry.dir}; search "todo" -> ${found.join(', ')}`)

say('4. call    load the enabled plugins into a host and run diagnostics')
const { host, diagnostics, raw } = await callPlugin(registry, SAMPLE)
for (const d of diagnostics) {
  say(
    `           ${d.source} ${d.severity} line ${d.range.start.line + 1}:${d.range.start.character + 1} ${d.ruleId}: ${d.message}`,
  )
}
const stats = host.stats()
await host.dispose()

say('5. disable it in the registry; the host unloads it on the next sync')
await registry.disable(manifest.id)
const after = await (async () => {
  const { createPluginHost } = await import('@aide/plugins')
  const second = createPluginHost({ hostApiVersion: '1.0.0' })
  await second.syncWithRegistry(registry)
  const loaded = second.list().map((p) => p.manifest.id)
  await second.dispose()
  return loaded
})()
say(`           loaded after disable: [${after.join(', ')}]`)

if (values.json) {
  say(
    JSON.stringify({
      rebuilt: built.rebuilt,
      manifest: { id: manifest.id, version: manifest.version, sha256: manifest.wasm.sha256 },
      archive,
      found,
      diagnostics,
      raw,
      calls: stats.plugins[manifest.id]?.calls,
      loadedAfterDisable: after,
    }),
  )
}
if (!values['work-dir']) await rm(workDir, { recursive: true, force: true })
