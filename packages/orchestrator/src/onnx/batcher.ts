/**
 * Dynamic batching: requests that arrive within `maxDelayMs` of the first one
 * and share input types and non-batch dimensions are stacked along axis 0 up
 * to `maxBatch` rows, run once, and split back. A request whose signal aborts
 * leaves the batch (or, if its batch is already running, stops waiting for
 * it) without affecting the others.
 */
import { type Clock, cancelledError, systemClock, type TimerHandle } from '@aide/core'
import {
  batchKey,
  batchRows,
  type DenseTensor,
  splitOutputs,
  stackFeeds,
  type TensorAllocator,
} from './tensor.js'

/** Runs one (possibly stacked) set of feeds. */
export type BatchRunner = (
  variant: string,
  feeds: Record<string, DenseTensor>,
) => Promise<Record<string, DenseTensor>>

interface Pending {
  feeds: Record<string, DenseTensor>
  rows: number
  signal: AbortSignal | undefined
  settled: boolean
  onAbort: (() => void) | undefined
  resolve(value: Record<string, DenseTensor>): void
  reject(error: unknown): void
}

interface Queue {
  variant: string
  items: Pending[]
  rows: number
  timer: TimerHandle | undefined
  /** The delay passed while the executor was busy: go as soon as a batch finishes. */
  due: boolean
}

/** Settings of a {@link DynamicBatcher}. */
export interface BatcherSettings {
  maxBatch: number
  maxDelayMs: number
  clock: Clock
  allocator: TensorAllocator
  /** Batches of one kind allowed to run at once (the executor's parallelism). */
  maxConcurrentBatches: number
  /** Send a request at once when no batch of its kind is running, instead of waiting for company. */
  dispatchWhenIdle: boolean
}

/** Counters of a {@link DynamicBatcher}. */
export interface BatcherStats {
  requests: number
  batches: number
  batchedRows: number
  cancelled: number
  largestBatch: number
  queued: number
}

/** Collects requests into batches; see the module comment. */
export class DynamicBatcher {
  private readonly queues = new Map<string, Queue>()
  private readonly running = new Map<string, number>()
  private readonly counters = {
    requests: 0,
    batches: 0,
    batchedRows: 0,
    cancelled: 0,
    largestBatch: 0,
  }
  private closed = false

  constructor(
    private readonly settings: BatcherSettings,
    private readonly runner: BatchRunner,
  ) {}

  // The batching delay is work a caller is awaiting, so with the system clock
  // the timer stays referenced (a script awaiting a result must not exit
  // mid-batch); it only exists while requests are queued.
  private schedule(callback: () => void): TimerHandle {
    if (this.settings.clock === systemClock)
      return setTimeout(callback, this.settings.maxDelayMs) as unknown as TimerHandle
    return this.settings.clock.setTimeout(callback, this.settings.maxDelayMs)
  }

  private unschedule(handle: TimerHandle): void {
    if (this.settings.clock === systemClock)
      clearTimeout(handle as unknown as ReturnType<typeof setTimeout>)
    else this.settings.clock.clearTimer(handle)
  }

  /** Whether these feeds can be batched at all (every input has a shared leading axis). */
  static canBatch(feeds: Record<string, DenseTensor>): boolean {
    return batchKey(feeds) !== undefined && batchRows(feeds) !== undefined
  }

  /** Queues one request; resolves with its own slice of the batch outputs. */
  submit(
    variant: string,
    feeds: Record<string, DenseTensor>,
    signal?: AbortSignal,
  ): Promise<Record<string, DenseTensor>> {
    if (signal?.aborted)
      return Promise.reject(cancelledError(signal.reason, 'onnx: batched request'))
    const key = `${variant}|${batchKey(feeds)}`
    const rows = batchRows(feeds) ?? 1
    this.counters.requests++
    return new Promise((resolve, reject) => {
      const item: Pending = {
        feeds,
        rows,
        signal,
        settled: false,
        onAbort: undefined,
        resolve,
        reject,
      }
      if (signal) {
        item.onAbort = () => this.cancel(key, item)
        signal.addEventListener('abort', item.onAbort, { once: true })
      }
      let queue = this.queues.get(key)
      if (queue && queue.rows + rows > this.settings.maxBatch && queue.items.length > 0) {
        this.flush(key)
        queue = undefined
      }
      if (!queue) {
        queue = { variant, items: [], rows: 0, timer: undefined, due: false }
        this.queues.set(key, queue)
      }
      queue.items.push(item)
      queue.rows += rows
      const idle = (this.running.get(key) ?? 0) < this.settings.maxConcurrentBatches
      if (
        queue.rows >= this.settings.maxBatch ||
        this.settings.maxDelayMs === 0 ||
        (idle && this.settings.dispatchWhenIdle)
      ) {
        this.flush(key)
      } else if (queue.timer === undefined) {
        queue.timer = this.schedule(() => this.expire(key))
      }
    })
  }

  private cancel(key: string, item: Pending): void {
    if (item.settled) return
    this.counters.cancelled++
    const queue = this.queues.get(key)
    if (queue) {
      const index = queue.items.indexOf(item)
      if (index >= 0) {
        queue.items.splice(index, 1)
        queue.rows -= item.rows
        if (queue.items.length === 0) {
          if (queue.timer !== undefined) this.unschedule(queue.timer)
          this.queues.delete(key)
        }
      }
    }
    this.settle(item, cancelledError(item.signal?.reason, 'onnx: batched request'))
  }

  private settle(item: Pending, error: unknown, value?: Record<string, DenseTensor>): void {
    if (item.settled) return
    item.settled = true
    if (item.onAbort) item.signal?.removeEventListener('abort', item.onAbort)
    if (error !== undefined) item.reject(error)
    else item.resolve(value!)
  }

  private expire(key: string): void {
    const queue = this.queues.get(key)
    if (!queue) return
    queue.timer = undefined
    // Sending a partial batch to a busy executor would only queue it there;
    // wait for the running batch and send everything gathered by then.
    if ((this.running.get(key) ?? 0) < this.settings.maxConcurrentBatches) this.flush(key)
    else queue.due = true
  }

  private flush(key: string): void {
    const queue = this.queues.get(key)
    if (!queue) return
    this.queues.delete(key)
    if (queue.timer !== undefined) this.unschedule(queue.timer)
    const items = queue.items.filter((i) => !i.settled)
    if (items.length === 0) return
    this.running.set(key, (this.running.get(key) ?? 0) + 1)
    void this.runBatch(queue.variant, items).finally(() => {
      const left = (this.running.get(key) ?? 1) - 1
      if (left === 0) this.running.delete(key)
      else this.running.set(key, left)
      const next = this.queues.get(key)
      if (next && (next.due || this.settings.dispatchWhenIdle)) this.flush(key)
    })
  }

  private async runBatch(variant: string, items: Pending[]): Promise<void> {
    this.counters.batches++
    const rows = items.reduce((a, i) => a + i.rows, 0)
    this.counters.batchedRows += rows
    this.counters.largestBatch = Math.max(this.counters.largestBatch, rows)
    let leases: Array<{ release(): void }> = []
    try {
      let outputs: Record<string, DenseTensor>
      if (items.length === 1) {
        outputs = await this.runner(variant, items[0]!.feeds)
        this.settle(items[0]!, undefined, outputs)
        return
      }
      const stacked = stackFeeds(
        items.map((i) => i.feeds),
        this.settings.allocator,
      )
      leases = stacked.leases
      outputs = await this.runner(variant, stacked.feeds)
      const parts = splitOutputs(
        outputs,
        items.map((i) => i.rows),
      )
      for (const [index, item] of items.entries()) this.settle(item, undefined, parts[index])
    } catch (error) {
      for (const item of items) this.settle(item, error)
    } finally {
      for (const lease of leases) lease.release()
    }
  }

  /** Rejects everything still queued (used on dispose). */
  close(error: unknown): void {
    if (this.closed) return
    this.closed = true
    for (const key of [...this.queues.keys()]) {
      const queue = this.queues.get(key)!
      this.queues.delete(key)
      if (queue.timer !== undefined) this.unschedule(queue.timer)
      for (const item of queue.items) this.settle(item, error)
    }
  }

  stats(): BatcherStats {
    let queued = 0
    for (const q of this.queues.values()) queued += q.items.length
    return { ...this.counters, queued }
  }
}
