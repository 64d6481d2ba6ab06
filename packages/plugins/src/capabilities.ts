/**
 * Capability grants: a plugin gets a capability only when its manifest asks
 * for it and the host's policy allows it.
 */
import { isAbsolute, relative, resolve, sep } from 'node:path'
import { assertObject, assertString, invalidInput } from '@aide/core'
import type { RequestedCapabilities } from './manifest.js'

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
}

/** The capabilities actually granted to one plugin. */
export interface GrantedCapabilities {
  /** Logging is routed to the host logger. */
  log: boolean
  /** The config values the plugin can read. */
  config: Record<string, string>
  /** Absolute paths (files or folders) the plugin can read with `aide_read_file`. */
  workspaceRead: string[]
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
  return policy
}

/** Whether `path` is `folder` or lies inside it (both absolute). */
export function isWithin(folder: string, path: string): boolean {
  const rel = relative(folder, path)
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel))
}

/**
 * Intersects a plugin's requests with the host's policy. `denied` lists every
 * request that was not granted, e.g. `config.token` or `workspace.read:secrets`.
 */
export function grantCapabilities(
  requested: RequestedCapabilities,
  policy: CapabilityPolicy,
): { granted: GrantedCapabilities; denied: string[] } {
  const denied: string[] = []
  const granted: GrantedCapabilities = { log: false, config: {}, workspaceRead: [] }
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
  return { granted, denied }
}
