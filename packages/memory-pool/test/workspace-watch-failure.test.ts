// Unit tests of WorkspaceMemory's fallback when file watching fails. The
// failures (no inotify watches left, a watcher error) cannot be provoked on a
// shared machine without changing system limits, so `fs.watch` is wrapped.
import type { FSWatcher } from 'node:fs'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

const control = vi.hoisted(() => ({
  mode: 'real' as 'real' | 'throw',
  watchers: [] as FSWatcher[],
}))

vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs')>()
  return {
    ...actual,
    watch: ((...args: Parameters<typeof actual.watch>) => {
      if (control.mode === 'throw') {
        throw Object.assign(new Error('ENOSPC: System limit for number of file watchers reached'), {
          code: 'ENOSPC',
        })
      }
      const watcher = actual.watch(...args)
      control.watchers.push(watcher)
      return watcher
    }) as typeof actual.watch,
  }
})

const { WorkspaceMemory } = await import('../src/workspace.js')

let root: string
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'aide-watch-failure-'))
  mkdirSync(join(root, 'src'))
  control.watchers.length = 0
})
afterEach(() => {
  rmSync(root, { recursive: true, force: true })
})

describe('WorkspaceMemory when watching fails', () => {
  it('falls back to stat checks when a directory cannot be watched', async () => {
    control.mode = 'throw'
    const events: Array<{ type: string; payload: unknown }> = []
    const warnings: unknown[] = []
    const logger = {
      trace: () => undefined,
      debug: () => undefined,
      info: () => undefined,
      warn: (bindings: unknown) => void warnings.push(bindings),
      error: () => undefined,
      fatal: () => undefined,
      child: () => logger,
    }
    const memory = new WorkspaceMemory({
      root,
      logger,
      events: { emit: (type, payload) => void events.push({ type, payload }) },
    })
    try {
      writeFileSync(join(root, 'src/a.ts'), 'one')
      expect(await memory.read('src/a.ts')).toBe('one')
      expect(memory.stats()).toMatchObject({ watchFailures: 1, watchedDirectories: 0 })
      expect(events.find((event) => event.type === 'watch-error')?.payload).toMatchObject({
        directory: 'src',
      })
      expect(warnings).toHaveLength(1)
      writeFileSync(join(root, 'src/a.ts'), 'two, longer')
      expect(await memory.read('src/a.ts')).toBe('two, longer')
      expect(events.find((event) => event.type === 'file-change')?.payload).toMatchObject({
        path: 'src/a.ts',
        reason: 'stale',
      })
    } finally {
      memory.dispose()
      control.mode = 'real'
    }
  })

  it('drops the files of a directory whose watcher errors, and watches again on the next read', async () => {
    control.mode = 'real'
    const memory = new WorkspaceMemory({ root })
    try {
      writeFileSync(join(root, 'src/a.ts'), 'one')
      writeFileSync(join(root, 'src/b.ts'), 'bee')
      await memory.read('src/a.ts')
      await memory.read('src/b.ts')
      expect(control.watchers).toHaveLength(1)
      const changes: string[] = []
      memory.onChange((change) => changes.push(`${change.path}:${change.reason}`))
      control.watchers[0]!.emit('error', new Error('watcher broke'))
      expect(changes.sort()).toEqual(['src/a.ts:watch-error', 'src/b.ts:watch-error'])
      expect(memory.stats()).toMatchObject({
        residentFiles: 0,
        watchedDirectories: 0,
        watchFailures: 1,
      })
      expect(await memory.read('src/a.ts')).toBe('one')
      expect(control.watchers).toHaveLength(2)
      expect(memory.stats().watchedDirectories).toBe(1)
    } finally {
      memory.dispose()
    }
  })
})
