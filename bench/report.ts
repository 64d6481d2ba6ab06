/**
 * Turns benchmark comparisons (the JSON lines every suite writes with
 * `--json`) into a markdown report and SVG charts, compared with a previous run.
 */
import type { Comparison } from './harness.ts'

/** A comparison with the matching row of the previous run, if any. */
export interface ComparedRow extends Comparison {
  previousRatio: number | undefined
  /** Relative change of the ratio against the previous run (0.1 = 10% better). */
  change: number | undefined
  regression: boolean
}

/** Parses JSON lines, skipping blank lines; throws naming the line on bad JSON. */
export function parseJsonLines(text: string, source = 'input'): Comparison[] {
  const rows: Comparison[] = []
  text.split('\n').forEach((line, index) => {
    if (!line.trim()) return
    try {
      rows.push(JSON.parse(line) as Comparison)
    } catch (error) {
      throw new Error(`${source}:${index + 1}: not JSON (${(error as Error).message})`)
    }
  })
  return rows
}

const keyOf = (row: Comparison) =>
  `${row.suite}\u0000${row.case}\u0000${row.subject}\u0000${row.peer}\u0000${row.metric}`

/**
 * Pairs each row with the previous run's row of the same suite, case, subject, peer and
 * metric. A regression is a ratio that fell by more than `threshold` (0.15 = 15%).
 */
export function compareRuns(
  current: readonly Comparison[],
  previous: readonly Comparison[],
  threshold = 0.15,
): ComparedRow[] {
  const before = new Map(previous.map((row) => [keyOf(row), row]))
  return current.map((row) => {
    const old = before.get(keyOf(row))
    const previousRatio = old?.ratio
    const change = previousRatio && previousRatio > 0 ? row.ratio / previousRatio - 1 : undefined
    return {
      ...row,
      previousRatio,
      change,
      regression: change !== undefined && change < -threshold,
    }
  })
}

function fmt(value: number): string {
  if (!Number.isFinite(value)) return String(value)
  const abs = Math.abs(value)
  if (abs >= 1000) return value.toFixed(0)
  if (abs >= 10) return value.toFixed(1)
  if (abs >= 0.01) return value.toFixed(3)
  return value.toPrecision(3)
}

/** The markdown report: one table per suite, regressions flagged. */
export function renderMarkdown(
  rows: readonly ComparedRow[],
  meta: { date: string; threshold: number; previous?: string },
): string {
  const lines = [
    '# aide benchmark report',
    '',
    `Run ${meta.date}. Ratio > 1 means the aide package is ahead of its peer. ` +
      (meta.previous ? `Compared with ${meta.previous}; ` : 'No previous run to compare with; ') +
      `a ratio that fell by more than ${Math.round(meta.threshold * 100)}% is flagged.`,
    '',
  ]
  const regressions = rows.filter((r) => r.regression)
  lines.push(
    regressions.length
      ? `**${regressions.length} regression(s) flagged.**`
      : 'No regressions flagged.',
    '',
  )
  for (const suite of [...new Set(rows.map((r) => r.suite))]) {
    lines.push(`## ${suite}`, '', `![${suite}](${suite}.svg)`, '')
    lines.push(
      '| case | subject | peer | metric | subject value | peer value | ratio | previous | change |',
    )
    lines.push('| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |')
    for (const r of rows.filter((row) => row.suite === suite)) {
      const change =
        r.change === undefined
          ? ''
          : `${r.change >= 0 ? '+' : ''}${(r.change * 100).toFixed(0)}%${r.regression ? ' ⚠ regression' : ''}`
      lines.push(
        `| ${r.case} | ${r.subject} | ${r.peer} | ${r.metric} | ${fmt(r.subjectValue)} | ${fmt(r.peerValue)} | ${r.ratio.toFixed(2)}x | ${r.previousRatio === undefined ? '' : `${r.previousRatio.toFixed(2)}x`} | ${change} |`,
      )
    }
    lines.push('')
  }
  return `${lines.join('\n')}\n`
}

function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
}

/**
 * A horizontal bar chart of ratios on a log scale (0.1x … 100x), with the 1x line
 * marked; bars for regressions are drawn in red.
 */
export function renderSvg(suite: string, rows: readonly ComparedRow[]): string {
  const labelWidth = 360
  const chartWidth = 420
  const rowHeight = 22
  const top = 36
  const height = top + rows.length * rowHeight + 30
  const minLog = -1
  const maxLog = 2
  const x = (ratio: number) => {
    const clamped = Math.min(Math.max(Math.log10(Math.max(ratio, 1e-3)), minLog), maxLog)
    return labelWidth + ((clamped - minLog) / (maxLog - minLog)) * chartWidth
  }
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${labelWidth + chartWidth + 80}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<text x="8" y="20" font-size="14" font-weight="bold">${escapeXml(suite)}: ratio against peer (log scale, &gt;1 = aide ahead)</text>`,
  ]
  rows.forEach((row, index) => {
    const y = top + index * rowHeight
    const colour = row.regression ? '#c0392b' : row.ratio >= 1 ? '#2e86c1' : '#e67e22'
    parts.push(
      `<text x="8" y="${y + 15}">${escapeXml(`${row.case} (vs ${row.peer})`.slice(0, 58))}</text>`,
    )
    const x0 = x(1)
    const x1 = x(row.ratio)
    parts.push(
      `<rect x="${Math.min(x0, x1).toFixed(1)}" y="${y + 4}" width="${Math.max(1, Math.abs(x1 - x0)).toFixed(1)}" height="${rowHeight - 8}" fill="${colour}"/>`,
    )
    parts.push(
      `<text x="${(Math.max(x0, x1) + 4).toFixed(1)}" y="${y + 15}">${row.ratio.toFixed(2)}x</text>`,
    )
  })
  for (const tick of [0.1, 1, 10, 100]) {
    const tx = x(tick).toFixed(1)
    parts.push(
      `<line x1="${tx}" y1="${top - 4}" x2="${tx}" y2="${height - 24}" stroke="${tick === 1 ? '#000' : '#ccc'}" stroke-dasharray="${tick === 1 ? '' : '3,3'}"/>`,
    )
    parts.push(`<text x="${tx}" y="${height - 8}" text-anchor="middle">${tick}x</text>`)
  }
  parts.push('</svg>')
  return `${parts.join('\n')}\n`
}
