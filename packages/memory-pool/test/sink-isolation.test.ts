// The logger, clock and events sink a pool or workspace is handed are user
// code. They are checked at construction, and an events sink or logger that
// throws is logged (or ignored) without failing the call that reported, without
// corrupting state, and without escaping from a timer, finaliser or watcher.
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type AideError, type Logger, ManualClock, noopLogger } from '@aide/core'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { BufferPool, ObjectPool } from '../src/index.js'
import { WorkspaceMemory } from '../src/workspace.js'
import { collectUntil } from './gc.js'

function caught(fn: () => unknown): AideError {
  try {
    fn()
  } catch (error) {
    return error as AideError
  }
  throw new Error('expected a throw')
}

/** A sink that records every event type it is given and throws on those in `failOn` (all when omitted). */
function throwingSink(failOn?: string[]) {
  const seen: string[] = []
  return {
    seen,
    events: {
      emit(type: string) {
        seen.push(type)
        if (failOn === undefined || failOn.includes(type)) throw new Error(`sink boom (${type})`)
      },
    },
  }
}

/** A logger that records warnings and errors. */
function recordingLogger() {
  const records: Array<Record<string, unknown>> = []
  const logger: Logger = {
    ...noopLogger,
    warn: (bindings: unknown) => void records.push(bindings as Record<string, unknown>),
    error: (bindings: unknown) => void records.push(bindings as Record<string, unknown>),
  }
  return { records, logger }
}

/** A logger that records warnings, then throws. */
function recordingThrowingLogger() {
  const records: Array<Record<string, unknown>> = []
  const logger: Logger = {
    ...noopLogger,
    warn: (bindings: unknown) => {
      records.push(bindings as Record<string, unknown>)
      throw new Error('logger boom')
    },
  }
  return { records, logger }
}

/** A well-formed logger whose every method throws. */
const throwingLogger: Logger = {
  trace: () => {
    throw new Error('logger boom')
  },
  debug: () => {
    throw new Error('logger boom')
  },
  info: () => {
    throw new Error('logger boom')
  },
  warn: () => {
    throw new Error('logger boom')
  },
  error: () => {
    throw new Error('logger boom')
  },
  fatal: () => {
    throw new Error('logger boom')
  },
  child: () => throwingLogger,
}

const { setInterval: _omitted, ...clockWithoutSetInterval } = new ManualClock()

describe('malformed collaborators are rejected at construction', () => {
  it('names options.logger when the logger lacks a log method', () => {
    const makers: Array<(logger: Logger) => unknown> = [
      (logger) => new BufferPool({ logger, compaction: false }),
      (logger) => new ObjectPool({ create: () => ({}), logger }),
      (logger) => new WorkspaceMemory({ root: tmpdir(), logger }),
    ]
    for (const make of makers) {
      for (const logger of [{}, { ...noopLogger, error: undefined }, { ...noopLogger, warn: 1 }]) {
        expect(caught(() => make(logger as never))).toMatchObject({
          code: 'E_INVALID_INPUT',
          details: { field: 'options.logger' },
        })
      }
      expect(() => make(noopLogger)).not.toThrow()
    }
  })

  it('names options.clock when the clock lacks one of now, setTimeout, setInterval, clearTimer', () => {
    const clock = new ManualClock()
    const partial = [
      { now: () => 0, setInterval: () => 1 },
      { ...clockWithoutSetInterval, now: () => 0 },
      { now: () => 0, setTimeout: () => 1, setInterval: () => 1 },
    ]
    for (const bad of partial) {
      expect(caught(() => new BufferPool({ clock: bad as never }))).toMatchObject({
        code: 'E_INVALID_INPUT',
        details: { field: 'options.clock' },
      })
      expect(
        caught(() => new WorkspaceMemory({ root: tmpdir(), clock: bad as never })),
      ).toMatchObject({ code: 'E_INVALID_INPUT', details: { field: 'options.clock' } })
    }
    new BufferPool({ clock }).dispose()
    expect(clock.pendingTimers).toBe(0)
  })
})

describe('BufferPool with a throwing events sink or logger', () => {
  it('keeps compacting from its timer and logs the failed event', () => {
    const clock = new ManualClock()
    const { seen, events } = throwingSink()
    const { records, logger } = recordingLogger()
    const pool = new BufferPool({
      clock,
      logger,
      events,
      compaction: { intervalMs: 10, idleMs: 0 },
    })
    pool.acquire(8192).release()
    expect(pool.stats().freeBytes).toBe(8192)
    // The timer's callback used to throw the sink's error out of the timer (an uncaughtException).
    expect(() => clock.advance(20)).not.toThrow()
    expect(pool.stats()).toMatchObject({ freeBytes: 0, compactions: 1, compactedBytes: 8192 })
    expect(seen).toEqual(['pool-compact'])
    expect(records).toEqual([expect.objectContaining({ type: 'pool-compact' })])
    // The timer is still running: it compacts again later.
    pool.acquire(8192).release()
    expect(() => clock.advance(20)).not.toThrow()
    expect(pool.stats()).toMatchObject({ freeBytes: 0, compactions: 2 })
    pool.dispose()
    expect(clock.pendingTimers).toBe(0)
  })

  it('never fails an acquire or a compact() because the sink threw', () => {
    const { seen, events } = throwingSink()
    const pool = new BufferPool({
      maxBytes: 16384,
      onExhausted: 'unpooled',
      compaction: false,
      events,
    })
    // Making room under the budget (dropping the free 8 KiB buffer) reports 'pool-compact'.
    pool.acquire(8192).release()
    const big = pool.acquire(12288)
    expect(big.pooled).toBe(true)
    expect(pool.stats()).toMatchObject({ freeBytes: 0, inUseBytes: 12288 })
    // Exhausting the budget reports 'budget-exhaust'.
    const over = pool.acquire(8192)
    expect(over.pooled).toBe(false)
    over.release()
    big.release()
    expect(pool.compact()).toBe(12288)
    expect(seen).toEqual(['pool-compact', 'budget-exhaust', 'pool-compact'])
    expect(pool.stats()).toMatchObject({ inUseBytes: 0, freeBytes: 0, outstandingHandles: 0 })
    pool.dispose()
  })

  it('reports a leaked handle even when the logger throws, and survives a throwing sink', async () => {
    const { seen, events } = throwingSink()
    const { records, logger } = recordingThrowingLogger()
    const pool = new BufferPool({ detectLeaks: true, compaction: false, logger, events })
    ;(function leak() {
      pool.acquire(8192)
    })()
    await collectUntil(() => pool.stats().leaked === 1)
    // The logger threw on the leak warning; the event is still emitted, and the sink's throw
    // is logged (the logger throws again, ignored) instead of escaping from the finaliser.
    expect(seen).toEqual(['handle-leak'])
    expect(records).toEqual([
      expect.objectContaining({ byteLength: 8192 }),
      expect.objectContaining({ type: 'handle-leak' }),
    ])
    expect(pool.stats()).toMatchObject({ leaked: 1, inUseBytes: 0, outstandingHandles: 0 })
    expect(pool.acquire(8192).pooled).toBe(true)
    pool.dispose()
  })
})

describe('ObjectPool with a throwing events sink or logger', () => {
  it('reports a leaked object even when the logger throws, and survives a throwing sink', async () => {
    const { seen, events } = throwingSink()
    const { records, logger } = recordingThrowingLogger()
    const pool = new ObjectPool({
      create: () => ({ scratch: [] as number[] }),
      detectLeaks: true,
      logger,
      events,
    })
    ;(function leak() {
      pool.acquire()
    })()
    await collectUntil(() => pool.stats().leaked === 1)
    expect(seen).toEqual(['object-leak'])
    expect(records).toEqual([
      expect.objectContaining({ pool: 'object-pool' }),
      expect.objectContaining({ type: 'object-leak' }),
    ])
    expect(pool.stats()).toMatchObject({ leaked: 1, inUse: 0 })
    const value = pool.acquire()
    pool.release(value)
    expect(pool.stats()).toMatchObject({ inUse: 0, free: 1 })
  })
})

describe('WorkspaceMemory with a throwing events sink or logger', () => {
  let root: string
  const memories: WorkspaceMemory[] = []
  beforeEach(() => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'aide-sinks-')))
  })
  afterEach(() => {
    for (const memory of memories.splice(0)) memory.dispose()
    rmSync(root, { recursive: true, force: true })
  })
  const open = (options: Omit<ConstructorParameters<typeof WorkspaceMemory>[0], 'root'>) => {
    const memory = new WorkspaceMemory({ root, ...options })
    memories.push(memory)
    return memory
  }

  it('serves new content after a file changes, even though evicting for it made the sink throw', async () => {
    writeFileSync(join(root, 'a.txt'), 'aaaaaaaaaa')
    writeFileSync(join(root, 'b.txt'), 'bbbbbbbbbb')
    const { seen, events } = throwingSink(['file-evict'])
    const { records, logger } = recordingLogger()
    // a.txt takes 20 bytes (file + decoded text); loading b.txt evicts it.
    const memory = open({ maxBytes: 25, events, logger })
    expect(await memory.read('a.txt')).toBe('aaaaaaaaaa')
    // The eviction's event used to reject this read, leaving b.txt resident but unwatched.
    expect(await memory.read('b.txt')).toBe('bbbbbbbbbb')
    expect(seen).toEqual(['file-evict'])
    expect(records).toEqual([expect.objectContaining({ type: 'file-evict' })])
    expect(memory.has('a.txt')).toBe(false)
    expect(memory.stats()).toMatchObject({
      residentFiles: 1,
      residentBytes: 20,
      evictions: 1,
      failures: 0,
      watchedDirectories: 1,
    })

    writeFileSync(join(root, 'b.txt'), 'BBBBBBBBBB')
    // The watcher drops b.txt when it reports the change (whenever that is); until then a
    // read may still return the old text, but never after: it used to stay stale for ever.
    await vi.waitFor(async () => expect(await memory.read('b.txt')).toBe('BBBBBBBBBB'), {
      timeout: 20_000,
      interval: 20,
    })
  })

  it('contains a throwing sink on a watcher-reported change and still tells the listeners', async () => {
    writeFileSync(join(root, 'a.txt'), 'one')
    const { events } = throwingSink(['file-change'])
    const { records, logger } = recordingLogger()
    const memory = open({ events, logger })
    expect(await memory.read('a.txt')).toBe('one')
    const changes: unknown[] = []
    memory.onChange((change) => void changes.push(change))
    writeFileSync(join(root, 'a.txt'), 'two')
    // The sink runs first; it used to throw out of the watcher callback (an uncaughtException)
    // before any listener was called.
    await vi.waitFor(() => expect(changes.length).toBeGreaterThan(0), {
      timeout: 20_000,
      interval: 20,
    })
    expect(changes[0]).toEqual({ path: 'a.txt', reason: 'watch', wasResident: true })
    expect(records).toContainEqual(expect.objectContaining({ type: 'file-change' }))
    await vi.waitFor(async () => expect(await memory.read('a.txt')).toBe('two'), {
      timeout: 20_000,
      interval: 20,
    })
  })

  it('invalidates when the sink, a listener and the logger all throw', async () => {
    writeFileSync(join(root, 'a.txt'), 'one')
    const { seen, events } = throwingSink()
    const memory = open({ events, logger: throwingLogger, watch: false })
    const changes: unknown[] = []
    memory.onChange(() => {
      throw new Error('listener boom')
    })
    memory.onChange((change) => void changes.push(change))
    expect(await memory.read('a.txt')).toBe('one')
    expect(memory.invalidate('a.txt')).toBe(true)
    expect(seen).toEqual(['file-change'])
    expect(changes).toEqual([{ path: 'a.txt', reason: 'invalidate', wasResident: true }])
    expect(memory.stats()).toMatchObject({ residentFiles: 0, residentBytes: 0, changes: 1 })
    writeFileSync(join(root, 'a.txt'), 'two')
    expect(await memory.read('a.txt')).toBe('two')
    expect(memory.invalidateAll()).toBe(1)
    expect(changes).toHaveLength(2)
  })
})
