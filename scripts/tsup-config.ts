/**
 * The one tsup config factory shared by every package.
 *
 * Entries come from the package's own `exports` map: every subpath whose
 * `@aide/source` condition points at `./src/<name>.ts` becomes a tsup entry
 * named `<name>`, so the exports map stays the single source of truth for
 * what a package publishes. Output: ESM (`.js`), CJS (`.cjs`) and declarations
 * for both (`.d.ts`, `.d.cts`).
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { defineConfig, type Options } from 'tsup'

type ExportTarget = string | { [condition: string]: ExportTarget }

export function entriesFromExports(
  exportsMap: Record<string, ExportTarget>,
): Record<string, string> {
  const entries: Record<string, string> = {}
  for (const [subpath, target] of Object.entries(exportsMap)) {
    if (typeof target === 'string') continue
    const source = target['@aide/source']
    if (typeof source !== 'string') continue
    const match = /^\.\/src\/(.+)\.tsx?$/.exec(source)
    if (!match?.[1])
      throw new Error(`exports["${subpath}"]["@aide/source"] must point at ./src/*.ts`)
    entries[match[1]] = source
  }
  return entries
}

/** Build options for the package in `packageDir` (defaults to the working directory). */
export function aidePackageConfig(overrides: Options = {}, packageDir = process.cwd()) {
  const manifest = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as {
    exports: Record<string, ExportTarget>
    dependencies?: Record<string, string>
    peerDependencies?: Record<string, string>
    optionalDependencies?: Record<string, string>
  }
  return defineConfig({
    entry: entriesFromExports(manifest.exports),
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    platform: 'neutral',
    treeshake: true,
    splitting: true,
    outDir: 'dist',
    external: [
      ...Object.keys(manifest.dependencies ?? {}),
      ...Object.keys(manifest.peerDependencies ?? {}),
      ...Object.keys(manifest.optionalDependencies ?? {}),
      /^node:/,
    ],
    ...overrides,
  })
}
