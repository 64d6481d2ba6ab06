import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { BenchReport, type Comparison, parseBenchArgs } from '../harness.ts'

const dir = mkdtempSync(join(tmpdir(), 'aide-harness-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Busy work whose cost grows with `n` (no timers: CPU only). */
function spin(n: number): number {
  let x = 0
  for (let i = 0; i < n; i++) x = (x * 31 + i) | 0
  return x
}

describe('BenchReport.compareOps', () => {
  it('runs both sides in alternating rounds and writes one row with both throughputs', async () => {
    const json = join(dir, 'sync.jsonl')
    const report = new BenchReport('harness', parseBenchArgs(['--quick', '--json', json]))
    const calls = { subject: 0, peer: 0 }
    const row = await report.compareOps(
      'sync case',
      {
        name: 'cheap',
        fn: () => {
          calls.subject++
          return spin(10)
        },
      },
      {
        name: 'costly',
        fn: () => {
          calls.peer++
          return spin(2_000)
        },
      },
      'a note',
    )
    expect(row).toMatchObject({
      suite: 'harness',
      case: 'sync case',
      subject: 'cheap',
      peer: 'costly',
      metric: 'ops/s',
      higherIsBetter: true,
    })
    const r = row as Comparison
    expect(calls.subject).toBeGreaterThan(8)
    expect(calls.peer).toBeGreaterThan(8)
    expect(r.subjectValue).toBeGreaterThan(0)
    expect(r.peerValue).toBeGreaterThan(0)
    expect(r.ratio).toBeCloseTo(r.subjectValue / r.peerValue, 10)
    // Synchronous on both sides: timed in CPU time, with the paired ratio noted.
    expect(r.note).toMatch(/^a note; 8 alternating rounds, cpu time; paired per-round ratio median/)
    const written = readFileSync(json, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
    expect(written).toEqual([r])
  })

  it('times both sides on the wall clock when either is asynchronous, awaiting each call', async () => {
    const report = new BenchReport('harness', parseBenchArgs(['--quick']))
    let inFlight = 0
    let maxInFlight = 0
    const row = await report.compareOps(
      'async case',
      {
        name: 'async',
        fn: async () => {
          inFlight++
          maxInFlight = Math.max(maxInFlight, inFlight)
          await null
          inFlight--
        },
      },
      { name: 'sync', fn: () => spin(100) },
    )
    expect(row?.note).toMatch(/wall time/)
    expect(maxInFlight).toBe(1)
  })

  it('skips a case that --filter leaves out, without calling either side', async () => {
    const report = new BenchReport('harness', parseBenchArgs(['--quick', '--filter', 'other']))
    let called = false
    const row = await report.compareOps(
      'this case',
      {
        name: 'a',
        fn: () => {
          called = true
        },
      },
      {
        name: 'b',
        fn: () => {
          called = true
        },
      },
    )
    expect(row).toBeUndefined()
    expect(called).toBe(false)
    expect(report.rows).toEqual([])
  })
})
