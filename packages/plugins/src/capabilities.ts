/**
 * Capability grants: a plugin gets a capability only when its manifest asks
 * for it and the host's policy allows it.
 */
import { isAbsolute, relative, resolve, sep } from 'node:path'
import { assertObject, assertString, invalidInput } from '@aide/core'
import { parseHostPattern, type RequestedCapabilities } from './manifest.js'

/** What the host is willing to grant. Anything absent is denied. */
export interface CapabilityPolicy {
  /** Allow plugins to log through the host's logger. */
  log?: boolean
  /** Config values offered to plugins; a plugin sees only the keys it requested. */
  config?: Record<string, string>
  /**
   * The workspace plugins may read from: its absolute `root` and, optionally,
   * the workspace-relative paths that may be read (default: all of `root`).
   */
  workspace?: { root: string; read?: string[] }
  /**
   * Hosts plugins may reach over HTTP: host names, `*.domain` (any subdomain)
   * or `*` (any host). A plugin gets the hosts it requested that one of these
   * covers; requests to any other host are refused before a connection is made.
   */
  http?: string[]
}

/** The capabilities actually granted to one plugin. */
export interface GrantedCapabilities {
  /** Logging is routed to the host logger. */
  log: boolean
  /** The config values the plugin can read. */
  config: Record<string, string>
  /** Absolute paths (files or folders) the plugin can read with `aide_read_file`. */
  workspaceRead: string[]
  /** Host patterns the plugin may reach with `http_request` (empty: no HTTP). */
  http: string[]
}

/** Validates a host capability policy. */
export function parseCapabilityPolicy(value: unknown, field: string): CapabilityPolicy {
  if (value === undefined) return {}
  assertObject(value, field)
  const policy: CapabilityPolicy = {}
  if (value.log !== undefined) {
    if (typeof value.log !== 'boolean') throw invalidInput(`${field}.log`, 'must be a boolean')
    policy.log = value.log
  }
  if (value.config !== undefined) {
    assertObject(value.config, `${field}.config`)
    for (const [key, item] of Object.entries(value.config)) {
      assertString(item, `${field}.config.${key}`, { allowEmpty: true })
    }
    policy.config = { ...(value.config as Record<string, string>) }
  }
  if (value.workspace !== undefined) {
    assertObject(value.workspace, `${field}.workspace`)
    assertString(value.workspace.root, `${field}.workspace.root`)
    if (!isAbsolute(value.workspace.root))
      throw invalidInput(`${field}.workspace.root`, 'must be an absolute path')
    const read = value.workspace.read
    if (read !== undefined && (!Array.isArray(read) || read.some((p) => typeof p !== 'string'))) {
      throw invalidInput(`${field}.workspace.read`, 'must be an array of workspace-relative paths')
    }
    policy.workspace = { root: resolve(value.workspace.root), ...(read ? { read: [...read] } : {}) }
  }
  if (value.http !== undefined) {
    if (!Array.isArray(value.http))
      throw invalidInput(`${field}.http`, 'must be an array of host patterns')
    policy.http = value.http.map((host, i) => parseHostPattern(host, `${field}.http[${i}]`))
  }
  return policy
}

/** Whether `path` is `folder` or lies inside it (both absolute). */
export function isWithin(folder: string, path: string): boolean {
  const rel = relative(folder, path)
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel))
}

/**
 * Whether host pattern `allowed` covers every host that `requested` matches:
 * `*` covers everything, `*.example.com` covers `api.example.com` and
 * `*.eu.example.com`, a plain host covers only itself.
 */
export function hostPatternCovers(allowed: string, requested: string): boolean {
  if (allowed === '*' || allowed === requested) return true
  return allowed.startsWith('*.') && requested !== '*' && requested.endsWith(allowed.slice(1))
}

/**
 * Intersects a plugin's requests with the host's policy. `denied` lists every
 * request that was not granted, e.g. `config.token`, `workspace.read:secrets`
 * or `http:api.example.com`.
 */
export function grantCapabilities(
  requested: RequestedCapabilities,
  policy: CapabilityPolicy,
): { granted: GrantedCapabilities; denied: string[] } {
  const denied: string[] = []
  const granted: GrantedCapabilities = { log: false, config: {}, workspaceRead: [], http: [] }
  if (requested.log) {
    if (policy.log) granted.log = true
    else denied.push('log')
  }
  for (const key of requested.config ?? []) {
    if (policy.config && Object.hasOwn(policy.config, key))
      granted.config[key] = policy.config[key]!
    else denied.push(`config.${key}`)
  }
  for (const path of requested['workspace.read'] ?? []) {
    const workspace = policy.workspace
    const absolute = workspace ? resolve(workspace.root, path) : undefined
    const allowedRoots = workspace
      ? (workspace.read ?? ['.']).map((p) => resolve(workspace.root, p))
      : []
    if (
      absolute &&
      isWithin(workspace!.root, absolute) &&
      allowedRoots.some((root) => isWithin(root, absolute))
    ) {
      granted.workspaceRead.push(absolute)
    } else {
      denied.push(`workspace.read:${path}`)
    }
  }
  for (const host of requested.http ?? []) {
    if (policy.http?.some((allowed) => hostPatternCovers(allowed, host))) granted.http.push(host)
    else denied.push(`http:${host}`)
  }
  return { granted, denied }
}
