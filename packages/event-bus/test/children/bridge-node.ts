// A process with its own bus, bridged to Redis as node NODE. Prints every
// `document.*` event its local bus receives (`got <seq> <from>`), and obeys
// commands on stdin:
//   emit <from> <to> <intervalMs>  emits document.saved { seq, from: NODE } for each seq
//   stats                          prints the bridge stats as JSON
//   exit                           disposes everything and exits 0
import { createInterface } from 'node:readline'
import { bridge, createEventBus } from '../../src/index.ts'
import { createRedisTransport } from '../../src/redis.ts'

type Events = { 'document.saved': { seq: number; from: string } }
const env = process.env
const node = env.NODE!
const bus = createEventBus<Events>()
bus.on('document.*', (payload) => {
  process.stdout.write(`got ${payload.seq} ${payload.from}\n`)
})
bus.onError((letter) => process.stdout.write(`error ${letter.error.message}\n`))
const transport = await createRedisTransport<Events>({ url: env.REDIS_URL!, stream: env.STREAM! })
const link = await bridge(bus, transport, {
  node,
  types: ['document.*'],
  publishTimeoutMs: 1_000,
  consume: { blockMs: 200, claimIdleMs: 1_000, claimIntervalMs: 200 },
})
process.stdout.write('ready\n')

const lines = createInterface({ input: process.stdin })
for await (const line of lines) {
  const [command, ...args] = line.trim().split(' ')
  if (command === 'emit') {
    const [from, to, intervalMs] = args.map(Number) as [number, number, number]
    for (let seq = from; seq <= to; seq++) {
      bus.emit('document.saved', { seq, from: node })
      if (intervalMs > 0) await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
    await link.flush()
    process.stdout.write(`emitted ${to}\n`)
  } else if (command === 'stats') {
    process.stdout.write(`stats ${JSON.stringify(link.stats())}\n`)
  } else if (command === 'exit') {
    await link.dispose()
    await transport.dispose()
    await bus.dispose()
    process.stdout.write('bye\n')
    process.exit(0)
  }
}
