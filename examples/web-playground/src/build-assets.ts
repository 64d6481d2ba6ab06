/**
 * Prepares what the page loads at run time, into `public/`:
 * - `model/keywords.onnx`: the keyword model, y = x · W with one column of W
 *   per vocabulary word (its feature vector), built with the orchestrator's
 *   ONNX graph builder;
 * - `plugins/aws-key-scan.wasm` and `plugins/security-audit.wasm`: the audit
 *   plugins shipped with @aide/plugins (WAT and AssemblyScript), built when needed.
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  buildModel,
  DataType,
  floatTensor,
  loadOnnxSchema,
  valueInfo,
} from '@aide/orchestrator/quantize'
import { buildShippedPlugins } from '../../../packages/plugins/scripts/build-plugins.mjs'
import { FEATURES, featuresOf, VOCABULARY } from './features.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const publicDir = join(root, 'public')

/** Builds every asset; returns the files written. */
export async function buildAssets(): Promise<string[]> {
  const written: string[] = []
  const words = VOCABULARY.length
  const weights = new Float32Array(FEATURES * words)
  for (const [column, word] of VOCABULARY.entries()) {
    const features = featuresOf(word)
    for (let row = 0; row < FEATURES; row++) weights[row * words + column] = features[row]!
  }
  const schema = await loadOnnxSchema()
  const model = buildModel(schema, {
    name: 'keywords',
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', FEATURES])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', words])],
    nodes: [{ opType: 'MatMul', input: ['x', 'W'], output: ['y'] }],
    initializers: [floatTensor('W', [FEATURES, words], weights)],
  })
  await mkdir(join(publicDir, 'model'), { recursive: true })
  await writeFile(join(publicDir, 'model', 'keywords.onnx'), model)
  await writeFile(join(publicDir, 'model', 'vocabulary.json'), JSON.stringify(VOCABULARY))
  written.push('model/keywords.onnx', 'model/vocabulary.json')

  // The package exports no ./package.json: resolve the Node entry (in dist/) instead.
  await buildShippedPlugins()
  const pluginsPackage = join(root, '..', '..', 'packages', 'plugins')
  await mkdir(join(publicDir, 'plugins'), { recursive: true })
  for (const name of ['aws-key-scan', 'security-audit']) {
    await copyFile(
      join(pluginsPackage, 'plugins', name, 'dist', 'plugin.wasm'),
      join(publicDir, 'plugins', `${name}.wasm`),
    )
    written.push(`plugins/${name}.wasm`)
  }
  return written
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const written = await buildAssets()
  process.stdout.write(`wrote ${written.map((file) => `public/${file}`).join(', ')}\n`)
}
