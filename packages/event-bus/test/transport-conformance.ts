/**
 * The conformance suite every transport runs (the Redis one in redis.test.ts,
 * the in-memory one in testing.test.ts): the delivery rules `bridge` and user
 * code rely on.
 */
import { AideError, isAideError } from '@aide/core'
import { describe, expect, it } from 'vitest'
import type { EventTransport, TransportEvent } from '../src/index.js'
import { until } from './helpers.js'

export type ConformanceEvents = {
  'job.created': { seq: number }
  'job.note': { text: string }
}

export interface TransportFixture {
  transport: EventTransport<ConformanceEvents>
  /** Dead letters of the transport, with their reasons. */
  deadLetters(): Promise<Array<{ id: string | undefined; reason: string }>>
  /** Entries of `group` delivered and not acknowledged. */
  pending(group: string): Promise<number>
}

export function testTransport(
  name: string,
  create: () => Promise<TransportFixture>,
  /** Extra consume options making redelivery fast (e.g. the Redis reclaim interval). */
  consumeOptions: Record<string, unknown> = {},
): void {
  describe(`transport conformance: ${name}`, () => {
    it('delivers id, type, payload, origin and delivery count, then acknowledges', async () => {
      const { transport, pending } = await create()
      const seen: Array<TransportEvent<ConformanceEvents>> = []
      await transport.consume({
        ...consumeOptions,
        group: 'g',
        handler: (event) => void seen.push(event),
      })
      const published = await transport.publish(
        'job.note',
        { text: 'hi' },
        { id: 'e-1', origin: 'node-a' },
      )
      await transport.publish('job.created', { seq: 2 })
      await until(() => seen.length === 2)
      expect(published.id).toBe('e-1')
      expect(seen[0]).toMatchObject({
        id: 'e-1',
        entryId: published.entryId,
        type: 'job.note',
        payload: { text: 'hi' },
        origin: 'node-a',
        deliveryCount: 1,
      })
      expect(seen[1]).toMatchObject({ type: 'job.created', origin: undefined })
      expect(typeof seen[1]!.id).toBe('string')
      await until(async () => (await pending('g')) === 0)
    })

    it('every group receives every event; the consumers of one group share them', async () => {
      const { transport } = await create()
      const groups: Record<string, number[]> = { one: [], two: [], shared: [] }
      const sharedBy = new Map<string, number>()
      for (const group of ['one', 'two']) {
        await transport.consume({
          ...consumeOptions,
          group,
          handler: (event) => void groups[group]!.push((event.payload as { seq: number }).seq),
        })
      }
      for (const consumer of ['c1', 'c2']) {
        await transport.consume({
          ...consumeOptions,
          group: 'shared',
          consumer,
          handler: (event) => {
            groups.shared!.push((event.payload as { seq: number }).seq)
            sharedBy.set(consumer, (sharedBy.get(consumer) ?? 0) + 1)
          },
        })
      }
      await transport.publishBatch(
        Array.from({ length: 20 }, (_, i) => ({
          type: 'job.created' as const,
          payload: { seq: i + 1 },
        })),
      )
      const all = Array.from({ length: 20 }, (_, i) => i + 1)
      await until(
        () => groups.one!.length >= 20 && groups.two!.length >= 20 && groups.shared!.length >= 20,
      )
      expect(groups.one).toEqual(all)
      expect(groups.two).toEqual(all)
      expect([...groups.shared!].sort((x, y) => x - y)).toEqual(all)
    })

    it('a failed delivery comes back with a higher delivery count and is then acknowledged', async () => {
      const { transport, pending } = await create()
      const counts: number[] = []
      await transport.consume({
        ...consumeOptions,
        group: 'retry',
        handler: (event) => {
          counts.push(event.deliveryCount)
          if (event.deliveryCount === 1) throw new Error('first attempt fails')
        },
      })
      await transport.publish('job.created', { seq: 1 })
      await until(() => counts.length === 2, 15_000)
      expect(counts).toEqual([1, 2])
      await until(async () => (await pending('retry')) === 0)
    })

    it('a handler throwing E_INVALID_INPUT sends the event to the dead letters at once', async () => {
      const { transport, pending, deadLetters } = await create()
      let calls = 0
      await transport.consume({
        ...consumeOptions,
        group: 'refuse',
        handler: () => {
          calls++
          throw new AideError('E_INVALID_INPUT', 'payload.seq must be positive', {
            details: { field: 'payload.seq' },
          })
        },
      })
      await transport.publish('job.created', { seq: -1 }, { id: 'refused-1' })
      await until(async () => (await deadLetters()).length === 1)
      const [letter] = await deadLetters()
      expect(letter!.id).toBe('refused-1')
      expect(letter!.reason).toContain('payload.seq must be positive')
      expect(await pending('refuse')).toBe(0)
      expect(calls).toBe(1)
    })

    it('publishBatch validates every event before writing any, naming the field', async () => {
      const { transport } = await create()
      const seen: unknown[] = []
      await transport.consume({
        ...consumeOptions,
        group: 'batch',
        handler: (event) => void seen.push(event.payload),
      })
      const error = await transport
        .publishBatch([
          { type: 'job.created', payload: { seq: 1 } },
          { type: 'job.created', payload: { seq: Number.POSITIVE_INFINITY } },
        ])
        .catch((caught: unknown) => caught)
      expect(isAideError(error) && error.details.field).toBe('publishBatch: events[1].payload.seq')
      await transport.publish('job.created', { seq: 3 })
      await until(() => seen.length === 1)
      expect(seen).toEqual([{ seq: 3 }])
    })

    it('deleteGroup removes a group once', async () => {
      const { transport } = await create()
      const consumer = await transport.consume({
        ...consumeOptions,
        group: 'doomed',
        handler: () => undefined,
      })
      await consumer.dispose()
      expect(await transport.deleteGroup('doomed')).toBe(true)
      expect(await transport.deleteGroup('doomed')).toBe(false)
    })
  })
}
