/** Shared fixtures of the routing and resilience tests. */
import type { ModelConfig } from '../src/index.js'
import { type MockBackend, mockBackend } from '../src/testing.js'

/** Generous polling: the test machine is shared and loaded. */
export const POLL = { timeout: 15_000, interval: 10 }

/** A chat model on a mock backend answering `from <id>`, with retries off. */
export function model(
  id: string,
  extra: Partial<ModelConfig> = {},
): ModelConfig & { backend: MockBackend } {
  return {
    id,
    tasks: ['chat'],
    backend: mockBackend({ reply: `from ${id}` }),
    retry: { retries: 0 },
    ...extra,
  } as ModelConfig & { backend: MockBackend }
}
