import { type ChildProcess, spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..')

/** Resolves once `check` passes, polling every `everyMs`, or rejects after `ms`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  ms = 10_000,
  everyMs = 20,
): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}

/** A child process running a TypeScript file from test/children, with its stdout lines. */
export interface Child {
  process: ChildProcess
  lines: string[]
  stderr: () => string
  exited: Promise<number | null>
  kill(signal?: NodeJS.Signals): Promise<void>
  /** Writes one line to the child's stdin (only with `{ stdin: true }`). */
  send(line: string): void
}

export function spawnChild(
  script: string,
  env: Record<string, string>,
  options: { stdin?: boolean } = {},
): Child {
  const child = spawn(
    process.execPath,
    ['--conditions=@aide/source', '--import', 'tsx', join('test', 'children', script)],
    {
      cwd: packageDir,
      env: { ...process.env, ...env },
      stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    },
  )
  const lines: string[] = []
  let buffered = ''
  let errors = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    const parts = buffered.split('\n')
    buffered = parts.pop() ?? ''
    lines.push(...parts)
  })
  child.stderr!.on('data', (chunk: Buffer) => {
    errors += chunk.toString()
  })
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  )
  return {
    process: child,
    lines,
    stderr: () => errors,
    exited,
    send(line) {
      if (!child.stdin) throw new Error('spawnChild: started without { stdin: true }')
      child.stdin.write(`${line}\n`)
    },
    async kill(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill(signal)
      await exited
    },
  }
}
