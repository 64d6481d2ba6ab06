/**
 * Builds the shipped code-completion model, offline and deterministically:
 *
 * 1. reads real code available locally (TypeScript's lib*.d.ts and the
 *    @types/node declarations under node_modules; nothing is downloaded),
 * 2. holds out every 8th file for evaluation,
 * 3. trains the tokenizer and a small next-token model in JavaScript,
 * 4. writes the fp32 ONNX model (through onnx-proto) and its int8 variant
 *    (through this package's quantizer),
 * 5. reports top-1 / top-5 accuracy of both on the held-out files.
 *
 * Usage: pnpm --filter @aide/orchestrator build:model [-- --steps N] [--out DIR]
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CodeTokenizer } from '../src/local/tokenizer.ts'
import { evaluationRows, nextTokenModelToOnnx, trainNextTokenModel } from '../src/local/trainer.ts'
import { loadOnnxRuntimeNode } from '../src/onnx/load-node.ts'
import { InlineExecutor } from '../src/onnx/runtime.ts'
import { estimateAccuracyLoss, quantizeModel } from '../src/quantize/index.ts'

const here = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const flag = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback
}
const outDir = flag('out', join(here, '..', 'models', 'code-completion'))
const SHAPE = { vocabularySize: 1024, contextLength: 8, embeddingSize: 24, hiddenSize: 96 }
const STEPS = Number(flag('steps', '40000'))
const SEED = 20_260_101
const HOLD_OUT_EVERY = 8
const MAX_FILE_BYTES = 400_000

function log(message: string): void {
  process.stdout.write(`[build-model] ${message}\n`)
}

function listFiles(dir: string, accept: (name: string) => boolean, depth = 3): string[] {
  const out: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
    a.name < b.name ? -1 : 1,
  )) {
    const path = join(dir, entry.name)
    if (entry.isDirectory() && depth > 0 && entry.name !== 'node_modules')
      out.push(...listFiles(path, accept, depth - 1))
    else if (entry.isFile() && accept(entry.name)) out.push(path)
  }
  return out
}

function stripComments(source: string): string {
  return source
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:"'`])\/\/.*$/gm, '$1')
    .replace(/\n\s*\n+/g, '\n')
}

async function main(): Promise<void> {
  const started = performance.now()
  const require = createRequire(import.meta.url)
  const typescriptLib = join(dirname(require.resolve('typescript/package.json')), 'lib')
  const typesNode = dirname(require.resolve('@types/node/package.json'))
  const files = [
    ...listFiles(typescriptLib, (n) => /^lib\..*\.d\.ts$/.test(n), 0),
    ...listFiles(typesNode, (n) => n.endsWith('.d.ts')),
  ].filter((f) => statSync(f).size <= MAX_FILE_BYTES)
  const texts = files.map((f) => stripComments(readFileSync(f, 'utf8')))
  const heldOut = new Set(
    files.map((_, i) => i).filter((i) => i % HOLD_OUT_EVERY === HOLD_OUT_EVERY - 1),
  )
  const trainTexts = texts.filter((_, i) => !heldOut.has(i))
  const testTexts = texts.filter((_, i) => heldOut.has(i))
  log(
    `corpus: ${files.length} files (${trainTexts.length} train, ${testTexts.length} held out), ${(texts.reduce((a, t) => a + t.length, 0) / 1e6).toFixed(1)} MB`,
  )

  const tokenizer = CodeTokenizer.train(trainTexts, SHAPE.vocabularySize)
  const trainStreams = trainTexts.map((t) => Int32Array.from(tokenizer.encode(t)))
  const testStreams = testTexts.map((t) => Int32Array.from(tokenizer.encode(t)))
  const trainTokens = trainStreams.reduce((a, s) => a + s.length, 0)
  const testTokens = testStreams.reduce((a, s) => a + s.length, 0)
  log(
    `tokenizer: ${tokenizer.size} tokens; ${trainTokens} training tokens, ${testTokens} held-out tokens`,
  )

  const trainStart = performance.now()
  const weights = trainNextTokenModel(trainStreams, {
    ...SHAPE,
    steps: STEPS,
    seed: SEED,
    onProgress: (done, total, loss) => {
      if (done % Math.floor(total / 10) < Math.floor(total / 50) || done === total) {
        const seconds = (performance.now() - trainStart) / 1000
        log(
          `training ${((100 * done) / total).toFixed(0).padStart(3)}%  step ${done}/${total}  loss ${loss.toFixed(3)}  ${seconds.toFixed(1)} s`,
        )
      }
    },
  })
  const trainSeconds = (performance.now() - trainStart) / 1000

  const fp32 = await nextTokenModelToOnnx(weights, {
    tokenizer: 'tokenizer.json',
    corpus: 'typescript lib + @types/node .d.ts',
  })
  const int8 = await quantizeModel(fp32, { precision: 'int8' })

  // Held-out accuracy of both variants through onnxruntime-node.
  const { inputs, targets } = evaluationRows(testStreams, SHAPE.contextLength)
  const ort = await loadOnnxRuntimeNode()
  const executor = new InlineExecutor(
    ort,
    { fp32, int8: int8.model },
    { executionProviders: ['cpu'], intraOpNumThreads: 2 },
  )
  await executor.load()
  const accuracy: Record<string, { top1: number; top5: number }> = {}
  const chunk = 2048
  for (const variant of ['fp32', 'int8']) {
    let top1 = 0
    let top5 = 0
    for (let row = 0; row < targets.length; row += chunk) {
      const rows = Math.min(chunk, targets.length - row)
      const ids = inputs.subarray(row * SHAPE.contextLength, (row + rows) * SHAPE.contextLength)
      const out = await executor.run(variant, {
        input_ids: { type: 'int64', data: ids, dims: [rows, SHAPE.contextLength] },
      })
      const logits = out.logits!.data as Float32Array
      const V = SHAPE.vocabularySize
      for (let r = 0; r < rows; r++) {
        const target = targets[row + r]!
        const score = logits[r * V + target]!
        let better = 0
        for (let v = 0; v < V && better < 5; v++) if (logits[r * V + v]! > score) better++
        if (better === 0) top1++
        if (better < 5) top5++
      }
    }
    accuracy[variant] = { top1: top1 / targets.length, top5: top5 / targets.length }
    log(
      `held-out ${variant}: top-1 ${(100 * accuracy[variant]!.top1).toFixed(2)}%  top-5 ${(100 * accuracy[variant]!.top5).toFixed(2)}%  (${targets.length} positions)`,
    )
  }
  await executor.dispose()
  const calibration = Array.from({ length: 8 }, (_, i) => {
    const start = i * 256
    return {
      input_ids: {
        type: 'int64',
        data: inputs.slice(start * SHAPE.contextLength, (start + 256) * SHAPE.contextLength),
        dims: [256, SHAPE.contextLength],
      },
    }
  })
  const loss = await estimateAccuracyLoss(fp32, int8.model, calibration)

  mkdirSync(outDir, { recursive: true })
  writeFileSync(join(outDir, 'model.onnx'), fp32)
  writeFileSync(join(outDir, 'model.int8.onnx'), int8.model)
  writeFileSync(join(outDir, 'tokenizer.json'), `${JSON.stringify(tokenizer.toJSON())}\n`)
  const metadata = {
    id: 'aide-code-completion',
    version: '1.0.0',
    task: 'completion',
    shape: SHAPE,
    training: { steps: STEPS, seed: SEED, learningRate: 0.08 },
    corpus: {
      sources: ['typescript/lib/lib.*.d.ts', '@types/node/**/*.d.ts'],
      files: files.length,
      heldOutFiles: testTexts.length,
      trainTokens,
      heldOutTokens: testTokens,
      heldOut: `every ${HOLD_OUT_EVERY}th file in path order`,
    },
    variants: {
      fp32: { file: 'model.onnx', bytes: fp32.byteLength, ...accuracy.fp32 },
      int8: { file: 'model.int8.onnx', bytes: int8.model.byteLength, ...accuracy.int8 },
    },
    int8VsFp32: {
      compression: int8.compression,
      top5LossPoints: 100 * (accuracy.fp32!.top5 - accuracy.int8!.top5),
      maxAbsoluteError: loss.maxAbsoluteError,
      meanAbsoluteError: loss.meanAbsoluteError,
      top1Agreement: loss.top1Agreement,
    },
  }
  writeFileSync(join(outDir, 'metadata.json'), `${JSON.stringify(metadata, null, 2)}\n`)
  // Format the JSON files the way the repository's formatter (biome) wants them, so they lint clean.
  try {
    const biome = join(dirname(require.resolve('@biomejs/biome/package.json')), 'bin', 'biome')
    const jsonFiles = ['tokenizer.json', 'metadata.json'].map((f) => join(outDir, f))
    const formatted = spawnSync(process.execPath, [biome, 'format', '--write', ...jsonFiles], {
      stdio: 'ignore',
    })
    if (formatted.status !== 0) log('biome could not format the JSON files')
  } catch {
    log('biome not found: JSON files left as written')
  }
  log(
    `int8: ${int8.compression.toFixed(2)}x smaller (${fp32.byteLength} → ${int8.model.byteLength} bytes), top-5 loss ${metadata.int8VsFp32.top5LossPoints.toFixed(2)} points, top-1 agreement ${(100 * loss.top1Agreement).toFixed(1)}%`,
  )
  log(
    `wrote ${relative(process.cwd(), outDir)} (training ${trainSeconds.toFixed(1)} s, total ${((performance.now() - started) / 1000).toFixed(1)} s)`,
  )
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
