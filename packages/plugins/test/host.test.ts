import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { InMemoryMeter, type Logger, ManualClock } from '@aide/core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createPluginHost, type PluginHost } from '../src/index.js'
import { fixture, LIMITS_ENTRIES, manifestFor, writePluginDir } from './helpers.js'

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

let limitsWasm: Uint8Array
let scratch: string
const hosts: PluginHost[] = []

function newHost(options: Partial<Parameters<typeof createPluginHost>[0]> = {}): PluginHost {
  // A generous default limit: the machine may be loaded; tests of the limit set their own.
  const host = createPluginHost({
    hostApiVersion: '1.0.0',
    ...options,
    limits: { timeoutMs: 10_000, ...options.limits },
  })
  hosts.push(host)
  return host
}

function recorder() {
  const events: Array<{ type: string; payload: unknown }> = []
  return {
    events,
    sink: { emit: (type: string, payload: unknown) => void events.push({ type, payload }) },
  }
}

beforeAll(async () => {
  limitsWasm = await fixture('limits')
  scratch = await mkdtemp(join(tmpdir(), 'aide-plugins-host-'))
})

afterEach(async () => {
  await Promise.all(hosts.splice(0).map((host) => host.dispose()))
})

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true })
})

const limitsSource = (overrides: Record<string, unknown> = {}) => ({
  manifest: manifestFor(limitsWasm, { entries: LIMITS_ENTRIES, ...overrides }),
  wasm: limitsWasm,
})

describe('loading', () => {
  it('loads a plugin and calls it in a worker', async () => {
    const { events, sink } = recorder()
    const host = newHost({ events: sink })
    const info = await host.load(limitsSource())
    expect(info.manifest.id).toBe('test.limits')
    expect(text(await host.call('test.limits', 'echo', 'hello'))).toBe('hello')
    expect(events.map((e) => e.type)).toEqual(['plugin-load'])
    expect(host.stats().plugins['test.limits']).toMatchObject({ calls: 1, errors: 0, inFlight: 0 })
  })

  it('loads from a plugin folder', async () => {
    const dir = await writePluginDir(join(scratch, 'folder'), limitsWasm, manifestFor(limitsWasm))
    const host = newHost()
    await host.load(dir)
    expect(text(await host.call('test.limits', 'echo', 'from disk'))).toBe('from disk')
  })

  it('refuses a tampered module', async () => {
    const tampered = Uint8Array.from(limitsWasm)
    tampered[tampered.length - 1] = tampered.at(-1)! ^ 0xff
    const host = newHost()
    await expect(
      host.load({ manifest: manifestFor(limitsWasm), wasm: tampered }),
    ).rejects.toMatchObject({
      code: 'E_INTEGRITY',
    })
    expect(host.list()).toEqual([])
  })

  it('refuses an incompatible host API with one readable error', async () => {
    const host = newHost({ hostApiVersion: '2.1.0' })
    await expect(host.load(limitsSource())).rejects.toMatchObject({
      code: 'E_INCOMPATIBLE',
      message: expect.stringContaining('needs host API ^1.0.0, but this host provides 2.1.0'),
    })
  })

  it('refuses a malformed manifest naming the field', async () => {
    const host = newHost()
    await expect(
      host.load({
        manifest: { ...manifestFor(limitsWasm), entries: [{ kind: 'command', export: 'echo' }] },
        wasm: limitsWasm,
      }),
    ).rejects.toMatchObject({
      code: 'E_INVALID_INPUT',
      details: { field: 'source.manifest.entries[0].command' },
    })
  })

  it('refuses an entry point the module does not export', async () => {
    const host = newHost()
    await expect(
      host.load(limitsSource({ entries: [{ kind: 'command', export: 'missing', command: 'x' }] })),
    ).rejects.toMatchObject({ code: 'E_PLUGIN', details: { field: 'manifest.entries[0].export' } })
  })

  it('refuses a module whose declared memory exceeds the cap', async () => {
    const huge = await fixture('huge-memory')
    const host = newHost({ limits: { memoryBytes: 16 * 1024 * 1024 } })
    await expect(
      host.load({
        manifest: manifestFor(huge, {
          id: 'test.huge',
          entries: [{ kind: 'command', export: 'noop', command: 'noop' }],
        }),
        wasm: huge,
      }),
    ).rejects.toMatchObject({ code: 'E_LIMIT' })
  })

  it('refuses a second load of the same id unless replacing', async () => {
    const host = newHost()
    await host.load(limitsSource())
    await expect(host.load(limitsSource())).rejects.toMatchObject({ code: 'E_ALREADY_EXISTS' })
    await host.load(limitsSource({ version: '1.1.0' }), { replace: true })
    expect(host.list().map((p) => p.manifest.version)).toEqual(['1.1.0'])
    const concurrent = await Promise.allSettled([
      host.load(limitsSource({ id: 'test.twice' })),
      host.load(limitsSource({ id: 'test.twice' })),
    ])
    expect(concurrent.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected'])
    expect(
      host
        .list()
        .map((p) => p.manifest.id)
        .sort(),
    ).toEqual(['test.limits', 'test.twice'])
  })

  it('validates options and input', async () => {
    expect(() => createPluginHost({ hostApiVersion: 'one' })).toThrow(
      expect.objectContaining({ code: 'E_INVALID_INPUT' }),
    )
    expect(() => createPluginHost({ hostApiVersion: '1.0.0', limits: { timeoutMs: -1 } })).toThrow(
      expect.objectContaining({
        details: expect.objectContaining({ field: 'options.limits.timeoutMs' }),
      }),
    )
    const host = newHost()
    await host.load(limitsSource())
    await expect(host.call('test.limits', 'echo', 42 as never)).rejects.toMatchObject({
      code: 'E_INVALID_INPUT',
      details: { field: 'input' },
    })
    await expect(host.call('nope', 'echo', '')).rejects.toMatchObject({ code: 'E_NOT_FOUND' })
    await expect(host.call('test.limits', 'memory', '')).rejects.toMatchObject({
      code: 'E_NOT_FOUND',
    })
    await expect(host.runDiagnostics({ uri: 'x' } as never)).rejects.toMatchObject({
      code: 'E_INVALID_INPUT',
      details: { field: 'document.languageId' },
    })
  })
})

describe('limits', () => {
  it('stops a runaway loop, respawns the worker and stays healthy', async () => {
    const { events, sink } = recorder()
    const meter = new InMemoryMeter()
    const host = newHost({ limits: { timeoutMs: 1_000 }, events: sink, meter })
    await host.load(limitsSource())
    await expect(host.call('test.limits', 'spin', '')).rejects.toMatchObject({ code: 'E_TIMEOUT' })
    expect(text(await host.call('test.limits', 'echo', 'still alive'))).toBe('still alive')
    expect(
      meter.value('aide_plugin_calls_total', { plugin: 'test.limits', outcome: 'timeout' }),
    ).toBe(1)
    expect(meter.value('aide_plugin_calls_total', { plugin: 'test.limits', outcome: 'ok' })).toBe(1)
    const stats = host.stats().plugins['test.limits']!
    expect(stats).toMatchObject({ calls: 2, errors: 1, timeouts: 1, respawns: 1, inFlight: 0 })
    expect(events.map((e) => e.type)).toContain('plugin-timeout')
    expect(events).toContainEqual({
      type: 'plugin-respawn',
      payload: { pluginId: 'test.limits', reason: 'timeout' },
    })
  })

  it('records aide_plugin_call_duration_seconds for successful calls, labelled by plugin', async () => {
    const meter = new InMemoryMeter()
    const host = newHost({ meter })
    await host.load(limitsSource())
    const histogram = () =>
      meter.snapshot().find((family) => family.name === 'aide_plugin_call_duration_seconds')
    expect(histogram()).toMatchObject({ type: 'histogram', series: [] })
    for (let i = 1; i <= 3; i++) {
      expect(text(await host.call('test.limits', 'echo', `call ${i}`))).toBe(`call ${i}`)
      expect(histogram()!.series).toEqual([
        expect.objectContaining({ labels: { plugin: 'test.limits' }, count: i }),
      ])
    }
    // A failed call is counted by outcome, not timed.
    await expect(host.call('test.limits', 'trap', '')).rejects.toMatchObject({ code: 'E_PLUGIN' })
    const series = histogram()!.series[0] as {
      count: number
      sum: number
      buckets: Array<{ le: number; count: number }>
    }
    expect(series.count).toBe(3)
    expect(series.sum).toBeGreaterThan(0)
    expect(series.buckets.at(-1)).toEqual({ le: Number.POSITIVE_INFINITY, count: 3 })
    expect(meter.value('aide_plugin_calls_total', { plugin: 'test.limits', outcome: 'ok' })).toBe(3)
    expect(
      meter.value('aide_plugin_calls_total', { plugin: 'test.limits', outcome: 'error' }),
    ).toBe(1)
  })

  it('applies the time limit on the injected clock', async () => {
    const clock = new ManualClock()
    const host = newHost({ limits: { timeoutMs: 5_000 }, clock })
    await host.load(limitsSource())
    const running = host.call('test.limits', 'spin', '')
    const settled = running.then(
      () => 'resolved',
      (error: { code: string }) => error.code,
    )
    await expect.poll(() => host.stats().plugins['test.limits']?.inFlight).toBe(1)
    clock.advance(4_999)
    expect(host.stats().plugins['test.limits']!.timeouts).toBe(0)
    clock.advance(1)
    expect(await settled).toBe('E_TIMEOUT')
    expect(host.stats().plugins['test.limits']!.timeouts).toBe(1)
  })

  it('fails a call whose memory growth passes the cap, and allows it under a larger cap', async () => {
    const small = newHost({ limits: { memoryBytes: 16 * 1024 * 1024 } })
    await small.load(limitsSource())
    await expect(small.call('test.limits', 'grow', '')).rejects.toMatchObject({ code: 'E_PLUGIN' })
    expect(text(await small.call('test.limits', 'echo', 'ok'))).toBe('ok')
    const large = newHost({ limits: { memoryBytes: 64 * 1024 * 1024 } })
    await large.load(limitsSource())
    expect(text(await large.call('test.limits', 'grow', ''))).toBe('grown')
  })

  it('isolates a plugin that traps', async () => {
    const { events, sink } = recorder()
    const host = newHost({ events: sink })
    await host.load(limitsSource())
    await expect(host.call('test.limits', 'trap', '')).rejects.toMatchObject({
      code: 'E_PLUGIN',
      details: { pluginId: 'test.limits', export: 'trap' },
    })
    expect(text(await host.call('test.limits', 'echo', 'after trap'))).toBe('after trap')
    expect(events.map((e) => e.type)).toContain('plugin-error')
  })

  it('runs concurrent calls up to the concurrency limit and queues the rest', async () => {
    const host = newHost({ limits: { concurrency: 2 } })
    await host.load(limitsSource())
    const inputs = Array.from({ length: 12 }, (_, i) => `call-${i}`)
    const outputs = await Promise.all(
      inputs.map((input) => host.call('test.limits', 'echo', input)),
    )
    expect(outputs.map(text)).toEqual(inputs)
    expect(host.stats().plugins['test.limits']).toMatchObject({
      calls: 12,
      errors: 0,
      inFlight: 0,
      queued: 0,
    })
  })

  it('refuses calls beyond the queue bound with E_LIMIT', async () => {
    const host = newHost({ limits: { concurrency: 1, maxQueue: 1, timeoutMs: 1_000 } })
    await host.load(limitsSource())
    const running = host.call('test.limits', 'spin', '')
    const waiting = host.call('test.limits', 'echo', 'queued')
    await expect(host.call('test.limits', 'echo', 'refused')).rejects.toMatchObject({
      code: 'E_LIMIT',
    })
    await expect(running).rejects.toMatchObject({ code: 'E_TIMEOUT' })
    expect(text(await waiting)).toBe('queued')
  })

  it('cancels a running call on abort and a waiting one on its own deadline', async () => {
    const host = newHost({ limits: { timeoutMs: 20_000 } })
    await host.load(limitsSource())
    const controller = new AbortController()
    const running = host.call('test.limits', 'spin', '', { signal: controller.signal })
    const waiting = host.call('test.limits', 'echo', 'x', { timeoutMs: 50 })
    await expect(waiting).rejects.toMatchObject({ code: 'E_TIMEOUT' })
    controller.abort()
    await expect(running).rejects.toMatchObject({ code: 'E_CANCELLED' })
    expect(text(await host.call('test.limits', 'echo', 'next'))).toBe('next')
    const stats = host.stats().plugins['test.limits']!
    expect(stats.cancellations).toBeGreaterThanOrEqual(1)
    expect(stats.respawns).toBe(1)
    await expect(
      host.call('test.limits', 'echo', 'x', { signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({ code: 'E_CANCELLED' })
  })

  it('rejects input over the size limit', async () => {
    const host = newHost({ limits: { maxInputBytes: 4 } })
    await host.load(limitsSource())
    await expect(host.call('test.limits', 'echo', 'too long')).rejects.toMatchObject({
      code: 'E_LIMIT',
    })
  })
})

describe.each(['worker', 'in-thread'] as const)('memory caps (%s)', (isolation) => {
  let memoryWasm: Uint8Array
  const memorySource = (id = 'test.memory') => ({
    manifest: manifestFor(memoryWasm, {
      id,
      entries: ['hold', 'churn', 'count', 'var_big'].map((name) => ({
        kind: 'command',
        export: name,
        command: name,
      })),
    }),
    wasm: memoryWasm,
  })

  beforeAll(async () => {
    memoryWasm = await fixture('host-memory')
  })

  it('fails a call whose own memory growth passes the cap', async () => {
    const host = newHost({ isolation, limits: { memoryBytes: 16 * 1024 * 1024 } })
    await host.load(limitsSource())
    await expect(host.call('test.limits', 'grow', '')).rejects.toMatchObject({ code: 'E_PLUGIN' })
    expect(text(await host.call('test.limits', 'echo', 'ok'))).toBe('ok')
  })

  it('fails a call whose host-side Extism allocations pass the cap', async () => {
    const small = newHost({ isolation, limits: { memoryBytes: 16 * 1024 * 1024 } })
    await small.load(memorySource())
    await expect(small.call('test.memory', 'hold', '')).rejects.toMatchObject({
      code: 'E_LIMIT',
      details: { pluginId: 'test.memory', limit: 'memoryBytes', memoryBytes: 16 * 1024 * 1024 },
    })
    // Freed blocks do not count: 64 MiB allocated in all, 4 MiB at a time.
    expect(text(await small.call('test.memory', 'churn', ''))).toBe('churned')
    const large = newHost({ isolation, limits: { memoryBytes: 64 * 1024 * 1024 } })
    await large.load(memorySource())
    expect(text(await large.call('test.memory', 'hold', ''))).toBe('held')
  })

  it('keeps variables across calls and caps their size', async () => {
    const host = newHost({ isolation })
    await host.load(memorySource())
    const counts = []
    for (let i = 0; i < 3; i++) counts.push(text(await host.call('test.memory', 'count', '')))
    expect(counts).toEqual(['1', '2', '3'])
    await expect(host.call('test.memory', 'var_big', '')).rejects.toMatchObject({
      code: 'E_LIMIT',
      details: { limit: 'maxVarBytes', maxVarBytes: 1024 * 1024 },
    })
    const roomy = newHost({ isolation, limits: { maxVarBytes: 4 * 1024 * 1024 } })
    await roomy.load(memorySource('test.memory-roomy'))
    expect(text(await roomy.call('test.memory-roomy', 'var_big', ''))).toBe('big')
  })

  it('shows the plugin only its own bytes of an input view', async () => {
    const host = newHost({ isolation })
    await host.load(limitsSource())
    const shared = new TextEncoder().encode('secret|mine|secret')
    expect(text(await host.call('test.limits', 'echo', shared.subarray(7, 11)))).toBe('mine')
    expect(text(await host.call('test.limits', 'echo', Buffer.from('pooled')))).toBe('pooled')
  })
})

describe('capabilities', () => {
  let workspace: string
  let readerWasm: Uint8Array
  const readerManifest = (capabilities: Record<string, unknown>) =>
    manifestFor(readerWasm, {
      id: 'test.reader',
      entries: [{ kind: 'command', export: 'read', command: 'read' }],
      capabilities,
    })

  beforeAll(async () => {
    readerWasm = await fixture('reader')
    workspace = join(scratch, 'workspace')
    await mkdir(join(workspace, 'src'), { recursive: true })
    await mkdir(join(workspace, 'secrets'), { recursive: true })
    await writeFile(join(workspace, 'src', 'a.ts'), 'export const a = 1\n')
    await writeFile(join(workspace, 'secrets', 'key.txt'), 'top secret')
    await symlink(join(workspace, 'secrets', 'key.txt'), join(workspace, 'src', 'link.txt'))
  })

  it('denies a host function whose capability was not declared', async () => {
    const host = newHost({ capabilities: { workspace: { root: workspace } } })
    await expect(
      host.load({ manifest: readerManifest({}), wasm: readerWasm }),
    ).rejects.toMatchObject({
      code: 'E_PERMISSION',
      details: { pluginId: 'test.reader', capability: 'workspace.read' },
    })
  })

  it('denies a declared capability the host policy does not allow', async () => {
    const host = newHost({ capabilities: { workspace: { root: workspace, read: ['docs'] } } })
    await expect(
      host.load({ manifest: readerManifest({ 'workspace.read': ['src'] }), wasm: readerWasm }),
    ).rejects.toMatchObject({ code: 'E_PERMISSION' })
  })

  it('reads only inside granted paths, symlinks included', async () => {
    const host = newHost({ capabilities: { workspace: { root: workspace } } })
    const info = await host.load({
      manifest: readerManifest({ 'workspace.read': ['src'] }),
      wasm: readerWasm,
    })
    expect(info.granted.workspaceRead).toEqual([join(workspace, 'src')])
    expect(text(await host.call('test.reader', 'read', 'src/a.ts'))).toBe('export const a = 1\n')
    expect(text(await host.call('test.reader', 'read', 'secrets/key.txt'))).toBe('denied')
    expect(text(await host.call('test.reader', 'read', 'src/../secrets/key.txt'))).toBe('denied')
    expect(text(await host.call('test.reader', 'read', 'src/link.txt'))).toBe('denied')
    expect(text(await host.call('test.reader', 'read', '/etc/passwd'))).toBe('denied')
  })

  it('refuses to read a file larger than the memory cap', async () => {
    await writeFile(join(workspace, 'src', 'huge.txt'), Buffer.alloc(2 * 1024 * 1024, 97))
    const host = newHost({
      capabilities: { workspace: { root: workspace } },
      limits: { memoryBytes: 1024 * 1024 },
    })
    await host.load({ manifest: readerManifest({ 'workspace.read': ['src'] }), wasm: readerWasm })
    await expect(host.call('test.reader', 'read', 'src/huge.txt')).rejects.toMatchObject({
      code: 'E_LIMIT',
      details: { limit: 'memoryBytes' },
    })
    expect(text(await host.call('test.reader', 'read', 'src/a.ts'))).toBe('export const a = 1\n')
  })

  it('shows a plugin only the config keys it requested and the host allows', async () => {
    const configWasm = await fixture('config')
    const source = (capabilities: Record<string, unknown>, id: string) => ({
      manifest: manifestFor(configWasm, {
        id,
        entries: [{ kind: 'command', export: 'greeting', command: 'greeting' }],
        capabilities,
      }),
      wasm: configWasm,
    })
    const host = newHost({ capabilities: { config: { greeting: 'hello from the host' } } })
    await host.load(source({ config: ['greeting'] }, 'test.config-granted'))
    await host.load(source({}, 'test.config-undeclared'))
    expect(text(await host.call('test.config-granted', 'greeting', ''))).toBe('hello from the host')
    expect(text(await host.call('test.config-undeclared', 'greeting', ''))).toBe('none')
    const denied = newHost({ capabilities: {} })
    const info = await denied.load(source({ config: ['greeting'] }, 'test.config-denied'))
    expect(info.denied).toEqual(['config.greeting'])
    expect(text(await denied.call('test.config-denied', 'greeting', ''))).toBe('none')
  })

  it('routes plugin logs to the host logger only when log is granted', async () => {
    const lines: string[] = []
    const logger: Logger = {
      trace: () => undefined,
      debug: () => undefined,
      info: (...args: unknown[]) => void lines.push(String(args.at(-1))),
      warn: () => undefined,
      error: () => undefined,
      fatal: () => undefined,
      child: () => logger,
    } as unknown as Logger
    const granted = newHost({ logger, capabilities: { log: true } })
    await granted.load(limitsSource({ capabilities: { log: true } }))
    await granted.call('test.limits', 'log_echo', 'logged line')
    const quiet = newHost({ logger, capabilities: { log: false } })
    await quiet.load(limitsSource({ capabilities: { log: true } }))
    await quiet.call('test.limits', 'log_echo', 'dropped line')
    expect(lines).toContain('logged line')
    expect(lines).not.toContain('dropped line')
  })
})

describe('aggregate calls', () => {
  it('isolates a plugin with malformed output from the others', async () => {
    const host = newHost()
    await host.load(
      limitsSource({
        id: 'test.bad',
        entries: [{ kind: 'diagnostics', export: 'bad_output', input: 'text' }],
      }),
    )
    await host.load(
      limitsSource({ id: 'test.trap', entries: [{ kind: 'diagnostics', export: 'trap' }] }),
    )
    const document = { uri: 'file:///a.ts', languageId: 'typescript', text: 'const a = 1' }
    const result = await host.runDiagnostics(document)
    expect(result.diagnostics).toEqual([])
    expect(result.failures.map((f) => [f.pluginId, f.error.code]).sort()).toEqual([
      ['test.bad', 'E_PLUGIN'],
      ['test.trap', 'E_PLUGIN'],
    ])
    host.setEnabled('test.bad', false)
    host.setEnabled('test.trap', false)
    expect(await host.runDiagnostics(document)).toEqual({ diagnostics: [], failures: [] })
  })
})

describe('lifecycle', () => {
  it('unloads, disposes idempotently and refuses use afterwards', async () => {
    const { events, sink } = recorder()
    const host = newHost({ events: sink })
    await host.load(limitsSource())
    await host.unload('test.limits')
    expect(events.map((e) => e.type)).toEqual(['plugin-load', 'plugin-unload'])
    await expect(host.unload('test.limits')).rejects.toMatchObject({ code: 'E_NOT_FOUND' })
    await host.load(limitsSource())
    await Promise.all([host.dispose(), host.dispose()])
    await expect(host.call('test.limits', 'echo', 'x')).rejects.toMatchObject({
      code: 'E_DISPOSED',
    })
    await expect(host.load(limitsSource())).rejects.toMatchObject({ code: 'E_DISPOSED' })
  })

  it('fails running and waiting calls with E_DISPOSED when the host is disposed', async () => {
    const host = newHost({ limits: { timeoutMs: 30_000 } })
    await host.load(limitsSource())
    const running = host.call('test.limits', 'spin', '')
    const waiting = host.call('test.limits', 'echo', 'never')
    const settled = Promise.allSettled([running, waiting])
    await expect.poll(() => host.stats().plugins['test.limits']?.queued).toBe(1)
    await host.dispose()
    const results = await settled
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected'])
    for (const result of results) {
      expect((result as PromiseRejectedResult).reason).toMatchObject({ code: 'E_DISPOSED' })
    }
  })

  it('keeps working past the ~16k calls after which an unreset Extism instance fails for good', async () => {
    for (const isolation of ['in-thread', 'worker'] as const) {
      const host = newHost({ isolation })
      await host.load(limitsSource())
      let last = ''
      for (let i = 0; i < 17_000; i++)
        last = text(await host.call('test.limits', 'echo', `call ${i}`))
      expect(last).toBe('call 16999')
      expect(host.stats().plugins['test.limits']).toMatchObject({ calls: 17_000, errors: 0 })
      await host.dispose()
    }
  }, 120_000)

  it('runs trusted plugins in-thread', async () => {
    const host = newHost({ isolation: 'in-thread' })
    await host.load(limitsSource())
    expect(text(await host.call('test.limits', 'echo', 'in thread'))).toBe('in thread')
  })
})

describe('worker isolation', () => {
  it('runs worker plugins in a process started with --enable-source-maps', async () => {
    // Extism's own runInWorker crashes the host under --enable-source-maps on Node 20;
    // the host's worker must not. Run a child process with the flag and the tsx loader.
    const { execFile } = await import('node:child_process')
    const { promisify } = await import('node:util')
    const script = join(scratch, 'source-maps-child.mts')
    await writeFile(
      script,
      [
        `import { createPluginHost } from ${JSON.stringify(join(import.meta.dirname, '..', 'src', 'index.ts'))}`,
        `import { fixture, manifestFor } from ${JSON.stringify(join(import.meta.dirname, 'helpers.ts'))}`,
        "const wasm = await fixture('limits')",
        "const host = createPluginHost({ hostApiVersion: '1.0.0' })",
        'await host.load({ manifest: manifestFor(wasm), wasm })',
        "const out = await host.call('test.limits', 'echo', 'mapped')",
        "console.log('result:' + new TextDecoder().decode(out) + ':' + process.sourceMapsEnabled)",
        'await host.dispose()',
      ].join('\n'),
    )
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--enable-source-maps', '--conditions=@aide/source', '--import', 'tsx', script],
      { cwd: join(import.meta.dirname, '..'), timeout: 60_000 },
    )
    expect(stdout).toContain('result:mapped:true')
  }, 90_000)
})
