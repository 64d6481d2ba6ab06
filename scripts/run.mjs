#!/usr/bin/env node
// The README's two commands, on a machine with only Node >= 20 and npm:
//   npm run demo  -> node scripts/run.mjs demo
//   npm test      -> node scripts/run.mjs test [vitest args…]
// Installs pnpm (locally, under .tools/) when missing, installs dependencies,
// starts the services the tests need, and runs them.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensureRedisServer, startRedis } from './redis.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const PNPM_VERSION = '12.21.0'
const log = (message) => console.error(`[aide] ${message}`)

function pnpmWorks(command) {
  try {
    const version = execFileSync(command, ['--version'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim()
    return Number(version.split('.')[0]) >= 10
  } catch {
    return false
  }
}

/** Path of a working pnpm (>= 10), installing pnpm into .tools/ when there is none. */
export function ensurePnpm() {
  if (pnpmWorks('pnpm')) return 'pnpm'
  const local = join(root, '.tools', 'node_modules', '.bin', 'pnpm')
  if (existsSync(local) && pnpmWorks(local)) return local
  log(`pnpm not found: installing pnpm@${PNPM_VERSION} into .tools/ with npm…`)
  execFileSync(
    'npm',
    [
      'install',
      '--prefix',
      join(root, '.tools'),
      '--no-audit',
      '--no-fund',
      '--no-save',
      `pnpm@${PNPM_VERSION}`,
    ],
    {
      stdio: 'inherit',
      cwd: root,
    },
  )
  if (!pnpmWorks(local))
    throw new Error('pnpm could not be installed; install it with `npm i -g pnpm` and try again')
  return local
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', cwd: root, ...options })
  if (result.error) throw result.error
  return result.status ?? 1
}

function must(command, args, options) {
  const status = run(command, args, options)
  if (status !== 0) {
    log(`\`${[command, ...args].join(' ')}\` failed with exit code ${status}`)
    process.exit(status)
  }
}

function install(pnpm) {
  const frozen = process.env.CI ? ['--frozen-lockfile'] : []
  must(pnpm, ['install', ...frozen], { env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } })
}

/** Prints `N passed, N failed, N skipped` from vitest's JSON report. */
function summarise(reportPath) {
  if (!existsSync(reportPath)) {
    log('no test report was written')
    return false
  }
  const report = JSON.parse(readFileSync(reportPath, 'utf8'))
  let passed = 0
  let failed = 0
  let skipped = 0
  for (const file of report.testResults ?? []) {
    for (const test of file.assertionResults ?? []) {
      if (test.status === 'passed') passed++
      else if (test.status === 'failed') failed++
      else skipped++
    }
    // A file that failed to load has no assertion results: count it as a failure.
    if ((file.assertionResults ?? []).length === 0 && file.status === 'failed') failed++
  }
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`)
  return failed === 0 && passed > 0
}

async function test(pnpm, extraArgs) {
  const redisServer = ensureRedisServer({ log })
  const redis = await startRedis()
  log(`redis-server ${redis.url} (pid ${redis.pid})`)
  const reportPath = join(root, '.vitest-results.json')
  rmSync(reportPath, { force: true })
  const stop = () => redis.stop()
  process.once('SIGINT', () => stop().then(() => process.exit(130)))
  let status
  try {
    status = run(
      pnpm,
      [
        'exec',
        'vitest',
        'run',
        '--reporter=default',
        '--reporter=json',
        `--outputFile.json=${reportPath}`,
        ...extraArgs,
      ],
      {
        env: {
          ...process.env,
          REDIS_URL: redis.url,
          AIDE_REDIS_SERVER: redisServer,
          ORT_DISABLE_TELEMETRY: '1',
        },
      },
    )
  } finally {
    await stop()
  }
  const ok = summarise(reportPath)
  return status === 0 && ok ? 0 : status || 1
}

async function demo(pnpm) {
  must(pnpm, ['run', 'build'])
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  const example = manifest.aide?.mainExample ?? 'examples/quickstart'
  must(pnpm, ['--dir', example, 'run', 'start'], {
    env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' },
  })
  return 0
}

const [command = 'test', ...rest] = process.argv.slice(2)
const pnpm = ensurePnpm()
if (command === 'pnpm-path') {
  console.log(pnpm)
  process.exit(0)
}
if (!process.env.AIDE_SKIP_INSTALL) install(pnpm)
if (command === 'setup') process.exit(0)
if (command === 'test') process.exit(await test(pnpm, rest))
else if (command === 'demo') process.exit(await demo(pnpm))
else {
  log(`unknown command ${command}; use "test", "demo", "setup" or "pnpm-path"`)
  process.exit(2)
}
