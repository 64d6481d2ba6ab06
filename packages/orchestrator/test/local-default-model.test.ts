import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defaultCompletionModelFiles } from '../src/local/index.js'
import { type LoadedCompletionModel, loadDefaultCompletionModel } from '../src/onnx.js'

describe('the shipped code-completion model', () => {
  let model: LoadedCompletionModel
  beforeAll(async () => {
    model = await loadDefaultCompletionModel({ timeoutMs: 60_000 })
  })
  afterAll(async () => {
    await model.dispose()
  })

  it('ships fp32 and int8 files with measured held-out accuracy', () => {
    const files = defaultCompletionModelFiles()
    expect(files.fp32.endsWith('model.onnx')).toBe(true)
    const metadata = model.metadata as { variants: Record<string, { top5: number; bytes: number }> }
    expect(metadata.variants.fp32!.top5).toBeGreaterThan(0.5)
    expect(metadata.variants.fp32!.bytes / metadata.variants.int8!.bytes).toBeGreaterThan(3)
    expect(metadata.variants.fp32!.top5 - metadata.variants.int8!.top5).toBeLessThan(0.005)
    expect((model.stats().model as { variants: string[] }).variants).toEqual(['fp32', 'int8'])
  })

  it('completes TypeScript declarations with both variants', async () => {
    const prompt = 'interface Options {\n    readonly name: string;\n    readonly'
    for (const variant of ['', '#int8']) {
      const result = await model.invoke(
        {
          task: 'completion',
          model: `aide-code-completion${variant}`,
          input: { prompt, maxTokens: 8, stop: ['\n'] },
        },
        { signal: new AbortController().signal },
      )
      expect(result.output.text!.length).toBeGreaterThan(0)
      expect(result.output.candidates!.length).toBe(5)
    }
    const next = await model.invoke(
      {
        task: 'next-token',
        model: 'aide-code-completion',
        input: { prompt: 'export declare function' },
      },
      { signal: new AbortController().signal },
    )
    expect(next.output.candidates![0]!.text).toBe(' ')
  })

  it('refuses unknown precisions', async () => {
    await expect(
      loadDefaultCompletionModel({ precisions: ['fp64' as never] }),
    ).rejects.toMatchObject({
      code: 'E_INVALID_INPUT',
      details: { field: 'options.precisions[0]' },
    })
  })
})
