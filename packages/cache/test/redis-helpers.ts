import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

/** A child process running redis-child.ts, with a request/reply helper. */
export interface Child {
  process: ChildProcess
  send(command: Record<string, unknown>): Promise<unknown>
  kill(): Promise<void>
}

export function startChild(url: string, prefix: string, lockTtl = 10_000): Child {
  const child = spawn(
    process.execPath,
    [
      '--conditions=@aide/source',
      '--import',
      'tsx',
      join(__dirname, 'redis-child.ts'),
      url,
      prefix,
      String(lockTtl),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  )
  const waiting = new Map<number, (value: unknown) => void>()
  let next = 1
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const { id, result } = JSON.parse(line) as { id: number; result: unknown }
    waiting.get(id)?.(result)
    waiting.delete(id)
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  return {
    process: child,
    send(command) {
      const id = next++
      return new Promise((resolve, reject) => {
        waiting.set(id, resolve)
        child.stdin!.write(
          `${JSON.stringify({ id, ...command })}\n`,
          (error) => error && reject(error),
        )
      })
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
  }
}

/** Polls `check` until it returns true, or throws after `timeoutMs`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}
