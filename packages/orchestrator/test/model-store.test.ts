import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isAideError, ManualClock } from '@aide/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ModelStore } from '../src/model-store/index.js'
import { createOnnxBackend } from '../src/onnx.js'
import { linearModel } from './onnx-fixtures.js'

describe('model store', () => {
  let directory: string
  let store: ModelStore
  let v1: Uint8Array
  let v2: Uint8Array
  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'aide-model-store-'))
    store = await ModelStore.open({ directory, clock: new ManualClock(1_000) })
    v1 = (await linearModel(4, 3, 1)).bytes
    v2 = (await linearModel(4, 3, 2)).bytes
  })
  afterEach(async () => {
    await rm(directory, { recursive: true, force: true })
  })

  it('adds versions with sha256 and metadata, activates, switches and rolls back', async () => {
    const first = await store.add('linear', '1.0.0', v1, { metadata: { precision: 'fp32' } })
    expect(first.sha256).toMatch(/^[0-9a-f]{64}$/)
    expect(first.metadata).toEqual({ precision: 'fp32' })
    await store.add('linear', '1.1.0', v2)
    expect((await store.list('linear')).map((r) => r.version)).toEqual(['1.0.0', '1.1.0'])
    expect(await store.active('linear')).toBeUndefined()
    await expect(store.read('linear')).rejects.toMatchObject({ code: 'E_NOT_FOUND' })

    await store.activate('linear', '1.0.0')
    expect((await store.read('linear')).record.version).toBe('1.0.0')
    await store.activate('linear', '1.1.0')
    const active = await store.read('linear')
    expect(active.record.version).toBe('1.1.0')
    expect(Buffer.from(active.bytes).equals(Buffer.from(v2))).toBe(true)

    const rolledBack = await store.rollback('linear')
    expect(rolledBack.version).toBe('1.0.0')
    expect((await store.read('linear')).record.version).toBe('1.0.0')
    await expect(store.rollback('linear')).rejects.toMatchObject({ code: 'E_NOT_FOUND' })
    expect(await store.stats()).toMatchObject({
      models: 1,
      versions: 2,
      activations: 2,
      rollbacks: 1,
    })

    // The stored bytes load straight into a backend.
    const backend = await createOnnxBackend({
      model: (await store.read('linear@1.1.0')).bytes,
      execution: 'inline',
    })
    expect(backend.signature().inputNames).toEqual(['x'])
    await backend.dispose()
  })

  it('refuses a corrupted file: activation fails and the previous version stays active', async () => {
    await store.add('linear', '1', v1)
    const second = await store.add('linear', '2', v2)
    await store.activate('linear', '1')
    const corrupted = Uint8Array.from(v2)
    corrupted[corrupted.length - 1] = (corrupted[corrupted.length - 1] ?? 0) ^ 0xff
    await writeFile(second.path, corrupted)
    const error = await store.activate('linear', '2').catch((e: unknown) => e)
    expect(isAideError(error, 'E_INTEGRITY')).toBe(true)
    expect((await store.read('linear')).record.version).toBe('1')
    await expect(store.read('linear@2')).rejects.toMatchObject({ code: 'E_INTEGRITY' })
    // Corrupting the active file is caught on read too.
    const first = await store.get('linear', '1')
    await writeFile(first.path, new Uint8Array([1, 2, 3]))
    await expect(store.read('linear')).rejects.toMatchObject({ code: 'E_INTEGRITY' })
    expect((await store.stats()).integrityFailures).toBe(3)
  })

  it('switches atomically: concurrent readers always see one whole, verified version', async () => {
    await store.add('linear', 'a', v1)
    await store.add('linear', 'b', v2)
    await store.activate('linear', 'a')
    const seen = new Set<string>()
    const switches = (async () => {
      for (let i = 0; i < 10; i++) await store.activate('linear', i % 2 === 0 ? 'b' : 'a')
    })()
    const readers = Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 10; i++) {
        const { record, bytes } = await store.read('linear')
        seen.add(record.version)
        expect(Buffer.from(bytes).equals(Buffer.from(record.version === 'a' ? v1 : v2))).toBe(true)
      }
    })
    await Promise.all([switches, ...readers])
    expect([...seen].every((v) => v === 'a' || v === 'b')).toBe(true)
    // No temporary files are left behind.
    expect((await readdir(join(directory, 'linear'))).filter((f) => f.endsWith('.tmp'))).toEqual([])
  })

  it('keeps versions immutable and guards the active one', async () => {
    await store.add('linear', '1', v1)
    expect((await store.add('linear', '1', v1)).version).toBe('1')
    await expect(store.add('linear', '1', v2)).rejects.toMatchObject({ code: 'E_ALREADY_EXISTS' })
    await store.activate('linear', '1')
    await expect(store.remove('linear', '1')).rejects.toMatchObject({ code: 'E_INVALID_STATE' })
    await store.add('linear', '2', v2)
    await store.remove('linear', '2')
    await expect(store.get('linear', '2')).rejects.toMatchObject({ code: 'E_NOT_FOUND' })
  })

  it('rejects bad ids, versions, sources and options naming the field', async () => {
    const cases: Array<[Promise<unknown>, string]> = [
      [store.add('../escape', '1', v1), 'id'],
      [store.add('linear', 'a/b', v1), 'version'],
      [store.add('linear', '1', 42 as never), 'source'],
      [store.add('linear', '1', new Uint8Array()), 'source'],
      [store.add('linear', '1', v1, { metadata: 'x' as never }), 'options.metadata'],
      [store.read('Bad Id'), 'reference'],
      [store.activate('linear', ''), 'version'],
      [ModelStore.open({ directory: '' }), 'options.directory'],
    ]
    for (const [pending, field] of cases) {
      const error = await pending.catch((e: unknown) => e)
      expect(isAideError(error, 'E_INVALID_INPUT'), `${field}: ${String(error)}`).toBe(true)
      expect((error as { details: { field: string } }).details.field).toBe(field)
    }
    await expect(
      store.add('linear', '1', v1, { signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({ code: 'E_CANCELLED' })
  })
})
