/**
 * Every TypeScript/JavaScript code block in the READMEs and guides is either
 * run here, or is an excerpt of an example file that tests run:
 *
 * - a plain ```ts block is written to a temporary module inside this package
 *   and executed with Node (workspace packages resolve to `src` through the
 *   `@aide/source` condition); it must exit 0 within the time limit;
 * - a block whose info string says `file=<path from the repo root>` must appear
 *   line for line, in order, in that file, and that file must sit under an
 *   `examples/*` or `packages/*` folder with tests of its own.
 *
 * Blocks with other languages (sh, json, lua, text) are not executed.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

const root = resolve(import.meta.dirname, '../..')
const scratch = join(root, 'docs', '.tmp')
const RUNNABLE = new Set(['ts', 'typescript', 'js', 'javascript', 'mjs', 'mts'])

interface Block {
  file: string
  line: number
  lang: string
  info: string
  code: string
}

function markdownFiles(): string[] {
  const files: string[] = ['README.md', 'CONTRIBUTING.md'].map((f) => join(root, f))
  const walk = (dir: string) => {
    if (!existsSync(dir)) return
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        if (!['node_modules', 'dist', 'api', '.tmp', 'test', 'fixtures'].includes(entry.name))
          walk(join(dir, entry.name))
      } else if (entry.name.endsWith('.md') && entry.name !== 'CHANGELOG.md')
        files.push(join(dir, entry.name))
    }
  }
  walk(join(root, 'docs'))
  for (const top of ['packages', 'examples']) {
    if (!existsSync(join(root, top))) continue
    for (const name of readdirSync(join(root, top))) {
      const readme = join(root, top, name, 'README.md')
      if (existsSync(readme)) files.push(readme)
    }
  }
  return files.filter(existsSync)
}

function blocksOf(file: string): Block[] {
  const blocks: Block[] = []
  const lines = readFileSync(file, 'utf8').split('\n')
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(```+|~~~+)\s*([\w-]*)(.*)$/.exec(lines[i]!)
    if (!open) continue
    const [, indent, fence, lang = '', rest = ''] = open
    const body: string[] = []
    let j = i + 1
    for (; j < lines.length; j++) {
      if (lines[j]!.trimStart().startsWith(fence!)) break
      body.push(lines[j]!.startsWith(indent!) ? lines[j]!.slice(indent!.length) : lines[j]!)
    }
    blocks.push({
      file,
      line: i + 1,
      lang: lang.toLowerCase(),
      info: rest.trim(),
      code: body.join('\n'),
    })
    i = j
  }
  return blocks
}

function run(
  modulePath: string,
  timeoutMs: number,
): Promise<{ code: number | null; output: string }> {
  return new Promise((done) => {
    const child = spawn(
      process.execPath,
      ['--conditions=@aide/source', '--import', 'tsx', modulePath],
      {
        cwd: dirname(modulePath),
        env: { ...process.env, ORT_DISABLE_TELEMETRY: '1', AIDE_DOC_BLOCK: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('exit', (code) => {
      clearTimeout(timer)
      done({ code, output })
    })
  })
}

const blocks = markdownFiles()
  .flatMap(blocksOf)
  .filter((block) => RUNNABLE.has(block.lang))

afterAll(() => rmSync(scratch, { recursive: true, force: true }))

describe('code blocks in READMEs and guides', () => {
  it('finds the blocks to check', () => {
    expect(blocks.length).toBeGreaterThan(5)
  })

  for (const block of blocks) {
    const where = `${relative(root, block.file)}:${block.line}`
    const excerptOf = /(?:^|\s)file=(\S+)/.exec(block.info)?.[1]
    if (excerptOf) {
      it(`${where} is an excerpt of ${excerptOf}`, () => {
        const source = join(root, excerptOf)
        expect(existsSync(source), `${excerptOf} does not exist`).toBe(true)
        const owner = /^(examples|packages)\/[^/]+/.exec(excerptOf)?.[0]
        expect(
          owner && existsSync(join(root, owner, 'test')),
          `${excerptOf} is not in a tested package or example`,
        ).toBe(true)
        const text = readFileSync(source, 'utf8')
          .split('\n')
          .map((l) => l.trim())
        let at = 0
        for (const line of block.code
          .split('\n')
          .map((l) => l.trim())
          .filter((l) => l && l !== '// …' && l !== '…')) {
          const found = text.indexOf(line, at)
          expect(
            found,
            `line not found in ${excerptOf} (in order): ${line}`,
          ).toBeGreaterThanOrEqual(0)
          at = found + 1
        }
      })
    } else {
      it(`${where} runs`, { timeout: 120_000 }, async () => {
        mkdirSync(scratch, { recursive: true })
        const ext = ['js', 'javascript', 'mjs'].includes(block.lang) ? 'mjs' : 'mts'
        const modulePath = join(
          scratch,
          `${relative(root, block.file).replace(/[^\w]+/g, '-')}-${block.line}.${ext}`,
        )
        writeFileSync(modulePath, `${block.code}\n`)
        const { code, output } = await run(modulePath, 90_000)
        expect(code, `${where} exited with ${code}:\n${output.slice(-3000)}`).toBe(0)
      })
    }
  }
})
