#!/usr/bin/env node
// Runs the TypeScript entry point with tsx and aide's source condition, so the
// server works from a checkout without a build step.
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const tsx = import.meta.resolve('tsx')
const child = spawn(
  process.execPath,
  [
    '--conditions=@aide/source',
    '--import',
    tsx,
    join(here, '..', 'src', 'cli.ts'),
    ...process.argv.slice(2),
  ],
  { stdio: 'inherit' },
)
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal))
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
