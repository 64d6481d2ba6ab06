/**
 * Built-in selection strategies. Each returns the candidates in the order to
 * try them; the first is the chosen model and the rest are the next best.
 */
import type { Candidate, Strategy, StrategyName } from './types.js'

const byDeclaration = (a: Candidate, b: Candidate) => a.index - b.index
const byPriority = (a: Candidate, b: Candidate) =>
  (b.model.priority ?? 0) - (a.model.priority ?? 0) || a.index - b.index

/** Highest `priority` first; ties keep declaration order. */
export function priorityStrategy(): Strategy {
  return (candidates) => [...candidates].sort(byPriority)
}

/** Fewest calls in flight relative to `maxConcurrency` first; ties by priority. */
export function leastBusyStrategy(): Strategy {
  return (candidates) =>
    [...candidates].sort(
      (a, b) =>
        a.inFlight / (a.model.maxConcurrency ?? 16) - b.inFlight / (b.model.maxConcurrency ?? 16) ||
        byPriority(a, b),
    )
}

/** Cheapest estimated cost first; ties by higher quality, then priority. */
export function costStrategy(): Strategy {
  return (candidates) =>
    [...candidates].sort(
      (a, b) => a.estimatedCost - b.estimatedCost || b.quality - a.quality || byPriority(a, b),
    )
}

/**
 * Latency-aware: models not yet measured come first (so they get measured),
 * then one model chosen at random among those whose moving average is within
 * `tolerance` (a fraction) of the fastest, then the rest by average latency.
 */
export function latencyStrategy(options: { tolerance?: number } = {}): Strategy {
  const tolerance = options.tolerance ?? 0.2
  return (candidates, context) => {
    const unmeasured = candidates.filter((c) => c.latencyEwmaMs === undefined).sort(byDeclaration)
    const measured = candidates
      .filter((c) => c.latencyEwmaMs !== undefined)
      .sort((a, b) => a.latencyEwmaMs! - b.latencyEwmaMs! || a.index - b.index)
    if (measured.length === 0) return unmeasured
    const limit = measured[0]!.latencyEwmaMs! * (1 + tolerance)
    const band = measured.filter((c) => c.latencyEwmaMs! <= limit)
    const pick = band[Math.min(band.length - 1, Math.floor(context.random() * band.length))]!
    return [...unmeasured, pick, ...measured.filter((c) => c !== pick)]
  }
}

/** Weighted random order: each position drawn in proportion to `weight` (default 1). */
export function weightedStrategy(): Strategy {
  return (candidates, context) => {
    const pool = [...candidates]
    const order: Candidate[] = []
    while (pool.length > 0) {
      const total = pool.reduce((sum, c) => sum + (c.model.weight ?? 1), 0)
      let draw = context.random() * total
      let chosen = pool.length - 1
      for (let i = 0; i < pool.length; i++) {
        draw -= pool[i]!.model.weight ?? 1
        if (draw < 0) {
          chosen = i
          break
        }
      }
      order.push(pool.splice(chosen, 1)[0]!)
    }
    return order
  }
}

/** The built-in strategy of a name. */
export function builtInStrategy(name: StrategyName, latencyTolerance?: number): Strategy {
  switch (name) {
    case 'priority':
      return priorityStrategy()
    case 'least-busy':
      return leastBusyStrategy()
    case 'cost':
      return costStrategy()
    case 'latency':
      return latencyStrategy(latencyTolerance === undefined ? {} : { tolerance: latencyTolerance })
    case 'weighted':
      return weightedStrategy()
  }
}
