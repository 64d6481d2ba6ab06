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
 * after a warm-up, and records the median ops/s of each side over the rounds.
 * Rounds are timed in process CPU time (see {@link cpuMs}): these loops are
 * CPU-bound (no I/O), so time spent descheduled does not count.
 */
async function compareLoop(
  caseName: string,
  subject: { name: string; fn: () => unknown },
  peer: { name: string; fn: () => unknown },
  opsPerRound: number,
  note?: string,
): Promise<void> {
  if (!report.wants(caseName)) return
  const rounds = options.quick ? 5 : 15
  const sides = [subject, peer]
  for (const side of sides) for (let i = 0; i < opsPerRound; i++) await side.fn()
  const samples: number[][] = [[], []]
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? [0, 1] : [1, 0]
    for (const index of order) {
      const side = sides[index]!
      const start = cpuMs()
      for (let i = 0; i < opsPerRound; i++) await side.fn()
      samples[index]!.push((opsPerRound / (cpuMs() - start)) * 1000)
    }
  }
  report.add({
    case: caseName,
    subject: subject.name,
    peer: peer.name,
    metric: 'ops/s',
    subjectValue: median(samples[0]!),
    peerValue: median(samples[1]!),
    higherIsBetter: true,
    note: `${note ? `${note}; ` : ''}medians of ${rounds} alternating rounds`,
  })
}

/** A fresh listener per registration, with the same body for every library. */
function makeListener(): (value: unknown) => void {
  let count = 0
  return (value: unknown) => {
    count++
    do_not_optimize(value)
    do_not_optimize(count)
  }
}

/**
 * One side of a synchronous comparison: `target` is called as `call` (a JS
 * expression over `t`, the target, and `p`, the payload) inside a timing loop.
 */
interface SyncSide {
  name: string
  target: unknown
  payload: unknown
  call: string
}

type Runner = (t: unknown, p: unknown, n: number) => number

let runnerSerial = 0

/**
 * Compiles a timing loop for one side. Every side of every case gets its own
 * function (a unique source, so V8 shares neither bytecode nor type feedback
 * between them): one library's call site can never turn another's
 * megamorphic, and the order of cases does not leak into the figures.
 * `new Function` is used here, in the benchmark, only; the bus never does.
 */
function compileRunner(side: SyncSide): Runner {
  const id = ++runnerSerial
  return new Function(
    't',
    'p',
    'n',
    `// runner ${id}: ${side.name.replace(/[^\w@/ .:-]/g, '')}\nlet i = 0\nfor (; i < n; i++) ${side.call}\nreturn i`,
  ) as Runner
}

interface SyncCase {
  name: string
  note: string
  sides: SyncSide[]
  runners: Runner[]
  /** Iterations per round of each side, calibrated so a round takes about `roundMs`. */
  iterations: number[]
}

const syncCases: SyncCase[] = []

/** Registers a synchronous case; measured later by {@link measureSyncCases}. */
function syncCase(name: string, note: string, sides: SyncSide[]): void {
  if (!report.wants(name)) return
  syncCases.push({ name, note, sides, runners: sides.map(compileRunner), iterations: [] })
}

/**
 * CPU time of this process in ms (user + system). The synchronous cases time
 * rounds with it rather than the wall clock: on a shared 2-core machine the
 * process is often descheduled for other work, which the wall clock would
 * charge to whichever library happened to be running.
 */
function cpuMs(): number {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/**
 * Measures every registered case: first every runner of every case is warmed
 * (so each library's own code reaches the same JIT state whatever the case
 * order), then each case runs alternating rounds (the starting side rotates,
 * and the direction flips every round) and records the median ops/s of each
 * side over the rounds. The bus keeps its stats and error capture on.
 */
function measureSyncCases(): void {
  // Short rounds, many of them: each side's median then sees the same mix of
  // quiet and disturbed moments of a shared machine.
  const roundMs = options.quick ? 4 : 8
  const rounds = options.quick ? 21 : 51
  for (const c of syncCases) {
    for (let s = 0; s < c.sides.length; s++) {
      const side = c.sides[s]!
      const run = c.runners[s]!
      // Warm-up, then calibrate: grow n until one call of the loop takes a measurable time.
      run(side.target, side.payload, 50_000)
      let n = 1_000
      for (;;) {
        const start = cpuMs()
        run(side.target, side.payload, n)
        const elapsed = cpuMs() - start
        if (elapsed >= roundMs / 4) {
          c.iterations[s] = Math.max(1, Math.round((n * roundMs) / elapsed))
          break
        }
        n *= 2
      }
    }
  }
  for (const c of syncCases) {
    const count = c.sides.length
    const samples: number[][] = c.sides.map(() => [])
    const roundRatios: number[][] = c.sides.map(() => [])
    for (let round = 0; round < rounds; round++) {
      const perRound: number[] = new Array(count)
      for (let k = 0; k < count; k++) {
        const offset = (round + k) % count
        const s = round % 2 === 0 ? offset : count - 1 - offset
        const side = c.sides[s]!
        const n = c.iterations[s]!
        const start = cpuMs()
        c.runners[s]!(side.target, side.payload, n)
        const opsPerSec = (n / (cpuMs() - start)) * 1000
        samples[s]!.push(opsPerSec)
        perRound[s] = opsPerSec
      }
      for (let s = 1; s < count; s++) roundRatios[s]!.push(perRound[0]! / perRound[s]!)
    }
    const subject = median(samples[0]!)
    for (let s = 1; s < count; s++) {
      const ratios = [...roundRatios[s]!].sort((a, b) => a - b)
      const q = (f: number) => ratios[Math.min(ratios.length - 1, Math.floor(f * ratios.length))]!
      // The ratio column is median/median; the note adds the median of the
      // per-round (paired) ratios, which is less sensitive to load from other
      // processes, and its interquartile range.
      report.add({
        case: c.name,
        subject: c.sides[0]!.name,
        peer: c.sides[s]!.name,
        metric: 'ops/s',
        subjectValue: subject,
        peerValue: median(samples[s]!),
        higherIsBetter: true,
        note: `${c.note}; medians of ${rounds} alternating rounds; paired per-round ratio median ${q(0.5).toFixed(2)}, p25-p75 ${q(0.25).toFixed(2)}-${q(0.75).toFixed(2)}`,
      })
    }
  }
}

// ------------------------------------------------------------------ sync emit

// Every library is called the same way, `t.emit('document.opened', p)`, and
// every listener has the same body. The bus runs as configured by default:
// per-type and per-subscriber stats and listener error capture stay on.
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
  const call = `t.emit('document.opened', p)`
  syncCase(
    `emit-${listeners}`,
    `${listeners} listener${listeners === 1 ? '' : 's'}; tseep compiles its emitters with new Function`,
    [
      { name: '@aide/event-bus emit', target: bus, payload, call },
      { name: 'eventemitter3', target: ee3, payload, call },
      { name: 'mitt', target: emitter, payload, call },
      { name: 'tseep', target: tseep, payload, call },
      { name: 'node:events', target: node, payload, call },
    ],
  )
}

{
  const wildcardBus = createEventBus<Events>()
  const exactBus = createEventBus<Events>()
  for (let i = 0; i < 999; i++)
    wildcardBus.on(`service${i}.*.done` as `${string}*${string}`, makeListener())
  wildcardBus.on('document.*', makeListener())
  exactBus.on('document.opened', makeListener())
  const call = `t.emit('document.opened', p)`
  syncCase('emit-1000-wildcards-vs-exact', 'cached route', [
    { name: '@aide/event-bus 1,000 wildcard patterns', target: wildcardBus, payload, call },
    { name: '@aide/event-bus exact match', target: exactBus, payload, call },
  ])
  // Cold route: a subscription change empties the route cache before every emit.
  const churn = makeListener()
  const cold = `{ t.on('cold.*', p.churn).dispose(); t.emit('document.opened', p.payload) }`
  syncCase('emit-1000-wildcards-cold-route', 'worst case: every emit re-matches all patterns', [
    {
      name: '@aide/event-bus 1,000 wildcard patterns, uncached',
      target: wildcardBus,
      payload: { churn, payload },
      call: cold,
    },
    {
      name: '@aide/event-bus exact match, uncached',
      target: exactBus,
      payload: { churn, payload },
      call: cold,
    },
  ])
}

measureSyncCases()

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
