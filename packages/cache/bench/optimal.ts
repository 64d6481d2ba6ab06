/**
 * The offline optimum (Belady's MIN) for a trace and a cache size: the most
 * hits any policy can get, knowing every future access. On a miss with the
 * cache full it keeps the `size` keys needed soonest among the residents and
 * the new key, so a key needed later than all of them is not admitted at all
 * (as a policy with an admission filter may do). The benchmark prints it next
 * to each hit ratio, so a gap to LRU can be read against the largest possible.
 *
 * O(n log n): a max-heap of (next use, key) with stale entries skipped.
 */
export function optimalHitRatio(trace: ArrayLike<string | number>, size: number): number {
  const n = trace.length
  if (n === 0) return 0
  const NEVER = n
  // next[i]: the index of the next access of trace[i]'s key, or NEVER.
  const next = new Int32Array(n)
  const seen = new Map<string | number, number>()
  for (let i = n - 1; i >= 0; i--) {
    next[i] = seen.get(trace[i]!) ?? NEVER
    seen.set(trace[i]!, i)
  }
  /** Resident keys and their next use. */
  const resident = new Map<string | number, number>()
  // The heap holds access indices, ordered by next use (largest first).
  let heap = new Int32Array(1024)
  let heapSize = 0
  const push = (index: number): void => {
    if (heapSize === heap.length) {
      const grown = new Int32Array(heap.length * 2)
      grown.set(heap)
      heap = grown
    }
    let at = heapSize++
    while (at > 0) {
      const parent = (at - 1) >> 1
      if (next[heap[parent]!]! >= next[index]!) break
      heap[at] = heap[parent]!
      at = parent
    }
    heap[at] = index
  }
  const pop = (): void => {
    const last = heap[--heapSize]!
    let at = 0
    for (;;) {
      let child = 2 * at + 1
      if (child >= heapSize) break
      if (child + 1 < heapSize && next[heap[child + 1]!]! > next[heap[child]!]!) child++
      if (next[heap[child]!]! <= next[last]!) break
      heap[at] = heap[child]!
      at = child
    }
    heap[at] = last
  }
  let hits = 0
  for (let i = 0; i < n; i++) {
    const key = trace[i]!
    if (resident.has(key)) {
      hits++
      resident.set(key, next[i]!)
      push(i)
      continue
    }
    if (resident.size < size) {
      resident.set(key, next[i]!)
      push(i)
      continue
    }
    // Skip heap entries made stale by a later access of their key.
    while (resident.get(trace[heap[0]!]!) !== next[heap[0]!]!) pop()
    const farthest = heap[0]!
    if (next[farthest]! > next[i]!) {
      pop()
      resident.delete(trace[farthest]!)
      resident.set(key, next[i]!)
      push(i)
    }
  }
  return (100 * hits) / n
}
