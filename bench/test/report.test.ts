import { describe, expect, it } from 'vitest'
import type { Comparison } from '../harness.ts'
import { compareRuns, parseJsonLines, renderMarkdown, renderSvg } from '../report.ts'

const row = (over: Partial<Comparison>): Comparison => ({
  suite: 'cache',
  case: 'l1-hit-get',
  subject: '@aide/cache',
  peer: 'lru-cache',
  metric: 'ops/s',
  subjectValue: 100,
  peerValue: 50,
  ratio: 2,
  higherIsBetter: true,
  ...over,
})

describe('benchmark report', () => {
  it('parses JSON lines and names a bad line', () => {
    expect(
      parseJsonLines(`${JSON.stringify(row({}))}\n\n${JSON.stringify(row({ case: 'b' }))}\n`),
    ).toHaveLength(2)
    expect(() => parseJsonLines('{"a":1}\nnot json', 'run.jsonl')).toThrow(/run.jsonl:2: not JSON/)
  })

  it('flags a ratio that fell past the threshold, and only that', () => {
    const previous = [
      row({ ratio: 2 }),
      row({ case: 'steady', ratio: 1.5 }),
      row({ case: 'gone', ratio: 9 }),
    ]
    const current = [
      row({ ratio: 1.5 }),
      row({ case: 'steady', ratio: 1.4 }),
      row({ case: 'new', ratio: 3 }),
    ]
    const compared = compareRuns(current, previous, 0.15)
    expect(compared.map((r) => [r.case, r.regression])).toEqual([
      ['l1-hit-get', true],
      ['steady', false],
      ['new', false],
    ])
    expect(compared[0]!.change).toBeCloseTo(-0.25)
    expect(compared[2]!.previousRatio).toBeUndefined()
  })

  it('renders a markdown table per suite and an SVG with one bar per row', () => {
    const compared = compareRuns(
      [row({ ratio: 1.5 }), row({ suite: 'bus', case: 'emit <1>', ratio: 0.5 })],
      [row({ ratio: 2 })],
    )
    const markdown = renderMarkdown(compared, {
      date: '2026-11-22',
      threshold: 0.15,
      previous: 'previous.jsonl',
    })
    expect(markdown).toContain('## cache')
    expect(markdown).toContain('## bus')
    expect(markdown).toContain(
      '| l1-hit-get | @aide/cache | lru-cache | ops/s | 100.0 | 50.0 | 1.50x | 2.00x | -25% ⚠ regression |',
    )
    expect(markdown).toContain('**1 regression(s) flagged.**')
    const svg = renderSvg(
      'bus',
      compared.filter((r) => r.suite === 'bus'),
    )
    expect(svg.startsWith('<svg')).toBe(true)
    expect(svg.match(/<rect /g)).toHaveLength(1)
    expect(svg).toContain('emit &lt;1&gt; (vs lru-cache)')
  })
})
