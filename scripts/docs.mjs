#!/usr/bin/env node
// Builds the API reference for every package with typedoc (packages mode).
// Each package's entry points are its `exports` map's `@aide/source` files, so
// what the reference documents is exactly what the package publishes; the
// per-package typedoc.json files are generated here (and git-ignored).
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const root = join(import.meta.dirname, '..')
for (const name of readdirSync(join(root, 'packages'))) {
  const dir = join(root, 'packages', name)
  const manifestPath = join(dir, 'package.json')
  if (!existsSync(manifestPath)) continue
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'))
  const entryPoints = Object.values(manifest.exports ?? {})
    .map((target) => (typeof target === 'object' && target ? target['@aide/source'] : undefined))
    .filter((source) => typeof source === 'string')
  const options = {
    $schema: 'https://typedoc.org/schema.json',
    entryPoints,
    ...(existsSync(join(dir, 'README.md')) ? { readme: 'README.md' } : {}),
    tsconfig: 'tsconfig.json',
  }
  writeFileSync(join(dir, 'typedoc.json'), `${JSON.stringify(options, null, 2)}\n`)
}
const result = spawnSync('pnpm', ['exec', 'typedoc', ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
})
process.exit(result.status ?? 1)
