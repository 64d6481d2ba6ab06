import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const src = join(__dirname, '..', 'src')

/** Every module specifier reachable from `entry` through relative imports. */
function importGraph(
  entry: string,
  seen = new Set<string>(),
  external = new Set<string>(),
): Set<string> {
  if (seen.has(entry)) return external
  seen.add(entry)
  const text = readFileSync(entry, 'utf8')
  for (const match of text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'/gm)) {
    const specifier = match[1]!
    if (/^import\s+type\s/.test(match[0].trim()) || /^export\s+type\s/.test(match[0].trim()))
      continue
    if (specifier.startsWith('.'))
      importGraph(resolve(dirname(entry), specifier.replace(/\.js$/, '.ts')), seen, external)
    else external.add(specifier)
  }
  return external
}

describe('packaging', () => {
  it('the root entry loads no heavy or Node-only module (browser-safe, no ioredis)', () => {
    const external = [...importGraph(join(src, 'index.ts'))]
    expect(external).toEqual(['@aide/core'])
  })

  it('ioredis is loaded only by the redis entry', () => {
    expect([...importGraph(join(src, 'disk.ts'))]).not.toContain('ioredis')
    expect([...importGraph(join(src, 'keyv.ts'))]).not.toContain('ioredis')
    expect([...importGraph(join(src, 'node.ts'))]).not.toContain('ioredis')
  })

  it('the node entry brings the disk tier (node:fs) and the whole root API', async () => {
    expect([...importGraph(join(src, 'node.ts'))]).toContain('node:fs/promises')
    const root = await import('../src/index.ts')
    const node = await import('../src/node.ts')
    for (const name of Object.keys(root)) expect(node).toHaveProperty(name)
    expect(node.createCache).not.toBe(root.createCache)
    expect(typeof node.diskTier).toBe('function')
  })

  it('the package exports map publishes the node entry from its source', () => {
    const manifest = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8'))
    expect(Object.keys(manifest.exports)).toContain('./node')
    expect(manifest.exports['./node']['@aide/source']).toBe('./src/node.ts')
  })
})
