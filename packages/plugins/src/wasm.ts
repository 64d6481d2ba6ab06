/**
 * Just enough WebAssembly binary handling for the host's load-time checks:
 * read the module's own memory limits and rewrite its maximum, so growth past
 * the host's cap fails inside the sandbox (`memory.grow` returns -1) instead of
 * taking the host's memory.
 */
import { AideError } from '@aide/core'

/** Size of one WebAssembly page in bytes. */
export const WASM_PAGE_BYTES = 65_536

const MAGIC = [0x00, 0x61, 0x73, 0x6d]
const MEMORY_SECTION = 5

/** Memory limits a module declares for a memory it defines itself. */
export interface WasmMemoryLimits {
  /** Initial size in pages. */
  minPages: number
  /** Declared maximum in pages, if any. */
  maxPages: number | undefined
  /** Whether the memory is shared (threads proposal). */
  shared: boolean
}

function malformed(problem: string): AideError {
  return new AideError('E_PLUGIN', `plugins: wasm module is malformed: ${problem}`, {
    details: { problem },
  })
}

function readU32(bytes: Uint8Array, start: number): { value: number; next: number } {
  let value = 0
  let shift = 0
  let offset = start
  for (;;) {
    if (offset >= bytes.length) throw malformed('truncated LEB128 number')
    const byte = bytes[offset++]!
    value += (byte & 0x7f) * 2 ** shift
    if ((byte & 0x80) === 0) break
    shift += 7
    if (shift > 28) throw malformed('LEB128 number too long')
  }
  return { value, next: offset }
}

function writeU32(value: number): number[] {
  const out: number[] = []
  let rest = value
  do {
    let byte = rest & 0x7f
    rest = Math.floor(rest / 128)
    if (rest !== 0) byte |= 0x80
    out.push(byte)
  } while (rest !== 0)
  return out
}

interface Section {
  id: number
  start: number
  payloadStart: number
  end: number
}

function sections(bytes: Uint8Array): Section[] {
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw malformed('missing the \\0asm header')
  }
  const out: Section[] = []
  let offset = 8
  while (offset < bytes.length) {
    const id = bytes[offset]!
    const size = readU32(bytes, offset + 1)
    const end = size.next + size.value
    if (end > bytes.length) throw malformed(`section ${id} runs past the end of the module`)
    out.push({ id, start: offset, payloadStart: size.next, end })
    offset = end
  }
  return out
}

function readMemories(bytes: Uint8Array, section: Section): WasmMemoryLimits[] {
  const count = readU32(bytes, section.payloadStart)
  let offset = count.next
  const memories: WasmMemoryLimits[] = []
  for (let i = 0; i < count.value; i++) {
    const flags = bytes[offset++]
    if (flags === undefined || flags > 0x03)
      throw malformed(`unsupported memory limits flags ${flags}`)
    const min = readU32(bytes, offset)
    offset = min.next
    let maxPages: number | undefined
    if (flags & 0x01) {
      const max = readU32(bytes, offset)
      offset = max.next
      maxPages = max.value
    }
    memories.push({ minPages: min.value, maxPages, shared: (flags & 0x02) !== 0 })
  }
  return memories
}

/** The limits of every memory the module defines (imported memories are not included). */
export function readMemoryLimits(bytes: Uint8Array): WasmMemoryLimits[] {
  const section = sections(bytes).find((s) => s.id === MEMORY_SECTION)
  return section ? readMemories(bytes, section) : []
}

/**
 * Returns a copy of the module whose defined memories declare a maximum of at
 * most `maxPages`. Throws `E_LIMIT` when a memory's initial size already
 * exceeds the cap.
 */
export function capMemory(bytes: Uint8Array, maxPages: number): Uint8Array {
  const all = sections(bytes)
  const section = all.find((s) => s.id === MEMORY_SECTION)
  if (!section) return bytes
  const memories = readMemories(bytes, section)
  const payload: number[] = [...writeU32(memories.length)]
  for (const memory of memories) {
    if (memory.minPages > maxPages) {
      throw new AideError(
        'E_LIMIT',
        `plugins: the module declares ${memory.minPages} initial memory pages, more than the host's cap of ${maxPages} pages; raise limits.memoryBytes or shrink the plugin`,
        { details: { declaredPages: memory.minPages, maxPages } },
      )
    }
    const max = Math.min(memory.maxPages ?? maxPages, maxPages)
    payload.push(memory.shared ? 0x03 : 0x01, ...writeU32(memory.minPages), ...writeU32(max))
  }
  const header = [MEMORY_SECTION, ...writeU32(payload.length)]
  const out = new Uint8Array(
    bytes.length - (section.end - section.start) + header.length + payload.length,
  )
  out.set(bytes.subarray(0, section.start), 0)
  out.set(header, section.start)
  out.set(payload, section.start + header.length)
  out.set(bytes.subarray(section.end), section.start + header.length + payload.length)
  return out
}
