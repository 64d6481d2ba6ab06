import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

describe('sleep in a bare script', () => {
  it('keeps the process alive until it resolves', () => {
    const index = fileURLToPath(new URL('../src/index.ts', import.meta.url))
    const script = `import { sleep } from ${JSON.stringify(index)}; await sleep(50); console.log('woke')`
    const output = execFileSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        encoding: 'utf8',
        cwd: fileURLToPath(new URL('..', import.meta.url)),
      },
    )
    expect(output.trim()).toBe('woke')
  })
})
