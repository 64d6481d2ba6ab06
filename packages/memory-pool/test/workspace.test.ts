import { execFileSync, spawn } from 'node:child_process'
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type AideError, isAideError } from '@aide/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  type WorkspaceChange,
  WorkspaceMemory,
  type WorkspaceMemoryEvents,
  type WorkspaceMemoryOptions,
} from '../src/workspace.js'

const here = dirname(fileURLToPath(import.meta.url))
let base: string
let root: string
const memories: WorkspaceMemory[] = []

function open(options: Partial<WorkspaceMemoryOptions> = {}): WorkspaceMemory {
  const memory = new WorkspaceMemory({ root, ...options })
  memories.push(memory)
  return memory
}

function put(path: string, content: string | Uint8Array): void {
  mkdirSync(dirname(join(root, path)), { recursive: true })
  writeFileSync(join(root, path), content)
}

async function rejection(promise: Promise<unknown>): Promise<AideError> {
  try {
    await promise
  } catch (error) {
    if (isAideError(error)) return error
    throw error
  }
  throw new Error('expected a rejection')
}

/** Resolves with the first change matching `predicate`, or rejects after a generous deadline. */
function nextChange(
  memory: WorkspaceMemory,
  predicate: (change: WorkspaceChange) => boolean,
  timeoutMs = 15_000,
): Promise<WorkspaceChange> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      subscription.dispose()
      reject(new Error('no matching change before the deadline'))
    }, timeoutMs)
    const subscription = memory.onChange((change) => {
      if (!predicate(change)) return
      clearTimeout(timer)
      subscription.dispose()
      resolve(change)
    })
  })
}

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'aide-workspace-'))
  root = join(base, 'root')
  mkdirSync(root)
})

afterEach(() => {
  for (const memory of memories.splice(0)) memory.dispose()
  rmSync(base, { recursive: true, force: true })
})

describe('WorkspaceMemory', () => {
  it('loads on first read, serves hits from memory, and returns text or bytes', async () => {
    put('src/a.ts', 'export const a = 1\n')
    const memory = open()
    expect(await memory.read('src/a.ts')).toBe('export const a = 1\n')
    expect(await memory.read(join(root, 'src/a.ts'))).toBe('export const a = 1\n')
    const bytes = await memory.read('src/a.ts', { as: 'bytes' })
    expect(new TextDecoder().decode(bytes)).toBe('export const a = 1\n')
    // The bytes are the caller's copy: changing them does not touch the cache.
    bytes.fill(0)
    expect(await memory.read('src/a.ts')).toBe('export const a = 1\n')
    expect(memory.has('src/a.ts')).toBe(true)
    expect(memory.stats()).toMatchObject({
      hits: 3,
      misses: 1,
      loads: 1,
      residentFiles: 1,
      watchedDirectories: 1,
    })
    // Pure ASCII: bytes plus a one-byte-per-character string.
    expect(memory.stats().residentBytes).toBe(2 * 'export const a = 1\n'.length)
  })

  it('shares one load between concurrent readers', async () => {
    put('big.txt', 'x'.repeat(100_000))
    const memory = open()
    const texts = await Promise.all(Array.from({ length: 8 }, () => memory.read('big.txt')))
    expect(new Set(texts).size).toBe(1)
    expect(memory.stats()).toMatchObject({ loads: 1, misses: 8 })
  })

  it('evicts the least recently used files to stay under the budget', async () => {
    put('a.txt', 'a'.repeat(400))
    put('b.txt', 'b'.repeat(400))
    put('c.txt', 'c'.repeat(400))
    const evicted: Array<WorkspaceMemoryEvents['file-evict']> = []
    const memory = open({
      maxBytes: 1000,
      events: {
        emit: (type, payload) => void (type === 'file-evict' && evicted.push(payload as never)),
      },
    })
    await memory.read('a.txt', { as: 'bytes' })
    await memory.read('b.txt', { as: 'bytes' })
    await memory.read('a.txt', { as: 'bytes' })
    await memory.read('c.txt', { as: 'bytes' })
    expect(memory.has('a.txt')).toBe(true)
    expect(memory.has('b.txt')).toBe(false)
    expect(memory.has('c.txt')).toBe(true)
    expect(evicted).toEqual([{ path: 'b.txt', bytes: 400 }])
    expect(memory.stats()).toMatchObject({ evictions: 1, residentBytes: 800 })
    // Text decoding counts too: a.txt grows to 800 bytes and pushes out c.txt.
    await memory.read('a.txt')
    expect(memory.stats().residentBytes).toBeLessThanOrEqual(1000)
    expect(memory.has('c.txt')).toBe(false)
  })

  it('drops a file when it changes on disk, including atomic saves', async () => {
    put('src/a.ts', 'one')
    const memory = open()
    expect(await memory.read('src/a.ts')).toBe('one')
    let change = nextChange(memory, (c) => c.path === 'src/a.ts')
    writeFileSync(join(root, 'src/a.ts'), 'two')
    expect(await change).toMatchObject({ path: 'src/a.ts', reason: 'watch', wasResident: true })
    expect(await memory.read('src/a.ts')).toBe('two')

    change = nextChange(memory, (c) => c.path === 'src/a.ts')
    writeFileSync(join(root, 'src/.a.ts.swp'), 'three')
    renameSync(join(root, 'src/.a.ts.swp'), join(root, 'src/a.ts'))
    await change
    expect(await memory.read('src/a.ts')).toBe('three')
  })

  it('reports a deleted file as E_NOT_FOUND', async () => {
    put('gone.txt', 'here')
    const memory = open()
    await memory.read('gone.txt')
    const change = nextChange(memory, (c) => c.path === 'gone.txt')
    rmSync(join(root, 'gone.txt'))
    await change
    const error = await rejection(memory.read('gone.txt'))
    expect(error.code).toBe('E_NOT_FOUND')
    expect(error.details.path).toBe('gone.txt')
    expect(memory.stats().failures).toBe(1)
  })

  it('survives its watched directory disappearing and watches it again when it returns', async () => {
    put('pkg/one.ts', '1')
    put('pkg/two.ts', '2')
    const memory = open()
    await memory.read('pkg/one.ts')
    await memory.read('pkg/two.ts')
    expect(memory.stats().watchedDirectories).toBe(1)
    const gone = Promise.all([
      nextChange(memory, (c) => c.path === 'pkg/one.ts'),
      nextChange(memory, (c) => c.path === 'pkg/two.ts'),
    ])
    rmSync(join(root, 'pkg'), { recursive: true })
    await gone
    expect(memory.stats()).toMatchObject({ residentFiles: 0, watchedDirectories: 0 })
    expect((await rejection(memory.read('pkg/one.ts'))).code).toBe('E_NOT_FOUND')
    put('pkg/one.ts', 'again')
    expect(await memory.read('pkg/one.ts')).toBe('again')
    const change = nextChange(memory, (c) => c.path === 'pkg/one.ts')
    writeFileSync(join(root, 'pkg/one.ts'), 'and again')
    await change
    expect(await memory.read('pkg/one.ts')).toBe('and again')
  })

  it('drops the files of a directory that is renamed away', async () => {
    put('old/one.ts', '1')
    const memory = open()
    await memory.read('old/one.ts')
    const change = nextChange(memory, (c) => c.path === 'old/one.ts')
    renameSync(join(root, 'old'), join(root, 'new'))
    expect(await change).toMatchObject({ reason: 'watch', wasResident: true })
    expect((await rejection(memory.read('old/one.ts'))).code).toBe('E_NOT_FOUND')
    expect(await memory.read('new/one.ts')).toBe('1')
  })

  it('rejects paths outside the root and symlinks that lead outside it', async () => {
    writeFileSync(join(base, 'secret.txt'), 'secret')
    symlinkSync(join(base, 'secret.txt'), join(root, 'link.txt'))
    const memory = open()
    for (const path of ['../secret.txt', join(base, 'secret.txt'), 'a/../../secret.txt', '.', '']) {
      const error = await rejection(memory.read(path))
      expect(error.code).toBe('E_INVALID_INPUT')
      expect(error.details.field).toBe('path')
    }
    const error = await rejection(memory.read('link.txt'))
    expect(error.code).toBe('E_PERMISSION')
    expect(error.message).toContain('outside the workspace root')
    expect(memory.has('link.txt')).toBe(false)
  })

  it('follows symlinks inside the root and notices changes to their target', async () => {
    put('real/target.ts', 'v1')
    mkdirSync(join(root, 'links'))
    symlinkSync(join(root, 'real/target.ts'), join(root, 'links/alias.ts'))
    const memory = open()
    expect(await memory.read('links/alias.ts')).toBe('v1')
    expect(memory.stats().watchedDirectories).toBe(2)
    const change = nextChange(memory, (c) => c.path === 'links/alias.ts')
    writeFileSync(join(root, 'real/target.ts'), 'v2')
    await change
    expect(await memory.read('links/alias.ts')).toBe('v2')
  })

  it('rejects directories, oversized files and bad options with typed errors', async () => {
    put('dir/file.txt', 'x')
    put('large.bin', new Uint8Array(2048))
    const memory = open({ maxBytes: 4096, maxFileBytes: 1024 })
    const directory = await rejection(memory.read('dir'))
    expect(directory.code).toBe('E_INVALID_INPUT')
    const large = await rejection(memory.read('large.bin'))
    expect(large.code).toBe('E_LIMIT')
    expect(large.details).toMatchObject({ size: 2048, maxFileBytes: 1024 })
    expect((await rejection(memory.read('a', { as: 'json' as never }))).details.field).toBe(
      'options.as',
    )
    expect((await rejection(memory.read('a', { timeoutMs: -1 }))).details.field).toBe(
      'options.timeoutMs',
    )
    expect((await rejection(memory.read(42 as never))).details.field).toBe('path')
    expect(memory.stats().residentFiles).toBe(0)

    const missingRoot = new WorkspaceMemory({ root: join(base, 'nowhere') })
    memories.push(missingRoot)
    expect((await rejection(missingRoot.read('a.txt'))).code).toBe('E_NOT_FOUND')

    const cases: Array<[unknown, string]> = [
      [undefined, 'options'],
      [{}, 'options.root'],
      [{ root, maxBytes: 0 }, 'options.maxBytes'],
      [{ root, maxBytes: 100, maxFileBytes: 200 }, 'options.maxFileBytes'],
      [{ root, watch: 'yes' }, 'options.watch'],
      [{ root, prefetchConcurrency: 0 }, 'options.prefetchConcurrency'],
      [{ root, events: {} }, 'options.events.emit'],
    ]
    for (const [options, field] of cases) {
      let caught: unknown
      try {
        new WorkspaceMemory(options as never)
      } catch (error) {
        caught = error
      }
      expect(isAideError(caught, 'E_INVALID_INPUT')).toBe(true)
      expect((caught as AideError).details.field).toBe(field)
    }
  })

  it('reports an unreadable file as E_PERMISSION', async () => {
    put('locked.txt', 'private')
    chmodSync(join(root, 'locked.txt'), 0o000)
    if (process.getuid?.() === 0) {
      // Root reads anything, so read as an unprivileged user in a child process.
      chmodSync(base, 0o755)
      chmodSync(root, 0o755)
      const output = await new Promise<string>((resolve, reject) => {
        const child = spawn(
          process.execPath,
          [
            '--conditions=@aide/source',
            '--import',
            'tsx',
            join(here, 'fixtures/read-file.ts'),
            root,
            'locked.txt',
          ],
          {
            uid: 65534,
            gid: 65534,
            cwd: join(here, '..'),
            env: { ...process.env, HOME: tmpdir() },
          },
        )
        let stdout = ''
        let stderr = ''
        child.stdout.on('data', (chunk) => (stdout += chunk))
        child.stderr.on('data', (chunk) => (stderr += chunk))
        child.on('error', reject)
        child.on('close', (code) =>
          code === 0 ? resolve(stdout) : reject(new Error(`child exited ${code}: ${stderr}`)),
        )
      })
      expect(JSON.parse(output.trim())).toMatchObject({ ok: false, code: 'E_PERMISSION' })
    } else {
      const memory = open()
      expect((await rejection(memory.read('locked.txt'))).code).toBe('E_PERMISSION')
    }
  }, 60_000)

  it('with watching off, checks each read with stat and reloads a changed file', async () => {
    put('a.txt', 'short')
    const memory = open({ watch: false })
    expect(await memory.read('a.txt')).toBe('short')
    expect(memory.stats().watchedDirectories).toBe(0)
    await writeFile(join(root, 'a.txt'), 'a longer text')
    expect(await memory.read('a.txt')).toBe('a longer text')
    expect(memory.stats()).toMatchObject({ loads: 2, changes: 1 })
    expect(await memory.read('a.txt')).toBe('a longer text')
    expect(memory.stats().hits).toBe(1)
  })

  it('times out and cancels a read that cannot finish, and the load does not linger', async () => {
    const fifo = join(root, 'pipe')
    execFileSync('mkfifo', [fifo])
    const memory = open()
    const timedOut = await rejection(memory.read('pipe', { timeoutMs: 100 }))
    expect(timedOut.code).toBe('E_TIMEOUT')
    const controller = new AbortController()
    const pending = memory.read('pipe', { signal: controller.signal })
    controller.abort()
    expect((await rejection(pending)).code).toBe('E_CANCELLED')
    expect((await rejection(memory.read('pipe', { signal: AbortSignal.abort() }))).code).toBe(
      'E_CANCELLED',
    )
    expect(memory.stats().loadsInFlight).toBe(1)
    // Unblock the open() so the shared load finishes: a FIFO is not a regular file.
    writeFileSync(fifo, '')
    const deadline = Date.now() + 15_000
    while (memory.stats().loadsInFlight > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    expect(memory.stats()).toMatchObject({ loadsInFlight: 0, residentFiles: 0 })
  })

  it('prefetches files a few at a time and collects failures', async () => {
    for (let index = 0; index < 10; index++) put(`src/f${index}.ts`, `file ${index}`)
    const memory = open({ prefetchConcurrency: 3 })
    const result = await memory.prefetch([
      ...Array.from({ length: 10 }, (_, index) => `src/f${index}.ts`),
      'src/missing.ts',
    ])
    expect(result.loaded).toHaveLength(10)
    expect(result.failed).toHaveLength(1)
    expect(result.failed[0]).toMatchObject({ path: 'src/missing.ts' })
    expect(result.failed[0]!.error.code).toBe('E_NOT_FOUND')
    expect(memory.stats()).toMatchObject({ residentFiles: 10, loads: 10 })
    expect(await memory.read('src/f3.ts')).toBe('file 3')
    expect(memory.stats().hits).toBe(1)
    expect(
      (await rejection(memory.prefetch(['src/f1.ts'], { signal: AbortSignal.abort() }))).code,
    ).toBe('E_CANCELLED')
    expect((await rejection(memory.prefetch('src/f1.ts' as never))).details.field).toBe('paths')
    expect((await rejection(memory.prefetch(['../x']))).details.field).toBe('paths[0]')
  })

  it('invalidates explicitly and notifies listeners', async () => {
    put('a.txt', 'a')
    put('b.txt', 'b')
    const memory = open({ watch: false })
    const changes: WorkspaceChange[] = []
    const subscription = memory.onChange((change) => changes.push(change))
    await memory.read('a.txt')
    await memory.read('b.txt')
    expect(memory.invalidate('a.txt')).toBe(true)
    expect(memory.invalidate('a.txt')).toBe(false)
    expect(memory.invalidateAll()).toBe(1)
    expect(changes).toEqual([
      { path: 'a.txt', reason: 'invalidate', wasResident: true },
      { path: 'b.txt', reason: 'invalidate', wasResident: true },
    ])
    subscription.dispose()
    await memory.read('a.txt')
    memory.invalidate('a.txt')
    expect(changes).toHaveLength(2)
    expect(memory.stats()).toMatchObject({ residentFiles: 0, residentBytes: 0, changes: 3 })
  })

  it('reads again when a file is invalidated while it is loading', async () => {
    put('a.txt', 'old')
    // Watching off, so only the explicit invalidation can mark the load stale.
    const memory = open({ watch: false })
    const changes: WorkspaceChange[] = []
    memory.onChange((change) => changes.push(change))
    const pending = memory.read('a.txt')
    writeFileSync(join(root, 'a.txt'), 'new')
    expect(memory.invalidate('a.txt')).toBe(false)
    expect(await pending).toBe('new')
    expect(changes[0]).toEqual({ path: 'a.txt', reason: 'invalidate', wasResident: false })
    expect(await memory.read('a.txt')).toBe('new')
    expect(memory.stats()).toMatchObject({ loads: 1, hits: 1, residentFiles: 1 })
  })

  it('dispose closes watchers, is idempotent, and refuses later use', async () => {
    put('a.txt', 'a')
    const memory = open()
    await memory.read('a.txt')
    expect(memory.stats().watchedDirectories).toBe(1)
    memory.dispose()
    memory.dispose()
    expect(memory.disposed).toBe(true)
    expect(memory.stats()).toMatchObject({ watchedDirectories: 0, residentFiles: 0 })
    expect((await rejection(memory.read('a.txt'))).code).toBe('E_DISPOSED')
    expect(() => memory.invalidate('a.txt')).toThrowError(/dispose/)
  })
})

describe('WorkspaceMemory metrics', () => {
  it('publishes its counters to a meter on its interval and on dispose, not on the read path', async () => {
    const { InMemoryMeter, ManualClock } = await import('@aide/core')
    const clock = new ManualClock()
    const meter = new InMemoryMeter()
    put('src/a.ts', 'export const a = 1\n')
    const memory = open({ meter, clock, metricsIntervalMs: 500, watch: false })
    const labels = { root: memory.root }
    await memory.read('src/a.ts')
    await memory.read('src/a.ts')
    await rejection(memory.read('src/missing.ts'))
    expect(meter.value('aide_workspace_hits_total', labels)).toBe(0)
    clock.advance(500)
    expect(meter.value('aide_workspace_hits_total', labels)).toBe(1)
    expect(meter.value('aide_workspace_misses_total', labels)).toBe(2)
    expect(meter.value('aide_workspace_failures_total', labels)).toBe(1)
    expect(meter.value('aide_workspace_resident_files', labels)).toBe(1)
    expect(meter.value('aide_workspace_resident_bytes', labels)).toBe(memory.stats().residentBytes)
    await memory.read('src/a.ts')
    memory.dispose()
    expect(clock.pendingTimers).toBe(0)
    expect(meter.value('aide_workspace_hits_total', labels)).toBe(2)
    expect(meter.value('aide_workspace_resident_bytes', labels)).toBe(0)
  })

  it('rejects a meter without instruments, naming the option', () => {
    expect(() => new WorkspaceMemory({ root, meter: {} as never })).toThrowError(
      expect.objectContaining({
        code: 'E_INVALID_INPUT',
        details: expect.objectContaining({ field: 'options.meter.counter' }),
      }),
    )
  })
})
