#!/usr/bin/env node
// Packaging checks on every built package: publint (package.json and files)
// and @arethetypeswrong/cli (types resolve for ESM and CJS consumers under
// node16 resolution). Run after `pnpm run build`.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const root = join(import.meta.dirname, '..')
let failed = 0
for (const name of readdirSync(join(root, 'packages')).sort()) {
  const dir = join(root, 'packages', name)
  if (!existsSync(join(dir, 'package.json'))) continue
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  if (manifest.private) continue
  if (!existsSync(join(dir, 'dist'))) {
    console.error(`✗ ${manifest.name}: no dist/ (run pnpm run build first)`)
    failed++
    continue
  }
  for (const [label, args] of [
    ['publint', ['exec', 'publint', '--strict', dir]],
    ['attw', ['exec', 'attw', '--pack', dir, '--profile', 'node16', '--format', 'table-flipped']],
  ]) {
    const result = spawnSync('pnpm', args, { cwd: root, encoding: 'utf8' })
    const ok = result.status === 0
    console.log(`${ok ? '✓' : '✗'} ${manifest.name}: ${label}`)
    if (!ok) {
      failed++
      console.log(result.stdout, result.stderr)
    }
  }
}
if (failed > 0) {
  console.error(`${failed} packaging check(s) failed`)
  process.exit(1)
}
