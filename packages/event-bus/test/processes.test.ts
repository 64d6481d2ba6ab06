/**
 * Multi-process tests against real redis-servers: child processes publish and
 * consume (`node --conditions=@aide/source --import tsx test/children/*.ts`).
 */
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type RedisServer, startRedis } from '../../../scripts/redis.mjs'
import { createRedisTransport, type RedisTransport } from '../src/redis.js'
import { type Child, spawnChild, until } from './helpers.js'

type Events = { 'job.created': { seq: number } }

const children: Child[] = []
const transports: Array<RedisTransport<Events>> = []

function child(script: string, env: Record<string, string>): Child {
  const spawned = spawnChild(script, env)
  children.push(spawned)
  return spawned
}

async function transport(url: string, stream: string): Promise<RedisTransport<Events>> {
  const created = await createRedisTransport<Events>({ url, stream })
  transports.push(created)
  return created
}

function range(count: number): number[] {
  return Array.from({ length: count }, (_, i) => i + 1)
}

afterEach(async () => {
  await Promise.allSettled(children.splice(0).map((c) => c.kill('SIGKILL')))
  await Promise.allSettled(transports.splice(0).map((t) => t.dispose()))
})

describe('across processes', () => {
  let redis: RedisServer
  let admin: Redis

  beforeAll(async () => {
    redis = await startRedis()
    admin = new Redis(redis.url)
  })

  afterAll(async () => {
    admin.disconnect()
    await redis.stop()
  })

  it('a publisher process and a consumer process exchange events (and this process receives them too)', async () => {
    const stream = 'exchange'
    const count = 200
    const local = await transport(redis.url, stream)
    const received = new Map<number, string>()
    await local.consume({
      group: 'observer',
      blockMs: 200,
      handler: (event) => {
        received.set(event.payload.seq, event.id)
      },
    })
    // The consumer process's group exists before anything is published.
    await admin.call('XGROUP', 'CREATE', stream, 'workers', '0', 'MKSTREAM').catch(() => undefined)
    const consumer = child('consumer.ts', {
      REDIS_URL: redis.url,
      STREAM: stream,
      GROUP: 'workers',
      CONSUMER: 'c1',
    })
    await until(() => consumer.lines.includes('ready'), 20_000)
    const publisher = child('publisher.ts', {
      REDIS_URL: redis.url,
      STREAM: stream,
      COUNT: String(count),
    })
    await until(() => publisher.lines.some((l) => l.startsWith('done')), 30_000)
    await until(async () => (await admin.hlen(`${stream}:handled`)) === count, 20_000)
    await until(() => received.size === count, 20_000)
    expect([...received.keys()].sort((a, b) => a - b)).toEqual(range(count))
    expect(received.get(7)).toBe('job-7')
    const handled = await admin.hgetall(`${stream}:handled`)
    expect(
      Object.keys(handled)
        .map(Number)
        .sort((a, b) => a - b),
    ).toEqual(range(count))
    await until(async () => (await local.pending('workers')) === 0)
    expect(await publisher.exited).toBe(0)
  }, 60_000)

  it('a consumer killed mid-stream (SIGKILL) loses nothing: a survivor reclaims its pending entries', async () => {
    const stream = 'kill'
    const count = 300
    const group = 'workers'
    const local = await transport(redis.url, stream)
    await admin.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
    await local.publishBatch(
      range(count).map((seq) => ({
        type: 'job.created' as const,
        payload: { seq },
        id: `job-${seq}`,
      })),
    )
    // The victim handles slowly and acknowledges per batch of 10, so it always holds unacknowledged entries.
    const victim = child('consumer.ts', {
      REDIS_URL: redis.url,
      STREAM: stream,
      GROUP: group,
      CONSUMER: 'victim',
      DELAY_MS: '25',
      BATCH_SIZE: '10',
    })
    await until(() => victim.lines.filter((l) => l.startsWith('handled')).length >= 5, 20_000)
    await victim.kill('SIGKILL')
    const victimPending = await admin.call('XPENDING', stream, group, '-', '+', 100, 'victim')
    expect((victimPending as unknown[]).length).toBeGreaterThan(0)

    const survivorSeen = new Map<number, number>()
    const survivor = await local.consume({
      group,
      consumer: 'survivor',
      blockMs: 200,
      batchSize: 25,
      claimIdleMs: 500,
      claimIntervalMs: 200,
      handler: (event) => {
        survivorSeen.set(event.payload.seq, (survivorSeen.get(event.payload.seq) ?? 0) + 1)
      },
    })
    const handledBy = async () => {
      const victimHandled = Object.keys(await admin.hgetall(`${stream}:handled`)).map(Number)
      return new Set([...victimHandled, ...survivorSeen.keys()])
    }
    await until(async () => (await handledBy()).size === count, 30_000)
    expect([...(await handledBy())].sort((a, b) => a - b)).toEqual(range(count))
    // The victim's unacknowledged entries can only have been taken over by a reclaim.
    await until(async () => (await local.pending(group)) === 0, 10_000)
    expect(survivor.stats().reclaimed).toBeGreaterThan(0)
  }, 60_000)
})

describe('Redis restart', () => {
  let redis: RedisServer

  beforeAll(async () => {
    // Append-only file synced on every write, so a restart keeps the stream and the group.
    redis = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] })
  })

  afterAll(async () => {
    await redis.stop()
  })

  it('delivery resumes after Redis restarts during publishing, with every event received', async () => {
    const stream = 'restart'
    const count = 300
    const local = await transport(redis.url, stream)
    const received = new Set<string>()
    const consumer = await local.consume({
      group: 'restart',
      blockMs: 200,
      handler: (event) => {
        received.add(event.id)
      },
    })
    const publisher = child('publisher.ts', {
      REDIS_URL: redis.url,
      STREAM: stream,
      COUNT: String(count),
      INTERVAL_MS: '10',
    })
    await until(() => received.size >= 50, 30_000)
    const pidBefore = redis.pid
    await redis.restart()
    expect(redis.pid).not.toBe(pidBefore)
    const afterRestart = received.size
    await until(() => publisher.lines.some((l) => l.startsWith('done')), 45_000)
    await until(() => received.size === count, 30_000)
    expect(afterRestart).toBeLessThan(count)
    expect([...received].sort()).toEqual(
      range(count)
        .map((seq) => `job-${seq}`)
        .sort(),
    )
    // ioredis reconnects and re-sends the interrupted blocking read, so the
    // consumer needs no restart of its own; it is still the same running consumer.
    expect(consumer.stats()).toMatchObject({ stopped: false, received: expect.any(Number) })
    expect(consumer.stats().received).toBeGreaterThanOrEqual(count)
  }, 90_000)
})

describe('bridge across processes', () => {
  let redis: RedisServer
  let admin: Redis

  beforeAll(async () => {
    // Append-only file synced on every write, so a restart keeps the stream and the groups.
    redis = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] })
    admin = new Redis(redis.url, { maxRetriesPerRequest: null })
    admin.on('error', () => undefined)
  })

  afterAll(async () => {
    admin.disconnect()
    await redis.stop()
  })

  function node(name: string, stream: string): Child {
    const spawned = spawnChild(
      'bridge-node.ts',
      { REDIS_URL: redis.url, STREAM: stream, NODE: name },
      { stdin: true },
    )
    children.push(spawned)
    return spawned
  }

  /** The seqs a node's local bus received, with how many times each. */
  function received(child: Child): Map<number, number> {
    const counts = new Map<number, number>()
    for (const line of child.lines) {
      const match = /^got (\d+) /.exec(line)
      if (match) counts.set(Number(match[1]), (counts.get(Number(match[1])) ?? 0) + 1)
    }
    return counts
  }

  async function stats(child: Child): Promise<Record<string, number>> {
    const before = child.lines.length
    child.send('stats')
    await until(() => child.lines.slice(before).some((l) => l.startsWith('stats ')))
    const line = child.lines.slice(before).find((l) => l.startsWith('stats '))!
    return JSON.parse(line.slice('stats '.length))
  }

  it('events emitted on one process bus reach the other process bus exactly once each way, with no echo', async () => {
    const stream = 'bridge:exchange'
    const a = node('a', stream)
    const b = node('b', stream)
    await until(() => a.lines.includes('ready') && b.lines.includes('ready'), 20_000)
    a.send('emit 1 100 0')
    b.send('emit 101 150 0')
    await until(() => received(a).size === 150 && received(b).size === 150, 30_000)
    const all = range(150)
    for (const child of [a, b]) {
      const counts = received(child)
      expect([...counts.keys()].sort((x, y) => x - y)).toEqual(all)
      // Exactly once: an own event is not echoed back, a remote one not delivered twice.
      expect([...counts.values()].every((times) => times === 1)).toBe(true)
      expect(child.lines.filter((l) => l.startsWith('error'))).toEqual([])
    }
    // One stream entry per local event: nothing was forwarded back out.
    expect(await admin.xlen(stream)).toBe(150)
    // Reading its own 100 events back from the stream (to skip them) may still be under way.
    let statsA = await stats(a)
    await until(async () => {
      statsA = await stats(a)
      return statsA.skippedOwn === 100
    }, 30_000)
    expect(statsA).toMatchObject({ forwarded: 100, received: 50, skippedOwn: 100 })
    // Everything each node received was acknowledged in its group.
    const pendingOf = async (group: string) =>
      Number(((await admin.call('XPENDING', stream, group)) as [number])[0])
    await until(
      async () => (await pendingOf('aide-bridge:a')) + (await pendingOf('aide-bridge:b')) === 0,
    )
    a.send('exit')
    b.send('exit')
    expect(await a.exited).toBe(0)
    expect(await b.exited).toBe(0)
  }, 60_000)

  it('Redis down and restarted while a process emits: the other process still gets every event exactly once', async () => {
    const stream = 'bridge:outage'
    const count = 200
    const a = node('a2', stream)
    const b = node('b2', stream)
    await until(() => a.lines.includes('ready') && b.lines.includes('ready'), 20_000)
    a.send(`emit 1 ${count} 10`)
    await until(() => received(b).size >= 40, 30_000)
    await redis.kill('SIGKILL')
    // Down for a while: the emitting bridge keeps its events and retries.
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    const duringOutage = received(b).size
    await redis.restart()
    await until(() => a.lines.some((l) => l === `emitted ${count}`), 60_000)
    await until(() => received(b).size === count, 60_000)
    expect(duringOutage).toBeLessThan(count)
    const counts = received(b)
    expect([...counts.keys()].sort((x, y) => x - y)).toEqual(range(count))
    expect([...counts.values()].every((times) => times === 1)).toBe(true)
    // The local bus of the emitting process saw each of its own events once.
    expect([...received(a).values()].every((times) => times === 1)).toBe(true)
    expect(received(a).size).toBe(count)
    expect((await stats(a)).retries).toBeGreaterThan(0)
  }, 120_000)
})
