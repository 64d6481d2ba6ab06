/**
 * Runs onnxruntime-node sessions in worker threads through piscina, because
 * `session.run` in onnxruntime-node blocks the event loop of the thread it
 * runs on for the whole inference. Models are shared with the workers through
 * SharedArrayBuffers; each worker keeps one session per variant for its life.
 */
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { AideError } from '@aide/core'
import type { Executor, ModelSignature, SessionSettings } from './runtime.js'
import type { DenseTensor } from './tensor.js'

interface PiscinaLike {
  run(task: unknown): Promise<any>
  destroy(): Promise<void>
  readonly threads: readonly unknown[]
  readonly completed: number
  readonly queueSize: number
}

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

/** Executor that runs sessions in a piscina worker pool. */
export class WorkerExecutor implements Executor {
  readonly mode = 'worker' as const
  private pool: PiscinaLike | undefined
  private loading: Promise<Record<string, ModelSignature>> | undefined
  private runs = 0
  private failures = 0
  private disposed = false

  constructor(
    private readonly models: Record<string, Uint8Array>,
    private readonly settings: SessionSettings,
    private readonly threads: number,
  ) {}

  load(): Promise<Record<string, ModelSignature>> {
    this.loading ??= (async () => {
      let Piscina: new (options: Record<string, unknown>) => PiscinaLike
      try {
        const module = (await import('piscina')) as unknown as {
          Piscina?: typeof Piscina
          default?: typeof Piscina
        }
        Piscina = (module.Piscina ?? module.default)!
      } catch (error) {
        throw new AideError(
          'E_UNAVAILABLE',
          'onnx: cannot import `piscina`. Install it (`npm i piscina`) to run sessions in workers.',
          {
            cause: error,
          },
        )
      }
      if (this.disposed) throw new AideError('E_DISPOSED', 'onnx: disposed while loading')
      const models: Record<string, SharedArrayBuffer> = {}
      for (const [variant, bytes] of Object.entries(this.models)) models[variant] = share(bytes)
      this.pool = new Piscina({
        filename: sessionWorkerPath(),
        minThreads: this.threads,
        maxThreads: this.threads,
        idleTimeout: Number.POSITIVE_INFINITY,
        concurrentTasksPerWorker: 1,
        workerData: { models, sessionOptions: { ...this.settings } },
        env: { ...process.env, ORT_DISABLE_TELEMETRY: process.env.ORT_DISABLE_TELEMETRY ?? '1' },
      })
      const signatures: Record<string, ModelSignature> = {}
      for (const variant of Object.keys(this.models)) {
        signatures[variant] = await this.call({ op: 'describe', variant })
      }
      return signatures
    })()
    return this.loading
  }

  private async call(task: Record<string, unknown>): Promise<any> {
    const pool = this.pool
    if (!pool) throw new AideError('E_DISPOSED', 'onnx: the worker pool is disposed')
    try {
      return await pool.run(task)
    } catch (error) {
      this.failures++
      throw new AideError(
        'E_MODEL',
        `onnx: inference failed in a worker: ${(error as Error).message}`,
        { cause: error },
      )
    }
  }

  async run(
    variant: string,
    feeds: Record<string, DenseTensor>,
  ): Promise<Record<string, DenseTensor>> {
    this.runs++
    return (await this.call({ op: 'run', variant, feeds })) as Record<string, DenseTensor>
  }

  async dispose(): Promise<void> {
    this.disposed = true
    const pool = this.pool
    this.pool = undefined
    if (pool) await pool.destroy().catch(() => undefined)
  }

  stats(): Record<string, unknown> {
    return {
      mode: this.mode,
      threads: this.threads,
      runs: this.runs,
      failures: this.failures,
      queued: this.pool?.queueSize ?? 0,
    }
  }
}
