import { isAideError } from '@aide/core'
import { describe, expect, it, vi } from 'vitest'

// Simulate an install without the optional peers: importing them fails.
vi.mock('onnxruntime-node', () => {
  throw new Error("Cannot find package 'onnxruntime-node'")
})
vi.mock('onnxruntime-web', () => {
  throw new Error("Cannot find package 'onnxruntime-web'")
})
vi.mock('onnx-proto', () => {
  throw new Error("Cannot find package 'onnx-proto'")
})

describe('missing optional peers', () => {
  it('the backends throw E_UNAVAILABLE saying what to install', async () => {
    const { createOnnxBackend } = await import('../src/onnx.js')
    const { createOnnxWebBackend } = await import('../src/onnx-web.js')
    const node = await createOnnxBackend({ model: new Uint8Array([1]), execution: 'inline' }).catch(
      (e: unknown) => e,
    )
    expect(isAideError(node, 'E_UNAVAILABLE')).toBe(true)
    expect((node as Error).message).toContain('npm i onnxruntime-node')
    const web = await createOnnxWebBackend({ model: new Uint8Array([1]) }).catch((e: unknown) => e)
    expect(isAideError(web, 'E_UNAVAILABLE')).toBe(true)
    expect((web as Error).message).toContain('npm i onnxruntime-web')
  })

  it('the quantizer throws E_UNAVAILABLE without onnx-proto', async () => {
    const { quantizeModel } = await import('../src/quantize/index.js')
    const error = await quantizeModel(new Uint8Array([1]), { precision: 'int8' }).catch(
      (e: unknown) => e,
    )
    expect(isAideError(error, 'E_UNAVAILABLE')).toBe(true)
    expect((error as Error).message).toContain('npm i onnx-proto')
  })

  it('importing the package root loads none of them', async () => {
    const root = await import('../src/index.js')
    expect(typeof root.createOrchestrator).toBe('function')
  })
})
