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
