/**
 * Runs every package's benchmarks and writes one report.
 *
 *   pnpm bench [--quick] [--only cache,core] [--out bench-results] [--threshold 0.15]
 *              [--previous FILE] [--fail-on-regression] [--traces DIR] [other suite flags]
 *
 * Each package script named `bench` or `bench:*` runs with `--json FILE`; the
 * rows are gathered into `<out>/latest.jsonl`, the previous `latest.jsonl`
 * (or `--previous FILE`) is the baseline, and `<out>/report.md` plus one SVG
 * chart per suite are written. Progress is printed as each suite runs.
 */
import { spawn } from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { join, resolve } from 'node:path'
import { parseBenchArgs } from './harness.ts'
import { compareRuns, parseJsonLines, renderMarkdown, renderSvg } from './report.ts'

const root = resolve(import.meta.dirname, '..')
const options = parseBenchArgs()
const out = resolve(
  root,
  typeof options.extra.out === 'string' ? options.extra.out : 'bench-results',
)
const threshold =
  typeof options.extra.threshold === 'string' ? Number(options.extra.threshold) : 0.15
const only =
  typeof options.extra.only === 'string' ? new Set(options.extra.only.split(',')) : undefined
const suiteTimeoutMs = 15 * 60_000

// Flags the runner does not use itself go to every suite (e.g. `--traces DIR` for the cache).
const ownFlags = new Set(['out', 'threshold', 'only', 'previous', 'fail-on-regression'])
const passThrough = Object.entries(options.extra)
  .filter(([key]) => !ownFlags.has(key))
  .flatMap(([key, value]) => (value === true ? [`--${key}`] : [`--${key}`, value]))

interface Suite {
  pkg: string
  dir: string
  script: string
}

const suites: Suite[] = []
for (const name of readdirSync(join(root, 'packages')).sort()) {
  const dir = join(root, 'packages', name)
  if (!existsSync(join(dir, 'package.json'))) continue
  if (only && !only.has(name)) continue
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
    scripts?: Record<string, string>
  }
  for (const script of Object.keys(manifest.scripts ?? {}).sort()) {
    if (script === 'bench' || script.startsWith('bench:')) suites.push({ pkg: name, dir, script })
  }
}

mkdirSync(out, { recursive: true })
const latest = join(out, 'latest.jsonl')
// The baseline: --previous FILE, else this machine's last run, else the run stored in the repo.
const storedBaseline = join(root, 'bench', 'baseline.jsonl')
let previousPath =
  typeof options.extra.previous === 'string'
    ? resolve(options.extra.previous)
    : join(out, 'previous.jsonl')
if (!options.extra.previous) {
  if (existsSync(latest)) copyFileSync(latest, previousPath)
  else if (existsSync(storedBaseline)) previousPath = storedBaseline
}
rmSync(latest, { force: true })

function runSuite(suite: Suite, jsonFile: string): Promise<number> {
  const args = [
    'run',
    suite.script,
    '--',
    '--json',
    jsonFile,
    ...(options.quick ? ['--quick'] : []),
    ...passThrough,
  ]
  return new Promise((resolvePromise) => {
    const child = spawn('pnpm', args, {
      cwd: suite.dir,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' },
    })
    const timer = setTimeout(() => {
      console.error(
        `  ${suite.pkg} ${suite.script}: over ${suiteTimeoutMs / 60_000} min, stopping it`,
      )
      child.kill('SIGKILL')
    }, suiteTimeoutMs)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolvePromise(code ?? 1)
    })
  })
}

const started = Date.now()
const failures: string[] = []
for (const [index, suite] of suites.entries()) {
  const jsonFile = join(out, `${suite.pkg}-${suite.script.replace(':', '-')}.jsonl`)
  rmSync(jsonFile, { force: true })
  const t0 = Date.now()
  console.error(
    `\n[${index + 1}/${suites.length}] @aide/${suite.pkg} ${suite.script} (elapsed ${Math.round((t0 - started) / 1000)} s)`,
  )
  const code = await runSuite(suite, jsonFile)
  const rows = existsSync(jsonFile) ? parseJsonLines(readFileSync(jsonFile, 'utf8'), jsonFile) : []
  console.error(
    `[${index + 1}/${suites.length}] ${suite.pkg} ${suite.script}: ${code === 0 ? 'done' : `exit ${code}`} in ${Math.round((Date.now() - t0) / 1000)} s, ${rows.length} comparisons`,
  )
  if (code !== 0) failures.push(`${suite.pkg} ${suite.script}`)
  if (rows.length)
    writeFileSync(latest, rows.map((r) => JSON.stringify(r)).join('\n') + '\n', { flag: 'a' })
}

const current = existsSync(latest) ? parseJsonLines(readFileSync(latest, 'utf8'), latest) : []
const previous = existsSync(previousPath)
  ? parseJsonLines(readFileSync(previousPath, 'utf8'), previousPath)
  : []
const compared = compareRuns(current, previous, threshold)
writeFileSync(
  join(out, 'report.md'),
  renderMarkdown(compared, {
    date: new Date().toISOString(),
    threshold,
    ...(previous.length ? { previous: previousPath.replace(`${root}/`, '') } : {}),
  }),
)
for (const suite of new Set(compared.map((r) => r.suite))) {
  writeFileSync(
    join(out, `${suite}.svg`),
    renderSvg(
      suite,
      compared.filter((r) => r.suite === suite),
    ),
  )
}
const regressions = compared.filter((r) => r.regression)
console.error(
  `\nreport: ${join(out, 'report.md')} (${compared.length} comparisons, ${regressions.length} regressions flagged)`,
)
for (const r of regressions)
  console.error(
    `  ⚠ ${r.suite} / ${r.case}: ${r.previousRatio?.toFixed(2)}x -> ${r.ratio.toFixed(2)}x`,
  )
if (failures.length) console.error(`suites that failed: ${failures.join(', ')}`)
process.exit(failures.length || (options.extra['fail-on-regression'] && regressions.length) ? 1 : 0)
