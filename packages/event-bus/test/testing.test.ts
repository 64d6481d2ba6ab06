import { isAideError } from '@aide/core'
import { describe, expect, it } from 'vitest'
import { createEventBus } from '../src/index.js'
import { collect, createMemoryTransport } from '../src/testing.js'
import { until } from './helpers.js'
import { type ConformanceEvents, testTransport } from './transport-conformance.js'

testTransport('memory', async () => {
  const transport = createMemoryTransport<ConformanceEvents>({ retryDelayMs: 5 })
  return {
    transport,
    deadLetters: async () => transport.deadLetters(),
    pending: (group) => transport.pending(group),
  }
})

type Events = {
  'document.opened': { uri: string }
  'document.closed': { uri: string }
  tick: number
}

describe('collect', () => {
  it('records emitted and published events of a pattern, and waits for a count', async () => {
    const bus = createEventBus<Events>()
    const documents = collect(bus, 'document.*')
    const everything = collect(bus)
    bus.emit('document.opened', { uri: 'a' })
    bus.emit('tick', 1)
    const waiting = documents.waitForCount(2)
    void bus.publish('document.closed', { uri: 'a' })
    expect(await waiting).toEqual([
      { type: 'document.opened', payload: { uri: 'a' } },
      { type: 'document.closed', payload: { uri: 'a' } },
    ])
    expect(documents.types()).toEqual(['document.opened', 'document.closed'])
    expect(everything.payloads()).toEqual([{ uri: 'a' }, 1, { uri: 'a' }])
    documents.clear()
    expect(documents.events).toEqual([])
    documents.dispose()
    expect(documents.disposed).toBe(true)
    bus.emit('document.opened', { uri: 'b' })
    expect(documents.events).toEqual([])
    expect(everything.events).toHaveLength(4)
    await bus.dispose()
  })

  it('waitForCount rejects with E_TIMEOUT saying how many arrived', async () => {
    const bus = createEventBus<Events>()
    const ticks = collect(bus, 'tick')
    bus.emit('tick', 1)
    const error = await ticks.waitForCount(3, { timeoutMs: 20 }).catch((caught: unknown) => caught)
    expect(isAideError(error) && error.code).toBe('E_TIMEOUT')
    expect((error as Error).message).toContain('got 1 so far')
    await expect(ticks.waitForCount(-1)).rejects.toMatchObject({ code: 'E_INVALID_INPUT' })
    expect(() => collect(bus, 'doc*')).toThrow(/collect: pattern/)
    await bus.dispose()
  })
})

describe('memory transport', () => {
  it('entries of a stopped consumer go back to its group, like a consumer that died', async () => {
    const transport = createMemoryTransport<Events>()
    let release!: () => void
    const stuck = new Promise<void>((resolve) => {
      release = resolve
    })
    const victimSeen: number[] = []
    const victim = await transport.consume({
      group: 'g',
      consumer: 'victim',
      handler: async (event) => {
        victimSeen.push(event.payload as number)
        await stuck
      },
    })
    await transport.publish('tick', 1)
    await until(() => victimSeen.length === 1)
    expect(await transport.pending('g')).toBe(1)
    await victim.dispose()
    const survivorSeen: Array<[number, number]> = []
    await transport.consume({
      group: 'g',
      consumer: 'survivor',
      handler: (event) => void survivorSeen.push([event.payload as number, event.deliveryCount]),
    })
    await until(() => survivorSeen.length === 1)
    release()
    await until(async () => (await transport.pending('g')) === 0)
    expect(survivorSeen).toEqual([[1, 2]])
    await transport.dispose()
  })

  it('a new group starts from the beginning or only with new events', async () => {
    const transport = createMemoryTransport<Events>()
    await transport.publish('tick', 1)
    const fromStart: number[] = []
    const fromNow: number[] = []
    await transport.consume({
      group: 'all',
      handler: (e) => void fromStart.push(e.payload as number),
    })
    await transport.consume({
      group: 'new',
      startFrom: 'new',
      handler: (e) => void fromNow.push(e.payload as number),
    })
    await transport.publish('tick', 2)
    await until(() => fromStart.length === 2 && fromNow.length === 1)
    expect(fromStart).toEqual([1, 2])
    expect(fromNow).toEqual([2])
    await transport.dispose()
    await expect(transport.publish('tick', 3)).rejects.toMatchObject({ code: 'E_DISPOSED' })
  })

  it('while unavailable, calls fail with E_UNAVAILABLE and nothing is delivered; recovery resumes delivery', async () => {
    const transport = createMemoryTransport<Events>()
    const seen: number[] = []
    await transport.consume({ group: 'g', handler: (e) => void seen.push(e.payload as number) })
    await transport.publish('tick', 1)
    await until(() => seen.length === 1)
    transport.setAvailable(false)
    await expect(transport.publish('tick', 2)).rejects.toMatchObject({ code: 'E_UNAVAILABLE' })
    await expect(transport.consume({ group: 'h', handler: () => undefined })).rejects.toMatchObject(
      { code: 'E_UNAVAILABLE' },
    )
    expect(transport.stats()).toMatchObject({ available: false, published: 1 })
    transport.setAvailable(true)
    await transport.publish('tick', 3)
    await until(() => seen.length === 2)
    expect(seen).toEqual([1, 3])
    expect(() => transport.setAvailable('yes' as never)).toThrow(/setAvailable/)
    await transport.dispose()
  })

  it('gives up after maxDeliveries and reports the reason', async () => {
    const transport = createMemoryTransport<Events>({ maxDeliveries: 3, retryDelayMs: 1 })
    let calls = 0
    await transport.consume({
      group: 'g',
      handler: () => {
        calls++
        throw new Error('always fails')
      },
    })
    await transport.publish('tick', 1, { id: 'doomed' })
    await until(() => transport.deadLetters().length === 1)
    expect(calls).toBe(3)
    expect(transport.deadLetters()[0]).toMatchObject({
      id: 'doomed',
      group: 'g',
      reason: 'delivered 4 times (max 3)',
    })
    expect(await transport.pending('g')).toBe(0)
    await expect(transport.pending('nope')).rejects.toMatchObject({ code: 'E_NOT_FOUND' })
    await transport.dispose()
  })
})
