import { describe, expect, it } from 'vitest'
import { createEventBus, type DeadLetter } from '../src/index.js'

/** A thenable whose then() throws, as a buggy promise library might return. */
const malformed = () => ({
  // biome-ignore lint/suspicious/noThenProperty: the test needs a (broken) thenable
  then() {
    throw new Error('bad then')
  },
})

describe('a listener returning a malformed thenable', () => {
  it('is a failed delivery on publish; later events are still delivered and the bus drains', async () => {
    const bus = createEventBus<{ a: number }>()
    const errors: DeadLetter[] = []
    bus.onError((letter) => errors.push(letter))
    const seen: number[] = []
    bus.on(
      'a',
      (n) => {
        seen.push(n)
        return n === 1 ? (malformed() as unknown as Promise<void>) : undefined
      },
      { name: 'buggy' },
    )
    await bus.publish('a', 1)
    await bus.publish('a', 2)
    await bus.publish('a', 3)
    await bus.drain()
    expect(seen).toEqual([1, 2, 3])
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({ subscriber: 'buggy', payload: 1 })
    expect(errors[0]!.error.cause).toMatchObject({ message: 'bad then' })
    const stats = bus.stats()
    expect(stats.types.a).toMatchObject({ published: 3, delivered: 2, failed: 1 })
    expect(stats.subscriberStats[0]).toMatchObject({
      delivered: 2,
      failed: 1,
      running: 0,
      queueDepth: 0,
    })
    await bus.dispose()
  })

  it('is a failed delivery on emit, counted once', async () => {
    const bus = createEventBus<{ a: number }>()
    const errors: DeadLetter[] = []
    bus.onError((letter) => errors.push(letter))
    bus.on('a', () => malformed() as unknown as Promise<void>)
    expect(() => bus.emit('a', 1)).not.toThrow()
    await bus.drain()
    await new Promise((resolve) => setImmediate(resolve))
    expect(errors).toHaveLength(1)
    expect(bus.stats().types.a).toMatchObject({ published: 1, delivered: 0, failed: 1 })
    await bus.dispose()
  })
})
