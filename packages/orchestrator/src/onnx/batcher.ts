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
 *
 * The per-request path allocates as little as it can (a pending record and
 * the caller's promise; no closure, string key, Set entry or extra promise
 * layer per request): on a small model the garbage of each request is what
 * sets how often young-generation collections pause the event loop.
 */
import { type Clock, cancelledError, systemClock, type TimerHandle } from '@aide/core'
import {
  batchRows,
  type DenseTensor,
  sameBatchKind,
  sliceOutputs,
  stackFeeds,
  type TensorAllocator,
  type TensorLease,
} from './tensor.js'

/** Runs one (possibly stacked) set of feeds. */
export type BatchRunner = (
  variant: string,
  feeds: Record<string, DenseTensor>,
) => Promise<Record<string, DenseTensor>>

/**
 * How a request ends, as its caller sees it. Exactly one of the two is called
 * per request the batcher accepted.
 */
export interface BatchDelivery<R> {
  /** What the caller gets for its own outputs. */
  result(outputs: Record<string, DenseTensor>): R
  /** What the caller is rejected with for a failure (its own error, or a cancellation). */
  failure(error: unknown): unknown
}

type Outputs = Record<string, DenseTensor>

interface Pending<R> {
  feeds: Outputs
  rows: number
  signal: AbortSignal | undefined
  /** The queue holding it, until its batch is sent. */
  queue: Queue<R> | undefined
  settled: boolean
  resolve(value: R): void
  reject(error: unknown): void
}

interface Queue<R> {
  variant: string
  /** Feeds of the first request: the kind every request of this queue shares. */
  sample: Outputs
  items: Pending<R>[]
  rows: number
  timer: TimerHandle | undefined
  /** Its delay passed while the executor was busy: send it as soon as a slot frees up. */
  due: boolean
}

interface Batch<R> {
  items: Pending<R>[]
  rows: number
  leases: TensorLease[]
  /** What must still happen before the slot frees: the run, and in-thread the immediate behind it. */
  holds: number
}

/**
 * The one abort listener of a signal shared by queued or running requests
 * (an `EventListener` object, so no closure per signal). Requests often share
 * a signal (a server's shutdown signal), and an EventTarget add/remove pair
 * per request was a measurable share of the batched path.
 */
class Watch<R> {
  /** Requests watched and not yet settled. */
  count = 0
  /** Those requests, and possibly some already settled (dropped lazily). */
  items: Pending<R>[] = []

  constructor(
    private readonly batcher: DynamicBatcher<R>,
    private readonly signal: AbortSignal,
  ) {}

  handleEvent(): void {
    this.batcher.aborted(this.signal, this)
  }
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
   * Whether a caller whose signal aborts while its request runs alone should
   * stop waiting at once. False for in-thread runs: they finish before an
   * abort could be seen (the result is dropped instead), and the listener
   * bookkeeping is a measurable share of a small model's run.
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

const LABEL = 'onnx: batched request'
/** Listeners of signals no request waits on that may stay registered while the batcher is busy. */
const MAX_IDLE_WATCHES = 16

/** Collects requests into batches; see the module comment. */
export class DynamicBatcher<R = Outputs> {
  /** Queues, oldest first (rarely more than one: one per kind of request waiting). */
  private readonly queues: Queue<R>[] = []
  private queuedItems = 0
  private running = 0
  private readonly counters = {
    requests: 0,
    batches: 0,
    batchedRows: 0,
    cancelled: 0,
    largestBatch: 0,
  }
  private readonly watched = new Map<AbortSignal, Watch<R>>()
  /** Signals in `watched` that no request waits on any more (their listeners are removed once the batcher is idle). */
  private idleWatches = 0
  private closed = false
  // `new Promise(this.capture)` hands the resolving functions over without a closure per request.
  private capturedResolve: ((value: R) => void) | undefined
  private capturedReject: ((error: unknown) => void) | undefined
  private readonly capture = (resolve: (value: R) => void, reject: (error: unknown) => void) => {
    this.capturedResolve = resolve
    this.capturedReject = reject
  }
  private readonly release = (batch: Batch<R>) => {
    if (--batch.holds === 0) this.finished()
  }
  private readonly loneResult = (outputs: Outputs): R => {
    this.finished()
    return this.delivery.result(outputs)
  }
  private readonly loneFailure = (error: unknown): never => {
    this.finished()
    throw this.delivery.failure(error)
  }

  constructor(
    private readonly settings: BatcherSettings,
    private readonly runner: BatchRunner,
    private readonly delivery: BatchDelivery<R>,
  ) {}

  // The batching delay is work a caller is awaiting, so with the system clock
  // the timer stays referenced (a script awaiting a result must not exit
  // mid-batch); it only exists while requests are queued.
  private schedule(queue: Queue<R>): TimerHandle {
    const expire = () => this.expire(queue)
    if (this.settings.clock === systemClock)
      return setTimeout(expire, this.settings.maxDelayMs) as unknown as TimerHandle
    return this.settings.clock.setTimeout(expire, this.settings.maxDelayMs)
  }

  private unschedule(handle: TimerHandle): void {
    if (this.settings.clock === systemClock)
      clearTimeout(handle as unknown as ReturnType<typeof setTimeout>)
    else this.settings.clock.clearTimer(handle)
  }

  /** Rows of these feeds when they can be batched (every input has the same leading axis), else undefined. */
  static rowsOf(feeds: Outputs): number | undefined {
    return batchRows(feeds)
  }

  /** Queues one request of `rows` rows (see {@link rowsOf}); resolves with what the delivery makes of its own slice of the batch outputs. */
  submit(variant: string, feeds: Outputs, rows: number, signal?: AbortSignal): Promise<R> {
    if (signal?.aborted)
      return Promise.reject(this.delivery.failure(cancelledError(signal.reason, LABEL)))
    this.counters.requests++
    const settings = this.settings
    if (
      settings.dispatchWhenIdle &&
      this.queuedItems === 0 &&
      this.running < settings.maxConcurrentBatches &&
      rows <= settings.maxBatch
    ) {
      return this.runAlone(variant, feeds, rows, signal)
    }
    const promise = new Promise<R>(this.capture)
    const item: Pending<R> = {
      feeds,
      rows,
      signal,
      queue: undefined,
      settled: false,
      resolve: this.capturedResolve!,
      reject: this.capturedReject!,
    }
    if (signal) this.watch(signal, item)
    let queue = this.queueFor(variant, feeds)
    if (queue && queue.rows + rows > settings.maxBatch) {
      // Full: it goes now (behind the running batch when the executor is busy).
      this.flush(queue)
      queue = undefined
    }
    if (!queue) {
      queue = { variant, sample: feeds, items: [], rows: 0, timer: undefined, due: false }
      this.queues.push(queue)
    }
    item.queue = queue
    queue.items.push(item)
    queue.rows += rows
    this.queuedItems++
    if (queue.rows >= settings.maxBatch) this.flush(queue)
    else if (this.running < settings.maxConcurrentBatches) {
      if (settings.dispatchWhenIdle || settings.maxDelayMs === 0) this.flush(queue)
      else queue.timer ??= this.schedule(queue)
    } else if (!settings.dispatchWhenIdle) {
      queue.timer ??= this.schedule(queue)
    }
    return promise
  }

  private queueFor(variant: string, feeds: Outputs): Queue<R> | undefined {
    for (let i = 0; i < this.queues.length; i++) {
      const queue = this.queues[i]!
      if (queue.variant === variant && sameBatchKind(queue.sample, feeds)) return queue
    }
    return undefined
  }

  /** The fast path: a free slot and nothing queued, so the request runs at once on its own feeds. */
  private runAlone(
    variant: string,
    feeds: Outputs,
    rows: number,
    signal: AbortSignal | undefined,
  ): Promise<R> {
    this.running++
    this.counters.batches++
    this.counters.batchedRows += rows
    if (rows > this.counters.largestBatch) this.counters.largestBatch = rows
    let work: Promise<Outputs>
    try {
      work = this.runner(variant, feeds)
    } catch (error) {
      work = Promise.reject(error)
    }
    // The slot frees in the same reaction that answers the caller, so it is free when the caller resumes.
    if (!signal) return work.then(this.loneResult, this.loneFailure)
    if (!this.settings.abandonRunning) {
      // An in-thread run cannot be interrupted: drop its result if the caller left meanwhile.
      return work.then((outputs) => {
        this.finished()
        if (signal.aborted) throw this.delivery.failure(cancelledError(signal.reason, LABEL))
        return this.delivery.result(outputs)
      }, this.loneFailure)
    }
    return new Promise<R>((resolve, reject) => {
      let done = false
      const onAbort = () => {
        if (done) return
        done = true
        this.counters.cancelled++
        reject(this.delivery.failure(cancelledError(signal.reason, LABEL)))
      }
      signal.addEventListener('abort', onAbort, { once: true })
      work.then(
        (outputs) => {
          this.finished()
          signal.removeEventListener('abort', onAbort)
          if (done) return
          done = true
          resolve(this.delivery.result(outputs))
        },
        (error: unknown) => {
          this.finished()
          signal.removeEventListener('abort', onAbort)
          if (done) return
          done = true
          reject(this.delivery.failure(error))
        },
      )
    })
  }

  private watch(signal: AbortSignal, item: Pending<R>): void {
    let watch = this.watched.get(signal)
    if (watch === undefined) {
      watch = new Watch(this, signal)
      this.watched.set(signal, watch)
      signal.addEventListener('abort', watch, { once: true })
    } else if (watch.count === 0) this.idleWatches--
    watch.count++
    watch.items.push(item)
  }

  private unwatch(signal: AbortSignal): void {
    const watch = this.watched.get(signal)
    if (watch === undefined) return
    if (--watch.count === 0) {
      // The listener stays while the batcher is busy: the callers just answered usually come
      // straight back with the same signal, and an add/remove pair per batch was garbage.
      watch.items.length = 0
      if (++this.idleWatches > MAX_IDLE_WATCHES) this.sweepWatches()
    } else if (watch.items.length > 2 * watch.count + 32) {
      // Under steady load a signal may never run out of requests: drop the settled ones now and then.
      watch.items = watch.items.filter((item) => !item.settled)
    }
  }

  /** Removes the listeners of signals no request waits on any more. */
  private sweepWatches(): void {
    for (const [signal, watch] of this.watched) {
      if (watch.count !== 0) continue
      this.watched.delete(signal)
      signal.removeEventListener('abort', watch)
    }
    this.idleWatches = 0
  }

  /** @internal A watched signal aborted: cancel its requests, queued or running. */
  aborted(signal: AbortSignal, watch: Watch<R>): void {
    if (this.watched.get(signal) === watch) {
      this.watched.delete(signal)
      if (watch.count === 0) this.idleWatches--
    }
    for (const item of watch.items) this.cancel(item)
  }

  private cancel(item: Pending<R>): void {
    if (item.settled) return
    this.counters.cancelled++
    const queue = item.queue
    if (queue !== undefined) {
      item.queue = undefined
      const index = queue.items.indexOf(item)
      if (index >= 0) {
        queue.items.splice(index, 1)
        queue.rows -= item.rows
        this.queuedItems--
        if (queue.items.length === 0) {
          if (queue.timer !== undefined) this.unschedule(queue.timer)
          queue.timer = undefined
          this.removeQueue(queue)
        }
      }
    }
    this.settle(item, false, cancelledError(item.signal?.reason, LABEL))
  }

  private settle(item: Pending<R>, ok: boolean, value: unknown): void {
    if (item.settled) return
    item.settled = true
    if (item.signal) this.unwatch(item.signal)
    if (ok) item.resolve(this.delivery.result(value as Outputs))
    else item.reject(this.delivery.failure(value))
  }

  private removeQueue(queue: Queue<R>): void {
    const index = this.queues.indexOf(queue)
    if (index >= 0) this.queues.splice(index, 1)
  }

  private expire(queue: Queue<R>): void {
    queue.timer = undefined
    if (queue.items.length === 0 || !this.queues.includes(queue)) return
    // Sending a partial batch to a busy executor would only queue it there;
    // wait for a slot and send everything gathered by then.
    if (this.running < this.settings.maxConcurrentBatches) this.flush(queue)
    else queue.due = true
  }

  private flush(queue: Queue<R>): void {
    this.removeQueue(queue)
    if (queue.timer !== undefined) this.unschedule(queue.timer)
    queue.timer = undefined
    const items = queue.items
    this.queuedItems -= items.length
    queue.items = []
    if (items.length === 0) return
    let rows = 0
    for (let i = 0; i < items.length; i++) {
      items[i]!.queue = undefined
      rows += items[i]!.rows
    }
    this.running++
    // In-thread, the slot frees when both the run is done and the immediate behind it has fired.
    const batch: Batch<R> = { items, rows, leases: [], holds: this.settings.inThread ? 2 : 1 }
    this.runBatch(queue.variant, batch)
    if (this.settings.inThread) setImmediate(this.release, batch)
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
    if (this.idleWatches > 0 && this.running === 0 && this.queuedItems === 0) this.sweepWatches()
  }

  private pump(): void {
    if (this.closed || this.queuedItems === 0) return
    const settings = this.settings
    for (let i = 0; i < this.queues.length && this.running < settings.maxConcurrentBatches; ) {
      const queue = this.queues[i]!
      if (settings.dispatchWhenIdle || queue.due || queue.rows >= settings.maxBatch)
        this.flush(queue)
      else i++
    }
  }

  private runBatch(variant: string, batch: Batch<R>): void {
    const items = batch.items
    this.counters.batches++
    this.counters.batchedRows += batch.rows
    if (batch.rows > this.counters.largestBatch) this.counters.largestBatch = batch.rows
    let work: Promise<Outputs>
    try {
      work = this.runner(
        variant,
        items.length === 1
          ? items[0]!.feeds
          : stackFeeds(items, this.settings.allocator, batch.leases),
      )
    } catch (error) {
      work = Promise.reject(error)
    }
    work.then(
      (outputs) => this.complete(batch, true, outputs),
      (error: unknown) => this.complete(batch, false, error),
    )
  }

  private complete(batch: Batch<R>, ok: boolean, value: unknown): void {
    const { items, leases } = batch
    for (let i = 0; i < leases.length; i++) leases[i]!.release()
    if (!ok) for (let i = 0; i < items.length; i++) this.settle(items[i]!, false, value)
    else if (items.length === 1) this.settle(items[0]!, true, value)
    else {
      const outputs = value as Outputs
      const names = Object.keys(outputs)
      let row = 0
      for (let i = 0; i < items.length; i++) {
        const item = items[i]!
        // A request cancelled while its batch ran needs no slice.
        if (!item.settled)
          this.settle(item, true, sliceOutputs(outputs, names, row, item.rows, batch.rows))
        row += item.rows
      }
    }
    if (this.settings.inThread || items.length === 1 || this.closed) this.release(batch)
    // Several callers just got answers and will likely be back within this turn.
    else setImmediate(this.release, batch)
  }

  /** Rejects everything still queued (used on dispose). */
  close(error: unknown): void {
    if (this.closed) return
    this.closed = true
    for (const queue of this.queues.splice(0)) {
      if (queue.timer !== undefined) this.unschedule(queue.timer)
      queue.timer = undefined
      for (const item of queue.items) {
        item.queue = undefined
        this.settle(item, false, error)
      }
    }
    this.queuedItems = 0
    this.sweepWatches()
  }

  stats(): BatcherStats {
    return { ...this.counters, queued: this.queuedItems, running: this.running }
  }
}
