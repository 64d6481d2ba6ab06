/**
 * Runs the walk-through script as a user would (`pnpm start`), in its own
 * process, and checks what every step produced.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, expect, it } from 'vitest'
import { exampleDir } from '../src/steps.js'

const run = promisify(execFile)
let workDir: string | undefined

afterAll(async () => {
  if (workDir) await rm(workDir, { recursive: true, force: true })
})

it('builds, packages, installs, calls and disables the example plugin', {
  timeout: 50_000,
}, async () => {
  workDir = await mkdtemp(join(tmpdir(), 'aide-plugin-authoring-test-'))
  const { stdout } = await run(
    process.execPath,
    [
      '--conditions=@aide/source',
      '--import',
      'tsx',
      'src/walkthrough.ts',
      '--work-dir',
      workDir,
      '--json',
    ],
    { cwd: exampleDir, env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' } },
  )
  const lines = stdout.trim().split('\n')
  for (const step of ['1. build', '2. package', '3. install', '4. call', '5. disable']) {
    expect(lines.some((line) => line.startsWith(step))).toBe(true)
  }
  const summary = JSON.parse(lines.at(-1)!)
  expect(summary.manifest).toMatchObject({ id: 'example.todo-comments', version: '1.0.0' })
  expect(summary.manifest.sha256).toMatch(/^[0-9a-f]{64}$/)
  expect(summary.found).toEqual(['example.todo-comments@1.0.0'])

  // The registry holds the installed copy.
  expect(await readdir(join(workDir, 'registry', 'plugins'))).toContain('example.todo-comments')

  // Diagnostics come back through the host with positions found by text.
  const source = [
    'export function total(items: number[]): number {',
    '  // TODO: handle an empty list',
    '  let sum = 0',
    '  for (const item of items) sum += item // FIXME overflow for huge inputs',
  ]
  const todoLine = source.findIndex((line) => line.includes('TODO'))
  const fixmeLine = source.findIndex((line) => line.includes('FIXME'))
  expect(summary.diagnostics).toEqual([
    expect.objectContaining({
      ruleId: 'todo-comment',
      severity: 'information',
      message: 'TODO: handle an empty list',
      source: 'example.todo-comments',
      range: {
        start: { line: todoLine, character: source[todoLine]!.indexOf('TODO') },
        end: { line: todoLine, character: source[todoLine]!.length },
      },
    }),
    expect.objectContaining({
      ruleId: 'fixme-comment',
      severity: 'warning',
      message: 'FIXME: overflow for huge inputs',
      range: expect.objectContaining({
        start: { line: fixmeLine, character: source[fixmeLine]!.indexOf('FIXME') },
      }),
    }),
  ])
  // The raw export call returns the same findings.
  expect(summary.raw).toHaveLength(2)
  expect(summary.calls).toBe(2)
  // Disabled in the registry: a host syncing with it loads nothing.
  expect(summary.loadedAfterDisable).toEqual([])
})
