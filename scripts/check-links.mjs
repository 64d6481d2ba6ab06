#!/usr/bin/env node
// Fails when a markdown file links to a missing file or heading. Checks
// relative links (and #anchors, by GitHub's heading slugs) in the READMEs,
// CONTRIBUTING.md and docs/ (not the generated docs/api). External links are
// not fetched (CI has no network); they must at least be well-formed URLs.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '..')
const skipDirs = new Set(['node_modules', 'dist', '.git', '.tools', 'api', 'bench-results', '.tmp'])

function markdownFiles(dir) {
  const out = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      if (!skipDirs.has(entry.name) && !entry.name.startsWith('.'))
        out.push(...markdownFiles(join(dir, entry.name)))
    } else if (entry.name.endsWith('.md')) out.push(join(dir, entry.name))
  }
  return out
}

/** GitHub's heading anchor: lower-case, punctuation dropped, spaces to dashes, duplicates numbered. */
export function headingSlugs(markdown) {
  const slugs = new Set()
  const counts = new Map()
  let inFence = false
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) inFence = !inFence
    if (inFence) continue
    const match = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)
    if (!match) continue
    const base = match[1]
      .replace(/`/g, '')
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-')
    const seen = counts.get(base) ?? 0
    counts.set(base, seen + 1)
    slugs.add(seen === 0 ? base : `${base}-${seen}`)
  }
  return slugs
}

function links(markdown) {
  const found = []
  let inFence = false
  markdown.split('\n').forEach((line, index) => {
    if (/^\s*(```|~~~)/.test(line)) inFence = !inFence
    if (inFence) return
    const withoutCode = line.replace(/`[^`]*`/g, '')
    for (const match of withoutCode.matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      found.push({ target: match[1], line: index + 1 })
    }
  })
  return found
}

const files = [
  ...['README.md', 'CONTRIBUTING.md'].map((f) => join(root, f)).filter(existsSync),
  ...['docs', 'packages', 'examples', 'bench']
    .map((d) => join(root, d))
    .filter(existsSync)
    .flatMap(markdownFiles),
].filter((file) => !file.includes(`${join('docs', 'api')}`) && !file.includes('CHANGELOG'))

const problems = []
const slugCache = new Map()
const slugsOf = (file) => {
  if (!slugCache.has(file)) slugCache.set(file, headingSlugs(readFileSync(file, 'utf8')))
  return slugCache.get(file)
}
for (const file of files) {
  const text = readFileSync(file, 'utf8')
  for (const { target, line } of links(text)) {
    const where = `${relative(root, file)}:${line}`
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) {
      if (/^https?:/.test(target)) {
        try {
          new URL(target)
        } catch {
          problems.push(`${where}: malformed URL ${target}`)
        }
      }
      continue
    }
    const [path, anchor] = target.split('#')
    const resolved = path ? resolve(dirname(file), decodeURIComponent(path)) : file
    if (!existsSync(resolved)) {
      problems.push(`${where}: ${target} -> no such file ${relative(root, resolved)}`)
      continue
    }
    if (
      anchor &&
      statSync(resolved).isFile() &&
      resolved.endsWith('.md') &&
      !slugsOf(resolved).has(anchor)
    ) {
      problems.push(`${where}: ${target} -> no heading #${anchor} in ${relative(root, resolved)}`)
    }
  }
}
if (problems.length) {
  console.error(`broken links (${problems.length}):\n${problems.map((p) => `  ${p}`).join('\n')}`)
  process.exit(1)
}
console.log(`links ok: ${files.length} markdown files checked`)
