/**
 * Starts the service as a child process (`src/main.ts`) and waits for its
 * "listening" log line. Used by the load test and the shutdown test.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/** A service running in a child process. */
export interface SpawnedService {
  /** Base URL. */
  url: string
  /** The child process. */
  child: ChildProcess
  /** Every JSON log line so far, parsed. */
  logs: Array<Record<string, unknown>>
  /** Raw stdout so far. */
  output(): string
  /** Resolves with the first log line (past or future) whose `msg` is `message`. */
  waitForLog(message: string): Promise<Record<string, unknown>>
  /** Resolves with the exit code. */
  exited: Promise<number | null>
}

/** Spawns `src/main.ts` with `env` added to this process's environment (PORT defaults to 0). */
export function spawnService(env: Record<string, string>): Promise<SpawnedService> {
  const child = spawn(
    process.execPath,
    ['--conditions=@aide/source', '--import', 'tsx', join(root, 'src', 'main.ts')],
    {
      cwd: root,
      env: { ...process.env, PORT: '0', ORT_DISABLE_TELEMETRY: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  const logs: Array<Record<string, unknown>> = []
  let raw = ''
  let stderr = ''
  const waiters: Array<{ message: string; resolve: (line: Record<string, unknown>) => void }> = []
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  )
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  createInterface({ input: child.stdout! }).on('line', (line) => {
    raw += `${line}\n`
    let parsed: Record<string, unknown>
    try {
      parsed = JSON.parse(line) as Record<string, unknown>
    } catch {
      return
    }
    logs.push(parsed)
    for (const waiter of [...waiters]) {
      if (parsed.msg === waiter.message) {
        waiters.splice(waiters.indexOf(waiter), 1)
        waiter.resolve(parsed)
      }
    }
  })
  const waitForLog = (message: string) => {
    const seen = logs.find((line) => line.msg === message)
    if (seen) return Promise.resolve(seen)
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      waiters.push({ message, resolve })
      void exited.then((code) =>
        reject(new Error(`service exited (${code}) before logging "${message}":\n${stderr}`)),
      )
    })
  }
  return waitForLog('listening').then((line) => ({
    url: String(line.url),
    child,
    logs,
    output: () => raw,
    waitForLog,
    exited,
  }))
}
