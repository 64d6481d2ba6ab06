import { describe, expect, it } from 'vitest'
import {
  type AideError,
  assertClock,
  assertEventSink,
  assertLogger,
  defineService,
  guardEventSink,
  ManualClock,
  noopLogger,
  ServiceManager,
} from '../src/index.js'

function caught(fn: () => unknown): AideError {
  try {
    fn()
  } catch (error) {
    return error as AideError
  }
  throw new Error('expected a throw')
}

describe('collaborator checks', () => {
  it('name the option and the missing method', () => {
    expect(caught(() => assertLogger({ ...noopLogger, warn: 1 }, 'options.logger'))).toMatchObject({
      code: 'E_INVALID_INPUT',
      details: { field: 'options.logger' },
    })
    expect(caught(() => assertLogger(null, 'options.logger')).message).toContain('null')
    expect(caught(() => assertClock({ now: () => 0 }, 'options.clock')).message).toContain(
      'setTimeout()',
    )
    expect(caught(() => assertEventSink({}, 'options.events')).message).toContain('emit()')
    expect(() => assertClock(new ManualClock(0), 'options.clock')).not.toThrow()
    expect(() => assertLogger(noopLogger, 'options.logger')).not.toThrow()
  })

  it('a guarded sink reports a throwing emit to the logger and survives a throwing logger', () => {
    const warnings: unknown[] = []
    const logger = { ...noopLogger, warn: (record: unknown) => void warnings.push(record) }
    const seen: string[] = []
    const sink = guardEventSink<{ a: number; b: number }>(
      {
        emit: (type) => {
          seen.push(type)
          if (type === 'a') throw new Error('sink boom')
        },
      },
      logger,
      'test',
    )
    expect(() => sink.emit('a', 1)).not.toThrow()
    sink.emit('b', 2)
    expect(seen).toEqual(['a', 'b'])
    expect(warnings).toEqual([expect.objectContaining({ type: 'a' })])
    const throwingLogger = {
      ...noopLogger,
      warn: () => {
        throw new Error('logger boom')
      },
    }
    const bad = guardEventSink<{ a: number }>(
      {
        emit: () => {
          throw new Error('x')
        },
      },
      throwingLogger,
      'test',
    )
    expect(() => bad.emit('a', 1)).not.toThrow()
  })
})

describe('ServiceManager with malformed or failing collaborators', () => {
  const A = defineService<number>('a')
  const B = defineService<number>('b')

  it('rejects a malformed events sink, logger or clock at construction', () => {
    expect(caught(() => new ServiceManager({ events: {} as never }))).toMatchObject({
      code: 'E_INVALID_INPUT',
      details: { field: 'options.events' },
    })
    expect(caught(() => new ServiceManager({ logger: {} as never }))).toMatchObject({
      details: { field: 'options.logger' },
    })
    expect(caught(() => new ServiceManager({ clock: {} as never }))).toMatchObject({
      details: { field: 'options.clock' },
    })
  })

  it('initialises services normally when the event sink throws', async () => {
    // This sink used to leave the service 'initializing' for ever, with get()
    // resolving undefined and every dependent failing.
    const manager = new ServiceManager({
      events: {
        emit: () => {
          throw new Error('sink boom')
        },
      },
    })
    manager.register(A, { factory: () => 1 })
    manager.register(B, { deps: [A], factory: ([a]) => a + 1 })
    expect(await manager.get(A)).toBe(1)
    expect(manager.state(A)).toBe('ready')
    expect(await manager.get(B)).toBe(2)
    await manager.dispose()
    expect(manager.state(A)).toBe('disposed')
  })
})
