import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const srcDir = join(import.meta.dirname, '..', 'src')

describe('packaging', () => {
  it('loads @extism/extism and tar only lazily, so importing the root stays light', async () => {
    for (const file of await readdir(srcDir)) {
      const source = await readFile(join(srcDir, file), 'utf8')
      for (const line of source.split('\n')) {
        if (!/['"](@extism\/extism|tar)['"]/.test(line)) continue
        // Allowed: type-only references, dynamic import() calls, and resolving the path the worker requires.
        expect(line, `${file}: ${line}`).toMatch(
          /typeof import\(|import\(['"]|^type |\.resolve\(['"]@extism\/extism['"]\)/,
        )
        expect(line, `${file}: ${line}`).not.toMatch(
          /^import .* from ['"](@extism\/extism|tar)['"]/,
        )
      }
    }
  })

  it('declares @extism/extism as an optional peer dependency', async () => {
    const manifest = JSON.parse(
      await readFile(join(import.meta.dirname, '..', 'package.json'), 'utf8'),
    )
    expect(manifest.peerDependencies['@extism/extism']).toMatch(/^\^1\./)
    expect(manifest.peerDependenciesMeta['@extism/extism']).toEqual({ optional: true })
    expect(manifest.dependencies['@extism/extism']).toBeUndefined()
  })
})
