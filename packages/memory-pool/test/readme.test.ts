import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const scratch = join(packageRoot, 'test', '.tmp')

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true })
})

describe('README', () => {
  it('opens with an example that runs', async () => {
    const readme = readFileSync(join(packageRoot, 'README.md'), 'utf8')
    const example = /```ts\n([\s\S]*?)```/.exec(readme)?.[1]
    expect(example).toContain("from '@aide/memory-pool'")
    mkdirSync(scratch, { recursive: true })
    const file = join(scratch, 'readme-example.mts')
    writeFileSync(file, example!)
    const { code, stdout, stderr } = await new Promise<{
      code: number | null
      stdout: string
      stderr: string
    }>((done, fail) => {
      const child = spawn(
        process.execPath,
        ['--conditions=@aide/source', '--import', 'tsx', file],
        {
          cwd: packageRoot,
        },
      )
      let out = ''
      let err = ''
      child.stdout.on('data', (chunk) => (out += chunk))
      child.stderr.on('data', (chunk) => (err += chunk))
      child.on('error', fail)
      child.on('close', (exitCode) => done({ code: exitCode, stdout: out, stderr: err }))
    })
    expect(stderr).toBe('')
    expect(code).toBe(0)
    // The hit rate after two first-time acquisitions (both misses), the file and the
    // bytes it holds, then the invalidation it reported.
    expect(stdout.trim().split('\n')).toEqual([
      '0',
      '{ "name": "demo" }',
      ' 38',
      'package.json invalidate',
    ])
  }, 60_000)
})
