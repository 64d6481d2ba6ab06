/**
 * Runs onnxruntime-node sessions in worker threads, because `session.run` in
 * onnxruntime-node blocks the thread it runs on for the whole inference.
 *
 * A small pool written for this one job rather than a general pool library:
 * one task at a time per worker, a FIFO queue, and a worker that dies (an
 * uncaught error, `process.exit`, `terminate()`) fails only the request it
 * held, with a retryable `E_UNAVAILABLE`, and is replaced; queued requests
 * wait for the replacement. Measured on the shipped model, a general pool
 * (piscina 5) cost about twice a bare `postMessage` round trip per call, and
 * its teardown terminates workers, which aborts the process when a worker is
 * inside a native `session.run` (see session-worker.mjs). Here workers end
 * themselves when asked. Models are shared with the workers through
 * SharedArrayBuffers; each worker keeps one session per variant for its life.
 */
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { AideError } from '@aide/core'
import type { Executor, ModelSignature, SessionSettings } from './runtime.js'
import type { DenseTensor } from './tensor.js'

function moduleDirectory(): string {
  if (typeof __dirname === 'string') return __dirname
  return dirname(fileURLToPath(import.meta.url))
}

/** Finds the worker script both next to the sources and from the built `dist/`. */
export function sessionWorkerPath(): string {
  const here = moduleDirectory()
  const candidates = [
    join(here, 'session-worker.mjs'),
    join(here, '..', 'src', 'onnx', 'session-worker.mjs'),
    join(here, '..', '..', 'src', 'onnx', 'session-worker.mjs'),
  ]
  const found = candidates.find((c) => existsSync(c))
  if (!found) {
    throw new AideError(
      'E_UNAVAILABLE',
      'onnx: the session worker script is missing from the installed package',
      {
        details: { candidates },
      },
    )
  }
  return found
}

function share(bytes: Uint8Array): SharedArrayBuffer {
  const shared = new SharedArrayBuffer(bytes.byteLength)
  new Uint8Array(shared).set(bytes)
  return shared
}

/**
 * Tensor data that covers exactly its own buffer. postMessage copies a typed
 * array's whole underlying ArrayBuffer, so a view into a larger one (a pooled
 * batch buffer carved from a 32 KiB slab, a slice of a Node Buffer) is copied
 * out first: measured, a batch of 8 rows from the pool took ~190 µs per round
 * trip against ~140 µs from an exact buffer.
 */
function exactData(data: DenseTensor['data']): DenseTensor['data'] {
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength
    ? data
    : (data.slice() as DenseTensor['data'])
}

/** A replacement worker that dies this many times in a row before answering marks the pool broken. */
const MAX_FAILED_STARTS = 3

interface Task {
  id: number
  variant: string
  feeds: Record<string, DenseTensor>
  resolve(outputs: Record<string, DenseTensor>): void
  reject(error: unknown): void
}

interface Slot {
  worker: Worker
  ready: boolean
  /** Tasks sent to this worker and not answered yet, oldest first. */
  tasks: Task[]
  /** The uncaught error the worker reported before exiting, if any. */
  lastError: Error | undefined
}

/** Replies other than a run's outputs (those come as a flat array; see session-worker.mjs). */
interface WorkerReply {
  id?: number
  error?: { name: string; message: string }
  ready?: Record<string, ModelSignature>
  failed?: { name: string; message: string }
}

/** Counters of a {@link WorkerExecutor}. */
export type WorkerExecutorStats = {
  mode: 'worker'
  /** Configured worker threads. */
  threads: number
  /** Workers started and answering. */
  live: number
  /** Workers running a task now. */
  busy: number
  /** Tasks waiting for a free worker. */
  queued: number
  /** Tasks sent to a worker. */
  runs: number
  /** Tasks that came back with an error (bad input for the model and the like). */
  failures: number
  /** Workers that died unexpectedly. */
  crashes: number
  /** Workers started to replace dead ones. */
  restarts: number
  /** Set once replacements kept dying before they could answer: every call now fails. */
  broken: string | undefined
}

/** Executor that runs sessions in a pool of worker threads; see the module comment. */
export class WorkerExecutor implements Executor {
  readonly mode = 'worker' as const
  private readonly slots = new Set<Slot>()
  private readonly queue: Task[] = []
  private queueHead = 0
  private models: Record<string, SharedArrayBuffer> | undefined
  private loading: Promise<Record<string, ModelSignature>> | undefined
  private nextId = 0
  private busy = 0
  private failedStarts = 0
  private loaded = false
  private broken: AideError | undefined
  private disposed = false
  private readonly counters = { runs: 0, failures: 0, crashes: 0, restarts: 0 }

  constructor(
    private readonly modelBytes: Record<string, Uint8Array>,
    private readonly settings: SessionSettings,
    private readonly threads: number,
  ) {}

  load(): Promise<Record<string, ModelSignature>> {
    this.loading ??= (async () => {
      const path = sessionWorkerPath()
      const models: Record<string, SharedArrayBuffer> = {}
      for (const [variant, bytes] of Object.entries(this.modelBytes)) models[variant] = share(bytes)
      this.models = models
      const started = Array.from({ length: this.threads }, () => this.spawn(path))
      try {
        const signatures = await Promise.all(started)
        this.loaded = true
        return signatures[0]!
      } catch (error) {
        await this.dispose()
        throw error
      }
    })()
    return this.loading
  }

  /** Starts one worker; resolves with its signatures once its sessions exist. */
  private spawn(path = sessionWorkerPath()): Promise<Record<string, ModelSignature>> {
    return new Promise((resolve, reject) => {
      if (this.disposed) {
        reject(new AideError('E_DISPOSED', 'onnx: the worker pool is disposed'))
        return
      }
      const worker = new Worker(path, {
        workerData: { models: this.models, sessionOptions: { ...this.settings } },
        // The worker script needs no Node flags. Inherited ones can stop it from starting
        // (`node --input-type=module -e ...`), and passing a filtered list is worse: Node
        // then rejects every per-process flag in it (`--trace-gc`).
        execArgv: [],
        env: { ...process.env, ORT_DISABLE_TELEMETRY: process.env.ORT_DISABLE_TELEMETRY ?? '1' },
      })
      const slot: Slot = { worker, ready: false, tasks: [], lastError: undefined }
      this.slots.add(slot)
      worker.on('message', (reply: WorkerReply | unknown[]) => {
        if (Array.isArray(reply)) this.complete(slot, reply[0] as number, reply)
        else if (reply.id !== undefined) this.complete(slot, reply.id, reply)
        else if (reply.ready) {
          slot.ready = true
          this.failedStarts = 0
          resolve(reply.ready)
          // Referenced while starting (someone awaits it) and while it runs a task; an idle
          // pool must not keep the process alive.
          this.pump()
        } else if (reply.failed) {
          slot.lastError = Object.assign(new Error(reply.failed.message), {
            name: reply.failed.name,
          })
          reject(
            new AideError(
              'E_MODEL',
              `onnx: the model could not be loaded in a worker: ${reply.failed.message}`,
              { details: { error: reply.failed } },
            ),
          )
          // It ends itself; see session-worker.mjs for why the pool never terminates a worker.
          worker.postMessage({ close: true })
        }
      })
      worker.on('error', (error) => {
        slot.lastError = error
      })
      worker.on('exit', (exitCode) => this.exited(slot, exitCode, reject))
    })
  }

  /** A worker ended: fail its task, and replace it unless the pool is going away. */
  private exited(slot: Slot, exitCode: number, rejectStart: (error: unknown) => void): void {
    this.slots.delete(slot)
    if (this.disposed) {
      rejectStart(new AideError('E_DISPOSED', 'onnx: disposed while loading'))
      return
    }
    const reason = slot.lastError ? `: ${slot.lastError.message}` : ''
    const failure = new AideError(
      'E_UNAVAILABLE',
      `onnx: the worker thread running the session exited (code ${exitCode})${reason}`,
      {
        cause: slot.lastError,
        details: { reason: 'worker-exit', exitCode, threadId: slot.worker.threadId },
      },
    )
    // Settles start-up (a no-op once the worker was ready or reported a load failure).
    rejectStart(failure)
    if (slot.ready) this.counters.crashes++
    else this.failedStarts++
    const lost = slot.tasks
    slot.tasks = []
    this.busy -= lost.length
    for (const task of lost) task.reject(failure)
    // During the first load, load() reports the failure and disposes the pool.
    if (!this.loaded) return
    if (this.failedStarts >= MAX_FAILED_STARTS) {
      this.markBroken(
        new AideError(
          'E_UNAVAILABLE',
          `onnx: replacement worker threads keep exiting before they can run the model (${this.failedStarts} in a row)${reason}`,
          { cause: failure, details: { reason: 'worker-start', exitCode } },
        ),
      )
      return
    }
    this.counters.restarts++
    // A replacement that fails is counted by its own exit; nobody awaits it.
    this.spawn().catch(() => undefined)
    this.pump()
  }

  private markBroken(error: AideError): void {
    if (this.broken) return
    this.broken = error
    for (const task of this.drainQueue()) task.reject(error)
  }

  private drainQueue(): Task[] {
    const tasks = this.queue.slice(this.queueHead)
    this.queue.length = 0
    this.queueHead = 0
    return tasks
  }

  private complete(slot: Slot, id: number, reply: WorkerReply | unknown[]): void {
    const index = slot.tasks.findIndex((t) => t.id === id)
    if (index < 0) return
    const task = slot.tasks[index]!
    slot.tasks.splice(index, 1)
    this.busy--
    if (Array.isArray(reply)) {
      const outputs: Record<string, DenseTensor> = {}
      for (let i = 1; i < reply.length; i += 4) {
        outputs[reply[i] as string] = {
          type: reply[i + 1] as string,
          dims: reply[i + 2] as number[],
          data: reply[i + 3] as DenseTensor['data'],
        }
      }
      task.resolve(outputs)
    } else {
      this.counters.failures++
      const error = reply.error ?? { name: 'Error', message: 'no outputs in the reply' }
      task.reject(
        new AideError('E_MODEL', `onnx: inference failed in a worker: ${error.message}`, {
          details: { error },
        }),
      )
    }
    this.pump()
  }

  /** Hands queued tasks to idle workers; idle workers stop holding the process open. */
  private pump(): void {
    if (this.queueHead === this.queue.length) {
      for (const slot of this.slots) if (slot.ready && slot.tasks.length === 0) slot.worker.unref()
      return
    }
    while (this.queueHead < this.queue.length) {
      const slot = this.pick()
      if (!slot) break
      const task = this.queue[this.queueHead]!
      this.queue[this.queueHead++] = undefined as unknown as Task
      this.send(slot, task)
    }
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0
      this.queueHead = 0
    }
  }

  /**
   * A started worker with nothing to do. (Sending a second task to a busy
   * worker, so it never waits for the main thread, measured no better: the
   * batcher then splits callers into two smaller batches.)
   */
  private pick(): Slot | undefined {
    for (const slot of this.slots) if (slot.ready && slot.tasks.length === 0) return slot
    return undefined
  }

  private send(slot: Slot, task: Task): void {
    slot.tasks.push(task)
    this.busy++
    this.counters.runs++
    slot.worker.ref()
    const message: unknown[] = [task.id, task.variant]
    for (const name in task.feeds) {
      const t = task.feeds[name]!
      message.push(name, t.type, exactData(t.data), t.dims)
    }
    slot.worker.postMessage(message)
  }

  run(variant: string, feeds: Record<string, DenseTensor>): Promise<Record<string, DenseTensor>> {
    if (this.disposed)
      return Promise.reject(new AideError('E_DISPOSED', 'onnx: the worker pool is disposed'))
    if (this.broken) return Promise.reject(this.broken)
    return new Promise((resolve, reject) => {
      const task: Task = { id: this.nextId++, variant, feeds, resolve, reject }
      const slot = this.queueHead === this.queue.length ? this.pick() : undefined
      if (slot) this.send(slot, task)
      else this.queue.push(task)
    })
  }

  async dispose(): Promise<void> {
    if (this.disposed) return
    this.disposed = true
    const error = new AideError('E_DISPOSED', 'onnx: the worker pool was disposed')
    for (const task of this.drainQueue()) task.reject(error)
    const slots = [...this.slots]
    for (const slot of slots) {
      const tasks = slot.tasks
      slot.tasks = []
      for (const task of tasks) task.reject(error)
    }
    this.busy = 0
    // Each worker finishes the run it is in (a native run cannot be interrupted),
    // releases its sessions and exits.
    await Promise.all(
      slots.map(
        (slot) =>
          new Promise<void>((resolve) => {
            slot.worker.once('exit', () => resolve())
            slot.worker.ref()
            slot.worker.postMessage({ close: true })
          }),
      ),
    )
    this.slots.clear()
  }

  /**
   * The live worker threads.
   * @internal for tests that make a worker die.
   */
  workers(): Worker[] {
    return [...this.slots].map((slot) => slot.worker)
  }

  stats(): WorkerExecutorStats {
    let live = 0
    for (const slot of this.slots) if (slot.ready) live++
    return {
      mode: this.mode,
      threads: this.threads,
      live,
      busy: this.busy,
      queued: this.queue.length - this.queueHead,
      ...this.counters,
      broken: this.broken?.message,
    }
  }
}
