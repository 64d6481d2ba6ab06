/**
 * The plugin manifest (`aide-plugin.json`): what a plugin is, which host API it
 * needs, what it exports and which capabilities it asks for. Validation names
 * the offending field.
 */
import { createHash } from 'node:crypto'
import { AideError, assertObject, assertOneOf, assertString, invalidInput } from '@aide/core'
import semver from 'semver'

/** The file name of a plugin manifest inside a plugin directory. */
export const MANIFEST_FILE = 'aide-plugin.json'

/** What an entry point is for. */
export type EntryKind = 'diagnostics' | 'code-action' | 'completion-filter' | 'command'

/** Every entry kind. */
export const ENTRY_KINDS: readonly EntryKind[] = [
  'diagnostics',
  'code-action',
  'completion-filter',
  'command',
]

/**
 * How the host passes input to an entry point.
 * - `json`: a UTF-8 JSON document (for `diagnostics`: the {@link TextDocument};
 *   for `code-action`: `{ document, range, diagnostics }`).
 * - `text`: the document text itself as UTF-8 bytes (easy to scan from a
 *   low-level language such as hand-written WAT).
 */
export type EntryInput = 'json' | 'text'

/** One exported function the host may call. */
export interface PluginEntry {
  /** What the entry is for. */
  kind: EntryKind
  /** Name of the exported wasm function. */
  export: string
  /** Input encoding (default `json`). */
  input: EntryInput
  /** Language ids the entry applies to (empty: every language). */
  languages: string[]
  /** Command name (only for `command` entries). */
  command?: string
}

/** Capabilities a plugin may request; each one is granted only if the host's policy allows it. */
export interface RequestedCapabilities {
  /** Write log lines through the host's logger (Extism `log_*`). */
  log?: boolean
  /** Config keys the plugin wants to read (Extism `config_get`). */
  config?: string[]
  /** Workspace-relative paths (files or folders) the plugin wants to read through `aide_read_file`. */
  'workspace.read'?: string[]
  /**
   * Hosts the plugin wants to reach with Extism's `http_request`: a host name
   * (`api.example.com`, `127.0.0.1`), `*.example.com` for any subdomain, or `*`
   * for any host. Matched against the URL's host name, any port.
   */
  http?: string[]
}

/** The names of the capabilities a manifest may request. */
export const CAPABILITY_NAMES = ['log', 'config', 'workspace.read', 'http'] as const

const HOST_LABEL = '[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?'
const HOST_PATTERN = new RegExp(
  `^(?:\\*|(?:\\*\\.)?${HOST_LABEL}(?:\\.${HOST_LABEL})*|\\[[0-9a-f:.]+\\])$`,
)

/**
 * Validates an HTTP host pattern (`host`, `*.domain`, `*`, or a bracketed IPv6
 * address) and returns it in lower case.
 */
export function parseHostPattern(value: unknown, field: string): string {
  assertString(value, field, { maxLength: 253 })
  const pattern = value.toLowerCase().replace(/\.$/, '')
  if (!HOST_PATTERN.test(pattern)) {
    throw invalidInput(
      field,
      `must be a host name, "*.domain" or "*" (no scheme, port or path), got ${JSON.stringify(value)}`,
    )
  }
  return pattern
}

/** The validated content of `aide-plugin.json`. */
export interface PluginManifest {
  /** Stable id: lower case letters, digits, `.`, `-`, `_`; e.g. `aide.security-audit`. */
  id: string
  /** Human name. */
  name: string
  /** One-line description (searched by the registry). */
  description: string
  /** Semver version of the plugin. */
  version: string
  /** Semver range of host API versions the plugin works with, e.g. `^1.0.0`. */
  hostApi: string
  /** The module file (relative to the manifest) and its sha256 in lower-case hex. */
  wasm: { path: string; sha256: string }
  /** Entry points. */
  entries: PluginEntry[]
  /** Requested capabilities. */
  capabilities: RequestedCapabilities
  /** Search keywords. */
  keywords: string[]
}

const ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,127}$/
const EXPORT_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/
const SHA256_PATTERN = /^[0-9a-f]{64}$/

function stringArray(value: unknown, field: string): string[] {
  if (!Array.isArray(value)) throw invalidInput(field, 'must be an array of strings')
  value.forEach((item, index) => {
    assertString(item, `${field}[${index}]`, { maxLength: 1024 })
  })
  return [...(value as string[])]
}

function relativePath(value: unknown, field: string): string {
  assertString(value, field, { maxLength: 1024 })
  const parts = value.split(/[\\/]/)
  if (value.startsWith('/') || /^[A-Za-z]:/.test(value) || parts.includes('..')) {
    throw invalidInput(
      field,
      `must be a relative path inside the plugin, got ${JSON.stringify(value)}`,
    )
  }
  return value
}

function parseEntry(value: unknown, field: string): PluginEntry {
  assertObject(value, field)
  assertOneOf(value.kind, `${field}.kind`, ENTRY_KINDS)
  assertString(value.export, `${field}.export`)
  if (!EXPORT_PATTERN.test(value.export)) {
    throw invalidInput(
      `${field}.export`,
      `must be a wasm export name, got ${JSON.stringify(value.export)}`,
    )
  }
  const input = value.input ?? 'json'
  assertOneOf(input, `${field}.input`, ['json', 'text'] as const)
  const languages =
    value.languages === undefined ? [] : stringArray(value.languages, `${field}.languages`)
  const entry: PluginEntry = { kind: value.kind, export: value.export, input, languages }
  if (value.kind === 'command') {
    assertString(value.command, `${field}.command`, { maxLength: 200 })
    entry.command = value.command
  } else if (value.command !== undefined) {
    throw invalidInput(`${field}.command`, 'is only allowed on entries of kind "command"')
  }
  return entry
}

function parseCapabilities(value: unknown, field: string): RequestedCapabilities {
  if (value === undefined) return {}
  assertObject(value, field)
  const out: RequestedCapabilities = {}
  for (const key of Object.keys(value)) {
    if (!(CAPABILITY_NAMES as readonly string[]).includes(key)) {
      throw invalidInput(
        `${field}.${key}`,
        `is not a known capability (known: ${CAPABILITY_NAMES.join(', ')})`,
      )
    }
  }
  if (value.log !== undefined) {
    if (typeof value.log !== 'boolean') throw invalidInput(`${field}.log`, 'must be a boolean')
    out.log = value.log
  }
  if (value.config !== undefined) out.config = stringArray(value.config, `${field}.config`)
  if (value['workspace.read'] !== undefined) {
    out['workspace.read'] = stringArray(value['workspace.read'], `${field}["workspace.read"]`).map(
      (p, i) => relativePath(p, `${field}["workspace.read"][${i}]`),
    )
  }
  if (value.http !== undefined) {
    out.http = stringArray(value.http, `${field}.http`).map((host, i) =>
      parseHostPattern(host, `${field}.http[${i}]`),
    )
  }
  return out
}

/**
 * Validates a parsed `aide-plugin.json`. Throws `E_INVALID_INPUT` naming the
 * first wrong field (`manifest.entries[1].kind`).
 */
export function parseManifest(value: unknown, field = 'manifest'): PluginManifest {
  assertObject(value, field)
  assertString(value.id, `${field}.id`)
  if (!ID_PATTERN.test(value.id)) {
    throw invalidInput(`${field}.id`, `must match ${ID_PATTERN}, got ${JSON.stringify(value.id)}`)
  }
  assertString(value.version, `${field}.version`, { maxLength: 256 })
  if (semver.valid(value.version) === null) {
    throw invalidInput(
      `${field}.version`,
      `must be a semver version, got ${JSON.stringify(value.version)}`,
    )
  }
  assertString(value.hostApi, `${field}.hostApi`, { maxLength: 256 })
  if (semver.validRange(value.hostApi) === null) {
    throw invalidInput(
      `${field}.hostApi`,
      `must be a semver range, got ${JSON.stringify(value.hostApi)}`,
    )
  }
  const name = value.name ?? value.id
  assertString(name, `${field}.name`, { maxLength: 200 })
  const description = value.description ?? ''
  assertString(description, `${field}.description`, { allowEmpty: true, maxLength: 2000 })
  assertObject(value.wasm, `${field}.wasm`)
  const path = relativePath(value.wasm.path, `${field}.wasm.path`)
  assertString(value.wasm.sha256, `${field}.wasm.sha256`)
  if (!SHA256_PATTERN.test(value.wasm.sha256)) {
    throw invalidInput(`${field}.wasm.sha256`, 'must be 64 lower-case hex digits')
  }
  if (!Array.isArray(value.entries) || value.entries.length === 0) {
    throw invalidInput(`${field}.entries`, 'must be a non-empty array of entry points')
  }
  const entries = value.entries.map((entry: unknown, index: number) =>
    parseEntry(entry, `${field}.entries[${index}]`),
  )
  const keywords =
    value.keywords === undefined ? [] : stringArray(value.keywords, `${field}.keywords`)
  return {
    id: value.id,
    name,
    description,
    version: semver.valid(value.version)!,
    hostApi: value.hostApi,
    wasm: { path, sha256: value.wasm.sha256 },
    entries,
    capabilities: parseCapabilities(value.capabilities, `${field}.capabilities`),
    keywords,
  }
}

/** Lower-case hex sha256 of `bytes`. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** Throws `E_INTEGRITY` unless `bytes` hash to the manifest's `wasm.sha256`. */
export function verifyIntegrity(manifest: PluginManifest, bytes: Uint8Array): void {
  const actual = sha256Hex(bytes)
  if (actual !== manifest.wasm.sha256) {
    throw new AideError(
      'E_INTEGRITY',
      `plugins: ${manifest.id}@${manifest.version}: ${manifest.wasm.path} does not match the manifest's sha256 (expected ${manifest.wasm.sha256}, got ${actual}); the file was altered or the manifest is stale — reinstall the plugin`,
      { details: { pluginId: manifest.id, expected: manifest.wasm.sha256, actual } },
    )
  }
}

/** Throws `E_INCOMPATIBLE` unless `hostApiVersion` satisfies the manifest's `hostApi` range. */
export function checkCompatibility(manifest: PluginManifest, hostApiVersion: string): void {
  if (!semver.satisfies(hostApiVersion, manifest.hostApi, { includePrerelease: true })) {
    throw new AideError(
      'E_INCOMPATIBLE',
      `plugins: ${manifest.id}@${manifest.version} needs host API ${manifest.hostApi}, but this host provides ${hostApiVersion}; install a version of the plugin built for this host`,
      { details: { pluginId: manifest.id, hostApi: manifest.hostApi, hostApiVersion } },
    )
  }
}
