import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { sha256Hex } from '../src/index.js'

export const fixturesBuild = join(import.meta.dirname, 'fixtures', 'build')

/** Bytes of a compiled WAT fixture (built by global-setup). */
export async function fixture(name: string): Promise<Uint8Array> {
  return new Uint8Array(await readFile(join(fixturesBuild, `${name}.wasm`)))
}

/** A valid manifest for `wasm`, with overrides. */
export function manifestFor(
  wasm: Uint8Array,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    id: 'test.limits',
    version: '1.0.0',
    hostApi: '^1.0.0',
    wasm: { path: 'plugin.wasm', sha256: sha256Hex(wasm) },
    entries: [{ kind: 'command', export: 'echo', command: 'echo' }],
    ...overrides,
  }
}

/** Writes a plugin folder (manifest + module) and returns its path. */
export async function writePluginDir(
  dir: string,
  wasm: Uint8Array,
  manifest: Record<string, unknown>,
): Promise<string> {
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'plugin.wasm'), wasm)
  await writeFile(join(dir, 'aide-plugin.json'), JSON.stringify(manifest, null, 2))
  return dir
}

/** Entries of the limits fixture, all as commands. */
export const LIMITS_ENTRIES = ['echo', 'log_echo', 'spin', 'grow', 'trap', 'bad_output'].map(
  (name) => ({
    kind: 'command',
    export: name,
    command: name,
  }),
)

/** A raw ustar archive, so tests can write entries a well-behaved tar tool would refuse. */
export function rawTar(
  entries: Array<{ name: string; content?: string; type?: '0' | '2' | '5'; link?: string }>,
): Buffer {
  const blocks: Buffer[] = []
  for (const entry of entries) {
    const body = Buffer.from(entry.content ?? '')
    const header = Buffer.alloc(512)
    header.write(entry.name, 0, 100, 'utf8')
    header.write('0000644\0', 100)
    header.write('0000000\0', 108)
    header.write('0000000\0', 116)
    header.write(`${body.length.toString(8).padStart(11, '0')}\0`, 124)
    header.write(
      `${Math.floor(Date.now() / 1000)
        .toString(8)
        .padStart(11, '0')}\0`,
      136,
    )
    header.write('        ', 148)
    header.write(entry.type ?? '0', 156)
    if (entry.link) header.write(entry.link, 157, 100, 'utf8')
    header.write('ustar\0', 257)
    header.write('00', 263)
    let sum = 0
    for (const byte of header) sum += byte
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148)
    blocks.push(header, body, Buffer.alloc((512 - (body.length % 512)) % 512))
  }
  blocks.push(Buffer.alloc(1024))
  return Buffer.concat(blocks)
}

/** The position of the first occurrence of `needle` in `text` (after `after`, if given). */
export function positionOf(
  text: string,
  needle: string,
  after?: string,
): { line: number; character: number } {
  const from = after === undefined ? 0 : text.indexOf(after)
  const index = text.indexOf(needle, from)
  if (index < 0) throw new Error(`"${needle}" not found`)
  const before = text.slice(0, index).split('\n')
  return { line: before.length - 1, character: before.at(-1)!.length }
}
