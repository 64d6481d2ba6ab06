/**
 * Dynamic batching. A request that finds a free executor slot and nothing
 * queued runs at once, alone (a lone caller pays no delay). Requests that
 * arrive while the executor is busy are queued per kind (variant, input
 * types and non-batch dimensions), stacked along axis 0 up to `maxBatch`
 * rows, and sent as one batch as soon as a slot frees up; outputs are split
 * back per request.
 *
 * After a batch that carried several requests, the slot is held for one turn
 * of the event loop (`setImmediate`) before the queue is sent: the callers it
 * just answered usually come straight back, and without that turn the first
 * of them would take the idle executor alone and the rest would wait behind
 * it (batches alternating between 1 and n-1 rows, about half the throughput).
 * In-thread (see `inThread`), the hold is an immediate queued right behind
 * the run's own, so it costs no extra turn of the loop.
 *
 * With `dispatchWhenIdle: false`, requests always wait for company, up to
 * `maxDelayMs` or `maxBatch` rows. A request whose signal aborts leaves its
 * queue (or, if its batch is already running, stops waiting for it) without
 * affecting the others.
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
  key: string
  feeds: Record<string, DenseTensor>
  rows: number
  signal: AbortSignal | undefined
  settled: boolean
  resolve(value: Record<string, DenseTensor>): void
  reject(error: unknown): void
}

interface Queue {
  key: string
  variant: string
  items: Pending[]
  rows: number
  timer: TimerHandle | undefined
  /** Its delay passed while the executor was busy: send it as soon as a slot frees up. */
  due: boolean
}

/** Settings of a {@link DynamicBatcher}. */
export interface BatcherSettings {
  maxBatch: number
  maxDelayMs: number
  clock: Clock
  allocator: TensorAllocator
  /** Batches allowed to run at once (the executor's parallelism). */
  maxConcurrentBatches: number
  /** Send a request at once when a slot is free, instead of waiting for company. */
  dispatchWhenIdle: boolean
  /**
   * Whether a caller whose signal aborts while its request runs should stop
   * waiting at once. False for in-thread runs: they finish before an abort
   * could be seen, and the listener bookkeeping is a measurable share of a
   * small model's run.
   */
  abandonRunning: boolean
  /**
   * Runs happen on this thread, deferred by onnxruntime to an immediate queued
   * when the run is called (onnxruntime-node). The queue is then sent from an
   * immediate queued right behind the run's: it fires once the run is done and
   * every caller it answered has had its microtasks, so they are back in the
   * queue, and the next batch starts in the same turn instead of one turn later.
   */
  inThread: boolean
}

/** Counters of a {@link DynamicBatcher}. */
export type BatcherStats = {
  /** Requests submitted. */
  requests: number
  /** Runs sent to the executor (a request sent alone counts as a batch of one). */
  batches: number
  /** Rows (batch-axis entries) sent in all batches. */
  batchedRows: number
  /** Requests that left because their signal aborted. */
  cancelled: number
  /** Most rows in one batch. */
  largestBatch: number
  /** Requests waiting in a queue now. */
  queued: number
  /** Batches running now. */
  running: number
}

/** Collects requests into batches; see the module comment. */
export class DynamicBatcher {
  private readonly queues = new Map<string, Queue>()
  private queuedItems = 0
  private running = 0
  private readonly counters = {
    requests: 0,
    batches: 0,
    batchedRows: 0,
    cancelled: 0,
    largestBatch: 0,
  }
  /**
   * One abort listener per distinct signal among queued requests, not one per
   * request: callers often share a signal (a server's shutdown signal), and an
   * EventTarget add/remove pair per request was a measurable share of the
   * batched path.
   */
  private readonly watched = new Map<AbortSignal, { items: Set<Pending>; onAbort: () => void }>()
  private closed = false
  private readonly onLoneDone = () => this.finished()
  private readonly onBatchDone = () => this.finished()
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

  /** Rows of these feeds when they can be batched (every input has the same leading axis), else undefined. */
  static rowsOf(feeds: Record<string, DenseTensor>): number | undefined {
    return batchRows(feeds)
  }

  /** Queues one request of `rows` rows (see {@link rowsOf}); resolves with its own slice of the batch outputs. */
  submit(
    variant: string,
    feeds: Record<string, DenseTensor>,
    rows: number,
    signal?: AbortSignal,
  ): Promise<Record<string, DenseTensor>> {
    if (signal?.aborted)
      return Promise.reject(cancelledError(signal.reason, 'onnx: batched request'))
    this.counters.requests++
    if (
      this.settings.dispatchWhenIdle &&
      this.queuedItems === 0 &&
      this.running < this.settings.maxConcurrentBatches &&
      rows <= this.settings.maxBatch
    ) {
      return this.runAlone(variant, feeds, rows, signal)
    }
    const key = `${variant}|${batchKey(feeds)}`
    return new Promise((resolve, reject) => {
      const item: Pending = { key, feeds, rows, signal, settled: false, resolve, reject }
      if (signal) this.watch(signal, item)
      let queue = this.queues.get(key)
      if (queue && queue.rows + rows > this.settings.maxBatch) {
        // Full: it goes now (behind the running batch when the executor is busy).
        this.flush(queue)
        queue = undefined
      }
      if (!queue) {
        queue = { key, variant, items: [], rows: 0, timer: undefined, due: false }
        this.queues.set(key, queue)
      }
      queue.items.push(item)
      queue.rows += rows
      this.queuedItems++
      if (queue.rows >= this.settings.maxBatch) this.flush(queue)
      else if (this.running < this.settings.maxConcurrentBatches) {
        if (this.settings.dispatchWhenIdle || this.settings.maxDelayMs === 0) this.flush(queue)
        else queue.timer ??= this.schedule(() => this.expire(key))
      } else if (!this.settings.dispatchWhenIdle) {
        queue.timer ??= this.schedule(() => this.expire(key))
      }
    })
  }

  /** The fast path: a free slot and nothing queued, so the request runs at once on its own feeds. */
  private runAlone(
    variant: string,
    feeds: Record<string, DenseTensor>,
    rows: number,
    signal: AbortSignal | undefined,
  ): Promise<Record<string, DenseTensor>> {
    this.running++
    this.counters.batches++
    this.counters.batchedRows += rows
    if (rows > this.counters.largestBatch) this.counters.largestBatch = rows
    let work: Promise<Record<string, DenseTensor>>
    try {
      work = this.runner(variant, feeds)
    } catch (error) {
      work = Promise.reject(error)
    }
    // Registered before the caller's handlers, so the slot is free again when the caller resumes.
    work.then(this.onLoneDone, this.onLoneDone)
    if (!signal || !this.settings.abandonRunning) return work
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.counters.cancelled++
        reject(cancelledError(signal.reason, 'onnx: batched request'))
      }
      signal.addEventListener('abort', onAbort, { once: true })
      work.then(
        (value) => {
          signal.removeEventListener('abort', onAbort)
          resolve(value)
        },
        (error: unknown) => {
          signal.removeEventListener('abort', onAbort)
          reject(error)
        },
      )
    })
  }

  private watch(signal: AbortSignal, item: Pending): void {
    let entry = this.watched.get(signal)
    if (!entry) {
      const items = new Set<Pending>()
      const onAbort = () => {
        this.watched.delete(signal)
        for (const pending of items) this.cancel(pending)
      }
      entry = { items, onAbort }
      this.watched.set(signal, entry)
      signal.addEventListener('abort', onAbort, { once: true })
    }
    entry.items.add(item)
  }

  private unwatch(signal: AbortSignal, item: Pending): void {
    const entry = this.watched.get(signal)
    if (!entry) return
    entry.items.delete(item)
    if (entry.items.size === 0) {
      this.watched.delete(signal)
      signal.removeEventListener('abort', entry.onAbort)
    }
  }

  private cancel(item: Pending): void {
    if (item.settled) return
    this.counters.cancelled++
    const key = item.key
    const queue = this.queues.get(key)
    if (queue) {
      const index = queue.items.indexOf(item)
      if (index >= 0) {
        queue.items.splice(index, 1)
        queue.rows -= item.rows
        this.queuedItems--
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
    if (item.signal) this.unwatch(item.signal, item)
    if (error !== undefined) item.reject(error)
    else item.resolve(value!)
  }

  private expire(key: string): void {
    const queue = this.queues.get(key)
    if (!queue) return
    queue.timer = undefined
    // Sending a partial batch to a busy executor would only queue it there;
    // wait for a slot and send everything gathered by then.
    if (this.running < this.settings.maxConcurrentBatches) this.flush(queue)
    else queue.due = true
  }

  private flush(queue: Queue): void {
    if (this.queues.get(queue.key) === queue) this.queues.delete(queue.key)
    if (queue.timer !== undefined) this.unschedule(queue.timer)
    queue.timer = undefined
    this.queuedItems -= queue.items.length
    const items = queue.items
    queue.items = []
    if (items.length === 0) return
    this.running++
    if (this.settings.inThread) {
      // The slot frees when both the run is done and the immediate behind it has fired.
      let pending = 2
      const release = () => {
        if (--pending === 0) this.finished()
      }
      void this.runBatch(queue.variant, items).then(release)
      setImmediate(release)
      return
    }
    void this.runBatch(queue.variant, items).then(() => {
      // Several callers just got answers and will likely be back within this turn.
      if (items.length > 1 && !this.closed) setImmediate(this.onBatchDone)
      else this.finished()
    })
  }

  /**
   * The executor moved (an `execution: 'auto'` backend going to worker
   * threads): more batches may run at once, and a running one can be abandoned.
   */
  reconfigure(maxConcurrentBatches: number, abandonRunning: boolean): void {
    this.settings.maxConcurrentBatches = maxConcurrentBatches
    this.settings.abandonRunning = abandonRunning
    this.settings.inThread = false
    this.pump()
  }

  /** A batch finished: free its slot and send what waits, oldest queue first. */
  private finished(): void {
    this.running--
    this.pump()
  }

  private pump(): void {
    if (this.closed || this.queuedItems === 0) return
    for (const queue of this.queues.values()) {
      if (this.running >= this.settings.maxConcurrentBatches) break
      if (this.settings.dispatchWhenIdle || queue.due || queue.rows >= this.settings.maxBatch)
        this.flush(queue)
    }
  }

  private async runBatch(variant: string, items: Pending[]): Promise<void> {
    this.counters.batches++
    let rows = 0
    for (const item of items) rows += item.rows
    this.counters.batchedRows += rows
    if (rows > this.counters.largestBatch) this.counters.largestBatch = rows
    let leases: Array<{ release(): void }> = []
    try {
      if (items.length === 1) {
        const outputs = await this.runner(variant, items[0]!.feeds)
        this.settle(items[0]!, undefined, outputs)
        return
      }
      const stacked = stackFeeds(
        items.map((i) => i.feeds),
        this.settings.allocator,
      )
      leases = stacked.leases
      const outputs = await this.runner(variant, stacked.feeds)
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
    for (const queue of [...this.queues.values()]) {
      this.queues.delete(queue.key)
      if (queue.timer !== undefined) this.unschedule(queue.timer)
      for (const item of queue.items) this.settle(item, error)
    }
    this.queuedItems = 0
  }

  stats(): BatcherStats {
    return { ...this.counters, queued: this.queuedItems, running: this.running }
  }
}
