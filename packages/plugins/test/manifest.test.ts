import { describe, expect, it } from 'vitest'
import {
  capMemory,
  checkCompatibility,
  grantCapabilities,
  parseManifest,
  readMemoryLimits,
  sha256Hex,
  verifyIntegrity,
} from '../src/index.js'
import { fixture, manifestFor } from './helpers.js'

const wasm = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])

function invalidField(value: unknown): string | undefined {
  try {
    parseManifest(value)
  } catch (error) {
    expect((error as { code: string }).code).toBe('E_INVALID_INPUT')
    return (error as { details: { field: string } }).details.field
  }
  return undefined
}

describe('parseManifest', () => {
  it('accepts a complete manifest and fills defaults', () => {
    const manifest = parseManifest(
      manifestFor(wasm, {
        capabilities: {
          log: true,
          config: ['level'],
          'workspace.read': ['src'],
        },
        entries: [{ kind: 'diagnostics', export: 'audit', languages: ['typescript'] }],
      }),
    )
    expect(manifest.name).toBe('test.limits')
    expect(manifest.entries[0]).toEqual({
      kind: 'diagnostics',
      export: 'audit',
      input: 'json',
      languages: ['typescript'],
    })
    expect(manifest.capabilities['workspace.read']).toEqual(['src'])
  })

  it.each([
    [null, 'manifest'],
    [{ ...manifestFor(wasm), id: 'Bad Id' }, 'manifest.id'],
    [{ ...manifestFor(wasm), version: '1.0' }, 'manifest.version'],
    [{ ...manifestFor(wasm), hostApi: 'not a range!' }, 'manifest.hostApi'],
    [
      { ...manifestFor(wasm), wasm: { path: '../x.wasm', sha256: sha256Hex(wasm) } },
      'manifest.wasm.path',
    ],
    [{ ...manifestFor(wasm), wasm: { path: 'x.wasm', sha256: 'abc' } }, 'manifest.wasm.sha256'],
    [{ ...manifestFor(wasm), entries: [] }, 'manifest.entries'],
    [
      { ...manifestFor(wasm), entries: [{ kind: 'lint', export: 'x' }] },
      'manifest.entries[0].kind',
    ],
    [
      { ...manifestFor(wasm), entries: [{ kind: 'command', export: 'x' }] },
      'manifest.entries[0].command',
    ],
    [
      { ...manifestFor(wasm), entries: [{ kind: 'diagnostics', export: 'x-y' }] },
      'manifest.entries[0].export',
    ],
    [{ ...manifestFor(wasm), capabilities: { shell: true } }, 'manifest.capabilities.shell'],
    [
      { ...manifestFor(wasm), capabilities: { http: ['https://api.example.com'] } },
      'manifest.capabilities.http[0]',
    ],
    [
      { ...manifestFor(wasm), capabilities: { http: ['api.example.com:443'] } },
      'manifest.capabilities.http[0]',
    ],
    [
      { ...manifestFor(wasm), capabilities: { http: 'api.example.com' } },
      'manifest.capabilities.http',
    ],
    [
      { ...manifestFor(wasm), capabilities: { 'workspace.read': ['/etc'] } },
      'manifest.capabilities["workspace.read"][0]',
    ],
  ])('rejects malformed manifest %#, naming %s', (value, field) => {
    expect(invalidField(value)).toBe(field)
  })
})

describe('integrity and compatibility', () => {
  it('verifies the module hash', () => {
    const manifest = parseManifest(manifestFor(wasm))
    expect(() => verifyIntegrity(manifest, wasm)).not.toThrow()
    const tampered = Uint8Array.from(wasm)
    tampered[7] = 1
    expect(() => verifyIntegrity(manifest, tampered)).toThrow(
      expect.objectContaining({ code: 'E_INTEGRITY' }),
    )
  })

  it('checks the host API range', () => {
    const manifest = parseManifest(manifestFor(wasm, { hostApi: '^1.2.0' }))
    expect(() => checkCompatibility(manifest, '1.4.0')).not.toThrow()
    expect(() => checkCompatibility(manifest, '2.0.0')).toThrow(
      expect.objectContaining({
        code: 'E_INCOMPATIBLE',
        message: expect.stringContaining('needs host API ^1.2.0'),
      }),
    )
  })
})

describe('grantCapabilities', () => {
  it('grants only what is both requested and allowed', () => {
    const { granted, denied } = grantCapabilities(
      {
        log: true,
        config: ['level', 'token'],
        'workspace.read': ['src', 'secrets'],
        http: ['api.example.com', '*.eu.example.com', 'example.com', 'evil.test', '*'],
      },
      {
        log: false,
        config: { level: 'warn' },
        workspace: { root: '/ws', read: ['src'] },
        http: ['*.example.com'],
      },
    )
    expect(granted).toEqual({
      log: false,
      config: { level: 'warn' },
      workspaceRead: ['/ws/src'],
      http: ['api.example.com', '*.eu.example.com'],
    })
    expect(denied).toEqual([
      'log',
      'config.token',
      'workspace.read:secrets',
      'http:example.com',
      'http:evil.test',
      'http:*',
    ])
  })

  it('normalises host patterns and lets a policy of "*" cover any host', () => {
    const manifest = parseManifest({
      ...manifestFor(wasm),
      capabilities: { http: ['API.Example.com.', '127.0.0.1', '[::1]'] },
    })
    expect(manifest.capabilities.http).toEqual(['api.example.com', '127.0.0.1', '[::1]'])
    const { granted, denied } = grantCapabilities(manifest.capabilities, { http: ['*'] })
    expect(granted.http).toEqual(['api.example.com', '127.0.0.1', '[::1]'])
    expect(denied).toEqual([])
  })

  it('denies everything under an empty policy', () => {
    const { granted, denied } = grantCapabilities({ log: true, 'workspace.read': ['.'] }, {})
    expect(granted.log).toBe(false)
    expect(granted.workspaceRead).toEqual([])
    expect(denied).toEqual(['log', 'workspace.read:.'])
  })
})

describe('wasm memory limits', () => {
  it('reads and caps the declared memory', async () => {
    const huge = await fixture('huge-memory')
    expect(readMemoryLimits(huge)).toEqual([{ minPages: 2048, maxPages: undefined, shared: false }])
    const limits = await fixture('limits')
    const capped = capMemory(limits, 10)
    expect(readMemoryLimits(capped)).toEqual([{ minPages: 1, maxPages: 10, shared: false }])
    expect(() => capMemory(huge, 100)).toThrow(expect.objectContaining({ code: 'E_LIMIT' }))
    // the rewritten module still compiles
    const wasmApi = (
      globalThis as unknown as {
        WebAssembly: {
          compile(bytes: Uint8Array): Promise<object>
          Module: new (...args: never[]) => object
        }
      }
    ).WebAssembly
    await expect(wasmApi.compile(capped)).resolves.toBeInstanceOf(wasmApi.Module)
  })

  it('rejects bytes that are not a module', () => {
    expect(() => readMemoryLimits(new Uint8Array([1, 2, 3]))).toThrow(
      expect.objectContaining({ code: 'E_PLUGIN' }),
    )
  })
})
