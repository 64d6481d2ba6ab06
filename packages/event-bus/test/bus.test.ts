import {
  type EventSink,
  InMemoryMeter,
  isAideError,
  type Logger,
  ManualClock,
  noopLogger,
} from '@aide/core'
import fc from 'fast-check'
import { describe, expect, it, vi } from 'vitest'
import { createEventBus, type DeadLetter } from '../src/index.js'
import { compilePattern } from '../src/pattern.js'

type Events = {
  'document.opened': { uri: string }
  'document.closed': { uri: string }
  'document.saved.remote': { uri: string }
  'plugin.loaded': { id: string }
  tick: number
}

function deferred<T = void>() {
  let resolve!: (value: T) => void
  let reject!: (error: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** Resolves once `check` passes, polling on the macrotask queue, or fails after `ms`. */
async function until(check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setImmediate(resolve))
  }
}

function captureError(fn: () => unknown): unknown {
  try {
    fn()
  } catch (error) {
    return error
  }
  throw new Error('expected a throw')
}

describe('emit (synchronous fast path)', () => {
  it('delivers typed payloads synchronously in subscription order and satisfies EventSink', () => {
    const bus = createEventBus<Events>()
    const seen: string[] = []
    bus.on('document.opened', (payload, type) => {
      seen.push(`a:${type}:${payload.uri}`)
    })
    bus.on('document.opened', (payload) => {
      seen.push(`b:${payload.uri}`)
    })
    const sink: EventSink<Events> = bus
    sink.emit('document.opened', { uri: 'x' })
    expect(seen).toEqual(['a:document.opened:x', 'b:x'])
    bus.emit('document.closed', { uri: 'y' })
    expect(seen).toHaveLength(2)
  })

  it('routes wildcard patterns: * is one segment, ** is any number', () => {
    const bus = createEventBus<Events>()
    const one: string[] = []
    const any: string[] = []
    const all: string[] = []
    bus.on('document.*', (_payload, type) => {
      one.push(type)
    })
    bus.on('document.**', (_payload, type) => {
      any.push(type)
    })
    bus.on('**', (_payload, type) => {
      all.push(type)
    })
    bus.emit('document.opened', { uri: 'a' })
    bus.emit('document.saved.remote', { uri: 'a' })
    bus.emit('plugin.loaded', { id: 'p' })
    bus.emit('tick', 1)
    expect(one).toEqual(['document.opened'])
    expect(any).toEqual(['document.opened', 'document.saved.remote'])
    expect(all).toEqual(['document.opened', 'document.saved.remote', 'plugin.loaded', 'tick'])
  })

  it('updates routes when wildcard subscriptions come and go', () => {
    const bus = createEventBus<Events>()
    const seen: string[] = []
    bus.emit('document.opened', { uri: 'before' })
    // A wildcard listener receives the union of payloads: narrow before use.
    const handle = bus.on('document.*', (payload) => {
      if (typeof payload === 'object' && 'uri' in payload) seen.push(payload.uri)
    })
    bus.emit('document.opened', { uri: 'during' })
    handle.dispose()
    handle.dispose()
    bus.emit('document.opened', { uri: 'after' })
    expect(seen).toEqual(['during'])
    expect(bus.listenerCount()).toBe(0)
  })

  it('once fires a single time, also when emitted re-entrantly', () => {
    const bus = createEventBus<Events>()
    const calls: number[] = []
    bus.once('tick', (n) => {
      calls.push(n)
      bus.emit('tick', n + 1)
    })
    bus.emit('tick', 1)
    bus.emit('tick', 5)
    expect(calls).toEqual([1])
    expect(bus.listenerCount('tick')).toBe(0)
  })

  it('off removes by pattern and listener; an aborted signal unsubscribes', () => {
    const bus = createEventBus<Events>()
    const listener = vi.fn()
    bus.on('tick', listener)
    expect(bus.off('tick', listener)).toBe(true)
    expect(bus.off('tick', listener)).toBe(false)
    const controller = new AbortController()
    bus.on('tick', listener, { signal: controller.signal })
    bus.emit('tick', 1)
    controller.abort()
    bus.emit('tick', 2)
    expect(listener).toHaveBeenCalledTimes(1)
    const aborted = AbortSignal.abort()
    bus.on('tick', listener, { signal: aborted })
    expect(bus.listenerCount('tick')).toBe(0)
  })

  it('isolates throwing and rejecting listeners: others still run, errors reach the channel and dead letters', async () => {
    const clock = new ManualClock(1_000)
    const bus = createEventBus<Events>({ clock })
    const errors: DeadLetter[] = []
    bus.onError((letter) => errors.push(letter))
    const after = vi.fn()
    bus.on(
      'tick',
      () => {
        throw new Error('sync boom')
      },
      { name: 'thrower' },
    )
    bus.on(
      'tick',
      async () => {
        throw new Error('async boom')
      },
      { name: 'rejecter' },
    )
    bus.on('tick', after)
    expect(() => bus.emit('tick', 7)).not.toThrow()
    expect(after).toHaveBeenCalledWith(7, 'tick')
    await until(() => errors.length === 2)
    expect(errors.map((e) => e.subscriber).sort()).toEqual(['rejecter', 'thrower'])
    for (const letter of errors) {
      expect(letter.type).toBe('tick')
      expect(letter.payload).toBe(7)
      expect(letter.at).toBe(1_000)
      expect(isAideError(letter.error)).toBe(true)
      expect(letter.error.cause).toBeInstanceOf(Error)
    }
    expect(bus.deadLetters()).toHaveLength(2)
    const stats = bus.stats()
    expect(stats.types.tick).toEqual({ published: 1, delivered: 1, failed: 2, dropped: 0 })
    expect(stats.errors).toBe(2)
    expect(bus.takeDeadLetters()).toHaveLength(2)
    expect(bus.deadLetters()).toHaveLength(0)
  })

  it('logs failures when no error listener is attached, and failures of error listeners', () => {
    const error = vi.fn()
    const logger: Logger = { ...noopLogger, error, child: () => logger }
    const bus = createEventBus<Events>({ logger })
    bus.on('tick', () => {
      throw new Error('nobody listening')
    })
    bus.emit('tick', 1)
    expect(error).toHaveBeenCalledTimes(1)
    bus.onError(() => {
      throw new Error('error listener broke')
    })
    bus.emit('tick', 2)
    expect(error).toHaveBeenCalledTimes(2)
    expect(String(error.mock.calls[1]?.[1])).toContain('error listener threw')
  })

  it('keeps a bounded dead-letter store and counts evictions', () => {
    const bus = createEventBus<Events>({ deadLetterCapacity: 2 })
    bus.onError(() => undefined)
    bus.on('tick', (n) => {
      throw new Error(`fail ${n}`)
    })
    for (let i = 0; i < 5; i++) bus.emit('tick', i)
    expect(bus.deadLetters().map((d) => d.payload)).toEqual([3, 4])
    expect(bus.stats().deadLetters).toEqual({ size: 2, capacity: 2, evicted: 3 })
  })

  it('a listener that throws mid-loop: the listeners after it run, and stats count exactly', () => {
    const bus = createEventBus<Record<string, number>>()
    bus.onError(() => undefined)
    const order: string[] = []
    for (const name of ['a', 'b', 'c', 'd', 'e']) {
      bus.on(
        'tick',
        (n) => {
          order.push(`${name}${n}`)
          if ((name === 'b' || name === 'd') && n === 1) throw new Error(`${name} failed`)
        },
        { name },
      )
    }
    bus.emit('tick', 1)
    bus.emit('tick', 2)
    expect(order).toEqual(['a1', 'b1', 'c1', 'd1', 'e1', 'a2', 'b2', 'c2', 'd2', 'e2'])
    const stats = bus.stats()
    expect(stats.types.tick).toEqual({ published: 2, delivered: 8, failed: 2, dropped: 0 })
    expect(stats.subscriberStats.map((s) => [s.name, s.delivered, s.failed])).toEqual([
      ['a', 2, 0],
      ['b', 1, 1],
      ['c', 2, 0],
      ['d', 1, 1],
      ['e', 2, 0],
    ])
    expect(bus.deadLetters().map((letter) => letter.subscriber)).toEqual(['b', 'd'])
  })

  it('subscribing and unsubscribing during an emit: the running emit keeps its snapshot, the next one sees the change', () => {
    const bus = createEventBus<Events>()
    const seen: string[] = []
    let late: { dispose(): void } | undefined
    const removed = { dispose: () => undefined } as { dispose(): void }
    bus.on('tick', (n) => {
      seen.push(`first${n}`)
      if (n === 1) {
        // Adds a listener and removes the third one while this emit runs.
        late = bus.on('tick', (m) => void seen.push(`late${m}`))
        removed.dispose()
      }
    })
    bus.on('tick', (n) => {
      seen.push(`second${n}`)
      if (n === 2) late?.dispose()
    })
    removed.dispose = bus.on('tick', (n) => void seen.push(`third${n}`)).dispose
    bus.emit('tick', 1)
    expect(seen).toEqual(['first1', 'second1', 'third1'])
    bus.emit('tick', 2)
    expect(seen.slice(3)).toEqual(['first2', 'second2', 'late2'])
    bus.emit('tick', 3)
    expect(seen.slice(6)).toEqual(['first3', 'second3'])
    expect(bus.listenerCount('tick')).toBe(2)
    expect(bus.stats().types.tick).toEqual({ published: 3, delivered: 8, failed: 0, dropped: 0 })
    expect(bus.stats().subscriberStats.map((s) => s.delivered)).toEqual([3, 3])
  })

  it('an emit from inside a listener re-enters safely, with every delivery counted', () => {
    const bus = createEventBus<Events>()
    const seen: number[] = []
    bus.on('tick', (n) => {
      seen.push(n)
      if (n < 3) bus.emit('tick', n + 1)
    })
    bus.on('tick', (n) => void seen.push(n * 10))
    bus.emit('tick', 1)
    expect(seen).toEqual([1, 2, 3, 30, 20, 10])
    expect(bus.stats().types.tick).toEqual({ published: 3, delivered: 6, failed: 0, dropped: 0 })
  })

  it('routes event types that are names of Object.prototype members like any other', () => {
    const bus = createEventBus<Record<string, number>>()
    const seen: string[] = []
    for (const type of ['constructor', '__proto__', 'toString', 'hasOwnProperty'])
      bus.on(type, (n, t) => void seen.push(`${t}:${n}`))
    bus.emit('constructor', 1)
    bus.emit('__proto__', 2)
    bus.emit('toString', 3)
    bus.emit('valueOf', 4)
    expect(seen).toEqual(['constructor:1', '__proto__:2', 'toString:3'])
    expect(bus.listenerCount('hasOwnProperty')).toBe(1)
  })

  it('counts per-type and per-subscriber deliveries across route changes', () => {
    const bus = createEventBus<Events>()
    bus.on('tick', () => undefined, { name: 'first' })
    bus.emit('tick', 1)
    bus.emit('tick', 2)
    bus.on('tick', () => undefined, { name: 'second' })
    bus.emit('tick', 3)
    const stats = bus.stats()
    expect(stats.types.tick).toEqual({ published: 3, delivered: 4, failed: 0, dropped: 0 })
    expect(stats.subscriberStats.map((s) => [s.name, s.delivered])).toEqual([
      ['first', 3],
      ['second', 1],
    ])
    expect(JSON.parse(JSON.stringify(stats))).toEqual(stats)
  })
})

describe('publish (queued delivery)', () => {
  it('delivers asynchronously, per subscriber in publish order, even with uneven handler times', async () => {
    const bus = createEventBus<Events>()
    const fast: number[] = []
    const slow: number[] = []
    bus.on('tick', (n) => {
      fast.push(n)
    })
    bus.on('tick', async (n) => {
      await new Promise((resolve) => setTimeout(resolve, (n * 7) % 5))
      slow.push(n)
    })
    const sent = Array.from({ length: 40 }, (_, i) => i)
    const pending = sent.map((n) => bus.publish('tick', n))
    expect(fast).toEqual([])
    await Promise.all(pending)
    await bus.drain({ timeoutMs: 10_000 })
    expect(fast).toEqual(sent)
    expect(slow).toEqual(sent)
  })

  it('respects the concurrency limit of each subscriber', async () => {
    const bus = createEventBus<Events>()
    let running = 0
    let peak = 0
    const gates = Array.from({ length: 6 }, () => deferred())
    bus.on(
      'tick',
      async (n) => {
        running++
        peak = Math.max(peak, running)
        await gates[n]!.promise
        running--
      },
      { concurrency: 2 },
    )
    for (let i = 0; i < 6; i++) await bus.publish('tick', i)
    await until(() => running === 2)
    expect(bus.stats().subscriberStats[0]).toMatchObject({ running: 2, queueDepth: 4 })
    for (const gate of gates) gate.resolve()
    await bus.drain({ timeoutMs: 5_000 })
    expect(peak).toBe(2)
  })

  it('overflow "wait": publish waits for room and keeps order; a timed-out publish is withdrawn', async () => {
    const clock = new ManualClock()
    const bus = createEventBus<Events>({ clock })
    const seen: number[] = []
    const gate = deferred()
    bus.on(
      'tick',
      async (n) => {
        await gate.promise
        seen.push(n)
      },
      { queueSize: 1 },
    )
    await bus.publish('tick', 1)
    await until(() => bus.stats().subscriberStats[0]!.running === 1)
    await bus.publish('tick', 2)
    let thirdAccepted = false
    const third = bus.publish('tick', 3).then(() => {
      thirdAccepted = true
    })
    const fourth = bus.publish('tick', 4, { timeoutMs: 50 })
    const fourthSettled = expect(fourth).rejects.toMatchObject({ code: 'E_TIMEOUT' })
    expect(bus.stats().subscriberStats[0]!.waiting).toBe(2)
    await clock.advanceAsync(50)
    await fourthSettled
    expect(thirdAccepted).toBe(false)
    expect(bus.stats().subscriberStats[0]!.waiting).toBe(1)
    gate.resolve()
    await third
    await bus.drain({ timeoutMs: 5_000 })
    expect(seen).toEqual([1, 2, 3])
  })

  it('overflow "drop-oldest" and "drop-newest" discard and count', async () => {
    const bus = createEventBus<Events>()
    const oldest: number[] = []
    const newest: number[] = []
    bus.on(
      'tick',
      (n) => {
        oldest.push(n)
      },
      { queueSize: 2, overflow: 'drop-oldest', name: 'oldest' },
    )
    bus.on(
      'tick',
      (n) => {
        newest.push(n)
      },
      { queueSize: 2, overflow: 'drop-newest', name: 'newest' },
    )
    // Synchronous publishes fill the queues before the first delivery turn.
    const all = [1, 2, 3, 4, 5].map((n) => bus.publish('tick', n))
    await Promise.all(all)
    await bus.drain()
    expect(oldest).toEqual([4, 5])
    expect(newest).toEqual([1, 2])
    const stats = bus.stats()
    expect(stats.subscriberStats.map((s) => [s.name, s.dropped])).toEqual([
      ['oldest', 3],
      ['newest', 3],
    ])
    expect(stats.types.tick!.dropped).toBe(6)
  })

  it('overflow "reject": E_LIMIT and the event reaches no subscriber', async () => {
    const bus = createEventBus<Events>()
    const other: number[] = []
    bus.on('tick', (n) => {
      other.push(n)
    })
    bus.on('tick', () => undefined, { queueSize: 1, overflow: 'reject', name: 'strict' })
    const first = bus.publish('tick', 1)
    const error = await bus.publish('tick', 2).catch((e: unknown) => e)
    expect(isAideError(error, 'E_LIMIT')).toBe(true)
    expect((error as { details: { subscriber: string } }).details.subscriber).toBe('strict')
    await first
    await bus.drain()
    expect(other).toEqual([1])
  })

  it('publishBatch validates everything first, then delivers in order with one wait', async () => {
    const bus = createEventBus<Events>()
    const seen: string[] = []
    bus.on('**', (_payload, type) => {
      seen.push(type)
    })
    await expect(
      bus.publishBatch([
        { type: 'tick', payload: 1 },
        { type: '' as 'tick', payload: 2 },
      ]),
    ).rejects.toMatchObject({
      code: 'E_INVALID_INPUT',
      details: { field: 'publishBatch: events[1]: type' },
    })
    await bus.drain()
    expect(seen).toEqual([])
    await bus.publishBatch(
      [
        { type: 'document.opened', payload: { uri: 'a' } },
        { type: 'tick', payload: 1 },
        { type: 'plugin.loaded', payload: { id: 'p' } },
      ],
      { awaitDelivery: true },
    )
    expect(seen).toEqual(['document.opened', 'tick', 'plugin.loaded'])
  })

  it('publishBatch rejects with E_LIMIT when the batch does not fit a "reject" queue', async () => {
    const bus = createEventBus<Events>()
    const seen: number[] = []
    bus.on(
      'tick',
      (n) => {
        seen.push(n)
      },
      { queueSize: 2, overflow: 'reject' },
    )
    await expect(
      bus.publishBatch([1, 2, 3].map((n) => ({ type: 'tick' as const, payload: n }))),
    ).rejects.toMatchObject({ code: 'E_LIMIT' })
    await bus.publishBatch(
      [1, 2].map((n) => ({ type: 'tick' as const, payload: n })),
      { awaitDelivery: true },
    )
    expect(seen).toEqual([1, 2])
  })

  it('awaitDelivery resolves after handlers settle; failures go to the error channel, not the publisher', async () => {
    const bus = createEventBus<Events>()
    const errors: DeadLetter[] = []
    bus.onError((letter) => errors.push(letter))
    let done = false
    bus.on('tick', async () => {
      await new Promise((resolve) => setTimeout(resolve, 5))
      done = true
    })
    bus.on('tick', async () => {
      throw new Error('handler failed')
    })
    await bus.publish('tick', 1, { awaitDelivery: true })
    expect(done).toBe(true)
    expect(errors).toHaveLength(1)
    expect(bus.stats().types.tick).toEqual({ published: 1, delivered: 1, failed: 1, dropped: 0 })
  })

  it('measures queued delivery latency with the injected clock', async () => {
    const clock = new ManualClock()
    const bus = createEventBus<Events>({ clock })
    const gate = deferred()
    bus.on('tick', async () => {
      await gate.promise
    })
    await bus.publish('tick', 1)
    await clock.advanceAsync(40)
    gate.resolve()
    await bus.drain()
    expect(bus.stats().subscriberStats[0]!.latency).toEqual({ count: 1, meanMs: 40, maxMs: 40 })
  })

  it('a publish that gives up waiting for room is withdrawn only where it waited: subscribers that had accepted it keep it', async () => {
    const clock = new ManualClock()
    const bus = createEventBus<Events>({ clock })
    // Three subscribers, each blocked on its first event until its gates open.
    const names = ['roomy', 'admitted', 'full'] as const
    const seen = { roomy: [] as number[], admitted: [] as number[], full: [] as number[] }
    const gates = {
      roomy: [deferred(), deferred(), deferred()],
      admitted: [deferred(), deferred(), deferred()],
      full: [deferred(), deferred(), deferred()],
    }
    for (const name of names) {
      bus.on(
        'tick',
        async (n) => {
          await gates[name][n - 1]!.promise
          seen[name].push(n)
        },
        { name, queueSize: name === 'roomy' ? 10 : 1 },
      )
    }
    const sub = (name: string) => bus.stats().subscriberStats.find((s) => s.name === name)!
    await bus.publish('tick', 1)
    await until(() => names.every((name) => sub(name).running === 1))
    await bus.publish('tick', 2)
    const third = bus.publish('tick', 3, { timeoutMs: 50 })
    const timedOut = expect(third).rejects.toMatchObject({ code: 'E_TIMEOUT' })
    // "roomy" accepted 3 at once; the two full queues make the publish wait.
    expect(names.map((name) => [sub(name).queueDepth, sub(name).waiting])).toEqual([
      [2, 0],
      [1, 1],
      [1, 1],
    ])
    // Room appears in "admitted" before the deadline: it accepts 3 as well.
    gates.admitted[0]!.resolve()
    await until(() => sub('admitted').waiting === 0 && seen.admitted.length === 1)
    await clock.advanceAsync(50)
    await timedOut
    // Withdrawn from "full" only; the others still hold 3 in their queues.
    expect(names.map((name) => [sub(name).queueDepth, sub(name).waiting])).toEqual([
      [2, 0],
      [1, 0],
      [1, 0],
    ])
    for (const name of names) for (const gate of gates[name]) gate.resolve()
    await bus.drain()
    expect(seen).toEqual({ roomy: [1, 2, 3], admitted: [1, 2, 3], full: [1, 2] })
  })

  it('a subscription removed while it still has queued events is still delivered those events', async () => {
    const bus = createEventBus<Events>()
    const seen: number[] = []
    const handle = bus.on(
      'tick',
      (n) => {
        seen.push(n)
      },
      { name: 'leaving' },
    )
    // Publishes enqueue synchronously; delivery starts on a later microtask.
    const published = [1, 2, 3].map((n) => bus.publish('tick', n))
    expect(bus.stats().subscriberStats[0]).toMatchObject({ name: 'leaving', queueDepth: 3 })
    handle.dispose()
    expect(bus.listenerCount('tick')).toBe(0)
    // Published after the removal: not for it.
    published.push(bus.publish('tick', 4))
    await Promise.all(published)
    await bus.drain({ timeoutMs: 5_000 })
    expect(seen).toEqual([1, 2, 3])
    expect(bus.deadLetters()).toEqual([])
    expect(bus.stats().types.tick).toMatchObject({ published: 4, delivered: 3, dropped: 0 })
  })

  it('publish honours an aborted signal and rejects bad options', async () => {
    const bus = createEventBus<Events>()
    bus.on('tick', () => undefined, { queueSize: 1 })
    await bus.publish('tick', 1)
    await expect(bus.publish('tick', 2, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'E_CANCELLED',
    })
    await expect(bus.publish('tick', 2, { timeoutMs: -1 })).rejects.toMatchObject({
      code: 'E_INVALID_INPUT',
      details: { field: 'publish: options.timeoutMs' },
    })
    await expect(bus.publish('tick', 2, 'x' as never)).rejects.toMatchObject({
      code: 'E_INVALID_INPUT',
    })
  })
})

describe('waitFor', () => {
  it('resolves with the next matching payload', async () => {
    const bus = createEventBus<Events>()
    const next = bus.waitFor('document.opened', { filter: (p) => p.uri === 'b' })
    bus.emit('document.opened', { uri: 'a' })
    await bus.publish('document.opened', { uri: 'b' })
    await expect(next).resolves.toEqual({ uri: 'b' })
    expect(bus.listenerCount()).toBe(0)
  })

  it('times out with the injected clock and cancels with a signal, leaving no subscription', async () => {
    const clock = new ManualClock()
    const bus = createEventBus<Events>({ clock })
    const timed = bus.waitFor('tick', { timeoutMs: 100 })
    const check = expect(timed).rejects.toMatchObject({ code: 'E_TIMEOUT' })
    await clock.advanceAsync(100)
    await check
    const controller = new AbortController()
    const cancelled = bus.waitFor('tick', { signal: controller.signal })
    controller.abort()
    await expect(cancelled).rejects.toMatchObject({ code: 'E_CANCELLED' })
    expect(bus.listenerCount()).toBe(0)
  })

  it('rejects when the filter throws', async () => {
    const bus = createEventBus<Events>()
    const next = bus.waitFor('tick', {
      filter: () => {
        throw new Error('bad filter')
      },
    })
    bus.emit('tick', 1)
    await expect(next).rejects.toMatchObject({ code: 'E_INVALID_INPUT' })
  })

  it('rejects with E_DISPOSED once dispose has drained, when no event can satisfy it any more', async () => {
    const bus = createEventBus<Events>()
    let release = () => {}
    bus.on('tick', () => new Promise<void>((resolve) => (release = resolve)))
    const waiting = bus.waitFor('document.opened')
    let settled = false
    waiting.then(
      () => (settled = true),
      () => (settled = true),
    )
    await bus.publish('tick', 1)
    const disposed = bus.dispose()
    await new Promise((resolve) => setTimeout(resolve, 20))
    // Still draining (the tick listener holds): not settled yet.
    expect(settled).toBe(false)
    release()
    await disposed
    await expect(waiting).rejects.toMatchObject({ code: 'E_DISPOSED' })
    expect(bus.listenerCount()).toBe(0)
  })
})

describe('dispose', () => {
  it('drains queued events by default and then refuses work with E_DISPOSED', async () => {
    const bus = createEventBus<Events>()
    const seen: number[] = []
    bus.on('tick', async (n) => {
      await new Promise((resolve) => setTimeout(resolve, 1))
      seen.push(n)
    })
    for (let i = 0; i < 5; i++) await bus.publish('tick', i)
    const first = bus.dispose()
    expect(bus.dispose()).toBe(first)
    await first
    expect(seen).toEqual([0, 1, 2, 3, 4])
    expect(
      isAideError(
        captureError(() => bus.emit('tick', 1)),
        'E_DISPOSED',
      ),
    ).toBe(true)
    await expect(bus.publish('tick', 1)).rejects.toMatchObject({ code: 'E_DISPOSED' })
    expect(
      isAideError(
        captureError(() => bus.on('tick', () => undefined)),
        'E_DISPOSED',
      ),
    ).toBe(true)
    expect(bus.stats().disposed).toBe(true)
  })

  it('cancel mode moves queued events to dead letters with E_CANCELLED and rejects waiting publishes', async () => {
    const bus = createEventBus<Events>()
    const gate = deferred()
    bus.on(
      'tick',
      async () => {
        await gate.promise
      },
      { queueSize: 1, name: 'slow' },
    )
    await bus.publish('tick', 1)
    await until(() => bus.stats().subscriberStats[0]!.running === 1)
    await bus.publish('tick', 2)
    const waiting = bus.publish('tick', 3)
    const rejected = expect(waiting).rejects.toMatchObject({ code: 'E_DISPOSED' })
    const disposed = bus.dispose({ mode: 'cancel' })
    await rejected
    gate.resolve()
    await disposed
    const letters = bus.deadLetters()
    expect(letters.map((l) => [l.payload, l.error.code, l.subscriber])).toEqual([
      [2, 'E_CANCELLED', 'slow'],
      [3, 'E_CANCELLED', 'slow'],
    ])
  })

  it('a drain that passes its deadline cancels the rest and rejects with E_TIMEOUT', async () => {
    const clock = new ManualClock()
    const bus = createEventBus<Events>({ clock })
    bus.on('tick', () => new Promise<void>(() => undefined))
    await bus.publish('tick', 1)
    await bus.publish('tick', 2)
    const disposed = bus.dispose({ timeoutMs: 10 })
    const check = expect(disposed).rejects.toMatchObject({ code: 'E_TIMEOUT' })
    await clock.advanceAsync(10)
    await check
    expect(bus.deadLetters().map((l) => l.payload)).toEqual([2])
  })
})

describe('metrics', () => {
  it('counts failures and drops in aide_event_bus_failures_total and aide_event_bus_dropped_total, labelled with the bus name', async () => {
    const meter = new InMemoryMeter()
    const bus = createEventBus<Events>({ name: 'editor-bus', meter })
    bus.onError(() => undefined)
    bus.on('tick', () => {
      throw new Error('sync failure')
    })
    bus.on('plugin.loaded', async () => {
      throw new Error('async failure')
    })
    bus.on('document.opened', () => undefined, { queueSize: 1, overflow: 'drop-newest' })
    bus.emit('tick', 1)
    bus.emit('plugin.loaded', { id: 'p' })
    await bus.publish('tick', 2)
    // One queue slot: the second and third publish are dropped.
    await Promise.all(['a', 'b', 'c'].map((uri) => bus.publish('document.opened', { uri })))
    await bus.drain()
    // The rejection of the async listener is reported a few microtasks later.
    await until(() => bus.stats().errors === 3)
    const labels = { bus: 'editor-bus' }
    expect(meter.value('aide_event_bus_failures_total', labels)).toBe(3)
    expect(meter.value('aide_event_bus_dropped_total', labels)).toBe(2)
    // One series per counter, labelled with the bus name only.
    const families = meter
      .snapshot()
      .filter((f) => f.name.startsWith('aide_event_bus_'))
      .sort((x, y) => x.name.localeCompare(y.name))
    expect(families.map((f) => [f.name, f.type, f.series.map((s) => [s.labels, s.value])])).toEqual(
      [
        ['aide_event_bus_dropped_total', 'counter', [[labels, 2]]],
        ['aide_event_bus_failures_total', 'counter', [[labels, 3]]],
      ],
    )
  })
})

describe('input validation', () => {
  it('names the field for every bad input', async () => {
    const bus = createEventBus<Events>()
    const field = (fn: () => unknown) =>
      (captureError(fn) as { details: { field: string } }).details.field
    expect(field(() => bus.on('' as 'tick', () => undefined))).toBe('on: pattern')
    expect(field(() => bus.on('doc*' as 'tick', () => undefined))).toBe('on: pattern')
    expect(field(() => bus.on('a..*' as 'tick', () => undefined))).toBe('on: pattern')
    expect(field(() => bus.on('tick', 'nope' as never))).toBe('on: listener')
    expect(field(() => bus.on('tick', () => undefined, { concurrency: 0 }))).toBe(
      'on: options.concurrency',
    )
    expect(field(() => bus.on('tick', () => undefined, { queueSize: 1.5 }))).toBe(
      'on: options.queueSize',
    )
    expect(field(() => bus.on('tick', () => undefined, { overflow: 'spill' as never }))).toBe(
      'on: options.overflow',
    )
    expect(field(() => bus.on('tick', () => undefined, { signal: {} as AbortSignal }))).toBe(
      'on: options.signal',
    )
    expect(field(() => bus.emit(42 as unknown as 'tick', 1))).toBe('emit: type')
    expect(field(() => bus.emit('document.*' as 'tick', 1))).toBe('emit: type')
    expect(field(() => bus.onError(null as never))).toBe('onError: listener')
    expect(field(() => createEventBus({ deadLetterCapacity: -1 }))).toBe(
      'createEventBus: options.deadLetterCapacity',
    )
    expect(field(() => createEventBus({ subscriberDefaults: { overflow: 'x' as never } }))).toBe(
      'createEventBus: options.subscriberDefaults.overflow',
    )
    await expect(bus.publishBatch('x' as never)).rejects.toMatchObject({
      details: { field: 'publishBatch: events' },
    })
    await expect(bus.publishBatch([null as never])).rejects.toMatchObject({
      details: { field: 'publishBatch: events[0]' },
    })
    await expect(bus.waitFor('tick', { filter: 3 as never })).rejects.toMatchObject({
      details: { field: 'waitFor: options.filter' },
    })
    await expect(bus.dispose({ mode: 'later' as never })).rejects.toMatchObject({
      details: { field: 'dispose: options.mode' },
    })
    // A rejected dispose call does not dispose the bus.
    expect(bus.stats().disposed).toBe(false)
  })
})

describe('pattern matching', () => {
  const segment = fc.constantFrom('a', 'b', 'c')
  const typeArb = fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => s.join('.'))
  const patternArb = fc
    .array(fc.constantFrom('a', 'b', '*', '**'), { minLength: 1, maxLength: 5 })
    .map((s) => s.join('.'))

  /** Reference: dynamic programming over segments, independent of the recursive matcher. */
  function reference(pattern: string, type: string): boolean {
    const p = pattern.split('.')
    const t = type.split('.')
    const dp = Array.from({ length: p.length + 1 }, () =>
      new Array<boolean>(t.length + 1).fill(false),
    )
    dp[0]![0] = true
    for (let i = 0; i < p.length; i++) {
      for (let j = 0; j <= t.length; j++) {
        if (p[i] === '**') dp[i + 1]![j] = dp[i]![j]! || (j > 0 && dp[i + 1]![j - 1]!)
        else if (j < t.length && dp[i]![j] && (p[i] === '*' || p[i] === t[j]))
          dp[i + 1]![j + 1] = true
      }
    }
    return dp[p.length]![t.length]!
  }

  it('agrees with a dynamic-programming reference', () => {
    fc.assert(
      fc.property(patternArb, typeArb, (pattern, type) => {
        expect(compilePattern(pattern).matches(type)).toBe(reference(pattern, type))
      }),
      { numRuns: 2_000 },
    )
  })
})
