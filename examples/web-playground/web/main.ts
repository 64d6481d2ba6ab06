/**
 * The playground page: a CodeMirror 6 editor whose completions come from a
 * keyword model on onnxruntime-web (through `@aide/orchestrator/onnx-web`),
 * memoised in the `@aide/cache` L1 tier, and whose diagnostics come from the
 * `aws-key-scan` plugin in Extism's browser runtime. Every step is published
 * on an `@aide/event-bus` bus, which the page lists.
 */
import { createCache } from '@aide/cache'
import { createEventBus } from '@aide/event-bus'
import { createOnnxWebBackend } from '@aide/orchestrator/onnx-web'
import {
  autocompletion,
  type CompletionContext,
  type CompletionResult,
} from '@codemirror/autocomplete'
import { javascript } from '@codemirror/lang-javascript'
import { type Diagnostic, linter, lintGutter } from '@codemirror/lint'
import type { Text } from '@codemirror/state'
import createPlugin from '@extism/extism'
import { basicSetup, EditorView } from 'codemirror'
import * as ort from 'onnxruntime-web'
import { FEATURES, featuresOf } from '../src/features.js'

/** Events of the page's bus. */
interface PlaygroundEvents {
  'model-load': { words: number; executionProvider: string }
  'plugin-load': { pluginId: string }
  'completion-serve': { prefix: string; top: string; cached: boolean }
  'diagnostics-update': { count: number; rules: string[] }
  'playground-error': { where: string; message: string }
}

interface PluginDiagnostic {
  ruleId: string
  severity: 'error' | 'warning' | 'information' | 'hint'
  message: string
  range: {
    start: { line: number; character: number }
    end: { line: number; character: number }
  }
}

const bus = createEventBus<PlaygroundEvents>()
const events = document.querySelector<HTMLOListElement>('#events')!
const status = document.querySelector<HTMLParagraphElement>('#status')!
bus.on('*', (payload, type) => {
  const item = document.createElement('li')
  item.textContent = `${type} ${JSON.stringify(payload)}`
  events.prepend(item)
})

// onnxruntime-web fetches its WebAssembly runtime next to its script; Vite
// emits and serves that file as an asset. One thread: no COOP/COEP headers needed.
ort.env.wasm.numThreads = 1

const cache = createCache<string[]>({ l1: { maxEntries: 1_000 }, ttl: 10 * 60_000 })

async function loadModel() {
  const [bytes, vocabulary] = await Promise.all([
    fetch('/model/keywords.onnx').then((r) => r.arrayBuffer()),
    fetch('/model/vocabulary.json').then((r) => r.json() as Promise<string[]>),
  ])
  const backend = await createOnnxWebBackend({ model: new Uint8Array(bytes), batching: false })
  bus.emit('model-load', {
    words: vocabulary.length,
    executionProvider: String(backend.stats().executionProvider),
  })
  /** Vocabulary words ranked by the model's score for `prefix`, best first. */
  return async (prefix: string): Promise<string[]> => {
    const result = await backend.invoke(
      {
        task: 'rank',
        model: 'keywords',
        input: {
          tensors: { x: { type: 'float32', data: featuresOf(prefix), dims: [1, FEATURES] } },
        },
      },
      { signal: new AbortController().signal },
    )
    const scores = result.output.tensors!.y!.data as Float32Array
    return vocabulary
      .map((word, index) => ({ word, score: scores[index]! }))
      .sort((a, b) => b.score - a.score)
      .map((entry) => entry.word)
  }
}

/** The audit plugins shipped with @aide/plugins: id, module, and the export that returns diagnostics. */
const PLUGINS = [
  { id: 'aide.aws-key-scan', file: 'aws-key-scan.wasm', entry: 'scan' },
  { id: 'aide.security-audit', file: 'security-audit.wasm', entry: 'diagnostics' },
] as const

async function loadPlugins() {
  const loaded = await Promise.all(
    PLUGINS.map(async (spec) => {
      const plugin = await createPlugin(
        { wasm: [{ url: new URL(`/plugins/${spec.file}`, location.href).href }] },
        { useWasi: false, runInWorker: false },
      )
      bus.emit('plugin-load', { pluginId: spec.id })
      return { ...spec, plugin }
    }),
  )
  /** Runs every plugin over the text; each diagnostic names its plugin. */
  return async (text: string): Promise<Array<PluginDiagnostic & { source: string }>> => {
    const all: Array<PluginDiagnostic & { source: string }> = []
    // Extism calls into one plugin instance must not overlap: run them in turn.
    for (const { id, plugin, entry } of loaded) {
      const output = await plugin.call(entry, text)
      const found = output ? (JSON.parse(output.text()) as PluginDiagnostic[]) : []
      all.push(...found.map((d) => ({ ...d, source: id })))
    }
    return all
  }
}

function offsetOf(doc: Text, position: { line: number; character: number }): number {
  const line = doc.line(Math.min(position.line + 1, doc.lines))
  return Math.min(line.from + position.character, line.to)
}

const SEVERITY: Record<PluginDiagnostic['severity'], Diagnostic['severity']> = {
  error: 'error',
  warning: 'warning',
  information: 'info',
  hint: 'hint',
}

async function start(): Promise<void> {
  const [rank, scan] = await Promise.all([loadModel(), loadPlugins()])

  const complete = async (context: CompletionContext): Promise<CompletionResult | null> => {
    const word = context.matchBefore(/[A-Za-z_$][\w$]*/)
    if (!word || (word.text.length < 2 && !context.explicit)) return null
    let cached = true
    const ranked = await cache.getOrSet(word.text.toLowerCase(), async () => {
      cached = false
      return rank(word.text)
    })
    const options = ranked
      .filter((candidate) => candidate.toLowerCase().startsWith(word.text.toLowerCase()))
      .slice(0, 8)
    bus.emit('completion-serve', { prefix: word.text, top: options[0] ?? '', cached })
    return {
      from: word.from,
      options: options.map((label, index) => ({
        label,
        type: 'keyword',
        boost: options.length - index,
        detail: 'onnx',
      })),
      validFor: /^[\w$]*$/,
    }
  }

  const diagnose = async (view: EditorView): Promise<Diagnostic[]> => {
    const doc = view.state.doc
    const found = await scan(doc.toString())
    bus.emit('diagnostics-update', {
      count: found.length,
      rules: found.map((d) => d.ruleId),
    })
    return found.map((d) => ({
      from: offsetOf(doc, d.range.start),
      to: offsetOf(doc, d.range.end),
      severity: SEVERITY[d.severity],
      message: `${d.message} (${d.ruleId})`,
      source: d.source,
    }))
  }

  new EditorView({
    parent: document.querySelector('#editor')!,
    doc: '// Try typing `func`, an AWS access key id, or a hard-coded password\n',
    extensions: [
      basicSetup,
      javascript({ typescript: true }),
      autocompletion({ override: [complete], activateOnTyping: true }),
      linter(diagnose, { delay: 200 }),
      lintGutter(),
    ],
  })
  status.textContent = 'ready: model on onnxruntime-web (wasm), plugin on Extism'
  status.dataset.ready = 'true'
}

start().catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error)
  bus.emit('playground-error', { where: 'start', message })
  status.textContent = `failed: ${message}`
  status.dataset.ready = 'error'
})
