/**
 * @aide/event-bus benchmarks. Compares, in one process and run:
 * - sync `emit` with 1, 3 and 10 listeners against eventemitter3, mitt, tseep and node:events;
 * - async `publish` (awaiting delivery) against emittery, also with a failing listener;
 * - `publishBatch` against single publishes;
 * - a publish with 1,000 wildcard patterns subscribed against an exact-match-only bus;
 * - the subscriber queue against p-queue;
 * - the Redis transport against a bare XADD / XREADGROUP / XACK loop on ioredis.
 *
 * Run: `pnpm --filter @aide/event-bus bench -- [--quick] [--json FILE] [--filter TEXT]`.
 */
import { EventEmitter as NodeEventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import Emittery from 'emittery'
import EventEmitter3 from 'eventemitter3'
import { Redis } from 'ioredis'
import mitt from 'mitt'
import PQueue from 'p-queue'
import { EventEmitter as Tseep } from 'tseep'
import { BenchReport, do_not_optimize, parseBenchArgs } from '../../../bench/harness.ts'
import { startRedis } from '../../../scripts/redis.mjs'
import { createEventBus } from '../src/index.ts'
import { createRedisTransport } from '../src/redis.ts'

const options = parseBenchArgs()
const report = new BenchReport('event-bus', options)

type Events = { 'document.opened': { uri: string }; tick: number }
const payload = { uri: 'file:///a.ts' }

/**
 * Times async operations in alternating rounds (subject, peer, peer, subject…)
 * with a warm-up, keeping each side's best round: on a shared machine the
 * best round is the least disturbed one. Records ops/s.
 */
async function compareLoop(
  caseName: string,
  subject: { name: string; fn: () => unknown },
  peer: { name: string; fn: () => unknown },
  opsPerRound: number,
  note?: string,
): Promise<void> {
  if (!report.wants(caseName)) return
  const rounds = options.quick ? 3 : 8
  const sides = [subject, peer]
  for (const side of sides) for (let i = 0; i < opsPerRound; i++) await side.fn()
  const best = [0, 0]
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? [0, 1] : [1, 0]
    for (const index of order) {
      const side = sides[index]!
      const start = performance.now()
      for (let i = 0; i < opsPerRound; i++) await side.fn()
      const opsPerSec = (opsPerRound / (performance.now() - start)) * 1000
      best[index] = Math.max(best[index]!, opsPerSec)
    }
  }
  report.add({
    case: caseName,
    subject: subject.name,
    peer: peer.name,
    metric: 'ops/s',
    subjectValue: best[0]!,
    peerValue: best[1]!,
    higherIsBetter: true,
    ...(note ? { note } : {}),
  })
}

/** Runs a sync function many times so the JIT has settled before mitata measures. */
function warm(fn: () => unknown, times = 200_000): void {
  for (let i = 0; i < times; i++) fn()
}

/** A fresh listener per registration, so no two emitters share one call site's type feedback. */
function makeListener(): (value: unknown) => void {
  let count = 0
  return (value: unknown) => {
    count++
    do_not_optimize(value)
    do_not_optimize(count)
  }
}

// ------------------------------------------------------------------ sync emit

for (const listeners of [1, 3, 10]) {
  const bus = createEventBus<Events>()
  const ee3 = new EventEmitter3()
  const emitter = mitt<Events>()
  const tseep = new Tseep<{ 'document.opened': (value: { uri: string }) => void }>()
  const node = new NodeEventEmitter()
  for (let i = 0; i < listeners; i++) {
    bus.on('document.opened', makeListener())
    ee3.on('document.opened', makeListener())
    emitter.on('document.opened', makeListener())
    tseep.on('document.opened', makeListener())
    node.on('document.opened', makeListener())
  }
  const subject = { name: '@aide/event-bus emit', fn: () => bus.emit('document.opened', payload) }
  warm(subject.fn)
  warm(() => ee3.emit('document.opened', payload))
  warm(() => emitter.emit('document.opened', payload))
  warm(() => tseep.emit('document.opened', payload))
  warm(() => node.emit('document.opened', payload))
  const note = `${listeners} listener${listeners === 1 ? '' : 's'}`
  await report.compareOps(
    `emit-${listeners}`,
    subject,
    { name: 'eventemitter3', fn: () => ee3.emit('document.opened', payload) },
    note,
  )
  await report.compareOps(
    `emit-${listeners}`,
    subject,
    { name: 'mitt', fn: () => emitter.emit('document.opened', payload) },
    note,
  )
  await report.compareOps(
    `emit-${listeners}`,
    subject,
    { name: 'tseep', fn: () => tseep.emit('document.opened', payload) },
    `${note}; tseep compiles emitters with new Function`,
  )
  await report.compareOps(
    `emit-${listeners}`,
    subject,
    { name: 'node:events', fn: () => node.emit('document.opened', payload) },
    note,
  )
}

// -------------------------------------------------------------- async publish

{
  const bus = createEventBus<Events>()
  const emittery = new Emittery<Events>()
  for (let i = 0; i < 3; i++) {
    const a = makeListener()
    const b = makeListener()
    bus.on('document.opened', async (value) => a(value))
    emittery.on('document.opened', async (event) => b(event))
  }
  await compareLoop(
    'async-publish-3',
    {
      name: '@aide/event-bus publish(awaitDelivery)',
      fn: () => bus.publish('document.opened', payload, { awaitDelivery: true }),
    },
    { name: 'emittery emit', fn: () => emittery.emit('document.opened', payload) },
    20_000,
    '3 async listeners, resolves after all settle',
  )
}

{
  // One listener of three fails every time: the bus reports every failure on its
  // error channel; emittery rejects the emit with the first error.
  const bus = createEventBus<Events>({ deadLetterCapacity: 100 })
  const emittery = new Emittery<Events>()
  let busErrors = 0
  let emitteryErrors = 0
  bus.onError(() => {
    busErrors++
  })
  for (let i = 0; i < 2; i++) {
    const a = makeListener()
    const b = makeListener()
    bus.on('document.opened', async (value) => a(value))
    emittery.on('document.opened', async (event) => b(event))
  }
  bus.on('document.opened', async () => {
    throw new Error('listener failed')
  })
  emittery.on('document.opened', async () => {
    throw new Error('listener failed')
  })
  await compareLoop(
    'async-publish-failing-listener',
    {
      name: '@aide/event-bus publish(awaitDelivery)',
      fn: () => bus.publish('document.opened', payload, { awaitDelivery: true }),
    },
    {
      name: 'emittery emit (caught)',
      fn: () =>
        emittery.emit('document.opened', payload).catch(() => {
          emitteryErrors++
        }),
    },
    20_000,
    '3 async listeners, 1 always throws; bus: every failure on its error channel, emittery: first error only',
  )
  console.log(
    `  errors seen: bus error channel ${busErrors}, emittery rejections ${emitteryErrors}`,
  )
}

// ------------------------------------------------------------ batch vs single

{
  const size = 100
  const bus = createEventBus<Events>()
  for (let i = 0; i < 3; i++) bus.on('tick', makeListener(), { queueSize: 10_000 })
  const batch = Array.from({ length: size }, (_, i) => ({ type: 'tick' as const, payload: i }))
  await compareLoop(
    'publish-batch-vs-single',
    {
      name: '@aide/event-bus publishBatch',
      fn: async () => {
        await bus.publishBatch(batch)
        await bus.drain()
      },
    },
    {
      name: '@aide/event-bus publish x100',
      fn: async () => {
        for (let i = 0; i < size; i++) await bus.publish('tick', i)
        await bus.drain()
      },
    },
    500,
    `${size} events to 3 subscribers per op; each single publish awaited; target ratio >= 3`,
  )
}

// ------------------------------------------------------- wildcard vs exact

{
  const wildcardBus = createEventBus<Events>()
  const exactBus = createEventBus<Events>()
  for (let i = 0; i < 999; i++)
    wildcardBus.on(`service${i}.*.done` as `${string}*${string}`, makeListener())
  wildcardBus.on('document.*', makeListener())
  exactBus.on('document.opened', makeListener())
  await compareLoop(
    'publish-1000-wildcards-vs-exact',
    {
      name: '@aide/event-bus 1,000 wildcard patterns',
      fn: () => wildcardBus.publish('document.opened', payload),
    },
    { name: '@aide/event-bus exact match', fn: () => exactBus.publish('document.opened', payload) },
    50_000,
    'target: ratio >= 0.5 (wildcard publish <= 2x exact); routes are cached per type',
  )
  await report.compareOps(
    'emit-1000-wildcards-vs-exact',
    {
      name: '@aide/event-bus 1,000 wildcard patterns',
      fn: () => wildcardBus.emit('document.opened', payload),
    },
    { name: '@aide/event-bus exact match', fn: () => exactBus.emit('document.opened', payload) },
  )
  // Cold route: the cache is emptied by a subscription change before every emit.
  const churn = makeListener()
  await report.compareOps(
    'emit-1000-wildcards-cold-route',
    {
      name: '@aide/event-bus 1,000 wildcard patterns, uncached',
      fn: () => {
        wildcardBus.on('cold.*', churn).dispose()
        wildcardBus.emit('document.opened', payload)
      },
    },
    {
      name: '@aide/event-bus exact match, uncached',
      fn: () => {
        exactBus.on('cold.*', churn).dispose()
        exactBus.emit('document.opened', payload)
      },
    },
    'worst case: every emit re-matches all patterns',
  )
}

// ------------------------------------------------- subscriber queue vs p-queue

{
  const size = 100
  const bus = createEventBus<Events>()
  const handler = makeListener()
  bus.on('tick', async (n) => handler(n), { queueSize: 10_000 })
  const queue = new PQueue({ concurrency: 1 })
  const batch = Array.from({ length: size }, (_, i) => ({ type: 'tick' as const, payload: i }))
  await compareLoop(
    'queued-delivery-vs-p-queue',
    {
      name: '@aide/event-bus subscriber queue',
      fn: async () => {
        await bus.publishBatch(batch)
        await bus.drain()
      },
    },
    {
      name: 'p-queue (concurrency 1)',
      fn: async () => {
        for (let i = 0; i < size; i++) void queue.add(async () => handler(i))
        await queue.onIdle()
      },
    },
    500,
    `${size} async deliveries in order, concurrency 1`,
  )
}

// ------------------------------------------------------------------- Redis

if (report.wants('redis')) {
  const redis = await startRedis()
  try {
    const total = options.quick ? 2_000 : 10_000
    const chunk = 100
    const runs = options.quick ? 2 : 4

    const transportRun = async (stream: string): Promise<number> => {
      const transport = await createRedisTransport<Events>({ url: redis.url, stream, maxLength: 0 })
      let received = 0
      let resolveDone!: () => void
      const done = new Promise<void>((resolve) => {
        resolveDone = resolve
      })
      await transport.consume({
        group: 'bench',
        batchSize: chunk,
        blockMs: 100,
        handler: () => {
          if (++received === total) resolveDone()
        },
      })
      const start = performance.now()
      for (let i = 0; i < total; i += chunk) {
        await transport.publishBatch(
          Array.from({ length: chunk }, (_, j) => ({ type: 'tick' as const, payload: i + j })),
        )
      }
      await done
      const elapsed = performance.now() - start
      await transport.dispose()
      return (total / elapsed) * 1000
    }

    const bareRun = async (stream: string): Promise<number> => {
      const client = new Redis(redis.url)
      const reader = new Redis(redis.url)
      await client.call('XGROUP', 'CREATE', stream, 'bench', '0', 'MKSTREAM')
      let received = 0
      const consume = (async () => {
        while (received < total) {
          const reply = (await reader.call(
            'XREADGROUP',
            'GROUP',
            'bench',
            'c',
            'COUNT',
            chunk,
            'BLOCK',
            100,
            'STREAMS',
            stream,
            '>',
          )) as [string, Array<[string, string[]]>] | null
          const entries = reply?.[1] ?? []
          const ids: string[] = []
          for (const [id, fields] of entries) {
            do_not_optimize(JSON.parse(fields[fields.indexOf('data') + 1]!))
            ids.push(id)
          }
          if (ids.length > 0) await client.call('XACK', stream, 'bench', ...ids)
          received += ids.length
        }
      })()
      const start = performance.now()
      for (let i = 0; i < total; i += chunk) {
        const pipeline = client.pipeline()
        for (let j = 0; j < chunk; j++)
          pipeline.call('XADD', stream, '*', 'type', 'tick', 'data', JSON.stringify(i + j))
        await pipeline.exec()
      }
      await consume
      const elapsed = performance.now() - start
      client.disconnect()
      reader.disconnect()
      return (total / elapsed) * 1000
    }

    let subject = 0
    let peer = 0
    // Alternate the order each run so neither side always goes first.
    for (let run = 0; run < runs; run++) {
      if (run % 2 === 0) {
        subject = Math.max(subject, await transportRun(`bench:transport:${run}`))
        peer = Math.max(peer, await bareRun(`bench:bare:${run}`))
      } else {
        peer = Math.max(peer, await bareRun(`bench:bare:${run}`))
        subject = Math.max(subject, await transportRun(`bench:transport:${run}`))
      }
    }
    report.add({
      case: 'redis-transport-throughput',
      subject: '@aide/event-bus/redis',
      peer: 'bare XADD/XREADGROUP/XACK (ioredis)',
      metric: 'events/s',
      subjectValue: subject,
      peerValue: peer,
      higherIsBetter: true,
      note: `${total} events, batches of ${chunk}, publish to ack, best of ${runs}; the bare loop writes 2 fields, the transport 4 (id, type, data, ts) and validates payloads`,
    })
  } finally {
    await redis.stop()
  }
}

report.summary()
