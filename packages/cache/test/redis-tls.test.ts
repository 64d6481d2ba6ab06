import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureTool, freePort, startRedis } from '../../../scripts/redis.mjs'
import { createCache } from '../src/cache.ts'
import { redisTier } from '../src/redis.ts'
import { until } from './redis-helpers.ts'

/**
 * A throwaway certificate authority and a server certificate for localhost /
 * 127.0.0.1 signed by it, made with the openssl CLI for this run only.
 */
function makeCertificates(dir: string): { ca: string; cert: string; key: string; otherCa: string } {
  const openssl = ensureTool('openssl', 'openssl', { purpose: 'the Redis TLS tests' })
  const run = (...args: string[]) => execFileSync(openssl, args, { cwd: dir, stdio: 'pipe' })
  const ecKey = (name: string) =>
    run('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', name)
  ecKey('ca.key')
  run(
    'req',
    '-x509',
    '-new',
    '-key',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=aide test CA',
  )
  ecKey('other-ca.key')
  run(
    'req',
    '-x509',
    '-new',
    '-key',
    'other-ca.key',
    '-out',
    'other-ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=aide other CA',
  )
  ecKey('server.key')
  run('req', '-new', '-key', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost')
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n')
  run(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '2',
    '-extfile',
    'san.ext',
  )
  return {
    ca: join(dir, 'ca.crt'),
    cert: join(dir, 'server.crt'),
    key: join(dir, 'server.key'),
    otherCa: join(dir, 'other-ca.crt'),
  }
}

let dir: string
let certs: ReturnType<typeof makeCertificates>
let redis: Awaited<ReturnType<typeof startRedis>>
let tlsPort: number
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'aide-redis-tls-'))
  certs = makeCertificates(dir)
  tlsPort = await freePort()
  // The plain port stays open only for the start-up check; every tier below
  // connects to the TLS port, which speaks nothing but TLS.
  redis = await startRedis({
    args: [
      '--tls-port',
      String(tlsPort),
      '--tls-cert-file',
      certs.cert,
      '--tls-key-file',
      certs.key,
      '--tls-ca-cert-file',
      certs.ca,
      '--tls-auth-clients',
      'no',
    ],
  })
}, 60_000)
afterAll(async () => {
  await redis?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('redis tier over TLS', () => {
  it('reads, writes and invalidates through ioredis `tls` options and a rediss:// URL', async () => {
    const ca = readFileSync(certs.ca)
    const prefix = `tls${process.pid}:`
    const a = createCache({
      l2: await redisTier({ redis: { host: '127.0.0.1', port: tlsPort, tls: { ca } }, prefix }),
    })
    const b = createCache({
      l2: await redisTier({ url: `rediss://localhost:${tlsPort}`, redis: { tls: { ca } }, prefix }),
    })
    const value = { when: new Date(0), ids: new Set([1, 2]), big: 2n ** 70n }
    await a.set('shared', value)
    expect(await b.get('shared')).toEqual(value)
    expect(b.getIfPresent('shared')).toEqual(value)
    // The invalidation travels on the TLS subscriber connection.
    await a.set('shared', 'v2')
    await until(() => b.getIfPresent('shared') === undefined, 20_000, 'invalidation over TLS')
    expect(await b.get('shared')).toBe('v2')
    expect(a.stats().tiers[1]!.errors).toBe(0)
    expect(b.stats().tiers[1]!.errors).toBe(0)
    await a.dispose()
    await b.dispose()
  }, 60_000)

  it('counts a failed handshake as tier errors and falls through without throwing', async () => {
    const tiers = [
      // A certificate signed by a CA the client does not trust.
      await redisTier({
        redis: { host: '127.0.0.1', port: tlsPort, tls: { ca: readFileSync(certs.otherCa) } },
        prefix: 'tls-bad-ca:',
        connectTimeoutMs: 500,
      }),
      // Plain RESP to a port that speaks only TLS.
      await redisTier({
        url: `redis://127.0.0.1:${tlsPort}`,
        prefix: 'tls-plain:',
        connectTimeoutMs: 500,
      }),
    ]
    for (const tier of tiers) {
      const cache = createCache({ l2: tier, tierTimeoutMs: 500 })
      expect(await cache.get('k')).toBeUndefined()
      expect(await cache.getOrSet('k', async () => 'loaded')).toBe('loaded')
      expect(cache.stats().tiers[1]!.errors).toBeGreaterThan(0)
      expect(tier.stats().status).not.toBe('ready')
      await cache.dispose()
    }
  }, 60_000)
})
