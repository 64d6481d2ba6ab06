import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createOrchestrator } from '../src/index.js'
import { type LoadedCompletionModel, loadDefaultCompletionModel } from '../src/onnx.js'

describe('the shipped model behind the orchestrator', () => {
  let model: LoadedCompletionModel
  beforeAll(async () => {
    model = await loadDefaultCompletionModel({ timeoutMs: 60_000 })
  })
  afterAll(async () => {
    await model.dispose()
  })

  it('routes by quality floor between the fp32 and int8 variants of one backend', async () => {
    // One backend, two model entries: the `#variant` suffix of the model id picks the session.
    const metadata = model.metadata as { variants: Record<'fp32' | 'int8', { top5: number }> }
    const orchestrator = createOrchestrator({
      strategy: 'cost',
      models: [
        {
          id: 'code#fp32',
          backend: model,
          tasks: ['completion'],
          precision: 'fp32',
          quality: { completion: metadata.variants.fp32.top5 },
          cost: { inputPer1k: 0.02, outputPer1k: 0.02 },
        },
        {
          id: 'code#int8',
          backend: model,
          tasks: ['completion'],
          precision: 'int8',
          // Pretend the int8 variant were worse, to see the floor route around it.
          quality: { completion: metadata.variants.int8.top5 - 0.2 },
          cost: { inputPer1k: 0.01, outputPer1k: 0.01 },
        },
      ],
    })
    try {
      const input = { prompt: 'export declare function', maxTokens: 4 }
      const cheap = await orchestrator.run({ task: 'completion', input, cache: false })
      expect(cheap.model).toBe('code#int8')
      const strict = await orchestrator.run({
        task: 'completion',
        input,
        qualityFloor: 0.8,
        cache: false,
      })
      expect(strict.model).toBe('code#fp32')
      expect(strict.text.length).toBeGreaterThan(0)
      expect(strict.usage.outputTokens).toBe(4)
    } finally {
      await orchestrator.dispose()
    }
  })
})
