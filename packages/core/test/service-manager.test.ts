import { describe, expect, it, vi } from 'vitest'
import {
  type AideError,
  defineService,
  isAideError,
  ManualClock,
  ServiceManager,
  type ServiceManagerEvents,
} from '../src/index.js'

const Config = defineService<{ url: string }>('config')
const Db = defineService<{ url: string; closed: boolean }>('db')
const Repo = defineService<{ db: { url: string } }>('repo')
const App = defineService<string>('app')

function deferred<T>() {
  let resolve!: (value: T) => void
  let reject!: (error: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

describe('ServiceManager: lazy initialisation', () => {
  it('creates nothing at registration and initialises dependencies first, once', async () => {
    const order: string[] = []
    const manager = new ServiceManager()
      .register(Config, {
        factory: () => {
          order.push('config')
          return { url: 'redis://x' }
        },
      })
      .register(Db, {
        deps: [Config],
        factory: async ([config]) => {
          order.push('db')
          return { url: config.url, closed: false }
        },
      })
      .register(Repo, {
        deps: [Db, Config],
        factory: ([db, config]) => {
          order.push('repo')
          expect(config.url).toBe('redis://x')
          return { db }
        },
      })
    expect(order).toEqual([])
    expect(manager.state(Repo)).toBe('registered')
    const [a, b, c] = await Promise.all([manager.get(Repo), manager.get(Repo), manager.get(Repo)])
    expect(a).toBe(b)
    expect(b).toBe(c)
    expect(a.db.url).toBe('redis://x')
    expect(order).toEqual(['config', 'db', 'repo'])
    expect(await manager.get(Repo)).toBe(a)
    expect(manager.getSync(Repo)).toBe(a)
    expect(manager.stats().services.map((s) => s.attempts)).toEqual([1, 1, 1])
  })

  it('initialises synchronous graphs without waiting on promises', () => {
    const manager = new ServiceManager()
    manager.register(Config, { factory: () => ({ url: 'u' }) })
    manager.register(App, { deps: [Config], factory: ([config]) => `app@${config.url}` })
    void manager.get(App)
    // The whole chain ran synchronously inside get().
    expect(manager.getSync(App)).toBe('app@u')
  })

  it('getSync before initialisation is E_INVALID_STATE; unknown services are E_NOT_FOUND', async () => {
    const manager = new ServiceManager().register(Config, { factory: async () => ({ url: 'x' }) })
    expect(() => manager.getSync(Config)).toThrow(
      expect.objectContaining({ code: 'E_INVALID_STATE' }),
    )
    await expect(manager.get(defineService('missing'))).rejects.toMatchObject({
      code: 'E_NOT_FOUND',
    })
    expect(() => manager.state(defineService('missing'))).toThrow(/"missing" is not registered/)
    expect(manager.has(Config)).toBe(true)
  })

  it('names the chain when a dependency is not registered', async () => {
    const manager = new ServiceManager()
      .register(App, { deps: [Repo], factory: () => 'app' })
      .register(Repo, { deps: [Db], factory: () => ({ db: { url: '' } }) })
    const error = (await manager.get(App).catch((e: unknown) => e)) as AideError
    expect(error.code).toBe('E_NOT_FOUND')
    expect(error.message).toBe('services: "db" is not registered (required by app -> repo)')
    expect(error.details.chain).toEqual(['app', 'repo', 'db'])
  })

  it('passes the factory a context with its name, chain and a signal', async () => {
    const factory = vi.fn(
      (_deps: [], context: { name: string; chain: readonly string[]; signal: AbortSignal }) => {
        expect(context.signal.aborted).toBe(false)
        return { url: context.chain.join('>') }
      },
    )
    const manager = new ServiceManager().register(Config, { factory })
    manager.register(App, { deps: [Config], factory: ([config]) => config.url })
    expect(await manager.get(App)).toBe('app>config')
    expect(factory.mock.calls[0]![1].name).toBe('config')
  })
})

describe('ServiceManager: registration errors', () => {
  it('rejects duplicates and malformed registrations naming the field', () => {
    const manager = new ServiceManager().register(Config, { factory: () => ({ url: '' }) })
    expect(() => manager.register(Config, { factory: () => ({ url: '' }) })).toThrow(
      expect.objectContaining({
        code: 'E_ALREADY_EXISTS',
        message: 'services: "config" is already registered',
      }),
    )
    const bad = defineService<number>('bad')
    expect(() => manager.register(bad, { factory: 'nope' as never })).toThrow(
      expect.objectContaining({
        code: 'E_INVALID_INPUT',
        details: expect.objectContaining({ field: 'registration.factory' }),
      }),
    )
    expect(() => manager.register(bad, { factory: () => 1, initTimeoutMs: -1 })).toThrow(
      /registration.initTimeoutMs/,
    )
    expect(() => manager.register(bad, { factory: () => 1, deps: [{} as never] })).toThrow(
      /registration.deps\[0\].name/,
    )
    expect(() => defineService('has space')).toThrow(
      expect.objectContaining({ code: 'E_INVALID_INPUT' }),
    )
    expect(() => new ServiceManager({ maxConcurrentInits: 0 })).toThrow(
      /options.maxConcurrentInits must be >= 1/,
    )
    expect(manager.has(bad)).toBe(false)
  })
})

describe('ServiceManager: cycles', () => {
  it('names the whole path of a cycle', async () => {
    const a = defineService<number>('a')
    const b = defineService<number>('b')
    const c = defineService<number>('c')
    const factory = vi.fn(() => 1)
    const manager = new ServiceManager()
      .register(a, { deps: [b], factory })
      .register(b, { deps: [c], factory })
      .register(c, { deps: [a], factory })
    const error = (await manager.get(a).catch((e: unknown) => e)) as AideError
    expect(error.code).toBe('E_CYCLE')
    expect(error.message).toBe('services: dependency cycle a -> b -> c -> a')
    expect(error.details.cycle).toEqual(['a', 'b', 'c', 'a'])
    expect(() => manager.validate()).toThrow(/dependency cycle/)
    expect(factory).not.toHaveBeenCalled()
  })

  it('finds a cycle below the requested service and a self-dependency', async () => {
    const root = defineService<number>('root')
    const x = defineService<number>('x')
    const y = defineService<number>('y')
    const self = defineService<number>('self')
    const manager = new ServiceManager()
      .register(root, { deps: [x], factory: () => 1 })
      .register(x, { deps: [y], factory: () => 1 })
      .register(y, { deps: [x], factory: () => 1 })
      .register(self, { deps: [self], factory: () => 1 })
    await expect(manager.get(root)).rejects.toThrow('services: dependency cycle x -> y -> x')
    await expect(manager.get(self)).rejects.toThrow('services: dependency cycle self -> self')
  })
})

describe('ServiceManager: failures and timeouts', () => {
  it('reports the failing service and its chain, and retries on a later get', async () => {
    let attempts = 0
    const manager = new ServiceManager()
      .register(Config, {
        factory: async () => {
          attempts++
          if (attempts === 1) throw new Error('ECONNREFUSED')
          return { url: 'ok' }
        },
      })
      .register(Db, { deps: [Config], factory: ([c]) => ({ url: c.url, closed: false }) })
      .register(App, { deps: [Db], factory: ([db]) => db.url })
    const error = (await manager.get(App).catch((e: unknown) => e)) as AideError
    expect(error.code).toBe('E_INIT')
    expect(error.message).toBe(
      'services: "config" failed to initialise (chain: app -> db -> config): ECONNREFUSED',
    )
    expect(error.details).toEqual({ service: 'config', chain: ['app', 'db', 'config'] })
    expect((error.cause as Error).message).toBe('ECONNREFUSED')
    expect(manager.state(Config)).toBe('failed')
    expect(manager.state(App)).toBe('failed')
    expect(manager.stats().services.find((s) => s.name === 'config')!.lastError).toMatch(
      /ECONNREFUSED/,
    )
    expect(await manager.get(App)).toBe('ok')
    expect(manager.state(App)).toBe('ready')
  })

  it('a synchronous throw fails only that chain', async () => {
    const manager = new ServiceManager()
      .register(Config, {
        factory: () => {
          throw new TypeError('bad config file')
        },
      })
      .register(App, { deps: [Config], factory: () => 'app' })
    await expect(manager.get(App)).rejects.toMatchObject({
      code: 'E_INIT',
      details: { service: 'config' },
    })
    expect(manager.state(App)).toBe('failed')
  })

  it('times out a slow factory, aborts its signal and disposes what it produces later', async () => {
    const clock = new ManualClock()
    const late = deferred<{ url: string; closed: boolean }>()
    let factorySignal: AbortSignal | undefined
    const dispose = vi.fn()
    const manager = new ServiceManager({ clock })
      .register(Db, {
        initTimeoutMs: 500,
        dispose,
        factory: (_deps, { signal }) => {
          factorySignal = signal
          return late.promise
        },
      })
      .register(App, { deps: [Db], factory: () => 'app' })
    const pending = manager.get(App)
    await clock.advanceAsync(499)
    expect(factorySignal?.aborted).toBe(false)
    await clock.advanceAsync(1)
    const error = (await pending.catch((e: unknown) => e)) as AideError
    expect(error.code).toBe('E_TIMEOUT')
    expect(error.message).toBe('services: "db" did not initialise within 500 ms (chain: app -> db)')
    expect(factorySignal?.aborted).toBe(true)
    const instance = { url: 'late', closed: false }
    late.resolve(instance)
    await vi.waitFor(() => expect(dispose).toHaveBeenCalledWith(instance))
    expect(manager.state(Db)).toBe('failed')
  })

  it('applies the manager’s defaultInitTimeoutMs to services that set no initTimeoutMs', async () => {
    const clock = new ManualClock()
    let factorySignal: AbortSignal | undefined
    const manager = new ServiceManager({ clock, defaultInitTimeoutMs: 200 }).register(Db, {
      factory: (_deps, { signal }) => {
        factorySignal = signal
        return new Promise<{ url: string; closed: boolean }>(() => undefined)
      },
    })
    let outcome: unknown
    manager.get(Db).then(
      () => (outcome = 'resolved'),
      (error: unknown) => (outcome = error),
    )
    await clock.advanceAsync(199)
    expect(outcome).toBeUndefined()
    expect(manager.state(Db)).toBe('initializing')
    await clock.advanceAsync(1)
    expect(outcome).toMatchObject({
      code: 'E_TIMEOUT',
      message: 'services: "db" did not initialise within 200 ms (chain: db)',
      details: { service: 'db', chain: ['db'] },
    })
    expect(factorySignal?.aborted).toBe(true)
    expect(manager.state(Db)).toBe('failed')
  })
})

describe('ServiceManager: budget and priorities', () => {
  it('never runs more factories at once than the budget, serving higher priority first', async () => {
    const gates = new Map<string, ReturnType<typeof deferred<number>>>()
    let running = 0
    let peak = 0
    const started: string[] = []
    const manager = new ServiceManager({ maxConcurrentInits: 2 })
    const ids = ['low', 'mid', 'high', 'top', 'other'].map((name, index) => {
      const id = defineService<number>(name)
      const gate = deferred<number>()
      gates.set(name, gate)
      manager.register(id, {
        priority: [0, 5, 10, 20, 1][index],
        eager: name !== 'other',
        factory: async () => {
          started.push(name)
          running++
          peak = Math.max(peak, running)
          const value = await gate.promise
          running--
          return value
        },
      })
      return id
    })
    const starting = manager.start()
    await vi.waitFor(() => expect(started.length).toBe(2))
    expect(started).toEqual(['top', 'high'])
    expect(manager.stats()).toMatchObject({ activeInits: 2, queuedInits: 2 })
    gates.get('top')!.resolve(1)
    await vi.waitFor(() => expect(started.length).toBe(3))
    expect(started[2]).toBe('mid')
    for (const gate of gates.values()) gate.resolve(1)
    await starting
    expect(started).toEqual(['top', 'high', 'mid', 'low'])
    expect(peak).toBe(2)
    expect(manager.state(ids[4]!)).toBe('registered')
  })

  it('preload initialises named services and reports the first failure', async () => {
    const ok = defineService<number>('ok')
    const broken = defineService<number>('broken')
    const manager = new ServiceManager().register(ok, { factory: async () => 1 }).register(broken, {
      factory: async () => {
        throw new Error('nope')
      },
    })
    await expect(manager.preload([ok, broken])).rejects.toMatchObject({
      code: 'E_INIT',
      details: { service: 'broken' },
    })
    expect(manager.state(ok)).toBe('ready')
  })
})

describe('ServiceManager: disposal', () => {
  it('tears down in reverse order of initialisation, awaiting async disposers', async () => {
    const order: string[] = []
    const names = ['config', 'db', 'repo', 'app']
    const ids = names.map((n) => defineService<string>(n))
    const manager = new ServiceManager()
    ids.forEach((id, index) => {
      manager.register(id, {
        deps: index > 0 ? [ids[index - 1]!] : [],
        factory: async () => id.name,
        dispose: async (value) => {
          await new Promise((r) => setTimeout(r, 2))
          order.push(value)
        },
      })
    })
    await manager.get(ids[3]!)
    await manager.dispose()
    expect(order).toEqual(['app', 'repo', 'db', 'config'])
    await manager.dispose()
    expect(order).toHaveLength(4)
    await expect(manager.get(ids[0]!)).rejects.toMatchObject({ code: 'E_DISPOSED' })
    expect(() => manager.register(defineService('late'), { factory: () => 1 })).toThrow(
      expect.objectContaining({ code: 'E_DISPOSED' }),
    )
  })

  it('calls an instance’s own dispose by default and continues past failing disposers', async () => {
    const closed: string[] = []
    const a = defineService<{ dispose(): void }>('a')
    const b = defineService<object>('b')
    const c = defineService<object>('c')
    const manager = new ServiceManager()
      .register(a, { factory: () => ({ dispose: () => void closed.push('a') }) })
      .register(b, {
        deps: [a],
        factory: () => ({}),
        dispose: () => {
          throw new Error('b would not close')
        },
      })
      .register(c, {
        deps: [b],
        factory: () => ({ [Symbol.asyncDispose]: async () => void closed.push('c') }),
      })
    await manager.get(c)
    const error = (await manager.dispose().catch((e: unknown) => e)) as AideError
    expect(isAideError(error, 'E_DISPOSE')).toBe(true)
    expect(error.message).toBe('services: 1 disposer(s) failed: b (b would not close)')
    expect(error.details.services).toEqual(['b'])
    expect(closed).toEqual(['c', 'a'])
  })

  it('aborts initialisations in flight when disposed', async () => {
    let signal: AbortSignal | undefined
    const manager = new ServiceManager().register(Db, {
      factory: (_deps, context) => {
        signal = context.signal
        return new Promise(() => undefined)
      },
    })
    const pending = manager.get(Db)
    await manager.dispose()
    await expect(pending).rejects.toMatchObject({ code: 'E_DISPOSED' })
    expect(signal?.aborted).toBe(true)
  })

  it('does not start an initialisation that was waiting for a budget slot when disposed', async () => {
    // The slot the aborted initialisation frees must not start the queued one,
    // whose factory would never settle and whose signal nobody would abort.
    const started: string[] = []
    const manager = new ServiceManager({ maxConcurrentInits: 1 })
    const ids = ['first', 'queued'].map((name) => {
      const id = defineService<number>(name)
      manager.register(id, {
        factory: () => {
          started.push(name)
          return new Promise<number>(() => undefined)
        },
      })
      return id
    })
    const first = manager.get(ids[0]!)
    const queued = manager.get(ids[1]!)
    await vi.waitFor(() =>
      expect(manager.stats()).toMatchObject({ activeInits: 1, queuedInits: 1 }),
    )
    const settled = await Promise.race([
      manager.dispose().then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2_000)),
    ])
    expect(settled).toBe(true)
    await expect(first).rejects.toMatchObject({ code: 'E_DISPOSED' })
    await expect(queued).rejects.toMatchObject({ code: 'E_DISPOSED' })
    expect(started).toEqual(['first'])
    expect(manager.stats()).toMatchObject({ activeInits: 0, queuedInits: 0 })
  })
})

describe('ServiceManager: observability', () => {
  it('reports stats, the graph, events and a Chrome trace', async () => {
    const clock = new ManualClock()
    const events: Array<[keyof ServiceManagerEvents, unknown]> = []
    const manager = new ServiceManager({
      clock,
      events: { emit: (type, payload) => void events.push([type, payload]) },
    })
    manager.register(Config, {
      factory: async () => {
        await new Promise<void>((resolve) => clock.setTimeout(resolve, 30))
        return { url: 'x' }
      },
    })
    manager.register(App, { deps: [Config], factory: ([c]) => c.url })
    const pending = manager.get(App)
    await clock.advanceAsync(30)
    expect(await pending).toBe('x')

    const stats = manager.stats()
    expect(stats).toMatchObject({
      registered: 2,
      ready: 2,
      failed: 0,
      initializing: 0,
      disposed: false,
    })
    const config = stats.services.find((s) => s.name === 'config')!
    expect(config).toMatchObject({
      state: 'ready',
      initMs: 30,
      initOrder: 0,
      chain: ['app', 'config'],
      deps: [],
    })
    expect(stats.services.find((s) => s.name === 'app')).toMatchObject({
      initOrder: 1,
      deps: ['config'],
      waitMs: 30,
    })
    expect(manager.graph()).toEqual({
      nodes: [
        { name: 'config', state: 'ready', deps: [], priority: 0, eager: false },
        { name: 'app', state: 'ready', deps: ['config'], priority: 0, eager: false },
      ],
      edges: [{ from: 'app', to: 'config' }],
    })
    expect(events.map(([type]) => type)).toEqual([
      'service-init-start',
      'service-init-end',
      'service-init-start',
      'service-init-end',
    ])

    const trace = JSON.parse(JSON.stringify(manager.trace()))
    const spans = trace.traceEvents.filter((e: { ph: string }) => e.ph === 'X')
    expect(spans).toContainEqual(
      expect.objectContaining({ name: 'config', cat: 'service.init', ts: 0, dur: 30_000, pid: 1 }),
    )
    expect(spans).toContainEqual(
      expect.objectContaining({ name: 'app', cat: 'service.wait', ts: 0, dur: 30_000 }),
    )
    // Overlapping spans never share a lane.
    const byLane = new Map<number, Array<{ ts: number; dur: number }>>()
    for (const span of spans) byLane.set(span.tid, [...(byLane.get(span.tid) ?? []), span])
    for (const laneSpans of byLane.values()) {
      laneSpans.sort((x, y) => x.ts - y.ts)
      for (let i = 1; i < laneSpans.length; i++) {
        expect(laneSpans[i]!.ts).toBeGreaterThanOrEqual(
          laneSpans[i - 1]!.ts + laneSpans[i - 1]!.dur,
        )
      }
    }
    expect(trace.displayTimeUnit).toBe('ms')
  })

  it('emits service-init-error for a failing factory and service-dispose / service-dispose-error on teardown', async () => {
    const events: Array<[keyof ServiceManagerEvents, unknown]> = []
    const broken = defineService<number>('broken')
    const a = defineService<object>('a')
    const b = defineService<object>('b')
    const refusal = new Error('b would not close')
    const manager = new ServiceManager({
      events: { emit: (type, payload) => void events.push([type, payload]) },
    })
      .register(broken, {
        factory: async () => {
          throw new Error('ECONNREFUSED')
        },
      })
      .register(a, { factory: () => ({}), dispose: () => undefined })
      .register(b, {
        deps: [a],
        factory: () => ({}),
        dispose: async () => {
          throw refusal
        },
      })
    const initError = (await manager.get(broken).catch((e: unknown) => e)) as AideError
    expect(initError.code).toBe('E_INIT')
    await manager.get(b)
    await expect(manager.dispose()).rejects.toMatchObject({ code: 'E_DISPOSE' })
    expect(events).toEqual([
      ['service-init-start', { name: 'broken', chain: ['broken'] }],
      ['service-init-error', { name: 'broken', chain: ['broken'], error: initError }],
      ['service-init-start', { name: 'a', chain: ['b', 'a'] }],
      ['service-init-end', { name: 'a', durationMs: expect.any(Number) }],
      ['service-init-start', { name: 'b', chain: ['b'] }],
      ['service-init-end', { name: 'b', durationMs: expect.any(Number) }],
      // Reverse order of initialisation: b's disposer fails, a is still disposed.
      ['service-dispose-error', { name: 'b', error: refusal }],
      ['service-dispose', { name: 'a' }],
    ])
    const reported = events[1]![1] as ServiceManagerEvents['service-init-error']
    expect(reported.error).toBe(initError)
    expect(reported.error.message).toBe(
      'services: "broken" failed to initialise (chain: broken): ECONNREFUSED',
    )
  })

  it('registerValue holds a ready-made instance without owning its disposal', async () => {
    const dispose = vi.fn()
    const manager = new ServiceManager().registerValue(Config, { url: 'given', dispose } as never)
    expect((await manager.get(Config)).url).toBe('given')
    await manager.dispose()
    expect(dispose).not.toHaveBeenCalled()
  })
})
