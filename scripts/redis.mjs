// Starts and stops real redis-server processes on free loopback ports, for the
// test suite and for tests that need to kill, pause or restart their own Redis.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'

/** Path of `binary` on PATH (or the usual system folders), or undefined. */
export function findTool(binary) {
  const dirs = (process.env.PATH ?? '')
    .split(delimiter)
    .concat(['/usr/bin', '/usr/local/bin', '/usr/sbin', '/bin'])
  for (const dir of dirs) {
    const candidate = join(dir, binary)
    if (dir && existsSync(candidate)) return candidate
  }
  return undefined
}

/**
 * Path of `binary`, installing the Debian package `aptPackage` when it is
 * missing and we are root with apt-get; otherwise throws saying how to install it.
 */
export function ensureTool(
  binary,
  aptPackage,
  { log = console.error, purpose = 'the test suite' } = {},
) {
  const found = findTool(binary)
  if (found) return found
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
  if (isRoot && existsSync('/usr/bin/apt-get')) {
    log(`${binary} not found: installing it with apt-get (Debian package ${aptPackage})…`)
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', aptPackage], {
      stdio: 'inherit',
      env,
    })
    const installed = findTool(binary)
    if (installed) return installed
  }
  throw new Error(
    `${binary} is required by ${purpose} but was not found on PATH.\n` +
      `  Debian/Ubuntu: sudo apt-get install -y ${aptPackage}`,
  )
}

/** Path of redis-server on this machine (AIDE_REDIS_SERVER wins), or undefined. */
export function findRedisServer() {
  if (process.env.AIDE_REDIS_SERVER && existsSync(process.env.AIDE_REDIS_SERVER)) {
    return process.env.AIDE_REDIS_SERVER
  }
  return findTool('redis-server')
}

/** Path of redis-server, installed with apt when missing and possible (see ensureTool). */
export function ensureRedisServer(options = {}) {
  return findRedisServer() ?? ensureTool('redis-server', 'redis-server', options)
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** Resolves true when a PING on host:port is answered with PONG within timeoutMs. */
export function ping(port, { host = '127.0.0.1', timeoutMs = 500 } = {}) {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port })
    const done = (ok) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.on('error', () => done(false))
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', (data) => done(data.toString().startsWith('+PONG')))
  })
}

async function waitFor(check, { timeoutMs, what }) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

/**
 * Starts a redis-server on a free (or given) loopback port with persistence
 * off. Returns { url, port, pid, stop(), kill(signal), restart(), pause(), resume() }.
 */
export async function startRedis({ port, args = [], startTimeoutMs = 10_000 } = {}) {
  const binary = ensureRedisServer()
  const chosenPort = port ?? (await freePort())
  const dir = mkdtempSync(join(tmpdir(), 'aide-redis-'))
  let child
  const launch = async () => {
    child = spawn(
      binary,
      [
        '--port',
        String(chosenPort),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        '--protected-mode',
        'yes',
        ...args,
      ],
      { stdio: 'ignore', detached: false },
    )
    child.unref()
    const exited = new Promise((resolve) => child.once('exit', resolve))
    await Promise.race([
      waitFor(() => ping(chosenPort), {
        timeoutMs: startTimeoutMs,
        what: `redis-server on port ${chosenPort}`,
      }),
      exited.then((code) => {
        throw new Error(`redis-server exited early with code ${code}`)
      }),
    ])
  }
  await launch()
  const stopChild = async (signal = 'SIGTERM') => {
    const current = child
    if (!current || current.exitCode !== null || current.signalCode !== null) return
    const exited = new Promise((resolve) => current.once('exit', resolve))
    current.kill('SIGCONT')
    current.kill(signal)
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
    if (current.exitCode === null && current.signalCode === null) current.kill('SIGKILL')
  }
  return {
    url: `redis://127.0.0.1:${chosenPort}`,
    port: chosenPort,
    get pid() {
      return child.pid
    },
    /** Stops the server (SIGTERM, then SIGKILL) and removes its directory. */
    async stop() {
      await stopChild('SIGTERM')
      rmSync(dir, { recursive: true, force: true })
    },
    /** Kills the server abruptly (default SIGKILL) and waits for it to exit. */
    kill: (signal = 'SIGKILL') => stopChild(signal),
    /** Starts the server again on the same port. */
    restart: async () => {
      await stopChild('SIGKILL')
      await launch()
    },
    /** Freezes the server (SIGSTOP): connections stay open, nothing is answered. */
    pause: () => child.kill('SIGSTOP'),
    /** Thaws a paused server. */
    resume: () => child.kill('SIGCONT'),
    [Symbol.asyncDispose]() {
      return this.stop()
    },
  }
}

// CLI: `node scripts/redis.mjs` starts one and prints its URL until Ctrl-C.
if (import.meta.url === `file://${process.argv[1]}`) {
  const redis = await startRedis()
  console.log(redis.url)
  const stop = async () => {
    await redis.stop()
    process.exit(0)
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  setInterval(() => {}, 1 << 30)
}
