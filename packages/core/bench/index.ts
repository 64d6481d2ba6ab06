/**
 * @aide/core benchmarks: the lazy service manager against inversify 8 and
 * awilix on the same 100-service graph.
 *
 *   pnpm --filter @aide/core bench -- [--json out.jsonl] [--quick]
 */
import { asFunction, createContainer, InjectionMode } from 'awilix'
import { Container } from 'inversify'
import { BenchReport, do_not_optimize, time } from '../../../bench/harness.ts'
import { defineService, type ServiceId, ServiceManager } from '../src/index.ts'

const SIZE = 100

/** Service i depends on i-1, floor(i/2) and floor(i/3) (deduplicated, lower indices only). */
function depsOf(i: number): number[] {
  if (i === 0) return []
  return [...new Set([i - 1, Math.floor(i / 2), Math.floor(i / 3)])].filter((d) => d < i)
}
const graph = Array.from({ length: SIZE }, (_, i) => depsOf(i))
const names = graph.map((_, i) => `service${i}`)
const ids: ServiceId<{ id: number; sum: number }>[] = names.map((n) => defineService(n))
const make = (i: number, deps: Array<{ sum: number }>) => ({
  id: i,
  sum: deps.reduce((s, d) => s + d.sum, 1),
})

function buildAide(): ServiceManager {
  const manager = new ServiceManager()
  graph.forEach((deps, i) => {
    manager.register(ids[i]!, {
      deps: deps.map((d) => ids[d]!),
      factory: (values) => make(i, values),
    })
  })
  return manager
}

function buildInversify(): Container {
  const container = new Container()
  graph.forEach((deps, i) => {
    container
      .bind(names[i]!)
      .toDynamicValue((context) =>
        make(
          i,
          deps.map((d) => context.get<{ sum: number }>(names[d]!)),
        ),
      )
      .inSingletonScope()
  })
  return container
}

function buildAwilix() {
  const container = createContainer({ injectionMode: InjectionMode.PROXY, strict: true })
  graph.forEach((deps, i) => {
    container.register(
      names[i]!,
      asFunction((cradle: Record<string, { sum: number }>) =>
        make(
          i,
          deps.map((d) => cradle[names[d]!]!),
        ),
      ).singleton(),
    )
  })
  return container
}

const report = new BenchReport('core')
const last = SIZE - 1
const middle = names[50]!

// Warm get: everything already built; fetch one service repeatedly.
const aide = buildAide()
await aide.get(ids[last]!)
const inversify = buildInversify()
inversify.get(names[last]!)
const awilix = buildAwilix()
awilix.resolve(names[last]!)
if (aide.getSync(ids[last]!).sum !== (inversify.get(names[last]!) as { sum: number }).sum) {
  throw new Error('graphs disagree')
}

await report.compareOps(
  'warm get (async)',
  { name: '@aide/core get', fn: () => aide.get(ids[50]!) },
  { name: 'inversify getAsync', fn: () => inversify.getAsync(middle) },
)
await report.compareOps(
  'warm get (sync)',
  { name: '@aide/core getSync', fn: () => do_not_optimize(aide.getSync(ids[50]!)) },
  { name: 'inversify get', fn: () => do_not_optimize(inversify.get(middle)) },
)
await report.compareOps(
  'warm get (sync) vs awilix',
  { name: '@aide/core getSync', fn: () => do_not_optimize(aide.getSync(ids[50]!)) },
  { name: 'awilix resolve', fn: () => do_not_optimize(awilix.resolve(middle)) },
)

// Cold build: a new container, 100 registrations, resolve the service that needs them all.
await report.compareOps(
  'cold build of 100 services',
  {
    name: '@aide/core',
    fn: async () => {
      const manager = buildAide()
      do_not_optimize(await manager.get(ids[last]!))
    },
  },
  { name: 'awilix', fn: () => do_not_optimize(buildAwilix().resolve(names[last]!)) },
)
await report.compareOps(
  'cold build of 100 services vs inversify',
  {
    name: '@aide/core',
    fn: async () => {
      const manager = buildAide()
      do_not_optimize(await manager.get(ids[last]!))
    },
  },
  { name: 'inversify', fn: () => do_not_optimize(buildInversify().get(names[last]!)) },
)

// 1,000 lazy registrations: nothing may be created.
const thousand = Array.from({ length: 1000 }, (_, i) => defineService<number>(`lazy${i}`))
let created = 0
const registerThousand = () => {
  const manager = new ServiceManager()
  for (const id of thousand) {
    manager.register(id, {
      factory: () => {
        created++
        return 1
      },
    })
  }
  return manager
}
const registerAwilix = () => {
  const container = createContainer({ injectionMode: InjectionMode.PROXY })
  for (const id of thousand) container.register(id.name, asFunction(() => 1).singleton())
  return container
}
if (report.wants('1,000 lazy registrations')) {
  const ours = await time(registerThousand, { quick: report.options.quick })
  const theirs = await time(registerAwilix, { quick: report.options.quick })
  const manager = registerThousand()
  report.add({
    case: '1,000 lazy registrations',
    subject: '@aide/core',
    peer: 'awilix',
    metric: 'ms',
    subjectValue: ours.avgNs / 1e6,
    peerValue: theirs.avgNs / 1e6,
    higherIsBetter: false,
    note: `p50 ${(ours.p50Ns / 1e6).toFixed(3)} ms; instances created: ${created}; registered: ${manager.stats().registered}; target < 1 ms`,
  })
}
report.summary()
