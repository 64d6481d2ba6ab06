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
  })
})
