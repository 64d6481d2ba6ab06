// WorkspaceMemory keeps one fs.watch watcher per directory of resident files and
// closes it when the directory's last resident file leaves. `fs.watch` is wrapped
// (the real watcher is still used) so the test can see which watchers are closed.
import type { FSWatcher } from 'node:fs'
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

const control = vi.hoisted(() => ({
  watchers: [] as Array<{ directory: string; watcher: FSWatcher; closed: boolean }>,
}))

vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs')>()
  return {
    ...actual,
    watch: ((...args: Parameters<typeof actual.watch>) => {
      const watcher = actual.watch(...args)
      const record = { directory: String(args[0]), watcher, closed: false }
      const close = watcher.close.bind(watcher)
      watcher.close = () => {
        record.closed = true
        close()
      }
      control.watchers.push(record)
      return watcher
    }) as typeof actual.watch,
  }
})

const { WorkspaceMemory } = await import('../src/workspace.js')

let root: string
beforeEach(() => {
  root = realpathSync(mkdtempSync(join(tmpdir(), 'aide-watchers-')))
  control.watchers.length = 0
})
afterEach(() => {
  rmSync(root, { recursive: true, force: true })
})

function put(path: string, content: string): void {
  mkdirSync(dirname(join(root, path)), { recursive: true })
  writeFileSync(join(root, path), content)
}

describe('WorkspaceMemory watchers', () => {
  it('keeps one watcher per directory and closes it when its last file leaves', async () => {
    put('a/one.ts', '1')
    put('a/two.ts', '2')
    put('b/three.ts', '3')
    const memory = new WorkspaceMemory({ root })
    try {
      await memory.read('a/one.ts')
      await memory.read('a/two.ts')
      await memory.read('b/three.ts')
      expect(memory.stats()).toMatchObject({ residentFiles: 3, watchedDirectories: 2 })
      expect(control.watchers.map((w) => w.directory).sort()).toEqual([
        join(root, 'a'),
        join(root, 'b'),
      ])
      const watcherOf = (directory: string) =>
        control.watchers.find((w) => w.directory === join(root, directory))!

      // a/two.ts is still resident: the watcher of a/ stays.
      expect(memory.invalidate('a/one.ts')).toBe(true)
      expect(memory.stats()).toMatchObject({ residentFiles: 2, watchedDirectories: 2 })
      expect(watcherOf('a').closed).toBe(false)

      // The last file of a/ leaves: its watcher is closed, b/'s is not.
      expect(memory.invalidate('a/two.ts')).toBe(true)
      expect(memory.stats()).toMatchObject({ residentFiles: 1, watchedDirectories: 1 })
      expect(watcherOf('a').closed).toBe(true)
      expect(watcherOf('b').closed).toBe(false)

      // Reading from a/ again watches it again, with a new watcher.
      expect(await memory.read('a/one.ts')).toBe('1')
      expect(memory.stats().watchedDirectories).toBe(2)
      expect(control.watchers).toHaveLength(3)
    } finally {
      memory.dispose()
    }
    expect(control.watchers.every((w) => w.closed)).toBe(true)
  })
})
