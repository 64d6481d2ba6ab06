import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { WorkspaceIndex } from '../src/node.ts'
import { eventually } from './helpers.ts'

const dirs: string[] = []
const indexes: WorkspaceIndex[] = []
function workspace(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'aide-lsp-ws-'))
  dirs.push(root)
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true })
    writeFileSync(join(root, path), text)
  }
  return root
}
function track(index: WorkspaceIndex): WorkspaceIndex {
  indexes.push(index)
  return index
}
afterEach(() => {
  for (const index of indexes.splice(0)) index.dispose()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

describe('WorkspaceIndex', () => {
  it('indexes source files, skipping ignored directories and other extensions', async () => {
    const root = workspace({
      'src/a.ts': 'export const a = 1\n',
      'src/deep/b.py': 'b = 2\n',
      'node_modules/x/index.js': 'ignored',
      'README.txt': 'not source',
    })
    const progress: Array<[number, number]> = []
    const index = track(new WorkspaceIndex({ root }))
    expect(
      await index.build({ onProgress: (done, total) => progress.push([done, total]) }),
    ).toEqual({ files: 2 })
    expect(
      index
        .snapshots()
        .map((s) => s.uri)
        .sort(),
    ).toEqual([
      pathToFileURL(join(root, 'src/a.ts')).href,
      pathToFileURL(join(root, 'src/deep/b.py')).href,
    ])
    expect(index.snapshots().find((s) => s.uri.endsWith('a.ts'))).toMatchObject({
      languageId: 'typescript',
      text: 'export const a = 1\n',
    })
    expect(progress.at(-1)).toEqual([2, 2])
  })

  it('refreshes a changed file and drops a deleted one', async () => {
    const root = workspace({ 'a.ts': 'one', 'b.ts': 'two' })
    const index = track(new WorkspaceIndex({ root }))
    await index.build()
    writeFileSync(join(root, 'a.ts'), 'changed')
    await eventually(
      () => index.snapshots().find((s) => s.uri.endsWith('a.ts'))?.text === 'changed',
      20_000,
    )
    unlinkSync(join(root, 'b.ts'))
    await eventually(() => !index.snapshots().some((s) => s.uri.endsWith('b.ts')), 20_000)
    expect(index.stats()).toMatchObject({ files: 1, built: true })
  })

  it('honours maxFiles, cancellation and bad options', async () => {
    const root = workspace(
      Object.fromEntries(
        Array.from({ length: 20 }, (_, i) => [
          `f${String(i).padStart(2, '0')}.ts`,
          `const v${i} = ${i}`,
        ]),
      ),
    )
    const limited = track(new WorkspaceIndex({ root, maxFiles: 5, watch: false }))
    expect(await limited.build()).toEqual({ files: 5 })
    const cancelled = track(new WorkspaceIndex({ root, watch: false }))
    await expect(cancelled.build({ signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'E_CANCELLED',
    })
    expect(() => new WorkspaceIndex({ root: '' })).toThrow(/options.root/)
    expect(() => new WorkspaceIndex({ root, maxFiles: -1 })).toThrow(/options.maxFiles/)
    const disposed = new WorkspaceIndex({ root, watch: false })
    disposed.dispose()
    disposed.dispose()
    await expect(disposed.build()).rejects.toMatchObject({ code: 'E_DISPOSED' })
  })
})
