import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)

/** Every module specifier reached from `entry` through relative imports and `@aide/*` sources. */
function reachableImports(entry: string): Set<string> {
  const seen = new Set<string>()
  const specifiers = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    const source = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '')
    for (const match of source.matchAll(
      /(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\('([^']+)'\)/g,
    )) {
      const specifier = match[1] ?? match[2]!
      if (match[0].startsWith('import type') || match[0].startsWith('export type')) continue
      specifiers.add(specifier)
      if (specifier.startsWith('.'))
        visit(resolve(dirname(file), specifier.replace(/\.js$/, '.ts')))
      else if (specifier.startsWith('@aide/')) {
        const manifest = require(`${specifier}/package.json`) as {
          exports: Record<string, { '@aide/source': string }>
        }
        visit(
          resolve(
            dirname(require.resolve(`${specifier}/package.json`)),
            manifest.exports['.']!['@aide/source'],
          ),
        )
      }
    }
  }
  visit(entry)
  return specifiers
}

describe('entry points', () => {
  it('keeps the root entry browser-safe: no node: built-ins reachable from it', () => {
    const specifiers = reachableImports(resolve(packageRoot, 'src/index.ts'))
    expect(specifiers.has('@aide/core')).toBe(true)
    expect([...specifiers].filter((specifier) => specifier.startsWith('node:'))).toEqual([])
  })

  it('puts the file-system code behind the ./workspace subpath', () => {
    const manifest = JSON.parse(readFileSync(resolve(packageRoot, 'package.json'), 'utf8')) as {
      exports: Record<string, unknown>
    }
    expect(Object.keys(manifest.exports)).toEqual(['.', './workspace', './package.json'])
    const specifiers = reachableImports(resolve(packageRoot, 'src/workspace.ts'))
    expect(specifiers.has('node:fs')).toBe(true)
  })
})
