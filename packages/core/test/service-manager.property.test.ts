import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { type AideError, defineService, type ServiceId, ServiceManager } from '../src/index.js'

/** Graph as adjacency lists: node i depends on every node in deps[i]. */
type Graph = number[][]

const anyGraph = fc.integer({ min: 1, max: 10 }).chain((n) =>
  fc.array(fc.uniqueArray(fc.integer({ min: 0, max: n - 1 }), { maxLength: 3 }), {
    minLength: n,
    maxLength: n,
  }),
)

/** A DAG: node i may only depend on nodes with a lower index. */
const anyDag = fc.integer({ min: 1, max: 12 }).chain((n) =>
  fc.tuple(
    fc.tuple(
      ...Array.from({ length: n }, (_, i) =>
        fc.uniqueArray(fc.integer({ min: 0, max: Math.max(0, i - 1) }), {
          maxLength: i === 0 ? 0 : 3,
        }),
      ),
    ),
    fc.array(fc.boolean(), { minLength: n, maxLength: n }),
    fc.uniqueArray(fc.integer({ min: 0, max: n - 1 }), { minLength: 1, maxLength: n }),
  ),
)

/** Reference: can `start` reach a cycle? (plain DFS with colours) */
function reachesCycle(graph: Graph, start: number): boolean {
  const colour = new Array<number>(graph.length).fill(0)
  const visit = (node: number): boolean => {
    if (colour[node] === 1) return true
    if (colour[node] === 2) return false
    colour[node] = 1
    for (const dep of graph[node]!) if (visit(dep)) return true
    colour[node] = 2
    return false
  }
  return visit(start)
}

function build(
  graph: Graph,
  asyncFlags?: boolean[],
  log?: { created: number[]; disposed: number[] },
) {
  const ids: ServiceId<number>[] = graph.map((_, i) => defineService<number>(`s${i}`))
  const manager = new ServiceManager()
  graph.forEach((deps, i) => {
    manager.register(ids[i]!, {
      deps: deps.map((d) => ids[d]!),
      factory: () => {
        log?.created.push(i)
        return asyncFlags?.[i] ? Promise.resolve(i) : i
      },
      dispose: () => void log?.disposed.push(i),
    })
  })
  return { manager, ids }
}

describe('ServiceManager properties', () => {
  it('reports E_CYCLE exactly when the requested service reaches a cycle, naming a real cycle', async () => {
    await fc.assert(
      fc.asyncProperty(anyGraph, fc.nat(), async (graph, pick) => {
        const start = pick % graph.length
        const { manager, ids } = build(graph)
        const outcome = await manager.get(ids[start]!).then(
          () => undefined,
          (error: AideError) => error,
        )
        const expected = reachesCycle(graph, start)
        expect(outcome?.code === 'E_CYCLE').toBe(expected)
        if (outcome) {
          const cycle = (outcome.details.cycle as string[]).map((name) => Number(name.slice(1)))
          expect(cycle[0]).toBe(cycle[cycle.length - 1])
          for (let i = 0; i + 1 < cycle.length; i++)
            expect(graph[cycle[i]!]).toContain(cycle[i + 1])
        } else {
          expect(await manager.get(ids[start]!)).toBe(start)
        }
      }),
      { numRuns: 300 },
    )
  })

  it('initialises each service once, dependencies first, and disposes in reverse topological order', async () => {
    await fc.assert(
      fc.asyncProperty(anyDag, async ([graph, asyncFlags, requested]) => {
        const log = { created: [] as number[], disposed: [] as number[] }
        const { manager, ids } = build(graph, asyncFlags, log)
        const values = await Promise.all(requested.map((r) => manager.get(ids[r]!)))
        expect(values).toEqual(requested)
        // Once each.
        expect(new Set(log.created).size).toBe(log.created.length)
        // Dependencies before dependents.
        const createdAt = new Map(log.created.map((node, index) => [node, index]))
        for (const node of log.created) {
          for (const dep of graph[node]!) {
            expect(createdAt.has(dep)).toBe(true)
            expect(createdAt.get(dep)!).toBeLessThan(createdAt.get(node)!)
          }
        }
        await manager.dispose()
        expect([...log.disposed].sort()).toEqual([...log.created].sort())
        // Reverse topological: a dependent is always disposed before what it depends on.
        const disposedAt = new Map(log.disposed.map((node, index) => [node, index]))
        for (const node of log.disposed) {
          for (const dep of graph[node]!)
            expect(disposedAt.get(node)!).toBeLessThan(disposedAt.get(dep)!)
        }
      }),
      { numRuns: 200 },
    )
  })
})
