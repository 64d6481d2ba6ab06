import { execFileSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { isAideError } from '@aide/core'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RedisServer, startRedis } from '../../../scripts/redis.mjs'
import {
  createRedisTransport,
  type RedisTransport,
  type Serializer,
  type TransportEvent,
} from '../src/redis.js'
import { assertJsonSafe, loadRedis } from '../src/redis-support.js'
import { until } from './helpers.js'
import { type ConformanceEvents, testTransport } from './transport-conformance.js'

type Events = {
  'job.created': { seq: number }
  'job.note': { text: string; tags?: string[] }
}

let redis: RedisServer
let admin: Redis
let streamCounter = 0
const open: Array<{ dispose(): Promise<void> }> = []

function nextStream(): string {
  return `test:${process.pid}:${++streamCounter}`
}

async function transport(
  options: { stream?: string; maxLength?: number } = {},
): Promise<RedisTransport<Events>> {
  const created = await createRedisTransport<Events>({
    url: redis.url,
    stream: options.stream ?? nextStream(),
    ...(options.maxLength !== undefined ? { maxLength: options.maxLength } : {}),
  })
  open.push(created)
  return created
}

beforeAll(async () => {
  redis = await startRedis()
  admin = new Redis(redis.url)
})

afterAll(async () => {
  await Promise.allSettled(open.map((t) => t.dispose()))
  admin.disconnect()
  await redis.stop()
})

testTransport(
  'redis',
  async () => {
    const stream = nextStream()
    const created = await createRedisTransport<ConformanceEvents>({ url: redis.url, stream })
    open.push(created)
    return {
      transport: created,
      pending: (group) => created.pending(group),
      deadLetters: async () => {
        const rows = (await admin.xrange(created.deadLetterStream, '-', '+')) as Array<
          [string, string[]]
        >
        return rows.map(([, fields]) => {
          const get = (name: string) => {
            const index = fields.indexOf(name)
            return index >= 0 ? fields[index + 1] : undefined
          }
          return { id: get('id'), reason: get('reason') ?? '' }
        })
      },
    }
  },
  { blockMs: 100, claimIdleMs: 200, claimIntervalMs: 50 },
)

describe('redis transport', () => {
  it('publishes and consumes with the publisher id, type, payload and delivery count, then acknowledges', async () => {
    const t = await transport()
    const seen: Array<TransportEvent<Events>> = []
    const consumer = await t.consume({
      group: 'g',
      blockMs: 200,
      handler: (event) => void seen.push(event),
    })
    const published = await t.publish('job.note', { text: 'hi', tags: ['a'] }, { id: 'evt-1' })
    expect(published.id).toBe('evt-1')
    await until(() => seen.length === 1)
    expect(seen[0]).toMatchObject({
      id: 'evt-1',
      entryId: published.entryId,
      type: 'job.note',
      payload: { text: 'hi', tags: ['a'] },
      deliveryCount: 1,
    })
    expect(seen[0]!.publishedAt).toBeGreaterThan(0)
    await until(async () => (await t.pending('g')) === 0)
    await until(() => consumer.stats().acknowledged === 1)
    expect(consumer.stats()).toMatchObject({ received: 1, acknowledged: 1, failed: 0 })
    expect(t.stats().published).toBe(1)
  })

  it('publishBatch writes in order and a concurrency-1 consumer handles in stream order', async () => {
    const t = await transport()
    const seqs: number[] = []
    await t.consume({
      group: 'ordered',
      blockMs: 200,
      batchSize: 7,
      handler: (event) => {
        if (event.type === 'job.created') seqs.push((event.payload as { seq: number }).seq)
      },
    })
    const events = Array.from({ length: 100 }, (_, i) => ({
      type: 'job.created' as const,
      payload: { seq: i },
    }))
    const published = await t.publishBatch(events)
    expect(new Set(published.map((p) => p.id)).size).toBe(100)
    await until(() => seqs.length === 100)
    expect(seqs).toEqual(events.map((e) => e.payload.seq))
  })

  it('a failing handler is retried through reclaim with a rising delivery count, then dead-lettered', async () => {
    const t = await transport()
    const counts: number[] = []
    const consumer = await t.consume({
      group: 'retry',
      blockMs: 100,
      claimIdleMs: 100,
      claimIntervalMs: 50,
      maxDeliveries: 3,
      handler: (event) => {
        counts.push(event.deliveryCount)
        throw new Error('always failing')
      },
    })
    await t.publish('job.created', { seq: 1 }, { id: 'doomed' })
    await until(async () => (await admin.xlen(t.deadLetterStream)) === 1, 15_000)
    expect(counts).toEqual([1, 2, 3])
    const [[, fields]] = (await admin.xrange(t.deadLetterStream, '-', '+')) as [[string, string[]]]
    expect(fields).toContain('doomed')
    expect(fields.join(' ')).toContain('delivered 4 times (max 3)')
    await until(async () => (await t.pending('retry')) === 0)
    await until(() => consumer.stats().deadLettered === 1)
    expect(consumer.stats()).toMatchObject({ failed: 3, deadLettered: 1 })
    expect(consumer.stats().reclaimed).toBeGreaterThanOrEqual(3)
  })

  it('a handler that recovers is acknowledged on redelivery', async () => {
    const t = await transport()
    let attempts = 0
    const done: string[] = []
    await t.consume({
      group: 'flaky',
      blockMs: 100,
      claimIdleMs: 100,
      claimIntervalMs: 50,
      handler: (event) => {
        if (++attempts === 1) throw new Error('first try fails')
        done.push(event.id)
      },
    })
    await t.publish('job.created', { seq: 1 }, { id: 'flaky-1' })
    await until(() => done.length === 1, 10_000)
    expect(done).toEqual(['flaky-1'])
    await until(async () => (await t.pending('flaky')) === 0)
  })

  it('moves malformed entries to the dead-letter stream', async () => {
    const t = await transport()
    const seen: string[] = []
    const consumer = await t.consume({
      group: 'malformed',
      blockMs: 100,
      handler: (e) => void seen.push(e.id),
    })
    await admin.xadd(t.stream, '*', 'garbage', 'yes')
    await admin.xadd(t.stream, '*', 'id', 'x', 'type', 'job.note', 'data', '{not json')
    await t.publish('job.note', { text: 'fine' }, { id: 'good' })
    await until(() => seen.length === 1)
    await until(async () => (await admin.xlen(t.deadLetterStream)) === 2)
    // The counter moves after the entry is copied and acknowledged.
    await until(() => consumer.stats().deadLettered === 2)
    expect(seen).toEqual(['good'])
    await until(async () => (await t.pending('malformed')) === 0)
  })

  it('rejects payloads that cannot be serialised, naming the field, and writes nothing', async () => {
    const t = await transport()
    const circular: Record<string, unknown> = { a: 1 }
    circular.self = circular
    const cases: Array<[unknown, string]> = [
      [undefined, 'publish: payload'],
      [{ text: () => 1 }, 'publish: payload.text'],
      [{ text: 10n }, 'publish: payload.text'],
      [{ text: Number.NaN }, 'publish: payload.text'],
      [{ text: new Map() }, 'publish: payload.text'],
      [{ text: 'x', tags: ['ok', Symbol('no')] }, 'publish: payload.tags[1]'],
      [circular, 'publish: payload.self'],
    ]
    for (const [payload, field] of cases) {
      const error = await t
        .publish('job.note', payload as Events['job.note'])
        .catch((e: unknown) => e)
      expect(isAideError(error, 'E_INVALID_INPUT'), String(error)).toBe(true)
      expect((error as { details: { field: string } }).details.field).toBe(field)
    }
    await expect(
      t.publishBatch([
        { type: 'job.note', payload: { text: 'ok' } },
        { type: 'job.note', payload: { text: undefined as unknown as string } },
      ]),
    ).rejects.toMatchObject({
      code: 'E_INVALID_INPUT',
      details: { field: 'publishBatch: events[1].payload.text' },
    })
    expect(await admin.exists(t.stream)).toBe(0)
  })

  it('trims the stream to about maxLength', async () => {
    const t = await transport({ maxLength: 50 })
    for (let i = 0; i < 10; i++) {
      await t.publishBatch(
        Array.from({ length: 100 }, (_, j) => ({
          type: 'job.created' as const,
          payload: { seq: i * 100 + j },
        })),
      )
    }
    const length = await admin.xlen(t.stream)
    // `MAXLEN ~` trims whole radix-tree nodes (100 entries by default), so allow one node of slack.
    expect(length).toBeGreaterThanOrEqual(50)
    expect(length).toBeLessThanOrEqual(150)
  })

  it('honours cancellation and deadlines; a frozen Redis gives E_TIMEOUT', async () => {
    const t = await transport()
    await expect(
      t.publish('job.created', { seq: 1 }, { signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({
      code: 'E_CANCELLED',
    })
    redis.pause()
    try {
      await expect(t.publish('job.created', { seq: 2 }, { timeoutMs: 200 })).rejects.toMatchObject({
        code: 'E_TIMEOUT',
      })
    } finally {
      redis.resume()
    }
    await expect(t.publish('job.created', { seq: 3 })).resolves.toMatchObject({
      entryId: expect.any(String),
    })
  })

  it('fails to connect with E_UNAVAILABLE and validates its options', async () => {
    await expect(
      createRedisTransport({
        url: 'redis://127.0.0.1:1',
        stream: 's',
        redisOptions: { retryStrategy: () => null },
      }),
    ).rejects.toMatchObject({ code: 'E_UNAVAILABLE' })
    await expect(createRedisTransport({ stream: '' })).rejects.toMatchObject({
      details: { field: 'createRedisTransport: options.stream' },
    })
    await expect(createRedisTransport({ stream: 's', maxLength: -1 })).rejects.toMatchObject({
      details: { field: 'createRedisTransport: options.maxLength' },
    })
    const t = await transport()
    await expect(t.consume({ group: 'g', handler: 'x' as never })).rejects.toMatchObject({
      details: { field: 'consume: options.handler' },
    })
    await expect(
      t.consume({ group: 'g', handler: () => undefined, batchSize: 0 }),
    ).rejects.toMatchObject({
      details: { field: 'consume: options.batchSize' },
    })
    await expect(t.pending('missing-group')).rejects.toMatchObject({ code: 'E_NOT_FOUND' })
  })

  it('recreates its group when the stream vanishes (as after a restart without persistence) and keeps consuming', async () => {
    const t = await transport()
    const seen: string[] = []
    const consumer = await t.consume({
      group: 'lost',
      blockMs: 100,
      handler: (e) => void seen.push(e.id),
    })
    await t.publish('job.created', { seq: 1 }, { id: 'before' })
    await until(() => seen.length === 1)
    await admin.del(t.stream)
    await until(() => consumer.stats().groupRecreated === 1, 10_000)
    await t.publish('job.created', { seq: 2 }, { id: 'after' })
    await until(() => seen.length === 2, 10_000)
    expect(seen).toEqual(['before', 'after'])
    expect(consumer.stats().readErrors).toBeGreaterThan(0)
  })

  it('after its reader reconnects, a consumer re-reads entries Redis recorded as delivered to it', async () => {
    const stream = nextStream()
    const t = await createRedisTransport<Events>({
      url: redis.url,
      stream,
      // Reconnect after a fixed pause, leaving room to play "the reply was lost".
      redisOptions: { retryStrategy: () => 300 },
    })
    open.push(t)
    const seen: string[] = []
    await t.consume({
      group: 'g',
      consumer: 'c1',
      blockMs: 200,
      handler: (e) => void seen.push(e.id),
    })
    const clients = String(await admin.call('CLIENT', 'LIST')).split('\n')
    const reader = clients.find((line) => line.includes('name=aide-event-bus:c1:reader'))
    const id = /id=(\d+)/.exec(reader ?? '')?.[1]
    expect(id).toMatch(/^\d+$/)
    await admin.call('CLIENT', 'KILL', 'ID', id!)
    // While the reader is away, deliver two entries to c1 whose reply "never arrives".
    await t.publish('job.created', { seq: 1 }, { id: 'lost-1' })
    await t.publish('job.created', { seq: 2 }, { id: 'lost-2' })
    await admin.call('XREADGROUP', 'GROUP', 'g', 'c1', 'COUNT', 10, 'STREAMS', stream, '>')
    // Reclaim would take 30 s (claimIdleMs default); the re-read after reconnect is immediate.
    await until(() => seen.length === 2, 10_000)
    expect(seen).toEqual(['lost-1', 'lost-2'])
    await until(async () => (await t.pending('g')) === 0)
  })

  it('a handler exceeding handlerTimeoutMs fails that delivery, which is retried and then dead-lettered', async () => {
    const t = await transport()
    const signals: AbortSignal[] = []
    const consumer = await t.consume({
      group: 'slow',
      blockMs: 100,
      handlerTimeoutMs: 100,
      claimIdleMs: 200,
      claimIntervalMs: 50,
      maxDeliveries: 1,
      handler: (_event, signal) => {
        signals.push(signal)
        return new Promise<void>(() => undefined)
      },
    })
    await t.publish('job.created', { seq: 1 })
    await until(async () => (await admin.xlen(t.deadLetterStream)) === 1, 10_000)
    await until(() => consumer.stats().deadLettered === 1)
    expect(signals).toHaveLength(1)
    expect(signals[0]!.aborted).toBe(true)
    expect(consumer.stats()).toMatchObject({ failed: 1, deadLettered: 1 })
    await expect(
      t.consume({
        group: 'slow',
        handler: () => undefined,
        handlerTimeoutMs: 500,
        claimIdleMs: 500,
      }),
    ).rejects.toMatchObject({ details: { field: 'consume: options.handlerTimeoutMs' } })
  })

  it('a consumer never hands out twice an entry it is still handling, while reclaim finds it idle', async () => {
    const t = await transport()
    const group = 'busy'
    /** The delivery count Redis keeps for an entry (every XAUTOCLAIM of it adds one). */
    const redisCount = async (entryId: string) => {
      const rows = (await admin.call('XPENDING', t.stream, group, entryId, entryId, 1)) as Array<
        [string, string, number, number]
      >
      return Number(rows[0]?.[3] ?? 0)
    }
    const calls: number[] = []
    const consumer = await t.consume({
      group,
      blockMs: 100,
      claimIdleMs: 100,
      claimIntervalMs: 20,
      handler: async (event) => {
        calls.push(event.deliveryCount)
        // Outlast claimIdleMs: run until reclaim has claimed this entry twice
        // (or, the bug this test is about, handed it out again meanwhile).
        await until(async () => calls.length > 1 || (await redisCount(event.entryId)) >= 3, 10_000)
      },
    })
    await t.publish('job.created', { seq: 1 }, { id: 'long-running' })
    await until(() => consumer.stats().acknowledged >= 1, 15_000)
    expect(calls).toEqual([1])
    expect(await t.pending(group)).toBe(0)
    expect(consumer.stats()).toMatchObject({
      received: 1,
      acknowledged: 1,
      failed: 0,
      reclaimed: 0,
    })
  })

  it('with no maxDeliveries option, a failing entry is dead-lettered after exactly 5 deliveries', async () => {
    const t = await transport()
    const counts: number[] = []
    const consumer = await t.consume({
      group: 'default-max',
      blockMs: 100,
      claimIdleMs: 100,
      claimIntervalMs: 50,
      handler: (event) => {
        counts.push(event.deliveryCount)
        throw new Error('always failing')
      },
    })
    await t.publish('job.created', { seq: 1 }, { id: 'doomed-by-default' })
    await until(async () => (await admin.xlen(t.deadLetterStream)) === 1, 15_000)
    expect(counts).toEqual([1, 2, 3, 4, 5])
    const [[, fields]] = (await admin.xrange(t.deadLetterStream, '-', '+')) as [[string, string[]]]
    expect(fields).toContain('doomed-by-default')
    expect(fields.join(' ')).toContain('delivered 6 times (max 5)')
    await until(() => consumer.stats().deadLettered === 1)
    expect(await t.pending('default-max')).toBe(0)
    expect(consumer.stats()).toMatchObject({ failed: 5, deadLettered: 1 })
  })

  it('maxLength: 0 turns trimming off', async () => {
    const t = await transport({ maxLength: 0 })
    for (let i = 0; i < 5; i++) {
      await t.publishBatch(
        Array.from({ length: 100 }, (_, j) => ({
          type: 'job.created' as const,
          payload: { seq: i * 100 + j },
        })),
      )
      await t.publish('job.created', { seq: -i })
    }
    expect(await admin.xlen(t.stream)).toBe(505)
  })

  it('a custom serializer carries payloads both ways', async () => {
    type Tagged = { tagged: { name: string; tags: Set<string> } }
    // Sets, which the default strict JSON refuses, travel as { $set: [...] }.
    const serializer: Serializer = {
      serialize: (value) =>
        `set-json:${JSON.stringify(value, (_key, v: unknown) => (v instanceof Set ? { $set: [...v] } : v))}`,
      deserialize: (text) => {
        if (!text.startsWith('set-json:')) throw new Error('not set-json')
        return JSON.parse(text.slice('set-json:'.length), (_key, v: unknown) =>
          v !== null && typeof v === 'object' && '$set' in v
            ? new Set((v as { $set: string[] }).$set)
            : v,
        )
      },
    }
    const t = await createRedisTransport<Tagged>({
      url: redis.url,
      stream: nextStream(),
      serializer,
    })
    open.push(t)
    const seen: Array<Tagged['tagged']> = []
    await t.consume({ group: 'g', blockMs: 100, handler: (event) => void seen.push(event.payload) })
    await t.publish('tagged', { name: 'one', tags: new Set(['a', 'b']) })
    await t.publishBatch([{ type: 'tagged', payload: { name: 'two', tags: new Set(['c']) } }])
    await until(async () => seen.length === 2 || (await admin.xlen(t.deadLetterStream)) > 0, 10_000)
    expect(seen).toEqual([
      { name: 'one', tags: new Set(['a', 'b']) },
      { name: 'two', tags: new Set(['c']) },
    ])
    expect(seen[0]!.tags).toBeInstanceOf(Set)
    const rows = (await admin.xrange(t.stream, '-', '+')) as Array<[string, string[]]>
    expect(rows.map(([, fields]) => fields[fields.indexOf('data') + 1])).toEqual([
      'set-json:{"name":"one","tags":{"$set":["a","b"]}}',
      'set-json:{"name":"two","tags":{"$set":["c"]}}',
    ])
  })

  it('consume and pending honour { signal, timeoutMs }: E_CANCELLED, and E_TIMEOUT with Redis frozen', async () => {
    const t = await transport()
    const handler = () => undefined
    await t.consume({ group: 'g', blockMs: 100, handler })
    await expect(t.pending('g', { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'E_CANCELLED',
    })
    await expect(
      t.consume({ group: 'never', handler }, { signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({ code: 'E_CANCELLED' })
    // Cancelled before anything was sent: the group was not created.
    await expect(t.pending('never')).rejects.toMatchObject({ code: 'E_NOT_FOUND' })
    redis.pause()
    try {
      const controller = new AbortController()
      const results = Promise.all(
        [
          t.pending('g', { signal: controller.signal }),
          t.consume({ group: 'cancelled', handler }, { signal: controller.signal }),
          t.pending('g', { timeoutMs: 200 }),
          t.consume({ group: 'timed-out', handler }, { timeoutMs: 200 }),
        ].map((call) =>
          call.then(
            () => 'resolved',
            (error: unknown) => (error as { code?: string }).code,
          ),
        ),
      )
      controller.abort()
      expect(await results).toEqual(['E_CANCELLED', 'E_CANCELLED', 'E_TIMEOUT', 'E_TIMEOUT'])
    } finally {
      redis.resume()
    }
    expect(t.stats().consumers).toHaveLength(1)
    await expect(t.pending('g', { timeoutMs: 5_000 })).resolves.toBe(0)
  })

  it('consume and pending reject with E_UNAVAILABLE when Redis cannot be reached (a client that does not reconnect)', async () => {
    // With the default options ioredis reconnects for ever and keeps commands
    // queued meanwhile, so a call to a Redis that went away after connecting
    // waits (E_TIMEOUT with timeoutMs); a client that gives up answers at once.
    const own = await startRedis()
    try {
      const t = await createRedisTransport<Events>({
        url: own.url,
        stream: nextStream(),
        redisOptions: { retryStrategy: () => null },
      })
      open.push(t)
      await t.consume({ group: 'g', blockMs: 100, handler: () => undefined })
      await own.kill()
      await expect(t.pending('g', { timeoutMs: 2_000 })).rejects.toMatchObject({
        code: 'E_UNAVAILABLE',
      })
      await expect(
        t.consume({ group: 'h', handler: () => undefined }, { timeoutMs: 2_000 }),
      ).rejects.toMatchObject({ code: 'E_UNAVAILABLE' })
    } finally {
      await own.stop()
    }
  })

  it('dispose stops consumers, is idempotent, and later calls fail with E_DISPOSED', async () => {
    const t = await transport()
    const consumer = await t.consume({ group: 'g', blockMs: 5_000, handler: () => undefined })
    const first = t.dispose()
    expect(t.dispose()).toBe(first)
    await first
    expect(consumer.stats().stopped).toBe(true)
    await expect(t.publish('job.created', { seq: 1 })).rejects.toMatchObject({ code: 'E_DISPOSED' })
  })

  it('a consumer stops when its signal aborts, leaving unacknowledged entries pending', async () => {
    const t = await transport()
    const controller = new AbortController()
    let started = false
    const consumer = await t.consume({
      group: 'abort',
      blockMs: 100,
      signal: controller.signal,
      handler: (_event, signal) =>
        new Promise<void>((_resolve, reject) => {
          started = true
          signal.addEventListener('abort', () => reject(signal.reason))
        }),
    })
    await t.publish('job.created', { seq: 1 })
    await until(() => started)
    controller.abort()
    await until(() => consumer.stats().stopped)
    await consumer.dispose()
    expect(await t.pending('abort')).toBe(1)
  })
})

describe('optional peer and serialisation internals', () => {
  it('reports a missing ioredis as E_UNAVAILABLE saying what to install', async () => {
    const error = await loadRedis(() =>
      Promise.reject(new Error("Cannot find package 'ioredis'")),
    ).catch((e) => e)
    expect(isAideError(error, 'E_UNAVAILABLE')).toBe(true)
    expect((error as Error).message).toContain('Install it')
    await expect(loadRedis(() => Promise.resolve({}))).rejects.toMatchObject({
      code: 'E_UNAVAILABLE',
    })
  })

  it('importing the package root does not load ioredis', () => {
    const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..')
    const script = [
      "const { createRequire } = await import('node:module')",
      "await import('./src/index.ts')",
      'const cache = createRequire(import.meta.url).cache',
      "console.log(Object.keys(cache).some((k) => k.includes('/ioredis/')) ? 'loaded' : 'clean')",
    ].join(';')
    const output = execFileSync(
      process.execPath,
      ['--conditions=@aide/source', '--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: packageDir, encoding: 'utf8' },
    )
    expect(output.trim()).toBe('clean')
  })

  it('accepts plain JSON data', () => {
    expect(() =>
      assertJsonSafe({ a: [1, 'x', null, true, { b: Object.create(null) }] }, 'payload'),
    ).not.toThrow()
  })
})

describe('redis transport dispose with Redis frozen or gone', () => {
  /** Resolves true if `promise` settles within 5 s. */
  const settles = (promise: Promise<unknown>) =>
    Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5_000)),
    ])

  for (const fault of ['paused', 'killed'] as const) {
    it(`settles with a consumer running and a publish queued, Redis ${fault}`, async () => {
      // ioredis keeps commands queued for a connection that may never come
      // back (the transport retries forever), QUIT is never answered by a
      // frozen server, and its disconnect() between reconnect attempts settles
      // nothing: dispose must not wait on any of that.
      const own = await startRedis()
      try {
        const t = await createRedisTransport<Events>({ url: own.url, stream: nextStream() })
        const consumer = await t.consume({ group: 'g', handler: () => undefined, blockMs: 100 })
        await t.publish('job.created', { seq: 1 })
        if (fault === 'paused') own.pause()
        else await own.kill()
        const late = t.publish('job.created', { seq: 2 }).catch((error: unknown) => error)
        await new Promise((resolve) => setTimeout(resolve, 300))
        expect(await settles(t.dispose())).toBe(true)
        expect(consumer.stats().stopped).toBe(true)
        expect(await settles(late)).toBe(true)
        expect(await late).toMatchObject({ code: 'E_DISPOSED' })
      } finally {
        own.resume()
        await own.stop()
      }
    }, 60_000)
  }
})
