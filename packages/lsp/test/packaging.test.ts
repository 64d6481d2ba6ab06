import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const src = join(dirname(fileURLToPath(import.meta.url)), '..', 'src')

/** Every module specifier statically imported from `entry`, following relative imports. */
function staticGraph(entry: string): { files: string[]; external: string[] } {
  const files = new Set<string>()
  const external = new Set<string>()
  const visit = (file: string) => {
    if (files.has(file)) return
    files.add(file)
    const text = readFileSync(file, 'utf8')
    // Static imports and re-exports only (`import(...)` is lazy by design); type-only imports are erased.
    for (const match of text.matchAll(/^(?:import|export)\s+(?!type\s)[^'"]*?from\s+'([^']+)'/gm)) {
      const specifier = match[1]!
      if (specifier.startsWith('.'))
        visit(resolve(dirname(file), specifier.replace(/\.js$/, '.ts')))
      else external.add(specifier)
    }
  }
  visit(join(src, entry))
  return { files: [...files], external: [...external].sort() }
}

describe('packaging', () => {
  it('keeps the root entry light and browser-safe: no Node built-ins, no AI services, no Node transport', () => {
    expect(staticGraph('index.ts').external).toEqual([
      '@aide/core',
      'vscode-languageserver',
      'vscode-languageserver-textdocument',
    ])
  })

  it('loads the ONNX runtime and the plugin runtime only lazily from @aide/lsp/ai', () => {
    const { external } = staticGraph('ai-server.ts')
    expect(external).not.toContain('@aide/orchestrator/onnx')
    expect(external.some((s) => s.startsWith('onnxruntime') || s.startsWith('@extism'))).toBe(false)
    expect(readFileSync(join(src, 'ai-server.ts'), 'utf8')).toContain(
      "await import('@aide/orchestrator/onnx')",
    )
  })
})
