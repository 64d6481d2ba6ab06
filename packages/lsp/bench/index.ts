/**
 * @aide/lsp benchmark: the assembled server as a real stdio process against a
 * bare vscode-languageserver server (document sync + a fixed completion item),
 * measuring what the AI features cost on top of the protocol floor.
 *
 * - completion latency p50/p99 while a file is typed one key at a time
 *   (explicit completion after each key, each awaited: service time), and
 *   inline completion under a 20 ms typing stream (debounced, superseded);
 * - cold start: process spawn to the first completion answer;
 * - resident memory idle and after opening 1,000 files.
 *
 * Run: pnpm --filter @aide/lsp bench [-- --quick] [-- --json out.jsonl]
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import {
  createProtocolConnection,
  type ProtocolConnection,
  StreamMessageReader,
  StreamMessageWriter,
} from 'vscode-languageserver-protocol/node'
import { BenchReport, parseBenchArgs, percentile } from '../../../bench/harness.ts'

const here = dirname(fileURLToPath(import.meta.url))
const options = parseBenchArgs()
const report = new BenchReport('lsp', options)
const keys = options.quick ? 60 : 240
const files = 1000
const cacheDir = mkdtempSync(join(tmpdir(), 'aide-lsp-bench-'))

interface Server {
  child: ChildProcess
  connection: ProtocolConnection
  startedAt: number
  progress: Array<{ token: unknown; kind: string; title?: string; at: number }>
}

/**
 * Servers run either from source (tsx, `@aide/source`) or, when the packages are
 * built, as plain JavaScript against `dist` — as deployed. On Node 20 tsx's
 * loader hooks run in a thread of their own, which adds tens of MB of RSS.
 */
function startServer(script: string, built = false): Server {
  const startedAt = performance.now()
  const child = spawn(
    process.execPath,
    built
      ? [script, '--stdio']
      : [
          '--conditions=@aide/source',
          '--import',
          import.meta.resolve('tsx'),
          join(here, script),
          '--stdio',
        ],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, ORT_DISABLE_TELEMETRY: '1', AIDE_LSP_CACHE_DIR: cacheDir },
    },
  )
  const connection = createProtocolConnection(
    new StreamMessageReader(child.stdout!),
    new StreamMessageWriter(child.stdin!),
  )
  connection.onNotification('textDocument/publishDiagnostics', () => undefined)
  connection.onRequest('window/workDoneProgress/create', () => null)
  const progress: Array<{ token: unknown; kind: string; title?: string; at: number }> = []
  connection.onNotification(
    '$/progress',
    (params: { token: unknown; value: { kind: string; title?: string } }) => {
      progress.push({
        token: params.token,
        kind: params.value.kind,
        title: params.value.title,
        at: performance.now(),
      })
    },
  )
  connection.listen()
  return { child, connection, startedAt, progress }
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN)
  return kb / 1024
}

const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const sample = readFileSync(join(here, '..', 'src', 'context.ts'), 'utf8')
const typed = sample.slice(sample.indexOf('export function gatherContext')).slice(0, keys)

interface Figures {
  spawnToInitializedMs: number
  initializeToFirstCompletionMs: number
  modelWarmUpMs: number
  coldStartMs: number
  completionP50: number
  completionP99: number
  inlineP50: number
  inlineP99: number
  inlineAnswered: number
  rssIdle: number
  rssFiles: number
}

async function measure(script: string, supportsInline: boolean, built = false): Promise<Figures> {
  const server = startServer(script, built)
  const { connection } = server
  try {
    await connection.sendRequest('initialize', {
      processId: process.pid,
      rootUri: null,
      capabilities: { window: { workDoneProgress: true } },
    })
    const initialized = performance.now()
    await connection.sendNotification('initialized', {})
    const uri = 'file:///bench/typing.ts'
    await connection.sendNotification('textDocument/didOpen', {
      textDocument: { uri, languageId: 'typescript', version: 1, text: sample },
    })
    await connection.sendRequest('textDocument/completion', {
      textDocument: { uri },
      position: { line: 3, character: 0 },
    })
    const firstAnswer = performance.now()
    const coldStartMs = firstAnswer - server.startedAt
    // Model warm-up (load + first session), measured separately from the first answer.
    let modelWarmUpMs = Number.NaN
    if (supportsInline) {
      const deadline = Date.now() + 60_000
      while (Date.now() < deadline) {
        const begin = server.progress.find(
          (p) => p.kind === 'begin' && p.title === 'aide: loading the completion model',
        )
        const end =
          begin && server.progress.find((p) => p.kind === 'end' && p.token === begin.token)
        if (begin && end) {
          modelWarmUpMs = end.at - begin.at
          break
        }
        await settle(20)
      }
    }

    // Typing stream, each completion awaited: pure service time per keystroke.
    const base = 'file:///bench/new.ts'
    let text = ''
    let version = 1
    await connection.sendNotification('textDocument/didOpen', {
      textDocument: { uri: base, languageId: 'typescript', version, text },
    })
    const latencies: number[] = []
    const position = () => {
      const lines = text.split('\n')
      return { line: lines.length - 1, character: lines[lines.length - 1]!.length }
    }
    for (const character of typed) {
      const at = position()
      text += character
      version++
      await connection.sendNotification('textDocument/didChange', {
        textDocument: { uri: base, version },
        contentChanges: [{ range: { start: at, end: at }, text: character }],
      })
      const t0 = performance.now()
      await connection.sendRequest('textDocument/completion', {
        textDocument: { uri: base },
        position: position(),
      })
      latencies.push(performance.now() - t0)
    }

    // Inline completion under a 20 ms typing stream: debounced, older requests superseded.
    const inlineLatencies: number[] = []
    let answered = 0
    if (supportsInline) {
      const pending: Array<Promise<void>> = []
      for (const character of typed.slice(0, Math.min(typed.length, 120))) {
        const at = position()
        text += character
        version++
        await connection.sendNotification('textDocument/didChange', {
          textDocument: { uri: base, version },
          contentChanges: [{ range: { start: at, end: at }, text: character }],
        })
        const t0 = performance.now()
        pending.push(
          connection
            .sendRequest('textDocument/inlineCompletion', {
              textDocument: { uri: base },
              position: position(),
              context: { triggerKind: 2 },
            })
            .then((result) => {
              if (((result as { items?: unknown[] } | null)?.items?.length ?? 0) > 0) {
                answered++
                inlineLatencies.push(performance.now() - t0)
              }
            }),
        )
        await settle(20)
      }
      await Promise.all(pending)
    }

    await settle(300)
    const rssIdle = rssMb(server.child.pid!)
    const body = sample.slice(0, 2000)
    for (let i = 0; i < files; i++) {
      await connection.sendNotification('textDocument/didOpen', {
        textDocument: {
          uri: `file:///bench/files/f${i}.ts`,
          languageId: 'typescript',
          version: 1,
          text: `// file ${i}\n${body}`,
        },
      })
    }
    await connection.sendRequest('textDocument/completion', {
      textDocument: { uri: base },
      position: position(),
    })
    await settle(300)
    const rssFiles = rssMb(server.child.pid!)
    return {
      spawnToInitializedMs: initialized - server.startedAt,
      initializeToFirstCompletionMs: firstAnswer - initialized,
      modelWarmUpMs,
      coldStartMs,
      completionP50: percentile(latencies, 50),
      completionP99: percentile(latencies, 99),
      inlineP50: percentile(inlineLatencies, 50),
      inlineP99: percentile(inlineLatencies, 99),
      inlineAnswered: answered,
      rssIdle,
      rssFiles,
    }
  } finally {
    connection.dispose()
    server.child.kill('SIGKILL')
  }
}

const aide = await measure('aide-server.ts', true)
const bare = await measure('bare-server.ts', false)
const note = `${typed.length} keys`
report.add({
  case: 'completion-p50-typing',
  subject: '@aide/lsp',
  peer: 'bare vscode-languageserver',
  metric: 'ms',
  subjectValue: aide.completionP50,
  peerValue: bare.completionP50,
  higherIsBetter: false,
  note,
})
report.add({
  case: 'completion-p99-typing',
  subject: '@aide/lsp',
  peer: 'bare vscode-languageserver',
  metric: 'ms',
  subjectValue: aide.completionP99,
  peerValue: bare.completionP99,
  higherIsBetter: false,
  note,
})
report.add({
  case: 'cold-start-to-first-completion',
  subject: '@aide/lsp',
  peer: 'bare vscode-languageserver',
  metric: 'ms',
  subjectValue: aide.coldStartMs,
  peerValue: bare.coldStartMs,
  higherIsBetter: false,
  note: 'spawn via node + tsx from source',
})
report.add({
  case: 'initialized-to-first-completion',
  subject: '@aide/lsp',
  peer: 'bare vscode-languageserver',
  metric: 'ms',
  subjectValue: aide.initializeToFirstCompletionMs,
  peerValue: bare.initializeToFirstCompletionMs,
  higherIsBetter: false,
  note: 'from the initialize answer; the model loads in the background',
})
report.add({
  case: 'rss-idle',
  subject: '@aide/lsp',
  peer: 'bare vscode-languageserver',
  metric: 'MB',
  subjectValue: aide.rssIdle,
  peerValue: bare.rssIdle,
  higherIsBetter: false,
})
report.add({
  case: 'rss-1000-files',
  subject: '@aide/lsp',
  peer: 'bare vscode-languageserver',
  metric: 'MB',
  subjectValue: aide.rssFiles,
  peerValue: bare.rssFiles,
  higherIsBetter: false,
  note: `${files} files of ~2 KB`,
})
console.log(
  `\ninline completion under a 20 ms typing stream (30 ms debounce): ${aide.inlineAnswered} answered, p50 ${aide.inlineP50.toFixed(1)} ms, p99 ${aide.inlineP99.toFixed(1)} ms (request to answer, debounce included)`,
)
console.log(
  `process spawn to initialize answered: aide ${aide.spawnToInitializedMs.toFixed(0)} ms, bare ${bare.spawnToInitializedMs.toFixed(0)} ms (module loading through tsx)`,
)
console.log(
  `local model warm-up (load + sessions, in the background after initialized): ${aide.modelWarmUpMs.toFixed(0)} ms`,
)
// The same servers as plain JavaScript against the built packages, when they are built.
const builtDir = join(here, '.built')
if (existsSync(join(here, '..', 'dist', 'ai-server.js'))) {
  mkdirSync(builtDir, { recursive: true })
  const toBuilt = (name: string) => {
    const source = readFileSync(join(here, `${name}.ts`), 'utf8')
      .replace("'../src/ai-server.ts'", "'@aide/lsp/ai'")
      .replace("'../src/node.ts'", "'@aide/lsp/node'")
    const output = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText
    const file = join(builtDir, `${name}.mjs`)
    writeFileSync(file, output)
    return file
  }
  const aideBuilt = await measure(toBuilt('aide-server'), true, true)
  const bareBuilt = await measure(toBuilt('bare-server'), false, true)
  for (const [name, key, note] of [
    ['cold-start-to-first-completion (built)', 'coldStartMs', 'plain node against dist'],
    ['rss-idle (built)', 'rssIdle', 'plain node against dist; target < 150 MB'],
    ['rss-1000-files (built)', 'rssFiles', `${files} files of ~2 KB; plain node against dist`],
  ] as const) {
    report.add({
      case: name,
      subject: '@aide/lsp',
      peer: 'bare vscode-languageserver',
      metric: key === 'coldStartMs' ? 'ms' : 'MB',
      subjectValue: aideBuilt[key],
      peerValue: bareBuilt[key],
      higherIsBetter: false,
      note,
    })
  }
} else {
  console.log('\npackages not built: run `pnpm run build` for the figures against dist')
}
report.summary()
rmSync(cacheDir, { recursive: true, force: true })
rmSync(builtDir, { recursive: true, force: true })
