import { isAideError } from '@aide/core'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { fixture, LIMITS_ENTRIES, manifestFor } from './helpers.js'

// Simulate an install without the optional peer `@extism/extism`: the in-thread
// host imports it, and worker isolation resolves its path for the worker.
vi.mock('@extism/extism', () => {
  throw new Error("Cannot find package '@extism/extism'")
})
vi.mock('node:module', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:module')>()
  const createRequire = ((base: string | URL) => {
    const require = actual.createRequire(base)
    const resolve = ((id: string, options?: { paths?: string[] }) => {
      if (id === '@extism/extism') {
        throw Object.assign(new Error("Cannot find module '@extism/extism'"), {
          code: 'MODULE_NOT_FOUND',
        })
      }
      return require.resolve(id, options)
    }) as NodeJS.RequireResolve
    resolve.paths = require.resolve.paths
    return Object.assign(require, { resolve })
  }) as typeof actual.createRequire
  return { ...actual, createRequire, default: { ...actual, createRequire } }
})

const { createPluginHost } = await import('../src/index.js')

let limitsWasm: Uint8Array
const hosts: Array<ReturnType<typeof createPluginHost>> = []

beforeAll(async () => {
  limitsWasm = await fixture('limits')
})
afterAll(async () => {
  await Promise.all(hosts.map((host) => host.dispose()))
})

describe('without the WebAssembly runtime package', () => {
  for (const isolation of ['worker', 'in-thread'] as const) {
    it(`load() rejects E_UNAVAILABLE naming @extism/extism (${isolation} isolation)`, async () => {
      const host = createPluginHost({ hostApiVersion: '1.0.0', isolation })
      hosts.push(host)
      const source = {
        manifest: manifestFor(limitsWasm, { entries: LIMITS_ENTRIES }),
        wasm: limitsWasm,
      }
      for (let attempt = 0; attempt < 2; attempt++) {
        const error = await host.load(source).catch((e: unknown) => e)
        expect(isAideError(error, 'E_UNAVAILABLE')).toBe(true)
        expect((error as Error).message).toContain('`@extism/extism`')
        expect((error as Error).message).toContain('npm i @extism/extism@^1')
      }
      expect(host.list()).toEqual([])
    })
  }
})
