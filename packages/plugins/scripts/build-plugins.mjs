#!/usr/bin/env node
// Builds the plugins shipped with @aide/plugins from source:
//   plugins/security-audit  AssemblyScript + @extism/as-pdk (asc runs from this package's folder)
//   plugins/aws-key-scan    hand-written WebAssembly text, compiled with the wabt package
// Each build writes plugins/<name>/dist/plugin.wasm and dist/aide-plugin.json (the
// source manifest plus the module's sha256). A plugin is skipped when its outputs
// are newer than every source file, so repeated runs are cheap.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

export const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(join(packageDir, 'package.json'))

function newestSource(paths) {
  let newest = 0
  for (const path of paths) {
    const info = statSync(path)
    if (info.isDirectory()) {
      newest = Math.max(newest, newestSource(readdirSync(path).map((name) => join(path, name))))
    } else {
      newest = Math.max(newest, info.mtimeMs)
    }
  }
  return newest
}

function upToDate(outputs, sources) {
  if (!outputs.every((output) => existsSync(output))) return false
  const oldestOutput = Math.min(...outputs.map((output) => statSync(output).mtimeMs))
  return oldestOutput >= newestSource(sources)
}

function writeAtomically(path, data) {
  mkdirSync(dirname(path), { recursive: true })
  const temporary = `${path}.${process.pid}.tmp`
  writeFileSync(temporary, data)
  renameSync(temporary, path)
}

/** Compiles WebAssembly text to a binary module. */
export async function compileWat(source, name = 'module.wat') {
  const wabt = await require('wabt')()
  const module = wabt.parseWat(name, source)
  try {
    module.validate()
    return Uint8Array.from(module.toBinary({}).buffer)
  } finally {
    module.destroy()
  }
}

/** Compiles every `*.wat` in `dir` to `outDir/<name>.wasm` (skipping ones that are up to date). */
export async function compileWatFolder(dir, outDir) {
  for (const file of readdirSync(dir).filter((name) => name.endsWith('.wat'))) {
    const output = join(outDir, file.replace(/\.wat$/, '.wasm'))
    if (upToDate([output], [join(dir, file)])) continue
    writeAtomically(output, await compileWat(readFileSync(join(dir, file), 'utf8'), file))
  }
}

function writeManifest(pluginDir, wasm) {
  const manifest = JSON.parse(readFileSync(join(pluginDir, 'manifest.json'), 'utf8'))
  manifest.wasm = { ...manifest.wasm, sha256: createHash('sha256').update(wasm).digest('hex') }
  writeAtomically(
    join(pluginDir, 'dist', 'aide-plugin.json'),
    `${JSON.stringify(manifest, null, 2)}\n`,
  )
}

async function buildWatPlugin(name) {
  const pluginDir = join(packageDir, 'plugins', name)
  const outputs = [
    join(pluginDir, 'dist', 'plugin.wasm'),
    join(pluginDir, 'dist', 'aide-plugin.json'),
  ]
  if (upToDate(outputs, [join(pluginDir, 'plugin.wat'), join(pluginDir, 'manifest.json')]))
    return false
  const wasm = await compileWat(
    readFileSync(join(pluginDir, 'plugin.wat'), 'utf8'),
    `${name}/plugin.wat`,
  )
  writeAtomically(outputs[0], wasm)
  writeManifest(pluginDir, wasm)
  return true
}

function buildAssemblyScriptPlugin(name) {
  const pluginDir = join(packageDir, 'plugins', name)
  const outputs = [
    join(pluginDir, 'dist', 'plugin.wasm'),
    join(pluginDir, 'dist', 'aide-plugin.json'),
  ]
  if (upToDate(outputs, [join(pluginDir, 'assembly'), join(pluginDir, 'manifest.json')]))
    return false
  mkdirSync(join(pluginDir, 'dist'), { recursive: true })
  const asc = join(dirname(require.resolve('assemblyscript/package.json')), 'bin', 'asc.js')
  const entry = relative(packageDir, join(pluginDir, 'assembly', 'index.ts'))
  const temporary = join(pluginDir, 'dist', `plugin.${process.pid}.wasm`)
  // asc resolves `@extism/as-pdk` from the working directory's node_modules.
  execFileSync(
    process.execPath,
    [
      asc,
      entry,
      '--outFile',
      relative(packageDir, temporary),
      '--use',
      `abort=${entry.replace(/\.ts$/, '')}/abortHandler`,
      '--optimize',
    ],
    { cwd: packageDir, stdio: ['ignore', 'inherit', 'inherit'] },
  )
  renameSync(temporary, outputs[0])
  writeManifest(pluginDir, readFileSync(outputs[0]))
  return true
}

/** Builds every shipped plugin; returns the names that were rebuilt. */
export async function buildShippedPlugins() {
  const built = []
  if (buildAssemblyScriptPlugin('security-audit')) built.push('security-audit')
  if (await buildWatPlugin('aws-key-scan')) built.push('aws-key-scan')
  return built
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const built = await buildShippedPlugins()
  console.log(built.length ? `built plugins: ${built.join(', ')}` : 'plugins are up to date')
}
