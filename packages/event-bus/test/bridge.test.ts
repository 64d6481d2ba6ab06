/**
 * The bridge against the in-memory transport: two (or three) buses in one
 * process, each bridged as its own node. The same bridge is tested across
 * real processes on a real redis-server in processes.test.ts.
 */
import { isAideError } from '@aide/core'
import { afterEach, describe, expect, it } from 'vitest'
import {
  bridge,
  createEventBus,
  type DeadLetter,
  type EventBridge,
  type EventBus,
} from '../src/index.js'
import { collect, createMemoryTransport, type MemoryTransport } from '../src/testing.js'
import { until } from './helpers.js'

type Events = {
  'document.opened': { uri: string }
  'document.saved': { uri: string; version: number }
  'plugin.loaded': { id: string }
  tick: number
}

const open: Array<{ dispose(): Promise<void> | void }> = []

afterEach(async () => {
  for (const item of open.splice(0).reverse()) await item.dispose()
})

function newBus(): EventBus<Events> {
  const bus = createEventBus<Events>()
  open.push(bus)
  return bus
}

async function link(
  bus: EventBus<Events>,
  transport: MemoryTransport<Events>,
  options: Parameters<typeof bridge>[2] = {},
): Promise<EventBridge> {
  const created = await bridge(bus, transport, options)
  open.push(created)
  return created
}

function memory(options: Parameters<typeof createMemoryTransport>[0] = {}) {
  const transport = createMemoryTransport<Events>({ retryDelayMs: 5, ...options })
  open.push(transport)
  return transport
}

describe('bridge (in-memory transport)', () => {
  it('delivers events emitted and published on one bus to the other, once, without echo', async () => {
    const transport = memory()
    const a = newBus()
    const b = newBus()
    const bridgeA = await link(a, transport, { node: 'a' })
    const bridgeB = await link(b, transport, { node: 'b' })
    const onA = collect(a, 'document.*')
    const onB = collect(b, 'document.*')
    a.emit('document.opened', { uri: 'file:///1.ts' })
    await a.publish('document.saved', { uri: 'file:///1.ts', version: 2 })
    b.emit('document.opened', { uri: 'file:///2.ts' })
    await onB.waitForCount(3)
    await onA.waitForCount(3)
    await bridgeA.flush()
    await bridgeB.flush()
    await until(async () => (await transport.pending(bridgeA.group)) === 0)
    await until(async () => (await transport.pending(bridgeB.group)) === 0)
    expect(onB.events).toEqual([
      { type: 'document.opened', payload: { uri: 'file:///2.ts' } },
      { type: 'document.opened', payload: { uri: 'file:///1.ts' } },
      { type: 'document.saved', payload: { uri: 'file:///1.ts', version: 2 } },
    ])
    expect(onA.payloads()).toEqual([
      { uri: 'file:///1.ts' },
      { uri: 'file:///1.ts', version: 2 },
      { uri: 'file:///2.ts' },
    ])
    // Three events on the wire, one per local event: nothing came back out.
    expect(transport.entries().map((e) => [e.origin, e.type])).toEqual([
      ['a', 'document.opened'],
      ['a', 'document.saved'],
      ['b', 'document.opened'],
    ])
    expect(bridgeA.stats()).toMatchObject({ forwarded: 2, received: 1, skippedOwn: 2 })
    expect(bridgeB.stats()).toMatchObject({ forwarded: 1, received: 2, skippedOwn: 1 })
  })

  it('carries only the bridged types, each once even when several patterns match it', async () => {
    const transport = memory()
    const a = newBus()
    const b = newBus()
    const bridgeA = await link(a, transport, { node: 'a', types: ['document.*', 'document.saved'] })
    await link(b, transport, { node: 'b', types: ['document.*'] })
    const onB = collect(b)
    a.emit('document.saved', { uri: 'x', version: 1 })
    a.emit('plugin.loaded', { id: 'p' })
    a.emit('tick', 1)
    await bridgeA.flush()
    // Another node's event of a type these bridges do not carry.
    transport.appendRaw({ id: 'other', type: 'plugin.loaded', data: '{"id":"q"}', origin: 'c' })
    await onB.waitForCount(1)
    await until(() => bridgeA.stats().skippedType === 1 && bridgeA.stats().skippedOwn === 1)
    expect(onB.events).toEqual([{ type: 'document.saved', payload: { uri: 'x', version: 1 } }])
    expect(transport.entries().map((e) => e.type)).toEqual(['document.saved', 'plugin.loaded'])
    expect(bridgeA.stats().skippedType).toBe(1)
  })

  it('a redelivered event (ack lost in an outage) reaches the local bus once, by event id', async () => {
    const transport = memory()
    const b = newBus()
    const bridgeB = await link(b, transport, { node: 'b' })
    let release!: () => void
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    const seen: number[] = []
    b.on('tick', async (n) => {
      seen.push(n)
      if (n === 1) await gate
    })
    await transport.publish('tick', 1, { id: 'evt-1', origin: 'a' })
    await until(() => seen.length === 1)
    // The transport goes down while the local delivery runs: the ack fails and
    // the entry is delivered again after recovery.
    transport.setAvailable(false)
    release()
    await until(() => transport.stats().failed === 1)
    transport.setAvailable(true)
    await until(() => bridgeB.stats().duplicates === 1)
    await until(async () => (await transport.pending(bridgeB.group)) === 0)
    expect(seen).toEqual([1])
    expect(bridgeB.stats()).toMatchObject({ received: 1, duplicates: 1 })
  })

  it('keeps local events while the transport is down and writes them, in order, when it is back', async () => {
    const transport = memory()
    const a = newBus()
    const b = newBus()
    const bridgeA = await link(a, transport, { node: 'a' })
    await link(b, transport, { node: 'b' })
    const onB = collect(b, 'tick')
    transport.setAvailable(false)
    for (let i = 1; i <= 5; i++) a.emit('tick', i)
    const published = a.publish('tick', 6, { awaitDelivery: true })
    await until(() => bridgeA.stats().retries >= 2)
    expect(bridgeA.stats().pendingOut).toBe(6)
    expect(onB.events).toHaveLength(0)
    transport.setAvailable(true)
    // awaitDelivery on the publishing bus resolves once the event is on the transport.
    await published
    await onB.waitForCount(6)
    expect(onB.payloads()).toEqual([1, 2, 3, 4, 5, 6])
    expect(bridgeA.stats()).toMatchObject({ forwarded: 6, pendingOut: 0, forwardFailed: 0 })
  })

  it('over maxPending, further local events fail with E_LIMIT on the bus error channel', async () => {
    const transport = memory()
    const a = newBus()
    const bridgeA = await link(a, transport, { node: 'a', maxPending: 2 })
    const failures: string[] = []
    a.onError((letter) => failures.push(`${letter.payload}:${(letter.error.cause as any)?.code}`))
    transport.setAvailable(false)
    a.emit('tick', 1)
    a.emit('tick', 2)
    a.emit('tick', 3)
    await until(() => failures.length === 1)
    expect(failures).toEqual(['3:E_LIMIT'])
    transport.setAvailable(true)
    await bridgeA.flush()
    expect(transport.entries().map((e) => e.data)).toEqual(['1', '2'])
    expect(bridgeA.stats()).toMatchObject({ forwarded: 2, forwardFailed: 1 })
  })

  it('a payload the transport cannot carry fails alone; the rest of its batch is written', async () => {
    const transport = memory()
    const a = newBus()
    const bridgeA = await link(a, transport, { node: 'a' })
    const failures: unknown[] = []
    a.onError((letter) => failures.push(letter.error.cause))
    a.emit('tick', 1)
    a.emit('tick', Number.NaN)
    a.emit('tick', 3)
    await until(() => failures.length === 1)
    await bridgeA.flush()
    expect(transport.entries().map((e) => e.data)).toEqual(['1', '3'])
    expect(isAideError(failures[0]) && failures[0].code).toBe('E_INVALID_INPUT')
    expect(bridgeA.stats()).toMatchObject({ forwarded: 2, forwardFailed: 1 })
  })

  it('malformed wire data, a refused payload and a pattern as type go to dead letters; the rest is delivered', async () => {
    const transport = memory()
    const b = newBus()
    const bridgeB = await link(b, transport, {
      node: 'b',
      validate: (type, payload) => {
        if (type === 'document.opened' && typeof (payload as { uri?: unknown }).uri !== 'string')
          throw new Error('uri must be a string')
      },
    })
    const onB = collect(b)
    transport.appendRaw({ id: 'bad-json', type: 'tick', data: '{not json', origin: 'a' })
    transport.appendRaw({ type: 'tick', data: '1', origin: 'a' })
    transport.appendRaw({ id: 'bad-uri', type: 'document.opened', data: '{"uri":7}', origin: 'a' })
    transport.appendRaw({ id: 'pattern', type: 'document.*', data: '{"uri":"x"}', origin: 'a' })
    await transport.publish('document.opened', { uri: 'ok' }, { id: 'good', origin: 'a' })
    await onB.waitForCount(1)
    await until(() => transport.deadLetters().length === 4)
    expect(onB.events).toEqual([{ type: 'document.opened', payload: { uri: 'ok' } }])
    expect(transport.deadLetters().map((d) => [d.id, d.reason.split(':')[0]])).toEqual([
      ['bad-json', 'payload could not be deserialised'],
      [undefined, 'malformed entry'],
      ['bad-uri', 'handler refused it'],
      ['pattern', 'handler refused it'],
    ])
    expect(transport.deadLetters()[2]!.reason).toContain('uri must be a string')
    expect(bridgeB.stats()).toMatchObject({ received: 1, refused: 2 })
    expect(await transport.pending(bridgeB.group)).toBe(0)
  })

  it('a local delivery that fails (bus disposed) leaves the event pending, and it is retried', async () => {
    const transport = memory({ maxDeliveries: 100 })
    const b = createEventBus<Events>()
    const bridgeB = await link(b, transport, { node: 'b' })
    await b.dispose()
    await transport.publish('tick', 1, { id: 'kept', origin: 'a' })
    await until(() => transport.stats().failed >= 2)
    expect(await transport.pending(bridgeB.group)).toBe(1)
    expect(bridgeB.stats().received).toBe(0)
  })

  it('a node with a stable name gets what was published while it was away; a generated one cleans up its group', async () => {
    const transport = memory()
    const a = newBus()
    await link(a, transport, { node: 'a' })
    const b1 = newBus()
    const first = await link(b1, transport, { node: 'b' })
    const anonymous = await link(newBus(), transport)
    expect(transport.groups().sort()).toEqual(
      ['aide-bridge:a', 'aide-bridge:b', `aide-bridge:${anonymous.node}`].sort(),
    )
    await first.dispose()
    await anonymous.dispose()
    expect(transport.groups().sort()).toEqual(['aide-bridge:a', 'aide-bridge:b'])
    a.emit('tick', 41)
    a.emit('tick', 42)
    await until(() => transport.entries().length === 2)
    const b2 = newBus()
    const onB2 = collect(b2, 'tick')
    await link(b2, transport, { node: 'b' })
    await onB2.waitForCount(2)
    expect(onB2.payloads()).toEqual([41, 42])
  })

  it('dispose cancels events it could not write in time, each reported on the bus', async () => {
    const transport = memory()
    const a = newBus()
    const bridgeA = await link(a, transport, { node: 'a' })
    const codes: string[] = []
    a.onError((letter) => codes.push(String((letter.error.cause as { code?: string }).code)))
    transport.setAvailable(false)
    a.emit('tick', 1)
    a.emit('tick', 2)
    await bridgeA.dispose({ timeoutMs: 50 })
    await until(() => codes.length === 2)
    expect(codes).toEqual(['E_CANCELLED', 'E_CANCELLED'])
    expect(bridgeA.stats()).toMatchObject({ forwarded: 0, forwardFailed: 2, disposed: true })
    transport.setAvailable(true)
    a.emit('tick', 3)
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(transport.entries()).toHaveLength(0)
    await bridgeA.dispose()
  })

  it('an incoming event whose local listener fails is reported on the bus error channel and still acknowledged', async () => {
    const transport = memory()
    const b = newBus()
    const letters: DeadLetter[] = []
    b.onError((letter) => letters.push(letter))
    const calls: number[] = []
    b.on(
      'tick',
      (n) => {
        calls.push(n)
        throw new Error('listener broke')
      },
      { name: 'fragile' },
    )
    const healthy = collect(b, 'tick')
    const bridgeB = await link(b, transport, { node: 'b' })
    await transport.publish('tick', 7, { id: 'fails-locally', origin: 'a' })
    await healthy.waitForCount(1)
    await until(async () => (await transport.pending(bridgeB.group)) === 0)
    expect(calls).toEqual([7])
    expect(
      letters.map((l) => [l.subscriber, l.type, l.payload, (l.error.cause as Error).message]),
    ).toEqual([['fragile', 'tick', 7, 'listener broke']])
    expect(transport.deadLetters()).toEqual([])
    expect(transport.stats()).toMatchObject({ acknowledged: 1, failed: 0 })
    expect(bridgeB.stats()).toMatchObject({ received: 1, duplicates: 0 })
  })

  it('writes outgoing events in batches of batchSize (default 100), in order', async () => {
    const transport = memory()
    const sizes: number[] = []
    const publishBatch = transport.publishBatch.bind(transport)
    transport.publishBatch = (events, options) => {
      sizes.push(events.length)
      return publishBatch(events, options)
    }
    const small = newBus()
    const smallBridge = await link(small, transport, { node: 'small', batchSize: 3 })
    for (let i = 1; i <= 7; i++) small.emit('tick', i)
    await smallBridge.flush()
    expect(sizes).toEqual([3, 3, 1])
    expect(transport.entries().map((e) => Number(e.data))).toEqual([1, 2, 3, 4, 5, 6, 7])
    sizes.length = 0
    const usual = newBus()
    const usualBridge = await link(usual, transport, { node: 'usual' })
    for (let i = 1; i <= 250; i++) usual.emit('tick', 100 + i)
    await usualBridge.flush()
    expect(sizes).toEqual([100, 100, 50])
    expect(
      transport
        .entries()
        .filter((e) => e.origin === 'usual')
        .map((e) => Number(e.data)),
    ).toEqual(Array.from({ length: 250 }, (_, i) => 101 + i))
  })

  it('remembers only the last dedupeWindow event ids: a redelivery of an older id is delivered again', async () => {
    const transport = memory()
    const small = newBus()
    const usual = newBus()
    const onSmall = collect(small, 'tick')
    const onUsual = collect(usual, 'tick')
    const smallBridge = await link(small, transport, { node: 'small', dedupeWindow: 1 })
    const usualBridge = await link(usual, transport, { node: 'usual' })
    // A publisher that retried with the same event ids (a reply was lost), twice:
    // y comes again right after y, x comes again after y.
    await transport.publish('tick', 1, { id: 'x', origin: 'a' })
    await transport.publish('tick', 2, { id: 'y', origin: 'a' })
    await transport.publish('tick', 3, { id: 'y', origin: 'a' })
    await transport.publish('tick', 4, { id: 'x', origin: 'a' })
    const handled = (link: EventBridge) => link.stats().received + link.stats().duplicates
    await until(() => handled(smallBridge) === 4 && handled(usualBridge) === 4)
    expect(onSmall.payloads()).toEqual([1, 2, 4])
    expect(smallBridge.stats()).toMatchObject({ received: 3, duplicates: 1 })
    expect(onUsual.payloads()).toEqual([1, 2])
    expect(usualBridge.stats()).toMatchObject({ received: 2, duplicates: 2 })
  })

  it('the default dedupeWindow holds 10,000 event ids', async () => {
    const transport = memory()
    const b = newBus()
    const bridgeB = await link(b, transport, { node: 'b' })
    const events = (from: number, to: number) =>
      Array.from({ length: to - from + 1 }, (_, i) => ({
        type: 'tick' as const,
        payload: from + i,
        id: `e${from + i}`,
        origin: 'a',
      }))
    const handled = () => bridgeB.stats().received + bridgeB.stats().duplicates
    await transport.publishBatch(events(1, 10_000))
    // e1 is one of the last 10,000 ids: its redelivery is dropped.
    await transport.publish('tick', -1, { id: 'e1', origin: 'a' })
    await until(() => handled() === 10_001, 10_000)
    expect(bridgeB.stats()).toMatchObject({ received: 10_000, duplicates: 1 })
    const onB = collect(b, 'tick')
    // e10001 pushes e1 out of the window: e1 is delivered again (and pushes
    // out e2), while e3 is still remembered.
    await transport.publishBatch(events(10_001, 10_001))
    await transport.publish('tick', -2, { id: 'e1', origin: 'a' })
    await transport.publish('tick', -3, { id: 'e3', origin: 'a' })
    await until(() => handled() === 10_004)
    expect(onB.payloads()).toEqual([10_001, -2])
    expect(bridgeB.stats()).toMatchObject({ received: 10_002, duplicates: 2 })
  })

  it('startFrom says where a new group starts (new by default), and consume options pass through', async () => {
    const transport = memory()
    const consumeOptions: Array<Record<string, unknown>> = []
    const consume = transport.consume.bind(transport)
    transport.consume = (options, deadline) => {
      consumeOptions.push({ ...options })
      return consume(options, deadline)
    }
    await transport.publish('tick', 1, { id: 'before', origin: 'a' })
    const late = newBus()
    const early = newBus()
    const onLate = collect(late, 'tick')
    const onEarly = collect(early, 'tick')
    const lateBridge = await link(late, transport, {
      node: 'late',
      consume: { claimIdleMs: 10_000, concurrency: 2 },
    })
    const earlyBridge = await link(early, transport, { node: 'early', startFrom: 'beginning' })
    await transport.publish('tick', 2, { id: 'after', origin: 'a' })
    // Each group is read in order: once 2 has arrived, 1 would have come first.
    await until(() => onLate.payloads().includes(2) && onEarly.payloads().includes(2))
    expect(onLate.payloads()).toEqual([2])
    expect(onEarly.payloads()).toEqual([1, 2])
    expect(lateBridge.stats().received).toBe(1)
    expect(earlyBridge.stats().received).toBe(2)
    expect(consumeOptions).toEqual([
      expect.objectContaining({
        group: 'aide-bridge:late',
        startFrom: 'new',
        claimIdleMs: 10_000,
        concurrency: 2,
      }),
      expect.objectContaining({ group: 'aide-bridge:early', startFrom: 'beginning' }),
    ])
  })

  it('shows on the bus as one subscriber per pattern, named bridge(<node>) -> <pattern>', async () => {
    const transport = memory()
    const a = newBus()
    const bridgeA = await link(a, transport, {
      node: 'editor-1',
      types: ['document.*', 'tick'],
      maxPending: 1,
    })
    expect(a.stats().subscriberStats.map((s) => s.name)).toEqual([
      'bridge(editor-1) -> document.*',
      'bridge(editor-1) -> tick',
    ])
    // Its failures are reported under that name too.
    const subscribers: string[] = []
    a.onError((letter) => subscribers.push(letter.subscriber))
    transport.setAvailable(false)
    a.emit('tick', 1)
    a.emit('tick', 2)
    await until(() => subscribers.length === 1)
    expect(subscribers).toEqual(['bridge(editor-1) -> tick'])
    transport.setAvailable(true)
    await bridgeA.flush()
  })

  it('validates its options, naming the field', async () => {
    const transport = memory()
    const bus = newBus()
    const field = async (options: unknown) => {
      try {
        await bridge(bus, transport, options as never)
      } catch (error) {
        return isAideError(error) ? error.details.field : error
      }
      return 'no error'
    }
    expect(await field({ types: [] })).toBe('bridge: options.types')
    expect(await field({ types: ['doc*'] })).toBe('bridge: options.types[0]')
    expect(await field({ maxPending: 0 })).toBe('bridge: options.maxPending')
    expect(await field({ startFrom: 'middle' })).toBe('bridge: options.startFrom')
    expect(await field({ validate: 'yes' })).toBe('bridge: options.validate')
    await expect(bridge(bus, {} as never)).rejects.toMatchObject({ code: 'E_INVALID_INPUT' })
  })
})
