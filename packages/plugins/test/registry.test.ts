import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { create as createTar } from 'tar'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPluginHost, openPluginRegistry, shippedPluginsDir } from '../src/index.js'
import { fixture, manifestFor, rawTar, writePluginDir } from './helpers.js'

let scratch: string
let wasm: Uint8Array
let counter = 0

const fresh = async (name: string) => {
  const dir = join(scratch, `${name}-${counter++}`)
  await mkdir(dir, { recursive: true })
  return dir
}

function recorder() {
  const events: Array<{ type: string; payload: unknown }> = []
  return {
    events,
    sink: { emit: (type: string, payload: unknown) => void events.push({ type, payload }) },
  }
}

async function pluginVersion(version: string, overrides: Record<string, unknown> = {}) {
  return writePluginDir(
    await fresh(`src-${version}`),
    wasm,
    manifestFor(wasm, { version, ...overrides }),
  )
}

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'aide-plugins-registry-'))
  wasm = await fixture('limits')
})

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true })
})

describe('registry', () => {
  it('installs, lists, disables, enables and persists across reopen', async () => {
    const dir = await fresh('registry')
    const { events, sink } = recorder()
    const registry = await openPluginRegistry(dir, { events: sink })
    const installed = await registry.install(await pluginVersion('1.0.0'))
    expect(installed).toMatchObject({
      enabled: true,
      previousVersions: [],
      manifest: { id: 'test.limits', version: '1.0.0' },
    })
    await registry.disable('test.limits')
    expect(registry.get('test.limits').enabled).toBe(false)
    const reopened = await openPluginRegistry(dir)
    expect(reopened.list().map((p) => [p.manifest.id, p.enabled])).toEqual([['test.limits', false]])
    await reopened.enable('test.limits')
    expect(reopened.stats()).toEqual({ installed: 1, enabled: 1, previousVersions: 0 })
    expect(events.map((e) => e.type)).toEqual(['plugin-install', 'plugin-disable'])
  })

  it('updates keeping the previous version, rolls back, and uninstalls', async () => {
    const { events, sink } = recorder()
    const registry = await openPluginRegistry(await fresh('registry'), { events: sink })
    await registry.install(await pluginVersion('1.0.0'))
    await expect(registry.install(await pluginVersion('1.1.0'))).rejects.toMatchObject({
      code: 'E_ALREADY_EXISTS',
    })
    const updated = await registry.update(await pluginVersion('1.1.0'))
    expect(updated).toMatchObject({ manifest: { version: '1.1.0' }, previousVersions: ['1.0.0'] })
    await expect(registry.update(await pluginVersion('1.0.5'))).rejects.toMatchObject({
      code: 'E_INVALID_INPUT',
      details: { field: 'source' },
    })
    const rolledBack = await registry.rollback('test.limits')
    expect(rolledBack).toMatchObject({ manifest: { version: '1.0.0' }, previousVersions: [] })
    await expect(registry.rollback('test.limits')).rejects.toMatchObject({
      code: 'E_INVALID_STATE',
    })
    await registry.uninstall('test.limits')
    expect(registry.list()).toEqual([])
    await expect(registry.uninstall('test.limits')).rejects.toMatchObject({ code: 'E_NOT_FOUND' })
    expect(events.map((e) => e.type)).toEqual([
      'plugin-install',
      'plugin-update',
      'plugin-rollback',
      'plugin-uninstall',
    ])
  })

  it('keeps at most keepVersions previous versions', async () => {
    const registry = await openPluginRegistry(await fresh('registry'), { keepVersions: 1 })
    await registry.install(await pluginVersion('1.0.0'))
    await registry.update(await pluginVersion('1.1.0'))
    await registry.update(await pluginVersion('1.2.0'))
    expect(registry.get('test.limits').previousVersions).toEqual(['1.1.0'])
  })

  it('refuses a tampered module and a malformed manifest, storing nothing', async () => {
    const registry = await openPluginRegistry(await fresh('registry'))
    const tampered = await pluginVersion('1.0.0')
    await writeFile(
      join(tampered, 'plugin.wasm'),
      Buffer.concat([Buffer.from(wasm), Buffer.from([0])]),
    )
    await expect(registry.install(tampered)).rejects.toMatchObject({ code: 'E_INTEGRITY' })
    const malformed = await pluginVersion('1.0.0', { hostApi: 42 })
    await expect(registry.install(malformed)).rejects.toMatchObject({
      code: 'E_INVALID_INPUT',
      details: { field: 'manifest.hostApi' },
    })
    await expect(registry.install(join(scratch, 'does-not-exist'))).rejects.toMatchObject({
      code: 'E_NOT_FOUND',
    })
    expect(registry.list()).toEqual([])
  })

  it('installs from a gzipped tarball with a top-level folder', async () => {
    const source = await pluginVersion('2.0.0')
    const archive = join(await fresh('archives'), 'plugin.tgz')
    await createTar({ gzip: true, file: archive, cwd: source, prefix: 'package' }, [
      'aide-plugin.json',
      'plugin.wasm',
    ])
    const registry = await openPluginRegistry(await fresh('registry'))
    const installed = await registry.install(archive)
    expect(installed.manifest.version).toBe('2.0.0')
    expect(new Uint8Array(await readFile(join(installed.dir, 'plugin.wasm')))).toEqual(wasm)
  })

  it.each([
    ['a parent-directory entry', [{ name: '../escaped.txt', content: 'x' }]],
    ['an absolute entry', [{ name: '/tmp/aide-absolute.txt', content: 'x' }]],
    ['a symbolic link', [{ name: 'link', type: '2' as const, link: '/etc/passwd' }]],
  ])('refuses an archive with %s and writes nothing outside', async (_label, entries) => {
    const dir = await fresh('archives')
    const archive = join(dir, 'evil.tar')
    const manifest = manifestFor(wasm)
    await writeFile(
      archive,
      rawTar([
        { name: 'aide-plugin.json', content: JSON.stringify(manifest) },
        { name: 'plugin.wasm', content: Buffer.from(wasm).toString('latin1') },
        ...entries,
      ]),
    )
    const registryDir = await fresh('registry')
    const registry = await openPluginRegistry(registryDir)
    await expect(registry.install(archive)).rejects.toMatchObject({
      code: 'E_INVALID_INPUT',
      message: expect.stringContaining('archive refused'),
      details: { field: 'source' },
    })
    expect(registry.list()).toEqual([])
    await expect(readFile(join(registryDir, '..', 'escaped.txt'))).rejects.toMatchObject({
      code: 'ENOENT',
    })
  })

  it('searches manifests by id, name, keywords and description', async () => {
    const registry = await openPluginRegistry(await fresh('registry'))
    await registry.install(shippedPluginsDir('security-audit'))
    await registry.install(shippedPluginsDir('aws-key-scan'))
    await registry.install(await pluginVersion('1.0.0', { description: 'echo and friends' }))
    expect(registry.search('aws').map((h) => h.id)).toEqual(['aide.aws-key-scan'])
    expect(registry.search('security').map((h) => h.id)).toEqual([
      'aide.security-audit',
      'aide.aws-key-scan',
    ])
    expect(registry.search('sql-injection').map((h) => h.id)).toEqual(['aide.security-audit'])
    expect(registry.search('security', { kind: 'code-action' }).map((h) => h.id)).toEqual([
      'aide.security-audit',
    ])
    expect(registry.search('aide.security-audit')[0]).toMatchObject({
      id: 'aide.security-audit',
      score: 100,
    })
    expect(registry.search('friends').map((h) => h.id)).toEqual(['test.limits'])
    expect(registry.search('nothing matches this')).toEqual([])
    expect(registry.search('', { limit: 2 })).toHaveLength(2)
    expect(() => registry.search(42 as never)).toThrow(
      expect.objectContaining({ code: 'E_INVALID_INPUT' }),
    )
    expect(() => registry.search('x', { limit: 0 })).toThrow(
      expect.objectContaining({ code: 'E_INVALID_INPUT' }),
    )
  })

  it('refuses a corrupt state file on open', async () => {
    const dir = await fresh('registry')
    await writeFile(join(dir, 'registry.json'), '{ not json')
    await expect(openPluginRegistry(dir)).rejects.toMatchObject({ code: 'E_INVALID_STATE' })
  })

  it('cancels an install whose signal is already aborted', async () => {
    const registry = await openPluginRegistry(await fresh('registry'))
    await expect(
      registry.install(await pluginVersion('1.0.0'), { signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({ code: 'E_CANCELLED' })
    expect(registry.list()).toEqual([])
  })
})

describe('host and registry together', () => {
  it('syncs loaded plugins with the enabled set, across updates and rollbacks', async () => {
    const registry = await openPluginRegistry(await fresh('registry'))
    const host = createPluginHost({ hostApiVersion: '1.0.0' })
    try {
      await registry.install(await pluginVersion('1.0.0'))
      await registry.install(shippedPluginsDir('aws-key-scan'), { enable: false })
      expect(await host.syncWithRegistry(registry)).toEqual([])
      expect(host.list().map((p) => `${p.manifest.id}@${p.manifest.version}`)).toEqual([
        'test.limits@1.0.0',
      ])
      await registry.update(await pluginVersion('1.1.0'))
      await registry.enable('aide.aws-key-scan')
      await host.syncWithRegistry(registry)
      expect(
        host
          .list()
          .map((p) => `${p.manifest.id}@${p.manifest.version}`)
          .sort(),
      ).toEqual(['aide.aws-key-scan@1.0.0', 'test.limits@1.1.0'])
      await registry.rollback('test.limits')
      await registry.disable('aide.aws-key-scan')
      await host.syncWithRegistry(registry)
      expect(host.list().map((p) => `${p.manifest.id}@${p.manifest.version}`)).toEqual([
        'test.limits@1.0.0',
      ])
      const incompatible = createPluginHost({ hostApiVersion: '3.0.0' })
      const failures = await incompatible.syncWithRegistry(registry)
      expect(failures.map((f) => [f.pluginId, f.error.code])).toEqual([
        ['test.limits', 'E_INCOMPATIBLE'],
      ])
      await incompatible.dispose()
    } finally {
      await host.dispose()
    }
  })
})
