import { ManualClock } from '@aide/core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { TokenBucket } from '../src/index.js'
import { LatencyWindow } from '../src/limits.js'
import { openAICompatible } from '../src/openai.js'

function nearestRank(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!
}

describe('properties', () => {
  it('LatencyWindow percentiles match nearest-rank over the last N samples', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 300 }),
        fc.integer({ min: 1, max: 64 }),
        (values, size) => {
          const window = new LatencyWindow(size)
          for (const value of values) window.add(value)
          const kept = values.slice(-size)
          const [p50, p95, p99] = window.percentiles(0.5, 0.95, 0.99)
          expect(p50).toBe(nearestRank(kept, 0.5))
          expect(p95).toBe(nearestRank(kept, 0.95))
          expect(p99).toBe(nearestRank(kept, 0.99))
        },
      ),
    )
  })

  it('TokenBucket never grants more than burst + rate × elapsed', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.integer({ min: 0, max: 500 }), { maxLength: 100 }),
        (rate, burst, gaps) => {
          const clock = new ManualClock()
          const bucket = new TokenBucket({ requestsPerSecond: rate, burst }, clock)
          let granted = 0
          for (const gap of gaps) {
            clock.advance(gap)
            while (bucket.tryTake()) granted++
          }
          const elapsed = gaps.reduce((a, b) => a + b, 0)
          expect(granted).toBeLessThanOrEqual(burst + Math.floor((rate * elapsed) / 1000) + 1)
        },
      ),
    )
  })

  it('an SSE stream split at any byte boundaries yields the same text', async () => {
    const words = ['Hello', ' wörld', ', ', 'naïve ', '🙂 emoji', '\n', 'end']
    const body =
      words
        .map(
          (w) =>
            `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: w }, finish_reason: null }] })}\n\n`,
        )
        .join('') +
      `data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`
    const bytes = new TextEncoder().encode(body)
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 40 }),
        async (cuts) => {
          const points = [0, ...cuts.sort((a, b) => a - b), bytes.length]
          const fetchStub: typeof fetch = async () =>
            new Response(
              new ReadableStream<Uint8Array>({
                start(controller) {
                  for (let i = 0; i < points.length - 1; i++)
                    controller.enqueue(bytes.slice(points[i], points[i + 1]))
                  controller.close()
                },
              }),
              { status: 200, headers: { 'content-type': 'text/event-stream' } },
            )
          const backend = openAICompatible({ baseUrl: 'http://127.0.0.1:1/v1', fetch: fetchStub })
          let text = ''
          let done = false
          for await (const chunk of backend.stream!(
            { task: 'chat', model: 'm', input: { prompt: 'x' } },
            { signal: new AbortController().signal },
          )) {
            if (chunk.type === 'delta') text += chunk.text
            else done = chunk.finishReason === 'stop'
          }
          expect(text).toBe(words.join(''))
          expect(done).toBe(true)
        },
      ),
      { numRuns: 60 },
    )
  })
})
