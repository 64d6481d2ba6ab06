import { isAideError } from '@aide/core'
import { describe, expect, it } from 'vitest'
import { createOnnxWebBackend, listWebExecutionProviders } from '../src/onnx-web.js'
import { expectAllClose, linearModel, linearReference } from './onnx-fixtures.js'

describe('onnx-web backend (onnxruntime-web under Node)', () => {
  it('runs the same model on the wasm execution provider, batched', async () => {
    expect(listWebExecutionProviders()).toContain('wasm')
    const model = await linearModel(4, 3, 3)
    const backend = await createOnnxWebBackend({
      model: model.bytes,
      batching: { maxBatch: 4, maxDelayMs: 1 },
    })
    try {
      expect(backend.kind).toBe('onnx-web')
      expect(backend.stats().executionProvider).toBe('wasm')
      const rows = [
        [1, 2, 3, 4],
        [-1, 0.5, 0, 2],
      ]
      const results = await Promise.all(
        rows.map((row) =>
          backend.invoke(
            {
              task: 'tensor',
              model: 'linear',
              input: { tensors: { x: { type: 'float32', data: row, dims: [1, 4] } } },
            },
            { signal: new AbortController().signal },
          ),
        ),
      )
      results.forEach((result, i) => {
        const expected = linearReference(
          Float32Array.from(rows[i]!),
          model.weights,
          model.bias,
          4,
          3,
        )
        expectAllClose(result.output.tensors!.y!.data as Float32Array, expected)
      })
      expect((backend.stats().batching as { requests: number }).requests).toBe(2)
    } finally {
      await backend.dispose()
    }
  })

  it('refuses an unavailable execution provider and malformed model bytes', async () => {
    const model = await linearModel()
    const error = await createOnnxWebBackend({
      model: model.bytes,
      executionProviders: ['webgpu'],
    }).catch((e: unknown) => e)
    expect(isAideError(error, 'E_UNAVAILABLE')).toBe(true)
    await expect(createOnnxWebBackend({ model: new Uint8Array([9, 9, 9]) })).rejects.toMatchObject({
      code: 'E_MODEL',
    })
    await expect(
      createOnnxWebBackend({ model: model.bytes, wasmThreads: 0 }),
    ).rejects.toMatchObject({ code: 'E_INVALID_INPUT', details: { field: 'options.wasmThreads' } })
  })
})

describe('onnx-web model sources and browser safety', () => {
  it('fetches a model given as a URL, and names a failed fetch E_NOT_FOUND', async () => {
    const { createServer } = await import('node:http')
    const model = await linearModel(2, 2, 5)
    const server = createServer((request, response) => {
      if (request.url === '/model.onnx') response.end(Buffer.from(model.bytes))
      else response.writeHead(404).end()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as { port: number }
    try {
      const backend = await createOnnxWebBackend({
        model: `http://127.0.0.1:${port}/model.onnx`,
        batching: false,
      })
      try {
        const result = await backend.invoke(
          {
            task: 'tensor',
            model: 'linear',
            input: { tensors: { x: { type: 'float32', data: [1, 2], dims: [1, 2] } } },
          },
          { signal: new AbortController().signal },
        )
        expect(result.output.tensors!.y!.dims).toEqual([1, 2])
      } finally {
        await backend.dispose()
      }
      await expect(
        createOnnxWebBackend({ model: `http://127.0.0.1:${port}/missing.onnx` }),
      ).rejects.toMatchObject({
        code: 'E_NOT_FOUND',
        details: { status: 404 },
      })
    } finally {
      server.close()
    }
  })

  it('its module graph never references onnxruntime-node or a node: built-in', async () => {
    const { readFileSync } = await import('node:fs')
    const { dirname, resolve } = await import('node:path')
    const { fileURLToPath } = await import('node:url')
    const seen = new Set<string>()
    const bare = new Set<string>()
    const visit = (file: string) => {
      if (seen.has(file)) return
      seen.add(file)
      const text = readFileSync(file, 'utf8')
      for (const match of text.matchAll(/(?:from\s+|import\s*\(\s*)'([^']+)'/g)) {
        const specifier = match[1]!
        if (specifier.startsWith('.'))
          visit(resolve(dirname(file), specifier.replace(/\.js$/, '.ts')))
        else bare.add(specifier)
      }
    }
    visit(fileURLToPath(new URL('../src/onnx-web.ts', import.meta.url)))
    expect(seen.size).toBeGreaterThan(3)
    expect([...bare].filter((s) => s === 'onnxruntime-node' || s.startsWith('node:'))).toEqual([])
    expect(bare).toContain('onnxruntime-web')
  })
})
